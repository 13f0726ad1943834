//! End-to-end: MCP through `cloakroomd` with the official Python SDK on both sides
//! (tests/mcp/server.py, an `MCPServer` over streamable HTTP; tests/mcp/client.py, the
//! SDK's `Client`). Needs `.tools/venv` from scripts/test-env.sh (pinned `mcp`).

mod common;

use common::{mcp::*, *};
use serde_json::{json, Value};

#[tokio::test]
async fn the_python_sdk_lists_filtered_tools_calls_with_placeholders_and_streams_masked_progress() {
    let server = McpServer::start().await;
    let (gw, p) = gateway(&server).await;
    let url = gw.url("/mcp/tools");
    let out = run_client(&[&url, AGENT_KEY, "main", &p]).await;

    // The Python SDK speaks the stateless 2026-07-28 generation (Mcp-Method / Mcp-Name
    // headers on every request); the TypeScript test covers the 2025-11-25 sessions.
    assert_eq!(out["protocol"], "2026-07-28", "{out}");
    // tools/list: drop_db is not callable, so it is not listed.
    assert_eq!(out["tools"], json!(["echo", "refund", "slow"]), "{out}");
    // The tool received the secret; the caller got the placeholder back.
    assert_eq!(out["echo"]["text"], format!("key={p}"), "{out}");
    assert_eq!(out["slow"]["text"], p.as_str(), "{out}");
    let progress = out["slow"]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{out}");
    for (i, step) in progress.iter().enumerate() {
        assert_eq!(step["message"], format!("step {} with {p}", i + 1));
    }
    let received = server.received();
    assert!(received.contains(&format!("key={SECRET}")), "{received}");
    assert!(!received.contains(&p), "a placeholder reached the tool: {received}");
    assert!(!out.to_string().contains(SECRET), "{out}");
    // A denied tool is a JSON-RPC error, and it never ran.
    assert_eq!(out["drop_db"]["code"], -32001, "{out}");
    assert_eq!(out["drop_db"]["data"]["code"], "forbidden", "{out}");
    assert!(!received.contains("drop_db"));
    // A tool needing approval: a JSON-RPC error carrying the pending approval.
    assert_eq!(out["refund"]["code"], -32002, "{out}");
    let pending = &out["refund"]["data"];
    assert_eq!(pending["status"], "pending_approval", "{out}");
    let approval = pending["approval_id"].as_str().unwrap().to_owned();
    assert!(!received.contains("refunded"));

    // Approved through the admin API by a lead, then called again with the header.
    let res = reqwest::Client::new()
        .post(gw.admin_url(&format!("/v1/approvals/{approval}/approve")))
        .bearer_auth(APPROVER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let out = run_client(&[&url, AGENT_KEY, "approved", &approval, &p]).await;
    assert_eq!(out["refund"]["text"], format!("refunded 500 with {p}"), "{out}");
    assert!(server.received().contains(SECRET));

    // Every call is in the audit log, which verifies and holds no secret.
    let records = gw.admin_get("/v1/audit?limit=1000").await;
    let text = records.to_string();
    assert!(!text.contains(SECRET));
    let functions: Vec<&str> =
        records["records"].as_array().unwrap().iter().filter_map(|r| r["function"].as_str()).collect();
    for f in ["tools/echo", "tools/slow", "tools/drop_db", "tools/refund"] {
        assert!(functions.contains(&f), "{f} missing from {functions:?}");
    }
    assert_eq!(gw.admin_get("/v1/audit/verify").await["ok"], true);
    assert_no_secret_in_files(&gw.dir.path().join("data").join("audit"), SECRET);
    assert!(!gw.stderr().contains(SECRET));
}

#[tokio::test]
async fn malformed_json_rpc_and_mismatched_mcp_headers_are_refused_before_policy() {
    let server = McpServer::start().await;
    let (gw, _p) = gateway(&server).await;
    let c = reqwest::Client::new();
    let post = |body: &'static str| {
        c.post(gw.url("/mcp/tools"))
            .bearer_auth(AGENT_KEY)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
    };
    let res = post("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ").send().await.unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700);
    // Mcp-Name says echo, the body calls drop_db: refused with -32020, the tool never runs.
    let res = post(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_db","arguments":{}}}"#)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32020);
    assert_eq!(v["id"], 2);
    // A batch with a tools/call is refused.
    let res =
        post(r#"[{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}]"#)
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600);
    assert!(!server.received().contains("drop_db"));
    let records = gw.admin_get("/v1/audit?limit=100").await;
    assert_eq!(records["records"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn mcp_routes_serve_protected_resource_metadata_and_challenge_with_it() {
    let server = McpServer::start().await;
    let (gw, _p) = gateway(&server).await;
    let c = reqwest::Client::new();
    let res = c.post(gw.url("/mcp/tools")).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let expected = format!("resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp/tools\"", gw.addr);
    assert!(challenge.starts_with("Bearer") && challenge.contains(&expected), "{challenge}");
    let meta: Value =
        c.get(gw.url("/.well-known/oauth-protected-resource/mcp/tools")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["resource"], format!("http://{}/mcp/tools", gw.addr));
    assert!(meta["authorization_servers"].is_array());
    let res = c.get(gw.url("/.well-known/oauth-protected-resource/fn/none")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
