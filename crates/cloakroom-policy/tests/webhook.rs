//! Webhook notifications of new approval requests, against a real HTTP server.

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cloakroom_core::Decision;
use cloakroom_policy::{Approvals, ApprovalsConfig, SledApprovalStore, WebhookNotifier};
use cloakroom_testkit::{RecordedRequest, RecordingUpstream, Reply};
use common::*;
use serde_json::json;

/// Waits (bounded) until `upstream` has seen `n` requests.
async fn received(upstream: &RecordingUpstream, n: usize) -> Vec<RecordedRequest> {
    for _ in 0..200 {
        let got = upstream.requests();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("webhook received {} of {n} requests", upstream.requests().len());
}

fn approvals(dir: &tempfile::TempDir, urls: Vec<String>) -> Approvals {
    let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
    let config = ApprovalsConfig { webhooks: urls.clone(), ..Default::default() };
    Approvals::new(store, config).with_notifier(WebhookNotifier::new(urls).with_backoff(Duration::from_millis(10)))
}

#[tokio::test]
async fn a_new_approval_posts_a_slack_compatible_summary_without_arguments() {
    let hook = RecordingUpstream::start(|_| Reply::json(json!({"ok": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let a = approvals(&dir, vec![format!("{}/services/T0/B0/x", hook.url())]);
    let c = call("payments/refund", json!({"card": "4111111111111111", "amount": 900}));
    let decision = Decision::approve("refunds", "approval required", vec!["finance".into()]);
    let alice = who("alice", &["ops"]);
    let req = a.request(&alice, &scope_for(&alice, &c), &c.arguments, &decision, None).await.unwrap();

    let got = received(&hook, 1).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].uri, "/services/T0/B0/x");
    assert_eq!(got[0].header("content-type").as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "only `text`: {body}");
    for expected in ["alice", "payments/refund", "refunds", "finance", req.id.as_str()] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    // The approval id is random and may hold the digits "900" itself: look past it.
    let rest = text.replace(req.id.as_str(), "");
    assert!(!rest.contains("4111111111111111") && !rest.contains("900"), "arguments leaked: {text}");
    assert!(!text.contains("http"), "link-free: {text}");
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let hook = RecordingUpstream::start(move |_| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let mut r = Reply::json(json!({"ok": n >= 2}));
        r.status = if n < 2 { 503 } else { 200 };
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let a = approvals(&dir, vec![hook.url()]);
    let decision = Decision::approve("r", "approval required", vec!["finance".into()]);
    a.request(
        &who("alice", &[]),
        &scope_for(&who("alice", &[]), &call("f", json!(null))),
        &json!(null),
        &decision,
        None,
    )
    .await
    .unwrap();
    let got = received(&hook, 3).await;
    assert_eq!(got[0].body, got[2].body, "the same message is retried");
    // Successful on the third attempt: no fourth.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.requests().len(), 3);
}

#[tokio::test]
async fn an_unreachable_webhook_does_not_delay_or_fail_the_request() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on, then a working hook: the second still gets its message.
    let dead = format!("http://127.0.0.1:{}/hook", cloakroom_testkit::free_port());
    let hook = RecordingUpstream::start(|_| Reply::json(json!({}))).await;
    let a = approvals(&dir, vec![dead, hook.url()]);
    let decision = Decision::approve("r", "approval required", vec!["finance".into()]);
    let req = a
        .request(
            &who("alice", &[]),
            &scope_for(&who("alice", &[]), &call("f", json!(null))),
            &json!(null),
            &decision,
            None,
        )
        .await;
    assert!(req.is_ok());
    received(&hook, 1).await;
}

#[test]
fn webhook_urls_never_appear_in_debug_output() {
    let url = "https://hooks.slack.com/services/T000/B000/very-secret-token".to_string();
    let config = ApprovalsConfig { webhooks: vec![url.clone()], ..Default::default() };
    assert!(!format!("{config:?}").contains("very-secret-token"));
    assert!(!format!("{:?}", WebhookNotifier::new(vec![url])).contains("very-secret-token"));
}

#[tokio::test]
async fn apply_config_changes_webhooks_and_ttl_for_every_clone_and_keeps_the_store() {
    let old_hook = RecordingUpstream::start(|_| Reply::json(json!({"ok": true}))).await;
    let new_hook = RecordingUpstream::start(|_| Reply::json(json!({"ok": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
    let config = ApprovalsConfig { webhooks: vec![old_hook.url()], ..Default::default() };
    let a = Approvals::new(store, config);
    let serving = a.clone(); // what the policy layer holds
    let decision = Decision::approve("r", "approval required", vec!["finance".into()]);
    let first = serving
        .request(&who("alice", &[]), &scope_for(&who("alice", &[]), &call("f", json!(1))), &json!(1), &decision, None)
        .await
        .unwrap();
    assert_eq!(first.expires_at - first.created_at, time::Duration::minutes(15));
    received(&old_hook, 1).await;

    a.apply_config(&ApprovalsConfig {
        webhooks: vec![new_hook.url()],
        ttl: Duration::from_secs(120),
        wait: Duration::from_secs(3),
        store: cloakroom_policy::ApprovalStoreKind::Postgres,
        postgres_url_env: "ELSEWHERE".into(),
        slack: None,
    });
    let config = serving.config();
    assert_eq!((config.ttl, config.wait), (Duration::from_secs(120), Duration::from_secs(3)));
    assert_eq!(config.store, cloakroom_policy::ApprovalStoreKind::Embedded, "the store needs a restart");
    assert_eq!(config.postgres_url_env, "CLOAKROOM_POSTGRES_URL");

    let second = serving
        .request(&who("bob", &[]), &scope_for(&who("bob", &[]), &call("f", json!(2))), &json!(2), &decision, None)
        .await
        .unwrap();
    assert_eq!(second.expires_at - second.created_at, time::Duration::minutes(2));
    let got = received(&new_hook, 1).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains(&second.id));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(old_hook.requests().len(), 1, "the removed webhook hears nothing more");
    // The approval requested before keeps its expiry.
    assert_eq!(serving.get(&first.id).await.unwrap().expires_at, first.expires_at);
}
