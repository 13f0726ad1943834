//! [`Detokenize`].

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::Service;

use super::{substitute, BoxError, DetokenizeLayer, ResponseBody, ResponseFuture};

/// The service made by [`DetokenizeLayer`]. The inner service receives the request with
/// its body buffered (and substituted) as `Full<Bytes>`.
#[derive(Clone, Debug)]
pub struct Detokenize<S> {
    inner: S,
    config: DetokenizeLayer,
}

impl<S> Detokenize<S> {
    pub(crate) fn from_layer(inner: S, config: DetokenizeLayer) -> Self {
        Self { inner, config }
    }

    /// Wraps `inner`, substituting from `catalog` (see [`DetokenizeLayer::new`]; the
    /// layer's setters configure the rest).
    pub fn new(inner: S, catalog: std::sync::Arc<crate::Catalog>) -> Self {
        Self::from_layer(inner, DetokenizeLayer::new(catalog))
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

    /// A layer (same as [`DetokenizeLayer::new`]).
    pub fn layer(catalog: std::sync::Arc<crate::Catalog>) -> DetokenizeLayer {
        DetokenizeLayer::new(catalog)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Detokenize<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready inner service goes with this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let prepare = Box::pin(substitute::prepare(req, self.config.clone()));
        ResponseFuture::new(prepare, inner)
    }
}
