//! The audit log: redaction, the chain head, the group-commit writer and queries.
//!
//! [`AuditLog::append`] redacts a record, seals it into this replica's chain (assigning
//! `seq`, `prev_hash` and `hash` under one lock, so the queue is in chain order) and
//! hands it to a single writer task through a bounded queue. The writer group-commits
//! whatever is queued to the store and the optional JSON-lines export:
//! - `sync`: each caller waits until its record's batch is durable; records of
//!   concurrent calls share one flush.
//! - `batched`: callers do not wait; a batch is committed at the latest 10 ms after its
//!   first record was queued.
//!
//! When a write fails the log becomes unavailable (callers of a `sync` append get
//! [`AuditError::Unavailable`] at once), and the writer retries the same batch with
//! back-off, so the chain never gets a hole; once it succeeds the log is available again.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use cloakroom_audit::{AuditConfig, AuditLog, AuditRecord, NoRedaction};
//! let dir = tempfile::tempdir().unwrap();
//! let log = AuditLog::open(&AuditConfig::default(), dir.path(), Arc::new(NoRedaction)).await.unwrap();
//! let record = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::now_utc());
//! let appended = log.append(record).await.unwrap();
//! assert_eq!(appended.seq, 1);
//! assert!(log.verify().await.unwrap().is_ok());
//! log.close().await;
//! # }
//! ```

use std::{
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use cloakroom_core::{CallId, ErrorCode};
use tokio::{
    sync::{mpsc, oneshot, Mutex},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    chain::{self, CanonicalError, ChainVerifier, VerifyReport},
    config::{AuditConfig, Durability, OnFailure, SinkKind},
    metrics::AuditMetrics,
    render::Rendered,
    sink::{AuditSink, AuditStore, JsonlSink, RecordQuery, SealedRecord, SegmentStore, SinkError},
    AuditRecord, RecordBody, Redactor,
};

mod scrub;
mod writer;

use scrub::*;
use writer::*;

/// The longest a `batched` record waits in the queue before its group commit starts.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// The most records written in one group commit.
pub const MAX_BATCH: usize = 4096;
/// Default bound of the queue between callers and the writer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16384;
/// Default byte bound of the queue to the writer: 64 MiB of sealed records. Records
/// carrying 64 KiB bodies run the writer out of disk bandwidth at a few thousand calls a
/// second; without a byte bound, 16,384 of them queued held 2 GB (docs/audit.md).
pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;

/// Why the audit log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The sinks cannot write: the call must be refused (`audit_unavailable`).
    #[error("the audit log cannot write")]
    Unavailable,
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The record has no canonical form.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
    /// The redactor's output is no longer a record.
    #[error("the redacted record does not parse: {0}")]
    Redaction(String),
    /// A stored record does not parse (run `verify`).
    #[error("stored record does not parse: {0}")]
    Corrupt(String),
    /// The configuration cannot be used.
    #[error("audit configuration: {0}")]
    Config(String),
}

impl AuditError {
    /// The wire error for a call refused because of this.
    pub fn to_core(&self) -> cloakroom_core::Error {
        cloakroom_core::Error::new(ErrorCode::AuditUnavailable, "the audit log cannot record this call")
    }
}

/// How an [`AuditLog`] behaves (the parts of [`AuditConfig`] it needs, plus the chain id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// This replica's chain.
    pub chain_id: String,
    /// `sync` or `batched`.
    pub durability: Durability,
    /// `refuse` or `continue`.
    pub on_failure: OnFailure,
    /// Bound of the queue to the writer, in records.
    pub queue_capacity: usize,
    /// Bound of the queue to the writer, in bytes of sealed text (a record larger than
    /// this takes the whole queue). Appends wait for room beyond either bound.
    pub queue_bytes: usize,
}

