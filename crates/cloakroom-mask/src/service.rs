//! [`Mask`]: the service built by [`MaskLayer`](crate::MaskLayer).

use std::task::{Context, Poll};

use cloakroom_core::{AuditNote, CallId};
use http::header::{ACCEPT_ENCODING, IF_RANGE, RANGE};
use http::{HeaderName, Request, Response};
use http_body::Body;
use tower::Service;

use crate::decode::BoxError;
use crate::future::ResponseFuture;
use crate::{MaskBody, MaskHandle, MaskLayer, UpstreamBody};

/// Request headers that ask the upstream for less than a whole representation (or for
/// one the masker cannot read); the layer removes every one of them.
const PARTIAL_OR_ENCODED: [HeaderName; 4] =
    [ACCEPT_ENCODING, RANGE, IF_RANGE, HeaderName::from_static("request-range")];

/// Masks the responses of the inner service (see [`MaskLayer`]).
#[derive(Debug, Clone)]
pub struct Mask<S> {
    inner: S,
    handle: MaskHandle,
}

impl<S> Mask<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, handle: MaskHandle) -> Self {
        Self { inner, handle }
    }

    /// A [`MaskLayer`] with `handle`.
    pub fn layer(handle: MaskHandle) -> MaskLayer {
        MaskLayer::new(handle)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Mask<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<MaskBody<UpstreamBody<ResBody>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Ask for whole representations in the identity encoding: the masker must see
        // plain bytes, all of them (`Range` answers would let a caller assemble a
        // secret from parts each masked on its own).
        for name in PARTIAL_OR_ENCODED {
            req.headers_mut().remove(name);
        }
        let note = req.extensions().get::<AuditNote>().cloned();
        let call_id = req.extensions().get::<CallId>().cloned();
        let matcher = self.handle.load();
        ResponseFuture::new(self.inner.call(req), matcher, note, call_id)
    }
}
