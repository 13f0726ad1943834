//! From a buffered request to a [`Call`].

use cloakroom_core::{Call, Protocol};
use http::{header, request::Parts};
use serde_json::Value;

use super::digest::call_digest;
use crate::{
    mcp::jsonrpc::{McpMessage, RpcError, INVALID_PARAMS, INVALID_REQUEST},
    route::Routed,
};

/// Whether the content type is JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// The call of an `http` function.
pub(crate) fn http_call(routed: &Routed, parts: &Parts, body: &[u8]) -> Call {
    let arguments = if is_json(parts) { serde_json::from_slice(body).unwrap_or(Value::Null) } else { Value::Null };
    let path = routed.rest.split('?').next().unwrap_or("");
    let detail = path.split('/').find(|s| !s.is_empty()).map(str::to_owned);
    Call {
        function: routed.function.name().to_owned(),
        protocol: Protocol::Http,
        digest: call_digest(&arguments, body),
        arguments,
        detail,
        method: parts.method.to_string(),
    }
}

/// The call of an `mcp` function, with the parsed message (`None` for GET and DELETE).
///
/// The second error kind is a refusal that answers a well-formed request (HTTP 200
/// with a JSON-RPC error) rather than a malformed one (HTTP 400).
pub(crate) fn mcp_call(routed: &Routed, parts: &Parts, body: &[u8]) -> Result<(Call, Option<McpMessage>), McpRefusal> {
    let name = routed.function.name();
    let base = |function: String, arguments: Value, detail: Option<String>| Call {
        function,
        protocol: Protocol::Mcp,
        digest: call_digest(&arguments, body),
        arguments,
        detail,
        method: parts.method.to_string(),
    };
    if parts.method != http::Method::POST {
        return Ok((base(name.to_owned(), Value::Null, None), None));
    }
    let message = McpMessage::parse(body).map_err(McpRefusal::Malformed)?;
    message.check_headers(&parts.headers).map_err(McpRefusal::Malformed)?;
    let call = match &message {
        McpMessage::Request { method, params, id } if method == "tools/call" => {
            let Some(tool) = params.get("name").and_then(Value::as_str) else {
                return Err(McpRefusal::Answer(RpcError {
                    code: INVALID_PARAMS,
                    message: "Invalid params: tools/call needs params.name".into(),
                    id: id.clone(),
                }));
            };
            if tool.is_empty() {
                return Err(McpRefusal::Answer(RpcError {
                    code: INVALID_PARAMS,
                    message: "Invalid params: empty tool name".into(),
                    id: id.clone(),
                }));
            }
            let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
            base(format!("{name}/{tool}"), arguments, Some(method.clone()))
        }
        McpMessage::Batch(_) if message.has_tool_call() => {
            // One call, one policy decision: a batch could otherwise carry a second tool
            // past the decision made for the first.
            return Err(McpRefusal::Malformed(RpcError {
                code: INVALID_REQUEST,
                message: "Invalid Request: batches containing tools/call are not accepted; send each call on its own"
                    .into(),
                id: Value::Null,
            }));
        }
        McpMessage::Batch(_) => base(name.to_owned(), Value::Null, Some("batch".into())),
        McpMessage::Request { method, .. } | McpMessage::Notification { method } => {
            base(name.to_owned(), Value::Null, Some(method.clone()))
        }
        McpMessage::Response { .. } => base(name.to_owned(), Value::Null, Some("response".into())),
    };
    Ok((call, Some(message)))
}

/// Why an MCP request is refused before policy.
#[derive(Debug)]
pub(crate) enum McpRefusal {
    /// Malformed: HTTP 400 with the JSON-RPC error.
    Malformed(RpcError),
    /// Well-formed but invalid: HTTP 200 with the JSON-RPC error for its id.
    Answer(RpcError),
}
