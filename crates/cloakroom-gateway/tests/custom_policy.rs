//! A custom policy added through [`Gateway::builder`] is part of every policy set: it
//! denies calls the configuration's rules allow, at start and after a reload.
//!
//! A real gateway serves on 127.0.0.1 in-process, in front of a real recording upstream.

use std::{path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use cloakroom_core::Decision;
use cloakroom_gateway::{server::serve, Config, Gateway};
use cloakroom_policy::{Policy, PolicyInput};
use cloakroom_testkit::RecordingUpstream;
use cloakroom_vault::Keys;
use sha2::{Digest, Sha256};

const AGENT_KEY: &str = "ck_test_agent_key_0123456789";

/// Denies every `DELETE`; no opinion about anything else.
struct NoDeletes;

#[async_trait]
impl Policy for NoDeletes {
    fn name(&self) -> &str {
        "no-deletes"
    }

    async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        if input.call.method == "DELETE" {
            Some(Decision::deny("no-deletes", "DELETE is never allowed"))
        } else {
            None
        }
    }
}

/// A configuration whose rules let agents call `functions` (each routed at `/fn/<name>`
/// to `upstream`) with any method.
fn config_text(data_dir: &Path, upstream: &str, functions: &[&str]) -> String {
    let mut text = format!(
        r#"
[server]
data_dir = {data_dir:?}

[[identity.api_keys]]
subject = "agent"
groups = ["agents"]
sha256 = "{key}"
"#,
        data_dir = data_dir.display().to_string(),
        key = hex::encode(Sha256::digest(AGENT_KEY.as_bytes())),
    );
    for f in functions {
        text.push_str(&format!(
            "\n[[functions]]\nname = \"{f}\"\nprotocol = \"http\"\nupstream = \"{upstream}\"\nroute = \"/fn/{f}\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[[policy.rules]]\nname = \"agents may call everything\"\neffect = \"allow\"\nfunctions = {functions:?}\ngroups = [\"agents\"]\n"
    ));
    text
}

struct Running {
    gateway: Gateway,
    url: String,
    config_path: std::path::PathBuf,
    upstream: RecordingUpstream,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The gateway with `NoDeletes`, started from a file allowing `payments`.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = RecordingUpstream::echo().await;
        let config_path = dir.path().join("cloakroom.toml");
        std::fs::write(&config_path, config_text(&dir.path().join("data"), &upstream.url(), &["payments"])).unwrap();
        let gateway = Gateway::builder(Config::load(&config_path).unwrap())
            .config_path(&config_path)
            .keys(Keys::generate())
            .policy(Arc::new(NoDeletes))
            .start()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let g = gateway.clone();
        tokio::spawn(serve(listener, move |peer| g.service(Some(peer)), std::future::pending(), Duration::ZERO));
        Self { gateway, url, config_path, upstream, _dir: dir }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let res = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(AGENT_KEY)
            .json(&serde_json::json!({ "id": 7 }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Rewrites the configuration file to allow `functions` and reloads it.
    async fn reload_with(&self, functions: &[&str]) {
        let dir = self.config_path.parent().unwrap();
        std::fs::write(&self.config_path, config_text(&dir.join("data"), &self.upstream.url(), functions)).unwrap();
        self.gateway.reload().await.unwrap();
    }
}

fn assert_denied_by_no_deletes(status: u16, body: &serde_json::Value) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"no-deletes\""), "{message}");
}

#[tokio::test]
async fn calls_the_custom_policy_has_no_opinion_about_follow_the_rules() {
    let gw = Running::start().await;
    let (status, body) = gw.call(reqwest::Method::POST, "/fn/payments/charges").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_custom_policy_denies_a_call_the_rules_allow() {
    let gw = Running::start().await;
    let (status, body) = gw.call(reqwest::Method::DELETE, "/fn/payments/charges/1").await;
    assert_denied_by_no_deletes(status, &body);
    assert!(gw.upstream.requests().is_empty(), "a denied call reached the upstream");
}

#[tokio::test]
async fn a_custom_policy_still_denies_after_a_reload() {
    let gw = Running::start().await;
    gw.reload_with(&["payments", "ledger"]).await;
    // The new configuration is in force: the function it adds is reachable...
    let (status, body) = gw.call(reqwest::Method::POST, "/fn/ledger/entries").await;
    assert_eq!(status, 200, "{body}");
    // ...and the custom policy is still part of the set.
    for path in ["/fn/payments/charges/1", "/fn/ledger/entries/1"] {
        let (status, body) = gw.call(reqwest::Method::DELETE, path).await;
        assert_denied_by_no_deletes(status, &body);
    }
    assert_eq!(gw.upstream.requests().len(), 1, "only the allowed call reached the upstream");
}

#[tokio::test]
async fn a_custom_policy_still_denies_after_apply() {
    let gw = Running::start().await;
    let dir = gw.config_path.parent().unwrap();
    let text = config_text(&dir.join("data"), &gw.upstream.url(), &["payments", "ledger"]);
    gw.gateway.apply(Config::from_toml_str("applied", &text).unwrap()).await.unwrap();
    assert_eq!(gw.gateway.config().functions.len(), 2);
    let (status, body) = gw.call(reqwest::Method::DELETE, "/fn/ledger/entries/1").await;
    assert_denied_by_no_deletes(status, &body);
    assert!(gw.upstream.requests().is_empty(), "a denied call reached the upstream");
}
