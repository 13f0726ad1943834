//! The tamper-evident audit record of Cloakroom: one record per call, in a hash chain,
//! in sinks that survive crashes, with verify, export and replay.
//!
//! - [`AuditRecord`]: the record of docs/reference.md's audit record ([`record`]), canonical JSON and SHA-256
//!   chain ([`chain`]).
//! - [`AuditLog`]: redacts ([`Redactor`]), seals into this replica's chain and
//!   group-commits to an [`AuditStore`] (segment files, or PostgreSQL with the cargo
//!   feature `postgres`) and an optional JSON-lines export; answers queries, `verify` and
//!   export.
//! - [`AuditLayer`]: the tower layer that opens and seals a record for every request.
//! - [`replay`]: re-runs today's policy ([`ReplayPolicy`]) on a recorded call.
//! - [`AuditConfig`]: the `[audit]` section of `cloakroom.toml`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use cloakroom_audit::{AuditConfig, AuditLog, AuditRecord, NoRedaction, RecordQuery};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = AuditLog::open(&AuditConfig::default(), dir.path(), Arc::new(NoRedaction)).await.unwrap();
//! for _ in 0..3 {
//!     let r = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::now_utc());
//!     log.append(r).await.unwrap();
//! }
//! let records = log.records(&RecordQuery::from_start(10)).await.unwrap();
//! assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
//! assert_eq!(records[1].prev_hash, records[0].hash);
//! assert!(log.verify().await.unwrap().is_ok());
//! # log.close().await; }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod chain;
mod config;
pub mod layer;
mod log;
mod metrics;
pub mod record;
mod redact;
mod render;
mod replay;
pub mod sink;

pub use chain::{BreakKind, ChainBreak, ChainReport, VerifyReport};
pub use config::{AuditConfig, Durability, OnFailure, SinkKind, DEFAULT_POSTGRES_URL_ENV};
pub use layer::{Audit, AuditLayer, OnSeal, SealedCall};
pub use log::{
    replica_id, verify_store, Acked, AppendNow, Appended, AuditError, AuditLog, LogOptions, ReadyRecord, BATCH_WINDOW,
    DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY, MAX_BATCH,
};
pub use metrics::{AuditMetrics, AuditMetricsSnapshot};
pub use record::{
    AuditRecord, RecordBody, RecordDecision, RecordError, RecordIdentity, RecordRequest, RecordResponse,
    RecordUpstream, GENESIS_HASH, REDACTED, SENSITIVE_HEADERS,
};
pub use redact::{NoRedaction, Redactor};
pub use replay::{replay, ReplayError, ReplayPolicy, ReplayReport};
#[cfg(feature = "postgres")]
pub use sink::PostgresSink;
#[cfg(feature = "sled")]
pub use sink::SledSink;
pub use sink::{
    read_jsonl, verify_jsonl, AuditSink, AuditStore, JsonlSink, RecordQuery, SealedRecord, SegmentStore, Since,
    SinkError,
};
