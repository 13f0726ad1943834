//! The rescue step for MCP functions: refusals become JSON-RPC errors, pending approvals
//! a JSON-RPC error carrying the pending object, `tools/list` results are filtered.
//!
//! The step runs outside the [`MaskLayer`](cloakroom_mask::MaskLayer) and writes bytes of
//! its own from what the upstream sent: a `tools/list` result it parsed and serialized
//! again. Parsing undoes the escapes the upstream chose (`\u0073k_live…`), so a secret
//! the masker could not see in the escaped form would come out raw. Everything the step
//! writes is therefore masked again, with the matcher the response was masked with
//! ([`MaskedWith`]), after it is produced.

use std::sync::Arc;

use bytes::Bytes;
use cloakroom_core::{CallId, Error, ErrorCode, Identity, ResponseBody};
use cloakroom_mask::{mask_event_stream, MaskedWith, Matcher};
use cloakroom_policy::PendingApproval;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use super::{CallBody, ToolVisibility};
use crate::{
    mcp::{
        jsonrpc::{self, error_object, McpMessage},
        sse,
    },
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
        | ErrorCode::Conflict
        | ErrorCode::BudgetExhausted => jsonrpc::REFUSED,
        ErrorCode::BadRequest => jsonrpc::INVALID_REQUEST,
        ErrorCode::PayloadTooLarge => jsonrpc::TOO_LARGE,
        ErrorCode::UpstreamUnavailable | ErrorCode::UpstreamTimeout => jsonrpc::UPSTREAM_FAILED,
        ErrorCode::VaultUnavailable | ErrorCode::AuditUnavailable => jsonrpc::UNAVAILABLE,
        ErrorCode::Internal => jsonrpc::INTERNAL_ERROR,
    }
}

/// What the step wrote, masked with `masker` (the matcher of the response it rewrites).
fn masked(masker: Option<&Arc<Matcher>>, written: Vec<u8>) -> Bytes {
    match masker {
        Some(m) if !m.is_empty() => Bytes::from(m.replace(&written).output),
        _ => Bytes::from(written),
    }
}

