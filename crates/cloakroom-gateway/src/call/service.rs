//! The [`CallService`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Identity, Protocol};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use serde_json::Value;

use super::{
    layer::CallLayer,
    parse::{http_call, mcp_call, McpRefusal},
};
use crate::{
    mcp::{
        jsonrpc::{error_object, McpMessage, RpcError, TOO_LARGE},
        rescue,
    },
    route::Routed,
};

/// The response body of a [`CallService`]: the inner body, or one the service wrote.
pub type CallBody<B> = Either<Full<Bytes>, B>;

/// Parses calls; built by [`CallLayer`].
#[derive(Clone, Debug)]
pub struct CallService<S> {
    inner: S,
    layer: CallLayer,
}

impl<S> CallService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: CallLayer) -> Self {
        Self { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn rpc_response<B>(
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
    res.map(Either::Left)
}

/// HTTP 413 with a JSON-RPC error (code [`TOO_LARGE`], id `null`, the SPEC §5 error
/// object as `data`), for an MCP request whose body is over `max_body_bytes`.
fn too_large_rpc<B>(err: &Error, note: Option<&AuditNote>, call_id: Option<&CallId>) -> Response<CallBody<B>> {
    if let Some(note) = note {
        note.set_error(err);
    }
    let body = error_object(&Value::Null, TOO_LARGE, &err.message, Some(err.to_json_value(call_id)));
    let mut res = json_response(StatusCode::PAYLOAD_TOO_LARGE, &body);
    res.extensions_mut().insert(err.clone());
    res.map(Either::Left)
}

impl<S, B, ResBody> tower::Service<Request<B>> for CallService<S>
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
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is the ready one: take it, leave the fresh clone behind (tower idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let call_id = req.extensions().get::<CallId>().copied();
            let note = req.extensions().get::<AuditNote>().cloned();
            let refuse = |err: Error| {
                if let Some(note) = &note {
                    note.set_error(&err);
                }
                err.to_response(call_id.as_ref()).map(Either::Left)
            };
            let Some(routed) = req.extensions().get::<Routed>().cloned() else {
                return Ok(refuse(Error::new(ErrorCode::NotFound, "no function at this path")));
            };
            let is_mcp = routed.function.protocol() == Protocol::Mcp;
            let too_large = || {
                let err = Error::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the request body is larger than {} bytes", layer.max_body_bytes),
                );
                if is_mcp {
                    // MCP clients show JSON-RPC errors: the same 413, as one (id null, as
                    // the body was not read).
                    too_large_rpc(&err, note.as_ref(), call_id.as_ref())
                } else {
                    refuse(err)
                }
            };
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > layer.max_body_bytes) {
                return Ok(too_large());
            }
            let (parts, body) = req.into_parts();
            let limit = usize::try_from(layer.max_body_bytes).unwrap_or(usize::MAX);
            let body = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => return Ok(too_large()),
                Err(_) => return Ok(refuse(Error::new(ErrorCode::BadRequest, "the request body could not be read"))),
            };
            let identity = parts.extensions.get::<Identity>().cloned();
            let (call, message) = match routed.function.protocol() {
                Protocol::Http => (http_call(&routed, &parts, &body), None),
                Protocol::Mcp => match mcp_call(&routed, &parts, &body) {
                    Ok(parsed) => parsed,
                    Err(McpRefusal::Malformed(e)) => {
                        return Ok(rpc_response(StatusCode::BAD_REQUEST, &e, note.as_ref(), ErrorCode::BadRequest))
                    }
                    Err(McpRefusal::Answer(e)) => {
                        return Ok(rpc_response(StatusCode::OK, &e, note.as_ref(), ErrorCode::BadRequest))
                    }
                },
            };
            if let Some(note) = &note {
                note.set_call(&call);
            }
            let secrets = layer.secret_scanner.as_ref().map(|scan| scan(&parts, &body));
            let mut req = Request::from_parts(parts, Full::new(body));
            if let Some(names) = secrets {
                req.extensions_mut().insert(cloakroom_policy::SecretsInCall(names));
            }
            req.extensions_mut().insert(call);
            let res = inner.call(req).await?;
            let Some(message) = message else {
                return Ok(res.map(Either::Right));
            };
            Ok(rescue::rescue(
                res,
                &message,
                call_id.as_ref(),
                identity.as_ref(),
                &routed,
                layer.tool_visibility.as_ref(),
            )
            .await)
        })
    }
}

/// Whether a request body is an MCP message that expects a JSON-RPC answer.
#[allow(dead_code)]
pub(crate) fn expects_answer(message: &McpMessage) -> bool {
    message.request_id().is_some()
}
