//! [`DetokenizeLayer`]: configuration only.

use std::sync::Arc;

use cloakroom_core::ApprovalLookup;
use tower::Layer;

use super::{Detokenize, DEFAULT_MAX_BODY_BYTES};
use crate::{Catalog, InFlight};

/// Wraps a service with detokenization (see the [module docs](super)).
#[derive(Clone)]
pub struct DetokenizeLayer {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) max_body_bytes: usize,
    pub(crate) inflight: Option<InFlight>,
    pub(crate) approvals: Option<Arc<dyn ApprovalLookup>>,
}

impl std::fmt::Debug for DetokenizeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetokenizeLayer")
            .field("catalog", &self.catalog)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("inflight", &self.inflight)
            .field("approvals", &self.approvals.is_some())
            .finish()
    }
}

impl DetokenizeLayer {
    /// A layer substituting from `catalog`, buffering bodies up to 10 MiB.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog, max_body_bytes: DEFAULT_MAX_BODY_BYTES, inflight: None, approvals: None }
    }

    /// The largest body buffered; a larger one is refused with `payload_too_large` (413).
    /// The gateway sets this to `server.max_body_bytes`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Reads approval records from `approvals`. A secret whose binding names `approvers`
    /// is substituted only when the approval this call went ahead under (its id in the
    /// [`ApprovalRef`](cloakroom_core::ApprovalRef) extension) is, as the record loaded
    /// here says, granted in full, used by this very call, bound to this call's
    /// [`CallScope`](cloakroom_core::CallScope) and its placeholders, and met by an
    /// approver of every group the binding names. Without it such secrets are refused.
    pub fn approvals(mut self, approvals: Arc<dyn ApprovalLookup>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// Registers every forwarded call in `registry` (for `POST /v1/redeem`) until its
    /// response body ends or is dropped.
    pub fn inflight(mut self, registry: InFlight) -> Self {
        self.inflight = Some(registry);
        self
    }
}

impl<S> Layer<S> for DetokenizeLayer {
    type Service = Detokenize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Detokenize::from_layer(inner, self.clone())
    }
}
