use tower::Layer;

use super::Authorize;
use crate::{Approvals, Policies};

/// Applies policy (and approvals) to every request; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct PolicyLayer {
    policies: Policies,
    approvals: Approvals,
}

impl PolicyLayer {
    /// A layer deciding with `policies` and keeping approvals in `approvals`.
    pub fn new(policies: Policies, approvals: Approvals) -> Self {
        Self { policies, approvals }
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize::new(inner, self.policies.clone(), self.approvals.clone())
    }
}
