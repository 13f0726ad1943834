//! End-to-end: a rule naming an MCP function's tools (`tools/*`, `tools/echo`) lets its
//! callers use the function's protocol plumbing (initialize, notifications, ping,
//! tools/list, the session's GET stream and DELETE), which the gateway names the bare
//! function `tools`; it lets them call nothing else, and lists nothing else. Driven by the
//! official TypeScript SDK client (tests/mcp-node/plumbing.mjs, the 2025-11-25 sessions
//! generation) and the Python SDK client (stateless generation) against the Python server
//! of tests/mcp through a real `cloakroomd`.

mod common;

use common::{mcp::*, *};
use serde_json::{json, Value};

/// Nobody is allowed the bare function `tools`: every allow below names tools only.
async fn gateway_with_tool_rules(server: &McpServer) -> Cloakroomd {
    let rest = format!(
        "{}{}{}{}\n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"tools/refund\"]\ngroups = [\"agents\"]\napprovers = [\"leads\"]\n\n[[policy.rules]]\nname = \"nobody drops\"\neffect = \"deny\"\nfunctions = [\"tools/drop_db\"]\n",
        identity_section(),
        function("tools", "mcp", &format!("http://127.0.0.1:{}/mcp", server.port), "/mcp/tools"),
        allow("agents may use every tool", &["tools/*"], &["agents"]),
        allow("leads may echo", &["tools/echo"], &["leads"]),
    );
    Cloakroomd::start("", &rest).await
}

async fn node_plumbing(gw: &Cloakroomd, key: &str, tools: &[&str]) -> Value {
    let dir = cloakroom_testkit::workspace_root().join("tests/mcp-node");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "tests/mcp-node/node_modules is missing: run `source scripts/test-env.sh` first (it runs npm ci there)"
    );
    let out = tokio::process::Command::new("node")
        .arg(dir.join("plumbing.mjs"))
        .arg(gw.url("/mcp/tools"))
        .arg(key)
        .args(tools)
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "node client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("node client prints JSON")
}

/// The audit records of calls by `subject`: (function, detail, outcome).
async fn audited(gw: &Cloakroomd, subject: &str) -> Vec<Value> {
    let records = gw.admin_get("/v1/audit?limit=1000").await;
    records["records"].as_array().unwrap().iter().filter(|r| r["identity"]["subject"] == subject).cloned().collect()
}

#[tokio::test]
async fn a_caller_allowed_some_tools_connects_lists_only_those_and_calls_nothing_else() {
    let server = McpServer::start().await;
    let gw = gateway_with_tool_rules(&server).await;

    // Allowed only tools/echo: the whole session works, only echo is listed and callable.
    let out = node_plumbing(&gw, APPROVER_KEY, &["echo", "drop_db", "slow"]).await;
    assert!(
        out.get("connect").is_none(),
        "initialize was refused: {out}\ngateway:\n{}\nserver:\n{}",
        gw.stderr(),
        server.log()
    );
    assert_eq!(out["protocol"], "2025-11-25", "{out}");
    assert!(out["session"].is_string(), "{out}");
    assert_eq!(out["ping"], "ok", "{out}");
    assert_eq!(out["tools"], json!(["echo"]), "{out}");
    assert_eq!(out["calls"]["echo"]["ok"], true, "{out}");
    for denied in ["drop_db", "slow"] {
        assert_eq!(out["calls"][denied]["code"], -32001, "{denied}: {out}");
        assert_eq!(out["calls"][denied]["data"]["code"], "forbidden", "{denied}: {out}");
    }
    assert_eq!(out["terminate"], "ok", "{out}");
    let received = server.received();
    assert!(!received.contains("drop_db") && !received.contains("slow"), "{received}");

    // The plumbing went through as the bare function and was allowed by the tool rule.
    let records = audited(&gw, "approver").await;
    let plumbing: Vec<&Value> = records.iter().filter(|r| r["function"] == "tools").collect();
    assert!(!plumbing.is_empty(), "{records:?}");
    for r in &plumbing {
        assert_eq!(r["decision"]["effect"], "allow", "{r}");
        assert_eq!(r["decision"]["rule"], "leads may echo", "{r}");
    }
    assert_eq!(gw.admin_get("/v1/audit/verify").await["ok"], true);
}

#[tokio::test]
async fn a_tools_glob_opens_the_plumbing_but_a_deny_or_approve_of_one_tool_does_not_close_it() {
    let server = McpServer::start().await;
    let gw = gateway_with_tool_rules(&server).await;
    let out = node_plumbing(&gw, AGENT_KEY, &["echo", "drop_db"]).await;
    assert!(
        out.get("connect").is_none(),
        "initialize was refused: {out}\ngateway:\n{}\nserver:\n{}",
        gw.stderr(),
        server.log()
    );
    // drop_db is denied by name, so hidden; refund needs approval, so listed.
    assert_eq!(out["tools"], json!(["echo", "refund", "slow"]), "{out}");
    assert_eq!(out["calls"]["echo"]["ok"], true, "{out}");
    assert_eq!(out["calls"]["drop_db"]["code"], -32001, "{out}");
    assert_eq!(out["terminate"], "ok", "{out}");
    // The approve rule on tools/refund did not turn initialize into a pending approval.
    let records = audited(&gw, "agent").await;
    for r in records.iter().filter(|r| r["function"] == "tools") {
        assert_eq!(r["decision"]["effect"], "allow", "{r}");
    }
    let pending = gw.admin_get("/v1/approvals").await;
    assert_eq!(pending["approvals"].as_array().map(Vec::len).unwrap_or(0), 0, "{pending}");
}

