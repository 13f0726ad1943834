use tower::Layer;

use super::Audit;
use crate::{AuditConfig, AuditLog};

/// Records every call passing through; see the [module docs](crate::layer).
#[derive(Debug, Clone)]
pub struct AuditLayer {
    pub(crate) log: AuditLog,
    pub(crate) record_bodies: bool,
    pub(crate) max_body_record_bytes: usize,
}

impl AuditLayer {
    /// A layer writing to `log`, capturing bodies as `config` says.
    pub fn new(log: AuditLog, config: &AuditConfig) -> Self {
        Self { log, record_bodies: config.record_bodies, max_body_record_bytes: config.max_body_record_bytes }
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
