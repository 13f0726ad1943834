//! Feeds fuzzer-chosen POST bodies and `Mcp-Method` / `Mcp-Name` header values through
//! the gateway's MCP JSON-RPC parser (`McpMessage::parse`, its accessors and
//! `check_headers`). Bad input must come back as an `RpcError`, never a panic.
//!
//! Input layout: byte 0 = header lengths selector; then the `Mcp-Method` value, the
//! `Mcp-Name` value (each up to 31 bytes), the rest is the body.
#![no_main]

use cloakroom_gateway::mcp::jsonrpc::McpMessage;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let m_len = usize::from(head & 0x1f).min(rest.len());
    let (method, rest) = rest.split_at(m_len);
    let n_len = usize::from(head >> 3).min(rest.len());
    let (name, body) = rest.split_at(n_len);
    let mut headers = HeaderMap::new();
    if head & 0x80 != 0 {
        if let Ok(v) = HeaderValue::from_bytes(method) {
            headers.append("mcp-method", v);
        }
    }
    if head & 0x40 != 0 {
        if let Ok(v) = HeaderValue::from_bytes(name) {
            headers.append("mcp-name", v);
        }
    }
    if let Ok(msg) = McpMessage::parse(body) {
        let _ = msg.request_id();
        let _ = msg.has_tool_call();
        let _ = msg.method();
        let _ = msg.name();
        let _ = msg.check_headers(&headers);
    }
});
