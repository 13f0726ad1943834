//! Builds and runs the example binary with its own `cloakroom.toml` (ports and data
//! directory moved to a temporary place) and uses it over real HTTP as an agent, an
//! approver and an administrator would: the handler gets the secret for a placeholder,
//! the caller gets the placeholder back, refusals never reach a handler, a refund is
//! held until someone from finance approves that very call, and the audit chain holds.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};

const AGENT: &str = "ck_example_agent_7d1f0c9a";
const APPROVER: &str = "ck_example_approver_2b8e4a61";
const ADMIN: &str = "ck_example_admin_5c3d9e07";
const SECRET: &str = "wk_live_7f3a9c2e51d04b8aa6e2";

struct Example {
    child: Child,
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> Example {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (cloakroom_testkit::free_addr(), cloakroom_testkit::free_addr());
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/cloakroom.toml")).unwrap();
    let config = shipped.replace("127.0.0.1:3000", &listen.to_string()).replace("127.0.0.1:3001", &admin.to_string());
    assert_ne!(config, shipped, "the shipped configuration names the ports the test moves");
    std::fs::write(dir.path().join("cloakroom.toml"), config).unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, cloakroom_vault::Keys::generate().to_keys_file()).unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cloakroom-example-axum-embed"))
        .arg("cloakroom.toml")
        .current_dir(dir.path())
        .env_remove("CLOAKROOM_PLACEHOLDER_KEY")
        .env_remove("CLOAKROOM_VAULT_KEY")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let example = Example { child, base: format!("http://{listen}"), admin: format!("http://{admin}"), _dir: dir };
    for _ in 0..200 {
        let admin_up = reqwest::get(format!("{}/healthz", example.admin)).await.is_ok();
        let app_up = tokio::net::TcpStream::connect(listen).await.is_ok();
        if admin_up && app_up {
            return example;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the example did not start");
}

/// `(status, JSON body, Cloakroom-Call-Id)`; no answer may hold the secret.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let call_id = res.headers().get("cloakroom-call-id").map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret reached a caller: {text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), call_id)
}

async fn put_secret(e: &Example) -> String {
    let c = reqwest::Client::new();
    let body = json!({"name": "weather_api_key", "value": SECRET,
        "binding": {"functions": ["weather"], "locations": ["header:x-api-key"]}});
    let (status, body, _) = send(c.post(format!("{}/v1/secrets", e.admin)).bearer_auth(ADMIN).json(&body)).await;
    assert_eq!(status, 200, "{body}");
    body["placeholder"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_gets_the_secret_and_the_caller_only_the_placeholder() {
    let e = start().await;
    let placeholder = put_secret(&e).await;
    let c = reqwest::Client::new();
    let weather = || c.get(format!("{}/weather", e.base)).header("x-api-key", &placeholder);
    let (status, body, call_id) = send(weather().bearer_auth(AGENT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forecast"], "sunny", "the provider got the real key: {body}");
    assert_eq!(body["debug"]["api_key_used"], placeholder.as_str(), "the echoed key is masked: {body}");
    let call_id = call_id.expect("every answer names its audit record");

    // Refusals, none of which reaches a handler.
    let (status, body, _) = send(weather()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let (status, body, _) = send(weather().bearer_auth(APPROVER)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body, _) = send(c.get(format!("{}/payroll", e.base)).bearer_auth(AGENT)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "no rule names payroll: {body}");
    // A request the naming closure does not name never reaches the router: 404, recorded.
    let (status, body, unnamed) = send(c.get(format!("{}/", e.base)).bearer_auth(AGENT)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    assert!(unnamed.is_some(), "the refusal has an audit record");
    let (status, body, _) =
        send(c.get(format!("{}/weather", e.base)).bearer_auth(AGENT).header("x-api-key", "cloak_notaplaceholder"))
            .await;
    assert_eq!(status, 200, "an unknown cloak_ string is the caller's own text: {body}");
    assert_eq!(body["forecast"], "the provider refused the key", "{body}");

    // The audit record names the secret, never its value, and the chain verifies.
    let (status, record, _) = send(c.get(format!("{}/v1/audit/{call_id}", e.admin)).bearer_auth(ADMIN)).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["function"], "weather", "{record}");
    assert_eq!(record["secrets_used"][0]["name"], "weather_api_key", "{record}");
    let (status, report, _) = send(c.get(format!("{}/v1/audit/verify", e.admin)).bearer_auth(ADMIN)).await;
    assert_eq!((status, report["ok"].as_bool()), (200, Some(true)), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_waits_for_finance_and_the_approval_covers_that_call_only() {
    let e = start().await;
    let c = reqwest::Client::new();
    let refund =
        |amount: u32| c.post(format!("{}/refunds", e.base)).bearer_auth(AGENT).json(&json!({"amount": amount}));
    let (status, held, _) = send(refund(5000)).await;
    assert_eq!(status, 202, "held for approval: {held}");
    let id = held["approval"]["id"].as_str().or(held["approval_id"].as_str()).expect("an approval id").to_owned();

    // The agent cannot approve its own call; the approver can.
    let approve = |who: &str| c.post(format!("{}/v1/approvals/{id}/approve", e.admin)).bearer_auth(who.to_owned());
    let (status, body, _) = send(approve(AGENT)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = send(approve(APPROVER).json(&json!({"reason": "customer called"}))).await;
    assert_eq!(status, 200, "{body}");

    // The approval covers this call, not another amount.
    let (status, body, _) = send(refund(9_999_999).header("cloakroom-approval", &id)).await;
    assert_eq!(status, 403, "an approval for 5000 does not refund 9999999: {body}");
    let (status, body, _) = send(refund(5000).header("cloakroom-approval", &id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refunded"], 5000, "{body}");
    // Used once.
    let (status, body, _) = send(refund(5000).header("cloakroom-approval", &id)).await;
    assert_ne!(status, 200, "an approval is used once: {body}");
}
