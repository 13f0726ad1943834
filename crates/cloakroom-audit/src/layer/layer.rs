use tower::Layer;

use super::Audit;
use crate::{AuditConfig, AuditLog};

/// Records every call passing through; see the [module docs](crate::layer).
#[derive(Clone)]
pub struct AuditLayer {
    pub(crate) log: AuditLog,
    pub(crate) record_bodies: bool,
    pub(crate) max_body_record_bytes: usize,
    pub(crate) on_seal: Option<OnSeal>,
}

impl std::fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLayer")
            .field("record_bodies", &self.record_bodies)
            .field("max_body_record_bytes", &self.max_body_record_bytes)
            .field("on_seal", &self.on_seal.is_some())
            .finish_non_exhaustive()
    }
}

/// What an [`AuditLayer::on_seal`] hook is shown of each call, once, when its record is
/// sealed (the response ended, failed, or the caller went away).
#[derive(Debug)]
#[non_exhaustive]
pub struct SealedCall<'a> {
    /// The record as it is appended (masked; never a secret).
    pub record: &'a crate::AuditRecord,
    /// From the request to the response head (`None`: no response head was sent).
    pub head_latency: Option<std::time::Duration>,
}

/// A hook called with every sealed call: metrics and the "call finished" log line are
/// fed from the record, so they count exactly what the audit log holds.
pub type OnSeal = std::sync::Arc<dyn Fn(&SealedCall<'_>) + Send + Sync>;

impl AuditLayer {
    /// A layer writing to `log`, capturing bodies as `config` says.
    pub fn new(log: AuditLog, config: &AuditConfig) -> Self {
        Self {
            log,
            record_bodies: config.record_bodies,
            max_body_record_bytes: config.max_body_record_bytes,
            on_seal: None,
        }
    }

    /// Calls `hook` with every call's record as it is sealed, before it is appended.
    pub fn on_seal(mut self, hook: OnSeal) -> Self {
        self.on_seal = Some(hook);
        self
    }

    /// Whether to record bodies.
    pub fn record_bodies(mut self, yes: bool) -> Self {
        self.record_bodies = yes;
        self
    }

    /// At most this many bytes of each body are recorded.
    pub fn max_body_record_bytes(mut self, n: usize) -> Self {
        self.max_body_record_bytes = n;
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit::from_layer(inner, self.clone())
    }
}
