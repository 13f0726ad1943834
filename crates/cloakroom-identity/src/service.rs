//! [`Authenticate`]: the identity middleware itself.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::Service;

use crate::{future::ResponseFuture, layer::IdentityLayer, AuthError, Authenticator, Credential, ResponseBody};

/// Verifies each request's credential before passing it to the inner service.
///
/// On success the request reaches the inner service with an [`cloakroom_core::Identity`]
/// in its extensions (also written to the [`cloakroom_core::AuditNote`], when present)
/// and without the header that carried the credential. Otherwise the inner service is
/// not called and the answer is 401 `unauthenticated` with `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
    resource_metadata: Option<Arc<str>>,
}

impl<S> Authenticate<S> {
    /// Wraps `inner`, verifying credentials with `authenticator`.
    pub fn new(inner: S, authenticator: Arc<Authenticator>) -> Self {
        Self { inner, authenticator, resource_metadata: None }
    }

    pub(crate) fn from_layer(inner: S, layer: &IdentityLayer) -> Self {
        Self { inner, authenticator: layer.authenticator.clone(), resource_metadata: layer.resource_metadata.clone() }
    }

    /// A layer building this service.
    pub fn layer(authenticator: Arc<Authenticator>) -> IdentityLayer {
        IdentityLayer::new(authenticator)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was driven to readiness serves this request; a clone stays
        // behind for the next one (tower's usual hand-over for async middleware).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let credential = match Credential::from_headers(request.headers()) {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(AuthError::Missing),
            Err(e) => Err(e),
        };
        ResponseFuture::new(credential, request, inner, self.authenticator.clone(), self.resource_metadata.clone())
    }
}
