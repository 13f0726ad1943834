//! End-to-end: an MCP request body over `max_body_bytes` is answered 413 with a JSON-RPC
//! error (id `null`, code -32005), and nothing reaches the function.

mod common;

use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::{json, Value};

async fn gateway_for(upstream: &RecordingUpstream) -> Cloakroomd {
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("tools", "mcp", &format!("{}/mcp", upstream.url()), "/mcp/tools"),
        allow("agents may use the tools server", &["tools", "tools/*"], &["agents"]),
    );
    Cloakroomd::start("max_body_bytes = 1024", &rest).await
}

/// A `tools/call` whose JSON body is about `size` bytes.
fn big_tool_call(size: usize) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": "x".repeat(size)}}})
    .to_string()
}

/// The status and the (de-chunked) body of a raw HTTP/1.1 answer.
fn parse_raw(answer: &str) -> (u16, String) {
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {answer}"));
    let (head, mut rest) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer}"));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, rest.to_owned());
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap_or_else(|| panic!("bad chunk: {answer}"));
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("bad chunk size: {answer}"));
        if size == 0 {
            return (status, body);
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

fn assert_json_rpc_too_large(body: &Value) {
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], Value::Null, "{body}");
    assert_eq!(body["error"]["code"], -32005, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("1024 bytes"), "{body}");
    assert_eq!(body["error"]["data"]["code"], "payload_too_large", "{body}");
    assert!(body["error"]["data"]["call_id"].is_string(), "{body}");
}

#[tokio::test]
async fn an_mcp_body_over_the_limit_is_413_with_a_json_rpc_error() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up).await;
    let res = reqwest::Client::new()
        .post(gw.url("/mcp/tools"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(big_tool_call(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["content-type"], "application/json");
    let call_id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_json_rpc_too_large(&body);
    assert_eq!(body["error"]["data"]["call_id"], call_id.as_str());
    assert!(up.requests().is_empty(), "the oversized request reached the function");
}

#[tokio::test]
async fn a_chunked_mcp_body_over_the_limit_is_413_with_a_json_rpc_error() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up).await;
    // No Content-Length: the limit is found while reading.
    let body = big_tool_call(4096);
    let mut raw = format!(
        "POST /mcp/tools HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {AGENT_KEY}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(512) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = parse_raw(&gw.raw(&raw).await);
    assert_eq!(status, 413);
    assert_json_rpc_too_large(&serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")));
    assert!(up.requests().is_empty(), "the oversized request reached the function");
}

#[tokio::test]
async fn an_mcp_body_over_the_limit_is_audited_as_payload_too_large() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up).await;
    let res = reqwest::Client::new()
        .post(gw.url("/mcp/tools"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .body(big_tool_call(4096))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let call_id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    drop(res.bytes().await);
    // The record is written when the answer's body ends; give the sink a moment.
    let mut record = Value::Null;
    for _ in 0..100 {
        let r = reqwest::Client::new()
            .get(gw.admin_url(&format!("/v1/audit/{call_id}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            record = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(record["error"]["code"], "payload_too_large", "{record}");
    assert!(record["upstream"].is_null(), "{record}");
}
