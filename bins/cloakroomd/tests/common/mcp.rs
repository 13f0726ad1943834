//! MCP test support: the Python MCP server of tests/mcp and a gateway in front of it.

use std::{path::PathBuf, process::Command};

use serde_json::{json, Value};

use super::*;

pub const SECRET: &str = "sk_live_mcp_0123456789abcdefXYZ";

pub fn python() -> PathBuf {
    let p = cloakroom_testkit::workspace_root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `source scripts/test-env.sh` first (it installs the pinned MCP SDK)",
        p.display()
    );
    p
}

pub fn script(name: &str) -> PathBuf {
    cloakroom_testkit::workspace_root().join("tests/mcp").join(name)
}

pub struct McpServer {
    process: cloakroom_testkit::ServerProcess,
    pub port: u16,
    received: PathBuf,
    _dir: tempfile::TempDir,
}

impl McpServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let received = dir.path().join("received.log");
        let process =
            cloakroom_testkit::ServerProcess::start("the Python MCP server", &dir.path().join("server.log"), |port| {
                let mut command = Command::new(python());
                command.arg(script("server.py")).arg(port.to_string()).arg(&received);
                command
            })
            .await;
        Self { port: process.port, process, received, _dir: dir }
    }

    /// What the server has logged (for a failing assertion's message).
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn received(&self) -> String {
        std::fs::read_to_string(&self.received).unwrap_or_default()
    }
}

pub async fn run_client(args: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script("client.py")).args(args);
    let out = cmd.output().await.expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "client {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub async fn gateway(server: &McpServer) -> (Cloakroomd, String) {
    let rest = format!(
        "{}{}{}\n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"tools/refund\"]\ngroups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        function("tools", "mcp", &format!("http://127.0.0.1:{}/mcp", server.port), "/mcp/tools"),
        allow("agents may use the tools server", &["tools", "tools/echo", "tools/slow"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let placeholder = gw.put_secret("mcp_key", SECRET, json!({"functions": ["tools/*"], "locations": ["body"]})).await;
    (gw, placeholder)
}