impl LogOptions {
    /// Options for `chain_id` with the configured durability and failure mode.
    pub fn from_config(config: &AuditConfig, chain_id: impl Into<String>) -> Self {
        Self {
            chain_id: chain_id.into(),
            durability: config.durability,
            on_failure: config.on_failure,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

/// Where an appended record went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its chain.
    pub chain_id: String,
    /// Its `seq`.
    pub seq: u64,
    /// Its `hash`.
    pub hash: String,
}

enum Job {
    Record {
        record: SealedRecord,
        queued: Instant,
        ack: Option<oneshot::Sender<Result<(), AuditError>>>,
        /// The record's share of the queue's byte bound, given back once it is written.
        room: tokio::sync::OwnedSemaphorePermit,
    },
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// A redacted record, ready to be sealed under the chain lock.
enum Prepared {
    /// No string held a secret: the record's text, rendered directly.
    Rendered(Rendered),
    /// Something was redacted: the record as a JSON value.
    Value(serde_json::Value),
}

/// A record redacted and rendered, ready to be sealed into the chain
/// ([`AuditLog::append_ready`]).
pub struct ReadyRecord {
    record: AuditRecord,
    prepared: Prepared,
}

impl ReadyRecord {
    /// The room the record takes in the queue: its rendered text (the hash fields are
    /// added on sealing), or a body limit's worth for a redacted one.
    fn room(&self, bound: usize) -> u32 {
        let len = match &self.prepared {
            Prepared::Rendered(r) => r.len() + 256,
            Prepared::Value(_) => 256 << 10,
        };
        u32::try_from(len.clamp(1, bound.max(1))).unwrap_or(u32::MAX)
    }
}

impl std::fmt::Debug for ReadyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyRecord").field("id", &self.record.id).finish_non_exhaustive()
    }
}

/// How far [`AuditLog::append_now`] got.
#[derive(Debug)]
pub enum AppendNow {
    /// Sealed and queued (`batched`), or refused: the result of the append.
    Done(Result<Appended, AuditError>),
    /// Sealed and queued (`sync`): durable once [`Acked::wait`] returns.
    Durable(Appended, Acked),
    /// The chain head or the writer's queue was busy: seal it with
    /// [`AuditLog::append_ready`].
    Busy(Box<ReadyRecord>),
}

/// The writer's word that a `sync` record is durable.
#[derive(Debug)]
pub struct Acked(oneshot::Receiver<Result<(), AuditError>>);

impl Acked {
    /// Waits until the record is durable in every sink; `appended` on success.
    pub async fn wait(self, appended: Appended) -> Result<Appended, AuditError> {
        self.0.await.unwrap_or(Err(AuditError::Unavailable))?;
        Ok(appended)
    }
}

/// The audit log of one replica. Cheap to clone; every clone shares one chain and writer.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    options: LogOptions,
    head: Mutex<Option<(u64, String)>>,
    tx: mpsc::Sender<Job>,
    /// Bytes of sealed text the queue may still take ([`LogOptions::queue_bytes`]).
    room: Arc<tokio::sync::Semaphore>,
    store: Arc<dyn AuditStore>,
    redactor: Arc<dyn Redactor>,
    metrics: Arc<AuditMetrics>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("options", &self.inner.options)
            .field("store", &self.inner.store.kind())
            .finish_non_exhaustive()
    }
}

/// This replica's stable chain id: `<data_dir>/audit-replica-id`, created once.
pub fn replica_id(data_dir: &Path) -> Result<String, AuditError> {
    let path = data_dir.join("audit-replica-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SinkError::Io(e).into()),
    }
    std::fs::create_dir_all(data_dir).map_err(SinkError::Io)?;
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = data_dir.join("audit-replica-id.tmp");
    std::fs::write(&tmp, &id).map_err(SinkError::Io)?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(SinkError::Io)?;
    std::fs::rename(&tmp, &path).map_err(SinkError::Io)?;
    Ok(id)
}

// === impl AuditLog ===

