//! The [`NameCall`].

use std::task::{Context, Poll};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, ResponseBody};
use http::{header, Request, Response};
use http_body::Body;
use http_body_util::Full;

use super::{
    future::ResponseFuture,
    layer::CallLayer,
    refuse::{refused, too_large},
};
use crate::{mcp::jsonrpc::McpMessage, route::Routed};

/// The response body of a [`NameCall`]: the inner body, or one the service wrote.
pub type CallBody<B> = ResponseBody<B>;

/// Parses calls; built by [`CallLayer`].
#[derive(Clone, Debug)]
pub struct NameCall<S> {
    inner: S,
    layer: CallLayer,
}

impl<S> NameCall<S> {
    /// Wraps `inner`, refusing bodies over `max_body_bytes` (see [`CallLayer::new`]; the
    /// layer's setters configure the rest).
    pub fn new(inner: S, max_body_bytes: u64) -> Self {
        Self::from_layer(inner, CallLayer::new(max_body_bytes))
    }

    pub(crate) fn from_layer(inner: S, layer: CallLayer) -> Self {
        Self { inner, layer }
    }

    /// A layer (same as [`CallLayer::new`]).
    pub fn layer(max_body_bytes: u64) -> CallLayer {
        CallLayer::new(max_body_bytes)
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

impl<S, B, ResBody> tower::Service<Request<B>> for NameCall<S>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<crate::forward::BoxError>,
{
    type Response = Response<CallBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call_id = req.extensions().get::<CallId>().copied();
        let note = req.extensions().get::<AuditNote>().cloned();
        let routed = req.extensions().get::<Routed>().cloned();
        if routed.is_none() && self.layer.namer.is_none() {
            let err = match req.extensions().get::<crate::route::RefusedTarget>() {
                Some(refused) => Error::new(ErrorCode::BadRequest, refused.0.to_string()),
                None => Error::new(ErrorCode::NotFound, "no function at this path"),
            };
            return ResponseFuture::ready(err.refuse(call_id.as_ref(), note.as_ref()).map(ResponseBody::refused));
        }
        let (parts, body) = req.into_parts();
        if let Err(err) = super::parse::check_head(&parts) {
            return ResponseFuture::ready(refused(routed.as_ref(), err, call_id.as_ref(), note.as_ref()));
        }
        let req = Request::from_parts(parts, body);
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.layer.max_body_bytes) {
            return ResponseFuture::ready(too_large(routed.as_ref(), &self.layer, call_id.as_ref(), note.as_ref()));
        }
        // The clone is the ready one: take it, leave the fresh clone behind (tower idiom).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture::reading(inner, parts, body, routed, self.layer.clone(), call_id, note)
    }
}

/// Whether a request body is an MCP message that expects a JSON-RPC answer.
#[allow(dead_code)]
pub(crate) fn expects_answer(message: &McpMessage) -> bool {
    message.request_id().is_some()
}
