//! The rescue step for MCP functions: refusals become JSON-RPC errors, pending approvals
//! a JSON-RPC error carrying the pending object, `tools/list` results are filtered.

use bytes::Bytes;
use cloakroom_core::{CallId, Error, ErrorCode, Identity};
use cloakroom_policy::PendingApproval;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use serde_json::Value;

use super::{
    jsonrpc::{self, error_object, McpMessage},
    sse,
};
use crate::{
    call::{CallBody, ToolVisibility},
    route::Routed,
};

/// The largest `tools/list` or pending-approval body the rescue step reads.
const MAX_RESCUE_BODY: usize = 16 * 1024 * 1024;

/// The JSON-RPC error code for a Cloakroom error code.
pub fn rpc_code(code: ErrorCode) -> i64 {
    match code {
        ErrorCode::Unauthenticated
        | ErrorCode::Forbidden
        | ErrorCode::SecretNotBound
        | ErrorCode::ApprovalInvalid
        | ErrorCode::NotFound
        | ErrorCode::Conflict => jsonrpc::REFUSED,
        ErrorCode::BadRequest => jsonrpc::INVALID_REQUEST,
        ErrorCode::PayloadTooLarge => jsonrpc::TOO_LARGE,
        ErrorCode::UpstreamUnavailable | ErrorCode::UpstreamTimeout => jsonrpc::UPSTREAM_FAILED,
        ErrorCode::VaultUnavailable | ErrorCode::AuditUnavailable => jsonrpc::UNAVAILABLE,
        ErrorCode::Internal => jsonrpc::INTERNAL_ERROR,
    }
}

fn json_response<B>(status: StatusCode, value: &Value, error: Option<Error>) -> Response<CallBody<B>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(error) = error {
        res.extensions_mut().insert(error);
    }
    res.map(Either::Left)
}

/// Whether [`rescue`] would change `res`: an error or a pending approval to answer as
/// JSON-RPC, or a `tools/list` result to filter (`filtering`: a visibility check is
/// configured). Everything else passes as it is.
pub fn needs_rescue<B>(res: &Response<B>, message: &McpMessage, filtering: bool) -> bool {
    res.extensions().get::<Error>().is_some()
        || (res.extensions().get::<PendingApproval>().is_some() && message.request_id().is_some())
        || (filtering
            && res.status().is_success()
            && matches!(message, McpMessage::Request { method, .. } if method == "tools/list"))
}

/// Re-renders `res` for the MCP `message` it answers (see the module docs).
pub async fn rescue<B>(
    res: Response<B>,
    message: &McpMessage,
    call_id: Option<&CallId>,
    identity: Option<&Identity>,
    routed: &Routed,
    visibility: Option<&ToolVisibility>,
) -> Response<CallBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::forward::BoxError>,
{
    if !needs_rescue(&res, message, visibility.is_some()) {
        return res.map(Either::Right);
    }
    let id = message.request_id().cloned();
    if let Some(error) = res.extensions().get::<Error>().cloned() {
        let data = error.to_json_value(call_id);
        return match id {
            Some(id) => json_response(
                StatusCode::OK,
                &error_object(&id, rpc_code(error.code), &error.message, Some(data)),
                Some(error),
            ),
            // Notifications and client responses have no id to answer: keep the HTTP
            // status, say why in a JSON-RPC error with a null id.
            None => json_response(
                res.status(),
                &error_object(&Value::Null, rpc_code(error.code), &error.message, Some(data)),
                Some(error),
            ),
        };
    }
    if let (Some(pending), Some(id)) = (res.extensions().get::<PendingApproval>(), id.as_ref()) {
        // A pending approval (SPEC §5): for MCP, a JSON-RPC error carrying it as data.
        let data = serde_json::to_value(pending).unwrap_or(Value::Null);
        let msg = "this call needs approval; repeat it with the Cloakroom-Approval header once approved";
        return json_response(StatusCode::OK, &error_object(id, jsonrpc::APPROVAL_PENDING, msg, Some(data)), None);
    }
    let is_list = matches!(message, McpMessage::Request { method, .. } if method == "tools/list");
    if let (true, Some(visible), true) = (is_list, visibility, res.status().is_success()) {
        let (parts, body) = res.into_parts();
        let bytes = match Limited::new(body, MAX_RESCUE_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return upstream_broke(id.as_ref()),
        };
        let is_sse = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut names = Vec::new();
        if is_sse {
            sse::map_events(&bytes, |data| {
                names.extend(tool_names(data));
                None
            });
        } else {
            names = tool_names(&bytes);
        }
        let mut allowed = std::collections::HashSet::new();
        for tool in names {
            let call = cloakroom_core::Call {
                function: format!("{}/{tool}", routed.function.name()),
                protocol: cloakroom_core::Protocol::Mcp,
                arguments: Value::Null,
                detail: Some("tools/call".into()),
                method: "POST".into(),
                digest: String::new(),
            };
            if visible(identity.cloned(), call).await {
                allowed.insert(tool);
            }
        }
        let keep = |tool: &str| allowed.contains(tool);
        let filtered = if is_sse {
            sse::map_events(&bytes, |data| filter_tools_json(data, &keep))
        } else {
            filter_tools_json(&bytes, &keep).unwrap_or_else(|| bytes.to_vec())
        };
        let mut parts = parts;
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Either::Left(Full::new(Bytes::from(filtered))));
    }
    res.map(Either::Right)
}