impl AuditLog {
    /// Opens the log `config` describes: the store (segment files in `<data_dir>/audit`, or
    /// PostgreSQL from the environment variable `postgres_url_env`, migrated), the
    /// optional JSON-lines export, and this replica's chain.
    pub async fn open(config: &AuditConfig, data_dir: &Path, redactor: Arc<dyn Redactor>) -> Result<Self, AuditError> {
        config.check_features().map_err(|e| AuditError::Config(e.to_string()))?;
        let chain_id = match &config.chain_id {
            Some(id) if id.trim().is_empty() => return Err(AuditError::Config("chain_id is empty".into())),
            Some(id) => id.clone(),
            None => {
                // Reads, and on first start writes and fsyncs, a file: off the runtime.
                let dir = data_dir.to_owned();
                tokio::task::spawn_blocking(move || replica_id(&dir))
                    .await
                    .map_err(|e| AuditError::Sink(SinkError::Task(e.to_string())))??
            }
        };
        let store: Arc<dyn AuditStore> = match config.sink {
            SinkKind::Embedded => Arc::new(SegmentStore::open(&data_dir.join("audit")).await?),
            #[cfg(feature = "postgres")]
            SinkKind::Postgres => {
                let var = config.postgres_url_env();
                let url = std::env::var(var).map_err(|_| {
                    AuditError::Config(format!("sink = \"postgres\" needs the environment variable {var}"))
                })?;
                Arc::new(crate::sink::PostgresSink::connect(&url).await?)
            }
            // A sink compiled out: `check_features` refused it above.
            #[allow(unreachable_patterns)]
            other => return Err(AuditError::Config(format!("audit.sink = {:?} is not compiled in", other.as_str()))),
        };
        let export: Option<Arc<dyn AuditSink>> = match &config.export_jsonl {
            Some(path) => Some(Arc::new(JsonlSink::open(path)?)),
            None => None,
        };
        Self::with_sinks(store, export, LogOptions::from_config(config, chain_id), redactor).await
    }

