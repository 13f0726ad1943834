//! [`DetokenizeLayer`]: configuration only.

use std::sync::Arc;

use tower::Layer;

use super::{DetokenizeService, DEFAULT_MAX_BODY_BYTES};
use crate::{Catalog, InFlight};

/// Wraps a service with detokenization (see the [module docs](super)).
#[derive(Clone, Debug)]
pub struct DetokenizeLayer {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) max_body_bytes: usize,
    pub(crate) inflight: Option<InFlight>,
}

impl DetokenizeLayer {
    /// A layer substituting from `catalog`, buffering bodies up to 10 MiB.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog, max_body_bytes: DEFAULT_MAX_BODY_BYTES, inflight: None }
    }

    /// The largest body buffered; a larger one is refused with `payload_too_large` (413).
    /// The gateway sets this to `server.max_body_bytes`.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
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
    type Service = DetokenizeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DetokenizeService::from_layer(inner, self.clone())
    }
}
