//! Attacks on MCP sessions, against a real `cloakroomd` in front of the Python MCP SDK
//! server (tests/mcp/server.py, 2025-11-25 sessions): an `Mcp-Session-Id` is bound to
//! the identity (issuer + subject) that opened it. Any other identity presenting it gets
//! exactly the answer an unknown session gets (HTTP 404) and nothing is forwarded.
//!
//! Before: the gateway forwarded any session id from any authenticated caller, so a
//! leaked or guessed id let another identity continue someone else's session.

mod common;

use biscuit_auth::{Biscuit, KeyPair};
use common::{mcp::*, *};
use serde_json::{json, Value};

const AGENT2_KEY: &str = "ck_test_second_agent_key_0123";
const PROTOCOL: &str = "2025-11-25";

async fn gateway(server: &McpServer, root: &KeyPair) -> Cloakroomd {
    let rest = format!(
        r#"{identity}
[[identity.api_keys]]
subject = "agent2"
groups = ["agents"]
sha256 = "{agent2}"

[identity.biscuit]
root_public_key = "{root}"

# A Datalog evaluation's max_time is wall-clock time: a debug build on a busy 2-core
# machine can be descheduled for longer than the 20 ms default. Not what this tests.
[policy.datalog_limits]
max_time = "5s"
{function}{allow}"#,
        identity = identity_section(),
        agent2 = sha256_hex(AGENT2_KEY),
        root = root.public(),
        function = function("tools", "mcp", &format!("http://127.0.0.1:{}/mcp", server.port), "/mcp/tools"),
        allow = allow("agents may use the tools server", &["tools", "tools/echo"], &["agents"]),
    );
    Cloakroomd::start("", &rest).await
}

struct Answer {
    status: u16,
    session: Option<String>,
    body: String,
}

async fn post(gw: &Cloakroomd, token: &str, session: Option<&str>, message: Value) -> Answer {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/tools"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s).header("mcp-protocol-version", PROTOCOL);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let session = res.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    Answer { status, session, body: res.text().await.unwrap() }
}

/// Opens a session as `token`: initialize, then the initialized notification.
async fn open_session(gw: &Cloakroomd, token: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "session-test", "version": "1"}}});
    let a = post(gw, token, None, init).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let session = a.session.unwrap_or_else(|| panic!("the server opened no session: {}", a.body));
    let done = post(gw, token, Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    assert!(done.status == 202 || done.status == 200, "{} {}", done.status, done.body);
    session
}

fn echo(text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}})
}

/// The answer with the call-specific parts taken out, to compare two refusals.
fn shape(a: &Answer) -> (u16, Value) {
    let mut v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    if let Some(data) = v.pointer_mut("/error/data/error") {
        data.as_object_mut().unwrap().remove("call_id");
    }
    (a.status, v)
}

#[tokio::test]
async fn another_identity_presenting_a_session_id_gets_the_unknown_session_answer() {
    let server = McpServer::start().await;
    let root = KeyPair::new();
    let gw = gateway(&server, &root).await;
    let session = open_session(&gw, AGENT_KEY).await;

    // The owner continues the session.
    let own = post(&gw, AGENT_KEY, Some(&session), echo("owner-marker")).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(server.received().contains("owner-marker"));

    // A session id nobody was given.
    let unknown = post(&gw, AGENT_KEY, Some("9b1f2c3d-0000-4000-8000-000000000000"), echo("unknown-marker")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // Another identity of the same groups, and the same subject from another issuer.
    let same_subject_other_issuer = Biscuit::builder()
        .code(r#"user("agent"); group("agents");"#)
        .unwrap()
        .build(&root)
        .unwrap()
        .to_base64()
        .unwrap();
    for intruder in [AGENT2_KEY, same_subject_other_issuer.as_str()] {
        let stolen = post(&gw, intruder, Some(&session), echo("intruder-marker")).await;
        assert_eq!(shape(&stolen), shape(&unknown), "{}", stolen.body);
        // The same for a notification and a DELETE (which would end the owner's session).
        let note =
            post(&gw, intruder, Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert_eq!(note.status, 404);
        let res = reqwest::Client::new()
            .delete(gw.url("/mcp/tools"))
            .bearer_auth(intruder)
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    assert!(!server.received().contains("intruder-marker"), "a foreign session id was forwarded");
    assert!(!server.received().contains("unknown-marker"));

    // The owner's session is intact; the intruders can open their own.
    assert_eq!(post(&gw, AGENT_KEY, Some(&session), echo("owner-again")).await.status, 200);
    let theirs = open_session(&gw, AGENT2_KEY).await;
    assert_ne!(theirs, session);
    assert_eq!(post(&gw, AGENT2_KEY, Some(&theirs), echo("agent2-own")).await.status, 200);
    assert_eq!(post(&gw, AGENT_KEY, Some(&theirs), echo("agent-in-theirs")).await.status, 404);

    // The refusals are audited as not_found for the intruder.
    let records = gw.admin_get("/v1/audit?limit=1000").await;
    let refused = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["identity"]["subject"] == "agent2" && r["error"].to_string().contains("not_found"))
        .count();
    assert!(refused >= 3, "{records}");
}

#[tokio::test]
async fn a_session_the_owner_deleted_is_unknown_afterwards() {
    let server = McpServer::start().await;
    let gw = gateway(&server, &KeyPair::new()).await;
    let session = open_session(&gw, AGENT_KEY).await;
    let res = reqwest::Client::new()
        .delete(gw.url("/mcp/tools"))
        .bearer_auth(AGENT_KEY)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let after = post(&gw, AGENT_KEY, Some(&session), echo("after-delete")).await;
    assert_eq!(after.status, 404);
    assert!(!server.received().contains("after-delete"));
}

#[tokio::test]
async fn a_repeated_session_header_is_refused_like_an_unknown_session() {
    let server = McpServer::start().await;
    let gw = gateway(&server, &KeyPair::new()).await;
    let session = open_session(&gw, AGENT_KEY).await;
    let res = reqwest::Client::new()
        .post(gw.url("/mcp/tools"))
        .bearer_auth(AGENT_KEY)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-session-id", "another")
        .json(&echo("doubled"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!server.received().contains("doubled"));
}