    /// A log over the given store and optional export. Reads the chain head and starts
    /// the writer task (call from within a tokio runtime).
    pub async fn with_sinks(
        store: Arc<dyn AuditStore>,
        export: Option<Arc<dyn AuditSink>>,
        options: LogOptions,
        redactor: Arc<dyn Redactor>,
    ) -> Result<Self, AuditError> {
        let head = store.head(&options.chain_id).await?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let metrics = Arc::new(AuditMetrics::default());
        let mut sinks: Vec<Arc<dyn AuditSink>> = vec![store.clone() as Arc<dyn AuditSink>];
        sinks.extend(export);
        let writer = tokio::spawn(
            Writer {
                rx,
                sinks,
                metrics: metrics.clone(),
                durability: options.durability,
                on_failure: options.on_failure,
            }
            .run(),
        );
        let room =
            Arc::new(tokio::sync::Semaphore::new(options.queue_bytes.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                head: Mutex::new(head),
                tx,
                room,
                store,
                redactor,
                metrics,
                writer: std::sync::Mutex::new(Some(writer)),
            }),
        })
    }

    /// This replica's chain id.
    pub fn chain_id(&self) -> &str {
        &self.inner.options.chain_id
    }

    /// The options in force.
    pub fn options(&self) -> &LogOptions {
        &self.inner.options
    }

    /// The counters, for the gateway's `/metrics`.
    pub fn metrics(&self) -> &Arc<AuditMetrics> {
        &self.inner.metrics
    }

    /// Whether the sinks are writing. While they are not and `on_failure = "refuse"`,
    /// the `AuditLayer` refuses new calls.
    pub fn is_available(&self) -> bool {
        self.inner.metrics.available.load(Ordering::Relaxed)
    }

    /// The store behind queries and `verify`.
    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.inner.store
    }

    /// Redacts `record`, seals it into the chain and queues it. With `sync` durability
    /// this returns once the record is durable in every sink. The chain fields of
    /// `record` are overwritten.
    pub async fn append(&self, record: AuditRecord) -> Result<Appended, AuditError> {
        match self.append_now(record) {
            AppendNow::Done(result) => result,
            AppendNow::Durable(appended, acked) => acked.wait(appended).await,
            AppendNow::Busy(ready) => self.append_ready(ready).await,
        }
    }

    /// [`append`](Self::append) as far as it goes without waiting: the record is
    /// redacted and rendered, and when the chain head is free and the writer's queue has
    /// room it is sealed and queued at once ([`AppendNow::Done`], or with `sync`
    /// [`AppendNow::Durable`]). Otherwise it comes back ready to seal
    /// ([`AppendNow::Busy`]) for [`append_ready`](Self::append_ready).
    ///
    /// The audit layer seals a call's record this way, in the same poll as the
    /// response's last frame, so the answer's end goes out with its data in one write
    /// instead of waiting for another task (docs/performance.md, "Cost per call").
    pub fn append_now(&self, mut record: AuditRecord) -> AppendNow {
        let inner = &*self.inner;
        if inner.options.on_failure == OnFailure::Refuse && !self.is_available() {
            return AppendNow::Done(Err(self.lost(1)));
        }
        record.chain_id = inner.options.chain_id.clone();
        let prepared = match self.redact(&mut record) {
            Ok(p) => p,
            Err(e) => return AppendNow::Done(Err(e)),
        };
        let ready = ReadyRecord { record, prepared };
        let need = ready.room(inner.options.queue_bytes);
        let Ok(room) = inner.room.clone().try_acquire_many_owned(need) else {
            return AppendNow::Busy(Box::new(ready));
        };
        let Ok(mut head) = inner.head.try_lock() else { return AppendNow::Busy(Box::new(ready)) };
        let Ok(permit) = inner.tx.try_reserve() else {
            drop(head);
            if !self.is_available() {
                // While the writer retries, a full queue is not waited on.
                return AppendNow::Done(Err(self.lost(1)));
            }
            return AppendNow::Busy(Box::new(ready));
        };
        let (job, appended, acked) = match self.seal(ready, &head, room) {
            Ok(sealed) => sealed,
            Err(e) => return AppendNow::Done(Err(e)),
        };
        // Queued under the head lock, so the queue is in chain order.
        permit.send(job);
        *head = Some((appended.seq, appended.hash.clone()));
        match acked {
            Some(acked) => AppendNow::Durable(appended, acked),
            None => AppendNow::Done(Ok(appended)),
        }
    }

    /// Seals and queues a record [`append_now`](Self::append_now) gave back, waiting for
    /// the chain head and for room in the queue.
    pub async fn append_ready(&self, ready: Box<ReadyRecord>) -> Result<Appended, AuditError> {
        let inner = &*self.inner;
        // Room in bytes first, outside the head lock: a large record waits for the
        // writer without holding up the chain.
        let room = inner
            .room
            .clone()
            .acquire_many_owned(ready.room(inner.options.queue_bytes))
            .await
            .map_err(|_| self.lost(1))?;
        let (appended, acked) = {
            let mut head = inner.head.lock().await;
            let (job, appended, acked) = self.seal(*ready, &head, room)?;
            // Sent under the head lock, so the queue is in chain order.
            let sent = if self.is_available() {
                inner.tx.send(job).await.is_ok()
            } else {
                // While the writer retries, do not wait on a full queue.
                inner.tx.try_send(job).is_ok()
            };
            if !sent {
                return Err(self.lost(1));
            }
            *head = Some((appended.seq, appended.hash.clone()));
            (appended, acked)
        };
        match acked {
            Some(acked) => acked.wait(appended).await,
            None => Ok(appended),
        }
    }

    /// Seals a ready record after `head` (assigning `seq`, `prev_hash` and `hash`): the
    /// job for the writer, what was appended, and with `sync` the wait for durability.
    fn seal(
        &self,
        ready: ReadyRecord,
        head: &Option<(u64, String)>,
        room: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(Job, Appended, Option<Acked>), AuditError> {
        let ReadyRecord { mut record, prepared } = ready;
        let prev = head.as_ref().map(|(s, h)| (*s, h.as_str()));
        let text = match prepared {
            Prepared::Rendered(rendered) => {
                #[cfg(debug_assertions)]
                let reference = chain::seal(&mut record.clone(), prev)?;
                let text = rendered.seal(&mut record, prev);
                // Debug builds (every test) check the direct text against the
                // serde_json::Value path that `verify` is built on.
                #[cfg(debug_assertions)]
                assert_eq!(text, reference, "render.rs and chain::seal disagree");
                text
            }
            Prepared::Value(value) => chain::seal_value(&mut record, value, prev)?,
        };
        let (ack, acked) = if self.inner.options.durability == Durability::Sync {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(Acked(rx)))
        } else {
            (None, None)
        };
        let appended = Appended { chain_id: record.chain_id.clone(), seq: record.seq, hash: record.hash.clone() };
        let sealed = SealedRecord {
            chain_id: record.chain_id,
            seq: record.seq,
            call_id: record.id,
            time: record.time,
            hash: record.hash,
            text,
        };
        Ok((Job::Record { record: sealed, queued: Instant::now(), ack, room }, appended, acked))
    }

    fn lost(&self, n: u64) -> AuditError {
        AuditMetrics::add(&self.inner.metrics.records_lost, n);
        AuditError::Unavailable
    }

    /// Counts a call refused because the log is unavailable.
    pub(crate) fn count_refused(&self) {
        AuditMetrics::add(&self.inner.metrics.calls_refused, 1);
    }

    /// The redaction pass: each body's raw bytes (which covers bodies recorded as
    /// base64), then every string of the record, keys included (headers, paths, bodies,
    /// messages…).
    ///
    /// Nearly every record holds no secret: one redactor pass over all its strings
    /// joined tells so (see [`Rendered::strings`]), and the record goes on as the text
    /// rendered for it. Only when the pass finds something is each string of the
    /// record's JSON value redacted on its own, and the value sealed.
    fn redact(&self, record: &mut AuditRecord) -> Result<Prepared, AuditError> {
        let redactor = &*self.inner.redactor;
        for body in [&mut record.request.body, &mut record.response.body].into_iter().flatten() {
            if body.encoding != "base64" {
                continue; // text bodies are covered by the string pass below
            }
            if let Some(bytes) = body.decoded() {
                let redacted = redactor.redact(&bytes);
                if redacted != bytes {
                    let truncated = body.truncated;
                    *body = RecordBody::capture(&redacted, body.bytes, redacted.len());
                    body.truncated = truncated;
                }
            }
        }
        let rendered = Rendered::new(record);
        if !holds_secret(&rendered, redactor) {
            return Ok(Prepared::Rendered(rendered));
        }
        let mut value = serde_json::to_value(&*record).map_err(CanonicalError::from)?;
        redact_strings(&mut value, redactor)?;
        Ok(Prepared::Value(value))
    }

    /// Waits until every record queued so far has been written (or given up on).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Job::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes what is queued, stops the writer and waits for it, so that the store can be
    /// reopened once every clone of this log is dropped. Later appends fail.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Job::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Records matching `query`, oldest first.
    pub async fn records(&self, query: &RecordQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let raw = self.inner.store.query(query, self.chain_id()).await?;
        raw.iter().map(|r| serde_json::from_slice(r).map_err(|e| AuditError::Corrupt(e.to_string()))).collect()
    }

    /// The record of call `id`.
    pub async fn record(&self, id: &CallId) -> Result<Option<AuditRecord>, AuditError> {
        match self.inner.store.find(&id.to_string()).await? {
            Some(raw) => Ok(Some(serde_json::from_slice(&raw).map_err(|e| AuditError::Corrupt(e.to_string()))?)),
            None => Ok(None),
        }
    }

    /// Verifies every chain in the store; see [`verify_store`].
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        Ok(verify_store(&*self.inner.store).await?)
    }

    /// Writes the records matching `query` as JSON lines (the stored canonical text, one
    /// record per line) and returns how many were written.
    pub async fn export_jsonl<W: std::io::Write>(&self, query: &RecordQuery, out: &mut W) -> Result<u64, AuditError> {
        let raw = self.inner.store.query(query, self.chain_id()).await?;
        for r in &raw {
            out.write_all(r).and_then(|()| out.write_all(b"\n")).map_err(SinkError::Io)?;
        }
        Ok(raw.len() as u64)
    }
}

/// Verifies every chain of a store from its stored bytes and reports, per chain, the
/// first broken link.
pub async fn verify_store(store: &dyn AuditStore) -> Result<VerifyReport, SinkError> {
    const PAGE: usize = 1000;
    let mut chains = Vec::new();
    for chain_id in store.chain_ids().await? {
        let mut v = ChainVerifier::new(chain_id.clone());
        let mut after = None;
        loop {
            let page = store.scan(&chain_id, after, PAGE).await?;
            for (key, bytes) in &page {
                v.push(bytes);
                after = Some(*key);
            }
            if page.len() < PAGE || v.broken() {
                break;
            }
        }
        chains.push(v.finish());
    }
    Ok(VerifyReport { chains })
}

#[cfg(test)]
mod tests;