fn json_response<B>(
    masker: Option<&Arc<Matcher>>,
    status: StatusCode,
    value: &Value,
    error: Option<Error>,
) -> Response<CallBody<B>> {
    let mut res = Response::new(Full::new(masked(masker, value.to_string().into_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(error) = error {
        if let Some(seconds) = error.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res.extensions_mut().insert(error);
    }
    res.map(ResponseBody::refused)
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
        return res.map(ResponseBody::inner);
    }
    let id = message.request_id().cloned();
    let masker = res.extensions().get::<MaskedWith>().map(|m| m.0.clone());
    let masker = masker.as_ref();
    if let Some(error) = res.extensions().get::<Error>().cloned() {
        let data = error.to_json_value(call_id);
        return match id {
            Some(id) => json_response(
                masker,
                StatusCode::OK,
                &error_object(&id, rpc_code(error.code), &error.message, Some(data)),
                Some(error),
            ),
            // Notifications and client responses have no id to answer: keep the HTTP
            // status, say why in a JSON-RPC error with a null id.
            None => json_response(
                masker,
                res.status(),
                &error_object(&Value::Null, rpc_code(error.code), &error.message, Some(data)),
                Some(error),
            ),
        };
    }
    if let (Some(pending), Some(id)) = (res.extensions().get::<PendingApproval>(), id.as_ref()) {
        // A pending approval (docs/reference.md): for MCP, a JSON-RPC error carrying it as data.
        let data = serde_json::to_value(pending).unwrap_or(Value::Null);
        let msg = "this call needs approval; repeat it with the Cloakroom-Approval header once approved";
        return json_response(
            masker,
            StatusCode::OK,
            &error_object(id, jsonrpc::APPROVAL_PENDING, msg, Some(data)),
            None,
        );
    }
    let is_list = matches!(message, McpMessage::Request { method, .. } if method == "tools/list");
    if let (true, Some(visible), true) = (is_list, visibility, res.status().is_success()) {
        let (parts, body) = res.into_parts();
        let bytes = match Limited::new(body, MAX_RESCUE_BODY).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return upstream_broke(masker, id.as_ref()),
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
            let call =
                cloakroom_core::Call::new(format!("{}/{tool}", routed.function.name()), cloakroom_core::Protocol::Mcp)
                    .with_detail(Some("tools/call".into()))
                    .with_method("POST".into());
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
        let filtered = match (is_sse, masker) {
            // An event stream is masked as its client reads it: each event's data joined.
            (true, Some(m)) => Bytes::from(mask_event_stream(m, &filtered).0),
            _ => masked(masker, filtered),
        };
        let mut parts = parts;
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, ResponseBody::refused(Full::new(filtered)));
    }
    res.map(ResponseBody::inner)
}

fn upstream_broke<B>(masker: Option<&Arc<Matcher>>, id: Option<&Value>) -> Response<CallBody<B>> {
    let error = Error::new(ErrorCode::UpstreamUnavailable, "the function's answer could not be read");
    let obj = error_object(id.unwrap_or(&Value::Null), rpc_code(error.code), &error.message, None);
    json_response(masker, StatusCode::OK, &obj, Some(error))
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

    mod adversarial_escapes {
        use std::sync::Arc;

        use cloakroom_core::Secret;
        use cloakroom_mask::{MaskEntry, MaskOptions};
        use http_body_util::BodyExt;

        use super::*;
        use crate::{config::FunctionConfig, route::Function};

        /// Holds `/` (for `\/`) and a character outside the BMP (for surrogate pairs).
        const SECRET: &str = "sk_live/esc\u{1F511}aped_0123456789abcdef";

        fn matcher() -> Arc<Matcher> {
            let entries = [MaskEntry::new("k", Secret::from(SECRET), "cloak_k")];
            Arc::new(Matcher::build(entries, &MaskOptions::default()).unwrap())
        }

        /// `c` as JSON `\uXXXX` escapes (a surrogate pair outside the BMP).
        fn u(c: char, upper: bool) -> String {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf)
                .iter()
                .map(|unit| if upper { format!("\\u{unit:04X}") } else { format!("\\u{unit:04x}") })
                .collect()
        }

        /// The secret as JSON string content in the ways a JSON encoder may write it.
        fn escaped_forms() -> Vec<(&'static str, String)> {
            let all_lower: String = SECRET.chars().map(|c| u(c, false)).collect();
            let all_upper: String = SECRET.chars().map(|c| u(c, true)).collect();
            let solidus: String =
                SECRET.chars().map(|c| if c == '/' { "\\/".to_owned() } else { c.to_string() }).collect();
            let surrogates: String =
                SECRET.chars().map(|c| if c.len_utf16() == 2 { u(c, false) } else { c.to_string() }).collect();
            let mixed: String = SECRET
                .chars()
                .enumerate()
                .map(|(i, c)| match (c, i % 3) {
                    ('/', _) => "\\/".to_owned(),
                    (c, 0) => u(c, i % 2 == 0),
                    (c, _) if c.len_utf16() == 2 => u(c, true),
                    (c, _) => c.to_string(),
                })
                .collect();
            vec![
                ("every char lower", all_lower),
                ("every char upper", all_upper),
                ("solidus", solidus),
                ("surrogate pair", surrogates),
                ("mixed", mixed),
            ]
        }

        fn routed() -> Routed {
            let f = Function::new(FunctionConfig {
                name: "tools".into(),
                protocol: cloakroom_core::Protocol::Mcp,
                upstream: "http://127.0.0.1:9".into(),
                route: "/mcp/tools".into(),
                preserve_host: false,
                ca_file: None,
            })
            .unwrap();
            Routed { function: Arc::new(f), rest: String::new() }
        }

        fn list_request() -> McpMessage {
            McpMessage::Request { id: Value::from(1), method: "tools/list".into(), params: Value::Null }
        }

        /// `res` (as the mask layer returns it) through the rescue step: the body written.
        #[tokio::test]
        async fn a_budget_refusal_keeps_its_retry_after_as_a_json_rpc_error() {
            let err = Error::new(ErrorCode::BudgetExhausted, "secret \"k\" has used its budget").retry_after(7);
            let call = McpMessage::Request { id: Value::from(3), method: "tools/call".into(), params: Value::Null };
            let out = rescue(err.to_response(None), &call, None, None, &routed(), None).await;
            assert_eq!(out.headers()[header::RETRY_AFTER], "7");
            let body: Value = serde_json::from_slice(&out.into_body().collect().await.unwrap().to_bytes()).unwrap();
            assert_eq!(body["error"]["code"], jsonrpc::REFUSED);
            assert_eq!(body["error"]["data"]["code"], "budget_exhausted");
        }

        async fn rescued(mut res: Response<Full<Bytes>>) -> String {
            res.extensions_mut().insert(MaskedWith(matcher()));
            let visible: ToolVisibility =
                Arc::new(|_, call: cloakroom_core::Call| Box::pin(async move { call.function != "tools/hidden" }));
            let out = rescue(res, &list_request(), None, None, &routed(), Some(&visible)).await;
            String::from_utf8(out.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        }

        fn list(description: &str) -> String {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"echo","description":"{description}"}},{{"name":"hidden","description":"x"}}]}}}}"#
            )
        }

        #[tokio::test]
        async fn a_filtered_json_list_never_writes_the_secret_it_unescaped() {
            for (form, escaped) in escaped_forms() {
                let out = rescued(Response::new(Full::new(Bytes::from(list(&escaped))))).await;
                assert!(!out.contains(SECRET), "{form}: {out}");
                let v: Value = serde_json::from_str(&out).unwrap();
                assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1, "{form}: {out}");
                assert_eq!(v["result"]["tools"][0]["description"], "cloak_k", "{form}: {out}");
            }
        }

        #[tokio::test]
        async fn a_filtered_sse_list_never_writes_the_secret_it_unescaped() {
            for (form, escaped) in escaped_forms() {
                let body = format!("event: message\r\nid: 1\r\ndata: {}\r\n\r\n", list(&escaped));
                let mut res = Response::new(Full::new(Bytes::from(body)));
                res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                let out = rescued(res).await;
                assert!(!out.contains(SECRET), "{form}: {out}");
                assert!(out.contains(r#""description":"cloak_k""#), "{form}: {out}");
                assert!(!out.contains("hidden"), "{form}: {out}");
            }
        }

        #[tokio::test]
        async fn an_error_rendered_as_json_rpc_is_masked_too() {
            let mut res = Response::new(Full::new(Bytes::new()));
            // An error message never holds a secret; if one ever did, the rescue step's
            // output is masked all the same.
            res.extensions_mut().insert(Error::new(ErrorCode::UpstreamUnavailable, format!("upstream said {SECRET}")));
            let out = rescued(res).await;
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.contains("cloak_k"), "{out}");
        }
    }

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