fn upstream_broke<B>(id: Option<&Value>) -> Response<CallBody<B>> {
    let error = Error::new(ErrorCode::UpstreamUnavailable, "the function's answer could not be read");
    let obj = error_object(id.unwrap_or(&Value::Null), rpc_code(error.code), &error.message, None);
    json_response(StatusCode::OK, &obj, Some(error))
}

/// The tool names in a JSON-RPC `tools/list` result.
fn tool_names(data: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return Vec::new() };
    v.pointer("/result/tools")
        .and_then(Value::as_array)
        .map(|tools| tools.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Keeps only the tools `keep` accepts in a JSON-RPC `tools/list` result; `None` when
/// `data` is not such a result (it is then passed on unchanged).
pub fn filter_tools_json(data: &[u8], keep: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(data).ok()?;
    let tools = v.get_mut("result")?.get_mut("tools")?.as_array_mut()?;
    tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(keep));
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_list_results_keep_only_visible_tools() {
        let data =
            br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"echo"},{"name":"drop_db"},{"name":"slow"}]}}"#;
        let out = filter_tools_json(data, &|t| t != "drop_db").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let names: Vec<&str> =
            v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "slow"]);
        assert!(filter_tools_json(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#, &|_| false).is_none());
    }

    #[test]
    fn a_page_keeps_its_next_cursor_even_when_no_tool_is_left() {
        let data = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"drop_db"}],"nextCursor":"c/2=="}}"#;
        let out = filter_tools_json(data, &|t| t != "drop_db").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], serde_json::json!([]));
        assert_eq!(v["result"]["nextCursor"], "c/2==");
        assert_eq!(v["id"], 3);
    }

    #[test]
    fn only_errors_pending_approvals_and_filtered_lists_need_the_rescue_step() {
        let request =
            |method: &str| McpMessage::Request { id: Value::from(1), method: method.into(), params: Value::Null };
        let ok = || Response::new(());
        let mut error = ok();
        error.extensions_mut().insert(Error::new(ErrorCode::Forbidden, "denied"));
        assert!(needs_rescue(&error, &request("tools/call"), false));
        assert!(needs_rescue(&ok(), &request("tools/list"), true));
        assert!(!needs_rescue(&ok(), &request("tools/list"), false));
        assert!(!needs_rescue(&ok(), &request("tools/call"), true));
        let mut failed = ok();
        *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        assert!(!needs_rescue(&failed, &request("tools/list"), true));
        let mut pending = ok();
        pending.extensions_mut().insert(PendingApproval {
            approval_id: "a".into(),
            call_id: None,
            status: "pending_approval".into(),
        });
        assert!(needs_rescue(&pending, &request("tools/call"), false));
        assert!(!needs_rescue(&pending, &McpMessage::Notification { method: "x".into() }, false));
    }

    #[test]
    fn every_error_code_has_a_json_rpc_code() {
        for code in ErrorCode::ALL {
            assert!(rpc_code(code) < -32000 || rpc_code(code) <= -32600, "{code}");
        }
    }
}
