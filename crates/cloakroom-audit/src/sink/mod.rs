//! Where records go: the [`AuditSink`] and [`AuditStore`] traits and their backends.
//!
//! - [`SegmentStore`]: append-only segment files in `<data_dir>/audit` (the default store,
//!   always there).
//! - `SledSink` (cargo feature `sled`): embedded sled, the previous default; kept to
//!   migrate from.
//! - `PostgresSink` (cargo feature `postgres`): one PostgreSQL table shared by replicas,
//!   a chain per replica.
//! - [`JsonlSink`]: an append-only JSON-lines file for shipping to a SIEM (a sink only).
//!
//! A sink's `append` returns only once the batch is durable (flushed or committed);
//! the [`AuditLog`](crate::AuditLog) decides whether a caller waits for that (`sync`)
//! or not (`batched`).

mod jsonl;
#[cfg(feature = "postgres")]
mod postgres;
mod segment;
#[cfg(feature = "sled")]
mod sled;

pub use self::jsonl::{read_jsonl, verify_jsonl, JsonlSink};
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresSink, POSTGRES_TABLE};
pub use self::segment::{decode_chain_id, encode_chain_id, SegmentStore, DEFAULT_SEGMENT_BYTES};
#[cfg(feature = "sled")]
pub use self::sled::{SledSink, RUN_LEN as SLED_RUN_LEN};

use async_trait::async_trait;
use time::OffsetDateTime;

/// A record sealed into its chain, as sinks store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The chain.
    pub chain_id: String,
    /// Its position in the chain.
    pub seq: u64,
    /// The call id.
    pub call_id: String,
    /// The record's `time` (fixed-width RFC 3339, sorts like the time).
    pub time: String,
    /// The record's hash.
    pub hash: String,
    /// The canonical JSON, exactly as hashed; what the store keeps.
    pub text: String,
}

/// Why a sink could not do what was asked. The variants of a backend are there only
/// with its cargo feature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sled store failed.
    #[cfg(feature = "sled")]
    #[error("sled: {0}")]
    Sled(#[from] ::sled::Error),
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[cfg(feature = "postgres")]
    #[error("postgres pool: {0}")]
    Pool(String),
    /// A file could not be written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data is not what the sink wrote (run `verify`).
    #[error("stored audit data is damaged: {0}")]
    Corrupt(String),
    /// The batch cannot be stored as given (mixed chains, an empty chain id, records out
    /// of order or not after the stored head of their chain, a raw newline in a text).
    #[error("audit batch refused: {0}")]
    Invalid(String),
    /// The sled store could not be migrated to segment files; it is left as it was.
    #[error("audit store migration: {0}")]
    Migration(String),
    /// A blocking task was cancelled or panicked.
    #[error("sink task failed: {0}")]
    Task(String),
}

/// Runs blocking file or database work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SinkError::Task(e.to_string()))?
}

/// Where to start reading records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// From the first record.
    Start,
    /// After this `seq` (of the query's chain, or this replica's).
    Seq(u64),
    /// From this time on (inclusive).
    Time(OffsetDateTime),
}

/// A query for records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    /// Only this chain; `None`: every chain for [`Since::Start`] and [`Since::Time`] and
    /// this replica's chain for [`Since::Seq`].
    pub chain_id: Option<String>,
    /// Where to start.
    pub since: Since,
    /// At most this many records.
    pub limit: usize,
}

impl RecordQuery {
    /// The first `limit` records.
    pub fn from_start(limit: usize) -> Self {
        Self { chain_id: None, since: Since::Start, limit }
    }
}

/// Something records can be written to.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// A short name for logs (`segment`, `sled`, `postgres`, `jsonl`).
    fn kind(&self) -> &'static str;

    /// Writes a batch of consecutive records durably: when this returns `Ok`, they
    /// survive a crash. Either all of the batch is written or none (as far as the
    /// backend allows; the JSON-lines file rolls back a partial write).
    async fn append(&self, batch: &[SealedRecord]) -> Result<(), SinkError>;
}

/// A sink that can also be read: the primary store behind queries and `verify`.
#[async_trait]
pub trait AuditStore: AuditSink {
    /// The last stored `(seq, hash)` of a chain, `None` when it is empty.
    async fn head(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError>;

    /// Every chain in the store, sorted.
    async fn chain_ids(&self) -> Result<Vec<String>, SinkError>;

    /// Stored records of a chain in the store's order, as `(key, stored bytes)`, after
    /// the key `after` — the raw bytes, so that `verify` sees exactly what is stored.
    async fn scan(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError>;

    /// Stored records matching a query, oldest first. `local_chain` is the chain
    /// [`Since::Seq`] refers to when the query names none.
    async fn query(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError>;

    /// The stored record of a call.
    async fn find(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError>;
}
