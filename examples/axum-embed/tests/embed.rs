//! Runs the embedded example on 127.0.0.1 and calls it over real HTTP: the handler gets
//! the secret for a placeholder, the caller gets the placeholder back in place of the
//! secret the handler echoed, and refusals (wrong group, unbound placeholder, no
//! credential) never reach the handler. The audit chain verifies and holds no secret.

use cloakroom_audit::RecordQuery;
use cloakroom_example_axum_embed::{Embedded, Settings};
use cloakroom_identity::{ApiKeyConfig, IdentityConfig};
use cloakroom_vault::{BindingSpec, Keys};
use sha2::{Digest, Sha256};

const AGENT_KEY: &str = "ck_test_embed_agent_0123456789";
const GUEST_KEY: &str = "ck_test_embed_guest_0123456789";
const SECRET: &str = "wk_live_7f3a9c2e51d04b8aa6e2";

fn api_key(subject: &str, group: &str, key: &str) -> ApiKeyConfig {
    ApiKeyConfig { subject: subject.into(), groups: vec![group.into()], sha256: hex::encode(Sha256::digest(key)) }
}

struct Running {
    app: Embedded,
    base: String,
    placeholder: String,
    other_placeholder: String,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        identity: IdentityConfig {
            api_keys: vec![api_key("agent", "agents", AGENT_KEY), api_key("guest", "guests", GUEST_KEY)],
            ..IdentityConfig::default()
        },
        policy: toml::from_str(
            r#"
            [[rules]]
            name = "agents may ask for the weather"
            effect = "allow"
            functions = ["weather"]
            groups = ["agents"]
            "#,
        )
        .unwrap(),
        audit: Default::default(),
    };
    let app = Embedded::build(dir.path(), &Keys::generate(), &settings).await.unwrap();
    let weather = BindingSpec {
        functions: vec!["weather".into()],
        locations: vec!["header:x-api-key".into()],
        groups: vec!["agents".into()],
        ..BindingSpec::default()
    };
    let placeholder = app.put_secret("weather_api_key", SECRET.into(), weather).await.unwrap().to_string();
    let elsewhere = BindingSpec {
        functions: vec!["payroll".into()],
        locations: vec!["header:x-api-key".into()],
        ..BindingSpec::default()
    };
    let other_placeholder =
        app.put_secret("payroll_key", "pk_live_0d9e8f7a6b5c4d3e".into(), elsewhere).await.unwrap().to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Running { app, base, placeholder, other_placeholder, _dir: dir, server }
}

async fn get(base: &str, key: Option<&str>, api_key: &str) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().get(format!("{base}/weather")).header("x-api-key", api_key);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret reached the caller: {text}");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_substituted_for_the_handler_and_masked_in_the_answer() {
    let r = start().await;
    let (status, body) = get(&r.base, Some(AGENT_KEY), &r.placeholder).await;
    assert_eq!(status, 200, "{body}");
    // The handler's provider accepted the key: it received the secret, not the placeholder.
    assert_eq!(body["forecast"], "sunny", "{body}");
    // It echoed the secret; the caller sees the placeholder instead.
    assert_eq!(body["debug"]["api_key_used"], r.placeholder.as_str(), "{body}");

    r.app.audit.flush().await;
    let records = r.app.audit.records(&RecordQuery::from_start(10)).await.unwrap();
    assert_eq!(records.len(), 1);
    let json = serde_json::to_string(&records[0]).unwrap();
    assert!(!json.contains(SECRET), "the audit record holds the secret");
    assert!(json.contains("weather_api_key"), "the secret used is named: {json}");
    assert!(r.app.audit.verify().await.unwrap().is_ok());
    r.server.abort();
    r.app.audit.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_never_reach_the_handler() {
    let r = start().await;
    // A caller outside every allow rule: denied by default.
    let (status, body) = get(&r.base, Some(GUEST_KEY), &r.placeholder).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");

    // An allowed caller with a placeholder bound to another function: nothing substituted.
    let (status, body) = get(&r.base, Some(AGENT_KEY), &r.other_placeholder).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "secret_not_bound", "{body}");

    // No credential at all.
    let (status, body) = get(&r.base, None, &r.placeholder).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");

    // No rule allows /payroll for anyone.
    let res = reqwest::Client::new().get(format!("{}/payroll", r.base)).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // Every refusal was recorded, with its decision, and the chain holds.
    r.app.audit.flush().await;
    let records = r.app.audit.records(&RecordQuery::from_start(10)).await.unwrap();
    assert_eq!(records.len(), 4);
    let denied = records
        .iter()
        .filter(|rec| rec.decision.as_ref().is_some_and(|d| d.effect == cloakroom_core::Effect::Deny))
        .count();
    assert!(denied >= 2, "{records:?}");
    assert!(r.app.audit.verify().await.unwrap().is_ok());
    r.server.abort();
    r.app.audit.close().await;
}
