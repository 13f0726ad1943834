//! End-to-end: `tools/list` filtering with pagination. A server built with the official
//! TypeScript SDK's low-level `Server` (tests/mcp-node/paginated-server.mjs) pages its
//! tools; the SDK client (tests/mcp-node/paginate.mjs) lists every page through
//! `cloakroomd`. Each page is filtered on its own and its `nextCursor` passes through
//! unchanged, also on a page filtered down to no tools.

mod common;

use std::{path::PathBuf, process::Command};

use common::*;
use serde_json::{json, Value};

fn node_dir() -> PathBuf {
    let dir = cloakroom_testkit::workspace_root().join("tests/mcp-node");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "tests/mcp-node/node_modules is missing: run `source scripts/test-env.sh` first (it runs npm ci there)"
    );
    dir
}

struct PaginatedServer {
    _process: cloakroom_testkit::ServerProcess,
    port: u16,
    cursors: PathBuf,
    _dir: tempfile::TempDir,
}

impl PaginatedServer {
    /// `mode` is `sse` or `json`: how the server sends its responses.
    async fn start(mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cursors = dir.path().join("cursors.log");
        let process = cloakroom_testkit::ServerProcess::start(
            "the paginated MCP server",
            &dir.path().join("server.log"),
            |port| {
                let mut command = Command::new("node");
                command.arg(node_dir().join("paginated-server.mjs")).arg(port.to_string()).arg(&cursors).arg(mode);
                command
            },
        )
        .await;
        Self { port: process.port, _process: process, cursors, _dir: dir }
    }

    /// The cursors the server's tools/list handler received, `-` for none.
    fn cursors(&self) -> Vec<String> {
        std::fs::read_to_string(&self.cursors).unwrap_or_default().lines().map(str::to_owned).collect()
    }
}

/// Every page the SDK client lists through a gateway that lets agents call `echo` and
/// `slow` only.
async fn pages_through_gateway(server: &PaginatedServer) -> Value {
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("tools", "mcp", &format!("http://127.0.0.1:{}/mcp", server.port), "/mcp/tools"),
        allow("agents may use echo and slow", &["tools", "tools/echo", "tools/slow"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let out = tokio::process::Command::new("node")
        .arg(node_dir().join("paginate.mjs"))
        .arg(gw.url("/mcp/tools"))
        .arg(AGENT_KEY)
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "node client failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    let out: Value = serde_json::from_slice(&out.stdout).expect("node client prints JSON");
    out["pages"].clone()
}

fn expected_pages() -> Value {
    json!([
        {"tools": ["echo"], "nextCursor": "page-2"},
        {"tools": [], "nextCursor": "page-3"},
        {"tools": ["slow"], "nextCursor": null},
    ])
}

#[tokio::test]
async fn sse_pages_are_each_filtered_and_keep_their_next_cursor() {
    let server = PaginatedServer::start("sse").await;
    let pages = pages_through_gateway(&server).await;
    assert_eq!(pages, expected_pages());
}

#[tokio::test]
async fn json_pages_are_each_filtered_and_keep_their_next_cursor() {
    let server = PaginatedServer::start("json").await;
    let pages = pages_through_gateway(&server).await;
    assert_eq!(pages, expected_pages());
}

#[tokio::test]
async fn the_clients_cursors_reach_the_server_unchanged() {
    let server = PaginatedServer::start("sse").await;
    pages_through_gateway(&server).await;
    assert_eq!(server.cursors(), ["-", "page-2", "page-3"]);
}
