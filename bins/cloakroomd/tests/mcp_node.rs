//! End-to-end: the official TypeScript MCP SDK client (Node 20, tests/mcp-node, pinned
//! in package-lock.json and installed by scripts/test-env.sh) through `cloakroomd` to
//! the Python SDK server. It speaks the 2025-11-25 generation: initialize handshake,
//! `Mcp-Session-Id`, SSE responses and a DELETE at the end.

mod common;

use common::{mcp::*, *};
use serde_json::{json, Value};

fn node_client() -> std::path::PathBuf {
    let dir = cloakroom_testkit::workspace_root().join("tests/mcp-node");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "tests/mcp-node/node_modules is missing: run `source scripts/test-env.sh` first (it runs npm ci there)"
    );
    dir.join("client.mjs")
}

#[tokio::test]
async fn the_typescript_sdk_sees_filtered_tools_masked_results_and_json_rpc_denials() {
    let client = node_client();
    let server = McpServer::start().await;
    let (gw, p) = gateway(&server).await;
    let out = tokio::process::Command::new("node")
        .arg(&client)
        .arg(gw.url("/mcp/tools"))
        .arg(AGENT_KEY)
        .arg(&p)
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "node client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out: Value = serde_json::from_slice(&out.stdout).expect("node client prints JSON");
    assert_eq!(out["protocol"], "2025-11-25", "{out}");
    assert!(out["session"].is_string(), "the Mcp-Session-Id header did not pass through: {out}");
    assert_eq!(out["tools"], json!(["echo", "refund", "slow"]), "{out}");
    assert_eq!(out["echo"]["text"], format!("key={p}"), "{out}");
    assert_eq!(out["slow"]["text"], p.as_str());
    let progress = out["slow"]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{out}");
    assert_eq!(progress[2]["message"], format!("step 3 with {p}"));
    assert_eq!(out["drop_db"]["code"], -32001, "{out}");
    assert!(!out.to_string().contains(SECRET));
    let received = server.received();
    assert!(received.contains(&format!("key={SECRET}")), "{received}");
    assert!(!received.contains("drop_db"));
    assert_eq!(gw.admin_get("/v1/audit/verify").await["ok"], true);
}
