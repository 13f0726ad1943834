//! The answers the [`NameCall`](super::NameCall) makes itself: the refusals before and
//! after the body is read, as the JSON error of docs/reference.md or, for MCP functions,
//! a JSON-RPC error. Both the service and its future use them; neither uses the other.

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Protocol, ResponseBody};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::{layer::CallLayer, CallBody};
use crate::{
    mcp::jsonrpc::{error_object, RpcError, INVALID_REQUEST, TOO_LARGE},
    route::Routed,
};

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

/// The 413 for a body over `max_body_bytes`: docs/reference.md's error, or for an MCP function the
/// same 413 with a JSON-RPC error (code [`TOO_LARGE`], id `null` as the body was not
/// read, the docs/reference.md error object as `data`), since MCP clients show JSON-RPC errors.
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

/// A refusal before the body is read: docs/reference.md's error, or for an MCP function a
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
