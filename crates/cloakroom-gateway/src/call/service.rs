//! The [`NameCall`].

use std::task::{Context, Poll};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Protocol, ResponseBody};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use serde_json::Value;

use super::{future::ResponseFuture, layer::CallLayer};
use crate::{
    mcp::jsonrpc::{error_object, McpMessage, RpcError, INVALID_REQUEST, TOO_LARGE},
    route::Routed,
};

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

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub(super) fn rpc_response<B>(
    status: StatusCode,
    err: &RpcError,
    note: Option<&AuditNote>,
    code: ErrorCode,
) -> Response<CallBody<B>> {
    let mut res = json_response(status, &err.to_json(None));
    let error = Error::new(code, err.message.clone());
    if let Some(note) = note {
        note.set_error(&error);
    }
    res.extensions_mut().insert(error);
    res.map(ResponseBody::refused)
}

/// The 413 for a body over `max_body_bytes`: SPEC §5's error, or for an MCP function the
/// same 413 with a JSON-RPC error (code [`TOO_LARGE`], id `null` as the body was not
/// read, the SPEC §5 error object as `data`), since MCP clients show JSON-RPC errors.
pub(super) fn too_large<B>(
    routed: Option<&Routed>,
    layer: &CallLayer,
    call_id: Option<&CallId>,
    note: Option<&AuditNote>,
) -> Response<CallBody<B>> {
    let err = Error::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than {} bytes", layer.max_body_bytes),
    );
    if let Some(note) = note {
        note.set_error(&err);
    }
    if !is_mcp(routed) {
        return err.to_response(call_id).map(ResponseBody::refused);
    }
    let body = error_object(&Value::Null, TOO_LARGE, &err.message, Some(err.to_json_value(call_id)));
    let mut res = json_response(StatusCode::PAYLOAD_TOO_LARGE, &body);
    res.extensions_mut().insert(err);
    res.map(ResponseBody::refused)
}

/// Whether the call goes to an MCP function (named calls are `http`).
pub(super) fn is_mcp(routed: Option<&Routed>) -> bool {
    routed.is_some_and(|r| r.function.protocol() == Protocol::Mcp)
}

/// A refusal before the body is read: SPEC §5's error, or for an MCP function a
/// JSON-RPC error (id `null`, the body was not read) with the same status.
pub(super) fn refused<B>(
    routed: Option<&Routed>,
    err: Error,
    call_id: Option<&CallId>,
    note: Option<&AuditNote>,
) -> Response<CallBody<B>> {
    if !is_mcp(routed) {
        return err.refuse(call_id, note).map(ResponseBody::refused);
    }
    if let Some(note) = note {
        note.set_error(&err);
    }
    let rpc = RpcError { code: INVALID_REQUEST, message: format!("Invalid Request: {}", err.message), id: Value::Null };
    let mut res = json_response(err.code.status(), &rpc.to_json(Some(err.to_json_value(call_id))));
    res.extensions_mut().insert(err);
    res.map(ResponseBody::refused)
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
