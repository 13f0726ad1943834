use http::HeaderMap;
use serde_json::json;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}

const CALL: &[u8] =
    br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

#[test]
fn tools_call_is_a_request_with_a_name() {
    let m = McpMessage::parse(CALL).unwrap();
    assert_eq!(m.request_id(), Some(&json!(7)));
    assert_eq!(m.method(), Some("tools/call"));
    assert_eq!(m.name(), Some("echo"));
    assert!(m.has_tool_call());
}

#[test]
fn malformed_json_is_a_parse_error() {
    assert_eq!(McpMessage::parse(b"{\"jsonrpc\":").unwrap_err().code, PARSE_ERROR);
    assert_eq!(McpMessage::parse(b"").unwrap_err().code, PARSE_ERROR);
}

#[test]
fn invalid_requests_are_refused() {
    for body in [
        &b"[]"[..],
        b"42",
        br#"{"id":1,"method":"x"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
        br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
        br#"{"jsonrpc":"2.0","id":1}"#,
    ] {
        assert_eq!(McpMessage::parse(body).unwrap_err().code, INVALID_REQUEST, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn notifications_responses_and_batches() {
    assert_eq!(
        McpMessage::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
        McpMessage::Notification { method: "notifications/initialized".into() }
    );
    assert_eq!(
        McpMessage::parse(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).unwrap(),
        McpMessage::Response { id: json!("s1") }
    );
    let batch = McpMessage::parse(
        br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#,
    )
    .unwrap();
    assert!(matches!(&batch, McpMessage::Batch(items) if items.len() == 2));
    assert!(batch.has_tool_call());
}

#[test]
fn matching_headers_pass() {
    let m = McpMessage::parse(CALL).unwrap();
    m.check_headers(&HeaderMap::new()).unwrap();
    m.check_headers(&headers(&[("mcp-method", "tools/call"), ("mcp-name", "echo")])).unwrap();
}

#[test]
fn a_header_naming_another_tool_is_a_mismatch() {
    let m = McpMessage::parse(CALL).unwrap();
    for h in [
        headers(&[("mcp-method", "tools/call"), ("mcp-name", "other")]),
        headers(&[("mcp-method", "tools/list"), ("mcp-name", "echo")]),
        headers(&[("mcp-method", "tools/call")]),
        headers(&[("mcp-name", "echo"), ("mcp-name", "echo")]),
    ] {
        let e = m.check_headers(&h).unwrap_err();
        assert_eq!(e.code, HEADER_MISMATCH);
        assert_eq!(e.id, json!(7));
    }
    let list = McpMessage::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
    assert_eq!(list.check_headers(&headers(&[("mcp-name", "echo")])).unwrap_err().code, HEADER_MISMATCH);
    list.check_headers(&headers(&[("mcp-method", "tools/list")])).unwrap();
}

#[test]
fn ambiguous_json_is_a_parse_error() {
    let dup = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"rm_rf"}}"#;
    assert_eq!(McpMessage::parse(dup).unwrap_err().code, PARSE_ERROR);
    let nan = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"n":NaN}}}"#;
    assert_eq!(McpMessage::parse(nan).unwrap_err().code, PARSE_ERROR);
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{}1{}}}}}"#,
        "[".repeat(80),
        "]".repeat(80)
    );
    assert_eq!(McpMessage::parse(deep.as_bytes()).unwrap_err().code, PARSE_ERROR);
}

#[test]
fn batches_are_bounded() {
    let one = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let batch = |n: usize| format!("[{}]", vec![one; n].join(","));
    assert!(McpMessage::parse(batch(cloakroom_core::limits::MAX_MCP_BATCH).as_bytes()).is_ok());
    let err = McpMessage::parse(batch(cloakroom_core::limits::MAX_MCP_BATCH + 1).as_bytes()).unwrap_err();
    assert_eq!(err.code, INVALID_REQUEST);
}
