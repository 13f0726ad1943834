//! `AuditLayer`: one record for every request, sealed exactly once when the response
//! body ends, fails, or is dropped by a caller that went away.
//!
//! The layer is the outermost security layer (docs/reference.md, the data path, layer 2). For each request it
//! - takes the `CallId` already in the request extensions, or creates one, and puts an
//!   [`AuditNote`](cloakroom_core::AuditNote) next to it for the inner layers to fill in;
//! - tees the request body as the caller sent it (placeholders) up to
//!   `max_body_record_bytes`, without delaying it;
//! - wraps the response body, copying what the caller receives (after masking), and
//!   seals the record when the body ends, errors or is dropped (the linkerd `body-eos`
//!   pattern) — short-circuit error responses of inner layers included;
//! - refuses new calls with 503 `audit_unavailable` while the log cannot write (unless
//!   `on_failure = "continue"`). With `durability = "sync"` the response body ends only
//!   once the record is durable; if it cannot be written the body ends with an error
//!   instead of a clean end.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, Layer, ServiceExt};
//! use cloakroom_audit::{AuditConfig, AuditLayer, AuditLog, NoRedaction, RecordQuery};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AuditConfig::default();
//! let log = AuditLog::open(&config, dir.path(), Arc::new(NoRedaction)).await.unwrap();
//! let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|_req| async {
//!     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
//! }));
//! let res = svc.oneshot(http::Request::new(Full::new(Bytes::from("hi")))).await.unwrap();
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
//! let records = log.records(&RecordQuery::from_start(10)).await.unwrap();
//! assert_eq!(records[0].response.body.as_ref().unwrap().data, "hello");
//! # log.close().await; }
//! ```

mod body;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use self::body::{AuditWriteFailed, RequestBody, ResponseBody};
pub use self::future::ResponseFuture;
pub use self::layer::{AuditLayer, OnSeal, SealedCall};
pub use self::service::Audit;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use bytes::Buf;
use cloakroom_core::AuditNote;
use http::{HeaderMap, StatusCode};

use crate::{
    record::{record_headers, RecordError},
    AppendNow, AuditError, AuditLog, AuditRecord, RecordBody,
};

pub(crate) use tower::BoxError;

type SealFuture = Pin<Box<dyn Future<Output = Result<crate::Appended, AuditError>> + Send>>;

/// The first bytes of a body, and how many there were in all.
#[derive(Debug)]
pub(crate) struct BodyCapture {
    buf: Vec<u8>,
    total: u64,
    max: usize,
    enabled: bool,
}

impl BodyCapture {
    pub(crate) fn new(enabled: bool, max: usize) -> Self {
        Self { buf: Vec::new(), total: 0, max, enabled }
    }

    pub(crate) fn push<D: Buf>(&mut self, data: &D) {
        self.total += data.remaining() as u64;
        if !self.enabled || self.buf.len() >= self.max {
            return;
        }
        let mut slices = [std::io::IoSlice::new(&[]); 64];
        let n = data.chunks_vectored(&mut slices);
        for s in &slices[..n] {
            let room = self.max - self.buf.len();
            self.buf.extend_from_slice(&s[..s.len().min(room)]);
            if self.buf.len() >= self.max {
                break;
            }
        }
    }

    fn record(&self) -> Option<RecordBody> {
        self.enabled.then(|| RecordBody::capture(&self.buf, self.total, self.max))
    }
}

/// How the exchange ended, for the record's `error`.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The response body ended normally.
    Complete,
    /// The response body failed.
    BodyError(String),
    /// The inner service failed without a response.
    ServiceError,
    /// The caller went away (the future or the body was dropped).
    Aborted,
}

/// Everything needed to seal one record; seals exactly once, on [`Sealer::finish`] or
/// on drop.
pub(crate) struct Sealer {
    state: Option<SealState>,
    on_failure: crate::OnFailure,
}

struct SealState {
    log: AuditLog,
    on_seal: Option<OnSeal>,
    head_at: Option<std::time::Instant>,
    note: AuditNote,
    record: AuditRecord,
    started: std::time::Instant,
    request_body: Arc<Mutex<BodyCapture>>,
    response_body: BodyCapture,
    responded: bool,
    /// The response body's exact length, when known: a body dropped after exactly that
    /// many bytes was complete (hyper drops a body once its `content-length` is sent).
    expected_len: Option<u64>,
}