#[tokio::test]
async fn a_caller_allowed_nothing_on_the_function_is_denied_at_initialize() {
    let server = McpServer::start().await;
    let gw = gateway_with_tool_rules(&server).await;
    let out = node_plumbing(&gw, OUTSIDER_KEY, &["echo"]).await;
    let connect = out.get("connect").unwrap_or_else(|| panic!("an outsider connected: {out}"));
    assert!(connect.to_string().contains("forbidden") || connect["code"] == -32001, "{out}");
    assert!(out.get("tools").is_none(), "{out}");
    assert!(server.received().is_empty(), "the upstream saw an outsider's call: {}", server.received());
    let records = audited(&gw, "outsider").await;
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r["decision"]["effect"], "deny", "{r}");
    }
}

#[tokio::test]
async fn the_python_sdk_in_the_stateless_generation_gets_the_same_plumbing() {
    let server = McpServer::start().await;
    let gw = gateway_with_tool_rules(&server).await;
    let out = run_client(&[&gw.url("/mcp/tools"), APPROVER_KEY, "plumbing", "echo", "drop_db"]).await;
    assert_eq!(out["tools"], json!(["echo"]), "{out}");
    assert_eq!(out["calls"]["echo"]["ok"], true, "{out}");
    assert_eq!(out["calls"]["drop_db"]["code"], -32001, "{out}");
    let out = run_client(&[&gw.url("/mcp/tools"), OUTSIDER_KEY, "plumbing", "echo"]).await;
    assert!(out.get("connect").is_some() || out.get("list").is_some(), "an outsider listed tools: {out}");
    assert!(out.get("tools").is_none(), "{out}");
}

#[test]
fn check_warns_about_rules_that_can_never_match_and_still_accepts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traps.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:18080\"\nadmin_listen = \"127.0.0.1:18081\"\n{}{}{}{}{}",
        function("tools", "mcp", "http://127.0.0.1:9/mcp", "/mcp/tools"),
        function("pay", "http", "http://127.0.0.1:9", "/fn/pay"),
        // Fine: tools of an MCP function, the bare HTTP function.
        allow("tools ok", &["tools/*", "pay"], &["agents"]),
        // Never: an HTTP function's calls are its bare name; no function is named t-x*.
        allow("pay sub-path", &["pay/refund", "t-x*"], &["agents"]),
        "\n[[policy.rules]]\nname = \"typo method\"\neffect = \"allow\"\nfunctions = [\"pay\"]\nmethods = [\"PSOT\"]\n\n[[policy.rules]]\nname = \"nobody pays\"\neffect = \"deny\"\nfunctions = [\"pay\"]\n\n[[policy.rules]]\nname = \"ops pay\"\neffect = \"allow\"\nfunctions = [\"pay\"]\ngroups = [\"ops\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(binary()).arg("--config").arg(&path).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 4, "{err}");
    assert!(err.contains("\"pay sub-path\"): field `functions[0]`"), "{err}");
    assert!(err.contains("\"pay sub-path\"): field `functions[1]`"), "{err}");
    assert!(err.contains("\"typo method\"): field `methods`: \"PSOT\""), "{err}");
    assert!(
        err.contains("(\"ops pay\"): every call it matches is denied by the earlier deny rule \"nobody pays\""),
        "{err}"
    );
    assert!(!err.contains("tools ok"), "{err}");
}

#[test]
fn check_warns_that_a_budget_outside_postgres_is_counted_per_replica() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.toml");
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:18080\"\nadmin_listen = \"127.0.0.1:18081\"\n{}{}\n[[secrets]]\nname = \"capped\"\nfunctions = [\"pay\"]\nlocations = [\"body\"]\nmax_uses = 5\n\n[[secrets]]\nname = \"free\"\nfunctions = [\"pay\"]\nlocations = [\"body\"]\n",
        function("pay", "http", "http://127.0.0.1:9", "/fn/pay"),
        allow("pay", &["pay"], &["agents"]),
    );
    for (store, warned) in
        [("", true), ("\n[approvals]\nstore = \"memory\"\n", true), ("\n[approvals]\nstore = \"postgres\"\n", false)]
    {
        std::fs::write(&path, format!("{base}{store}")).unwrap();
        let out = std::process::Command::new(binary()).arg("--config").arg(&path).arg("--check").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            err.contains("secrets[0] (\"capped\"): its use budget is counted by this replica alone"),
            warned,
            "{store}: {err}"
        );
        assert!(!err.contains("\"free\""), "a secret without a budget is not named: {err}");
    }
}
