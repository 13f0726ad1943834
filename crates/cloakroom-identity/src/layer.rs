//! [`IdentityLayer`]: the configuration of the identity middleware.

use std::sync::Arc;

use tower::Layer;

use crate::{Authenticate, Authenticator};

/// Authenticates every request (docs/reference.md, the data path, layer 3); see the crate docs.
#[derive(Debug, Clone)]
pub struct IdentityLayer {
    pub(crate) authenticator: Arc<Authenticator>,
    pub(crate) resource_metadata: Option<Arc<str>>,
}

impl IdentityLayer {
    /// A layer verifying credentials with `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator, resource_metadata: None }
    }

    /// Adds `resource_metadata="<url>"` (RFC 9728, OAuth 2.0 Protected Resource Metadata)
    /// to every 401 challenge of this layer, as MCP clients expect. A
    /// [`crate::ResourceMetadata`] request extension overrides it per request.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(Arc::from(url.into()));
        self
    }
}

impl<S> Layer<S> for IdentityLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate::from_layer(inner, self)
    }
}