impl Sealer {
    pub(crate) fn new(
        log: AuditLog,
        note: AuditNote,
        record: AuditRecord,
        request_body: Arc<Mutex<BodyCapture>>,
        response_body: BodyCapture,
        on_seal: Option<OnSeal>,
    ) -> Self {
        Self {
            on_failure: log.options().on_failure,
            state: Some(SealState {
                log,
                on_seal,
                head_at: None,
                note,
                record,
                started: std::time::Instant::now(),
                request_body,
                response_body,
                responded: false,
                expected_len: None,
            }),
        }
    }

    /// Notes the response head.
    pub(crate) fn respond(&mut self, status: StatusCode, headers: &HeaderMap, expected_len: Option<u64>) {
        if let Some(s) = &mut self.state {
            s.expected_len = expected_len;
            s.head_at = Some(std::time::Instant::now());
            s.record.response.status = Some(status.as_u16());
            s.record.response.headers = record_headers(headers);
            s.responded = true;
        }
    }

    /// Copies response bytes the caller is about to receive.
    pub(crate) fn capture<D: Buf>(&mut self, data: &D) {
        if let Some(s) = &mut self.state {
            s.response_body.push(data);
        }
    }

    /// Builds the record and returns the future that appends it; `None` if already sealed.
    pub(crate) fn finish(&mut self, outcome: Outcome) -> Option<SealFuture> {
        let s = self.state.take()?;
        let log = s.log.clone();
        let hook = s.on_seal.clone();
        let head_latency = s.head_at.map(|at| at.duration_since(s.started));
        let record = s.build(outcome);
        if let Some(hook) = hook {
            hook(&SealedCall { record: &record, head_latency });
        }
        // Sealed in line when the chain head and the writer's queue are free: the
        // body then ends in the same poll as its last frame, and the answer goes out in
        // one write. Whatever has to wait runs as a task of its own, so that nothing the
        // caller does can cancel it: the response body that waits for it is dropped when
        // the caller goes away, and an append dropped while it waited (for the chain's
        // lock, for room in the writer's queue) took the record with it, silently.
        // Dropping the handle does not stop the task.
        let ready = match log.append_now(record) {
            AppendNow::Done(result) => return Some(Box::pin(std::future::ready(result))),
            // Queued already: only the wait for durability is left, and dropping it loses nothing.
            AppendNow::Durable(appended, acked) => return Some(Box::pin(acked.wait(appended))),
            AppendNow::Busy(ready) => ready,
        };
        let append = async move { log.append_ready(ready).await };
        Some(match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let task = rt.spawn(append);
                Box::pin(async move { task.await.unwrap_or(Err(AuditError::Unavailable)) })
            }
            Err(_) => Box::pin(append),
        })
    }
}

impl SealState {
    fn build(self, outcome: Outcome) -> AuditRecord {
        let mut r = self.record;
        r.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        r.apply_note(&self.note.snapshot());
        r.request.body = self.request_body.lock().unwrap_or_else(|p| p.into_inner()).record();
        r.response.body = if self.responded { self.response_body.record() } else { None };
        if r.error.is_none() {
            let sent = self.response_body.total;
            r.error = match outcome {
                Outcome::Complete => None,
                Outcome::BodyError(msg) => Some(RecordError {
                    code: "body_error".into(),
                    message: format!("the response stream failed after {sent} bytes: {msg}"),
                }),
                Outcome::ServiceError => Some(RecordError {
                    code: "internal".into(),
                    message: "the gateway failed before a response".into(),
                }),
                Outcome::Aborted if self.responded => Some(RecordError {
                    code: "aborted".into(),
                    message: format!("the caller went away after {sent} response bytes"),
                }),
                Outcome::Aborted => Some(RecordError {
                    code: "aborted".into(),
                    message: "the caller went away before the response".into(),
                }),
            };
        }
        r
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        let complete = self
            .state
            .as_ref()
            .is_some_and(|s| s.responded && s.expected_len.is_some_and(|len| len == s.response_body.total));
        let outcome = if complete { Outcome::Complete } else { Outcome::Aborted };
        if let Some(fut) = self.finish(outcome) {
            // The caller is gone: nobody can wait for the write, so it happens in the
            // background. Without a runtime (shutting down) the record is lost and counted.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = fut.await {
                            tracing::warn!(error = %e, "audit record of an aborted call not written");
                        }
                    });
                }
                Err(_) => tracing::error!("audit record of an aborted call lost: no runtime"),
            }
        }
    }
}
