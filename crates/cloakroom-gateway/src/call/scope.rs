//! The [`CallScope`] an approval binds, built once per call from the buffered request.

use cloakroom_core::{Call, CallScope, Identity, PlaceholderUse};
use http::{header, request::Parts};
use serde_json::Value;

use crate::mcp::jsonrpc::McpMessage;
use cloakroom_core::canonical::canonical_json_with_floats;

/// The scope of `call` by `identity`: the request as it will be forwarded (method, path,
/// query, content type, `uses`, body digest).
///
/// The body digest is of the raw bytes for `http` functions. For an MCP request it is of
/// the canonical JSON of `{method, params}` without `params._meta`: an MCP client
/// repeating a call after approval sends a new JSON-RPC id (and progress token), and
/// the id and `_meta` do not change what the tool does.
pub(crate) fn call_scope(
    identity: &Identity,
    call: &Call,
    parts: &Parts,
    body: &[u8],
    message: Option<&McpMessage>,
    uses: Vec<PlaceholderUse>,
) -> CallScope {
    let body_sha256 = match message {
        Some(McpMessage::Request { method, params, .. }) => {
            let mut params = params.clone();
            if let Value::Object(map) = &mut params {
                map.remove("_meta");
            }
            let text = canonical_json_with_floats(&serde_json::json!({ "method": method, "params": params }));
            CallScope::body_digest(text.as_bytes())
        }
        _ => CallScope::body_digest(body),
    };
    // Every value, not the first: a second `Content-Type` that the function might read
    // instead is another call.
    let types: Vec<String> = parts
        .headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let content_type = (!types.is_empty()).then(|| types.join("\n"));
    let mut scope = CallScope {
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        function: call.function.clone(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type,
        placeholders: uses,
        body_sha256,
    };
    scope.normalize();
    scope
}
