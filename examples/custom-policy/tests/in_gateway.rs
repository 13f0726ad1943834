//! `RefundHours` in a real gateway: started in-process with
//! `Gateway::builder(config).policy(..)`, served on 127.0.0.1 with the same server
//! function `cloakroomd` uses, in front of a real recording upstream.
//!
//! The policy's clock is fixed, so "out of hours" does not depend on when the test runs.

use std::{path::Path, sync::Arc, time::Duration};

use cloakroom_example_custom_policy::RefundHours;
use cloakroom_gateway::{server::serve, Config, Gateway};
use cloakroom_testkit::RecordingUpstream;
use cloakroom_vault::Keys;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::{macros::datetime, OffsetDateTime};

const SUPPORT_KEY: &str = "ck_test_support_key_0123456789";
const LEAD_KEY: &str = "ck_test_finance_lead_key_012345";

const SATURDAY_MORNING: OffsetDateTime = datetime!(2026-11-28 11:00 UTC);
const TUESDAY_NOON: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// An `http` function `refunds` the support group may call; `rule` names the allow rule
/// (so that a reload can change it).
fn config_text(data_dir: &Path, upstream: &str, rule: &str) -> String {
    format!(
        r#"
[server]
data_dir = {data_dir:?}

[identity]
admin_groups = ["admins"]

[[identity.api_keys]]
subject = "sam"
groups = ["support"]
sha256 = "{support}"

[[identity.api_keys]]
subject = "fran"
groups = ["finance-leads"]
sha256 = "{lead}"

[[functions]]
name = "refunds"
protocol = "http"
upstream = "{upstream}"
route = "/fn/refunds"

[[policy.rules]]
name = "{rule}"
effect = "allow"
functions = ["refunds"]
groups = ["support"]
"#,
        data_dir = data_dir.display().to_string(),
        support = sha256_hex(SUPPORT_KEY),
        lead = sha256_hex(LEAD_KEY),
    )
}

struct Running {
    gateway: Gateway,
    url: String,
    admin_url: String,
    config_path: std::path::PathBuf,
    upstream: RecordingUpstream,
    _dir: tempfile::TempDir,
}

impl Running {
    /// The gateway with `RefundHours` (above 500, finance leads approve) judging calls as
    /// if it were `now`.
    async fn start(now: OffsetDateTime) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = RecordingUpstream::echo().await;
        let config_path = dir.path().join("cloakroom.toml");
        let text = config_text(&dir.path().join("data"), &upstream.url(), "support may refund");
        std::fs::write(&config_path, text).unwrap();
        let refund_hours = RefundHours::new(500, vec!["finance-leads".into()])
            .with_functions(["refunds"])
            .unwrap()
            .with_clock(move || now);
        let gateway = Gateway::builder(Config::load(&config_path).unwrap())
            .config_path(&config_path)
            .keys(Keys::generate())
            .policy(Arc::new(refund_hours))
            .start()
            .await
            .unwrap();
        let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", gw_listener.local_addr().unwrap());
        let admin_url = format!("http://{}", admin_listener.local_addr().unwrap());
        let g = gateway.clone();
        tokio::spawn(serve(gw_listener, move |peer| g.service(Some(peer)), std::future::pending(), Duration::ZERO));
        let g = gateway.clone();
        tokio::spawn(serve(
            admin_listener,
            move |peer| g.admin_service(Some(peer)),
            std::future::pending(),
            Duration::ZERO,
        ));
        Self { gateway, url, admin_url, config_path, upstream, _dir: dir }
    }

    /// Support asks for a refund of `amount`, with an approval id when given.
    async fn refund(&self, amount: i64, approval: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/fn/refunds/orders/42", self.url))
            .bearer_auth(SUPPORT_KEY)
            .json(&json!({ "amount": amount }));
        if let Some(id) = approval {
            req = req.header("cloakroom-approval", id);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

fn assert_pending(status: u16, body: &Value) -> String {
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending_approval");
    let id = body["approval_id"].as_str().unwrap();
    assert!(!id.is_empty());
    id.to_owned()
}

#[tokio::test]
async fn a_small_refund_is_allowed_and_reaches_the_upstream() {
    let gw = Running::start(SATURDAY_MORNING).await;
    let (status, body) = gw.refund(40, None).await;
    assert_eq!(status, 200, "{body}");
    let reached = gw.upstream.requests();
    assert_eq!(reached.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(&reached[0].body_text()).unwrap(), json!({ "amount": 40 }));
}

#[tokio::test]
async fn a_large_refund_out_of_hours_is_held_for_approval_and_does_not_reach_the_upstream() {
    let gw = Running::start(SATURDAY_MORNING).await;
    let (status, body) = gw.refund(900, None).await;
    let id = assert_pending(status, &body);
    assert!(gw.upstream.requests().is_empty(), "a held refund reached the upstream");
    let approval = gw.gateway.approvals().get(&id).await.unwrap();
    assert_eq!(approval.approvers, vec!["finance-leads".to_string()]);
}

#[tokio::test]
async fn a_large_refund_in_business_hours_is_left_to_the_rules() {
    let gw = Running::start(TUESDAY_NOON).await;
    let (status, body) = gw.refund(900, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_held_refund_goes_through_once_a_finance_lead_approves() {
    let gw = Running::start(SATURDAY_MORNING).await;
    let (status, body) = gw.refund(900, None).await;
    let id = assert_pending(status, &body);
    let res = reqwest::Client::new()
        .post(format!("{}/v1/approvals/{id}/approve", gw.admin_url))
        .bearer_auth(LEAD_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, body) = gw.refund(900, Some(&id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn the_custom_policy_still_applies_after_a_reload() {
    let gw = Running::start(SATURDAY_MORNING).await;
    let dir = gw.config_path.parent().unwrap();
    std::fs::write(&gw.config_path, config_text(&dir.join("data"), &gw.upstream.url(), "support refunds")).unwrap();
    gw.gateway.reload().await.unwrap();
    // The reloaded rules are in force (the allow rule has its new name)...
    assert_eq!(gw.gateway.config().policy.rules[0].name, "support refunds");
    let (status, body) = gw.refund(40, None).await;
    assert_eq!(status, 200, "{body}");
    // ...and RefundHours still holds large refunds.
    let (status, body) = gw.refund(900, None).await;
    assert_pending(status, &body);
    assert_eq!(gw.upstream.requests().len(), 1, "only the small refund reached the upstream");
}
