//! Attacks on function-side redemption (`POST /v1/redeem`), against a real `cloakroomd`:
//! a secret is released only to the function handling that exact call, while it is in
//! flight, for a secret bound to that function, on proof of the per-call credential the
//! gateway sent with the call (`Cloakroom-Redeem-Token`).
//!
//! Before: the endpoint trusted any identity whose subject equalled the function's name,
//! for any call id it could name.

mod common;

use std::time::Duration;

use cloakroom_testkit::RecordingUpstream;
use common::{
    held::{holding_upstream, Held},
    *,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The function identity of the old scheme: an API key whose subject is `billing`.
const BILLING_KEY: &str = "ck_test_billing_function_key_01";
const DB_PASSWORD: &str = "db-pa55w0rd-for-billing-only";
const REPORT_KEY: &str = "rep0rt-key-for-reports-only";

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

struct Setup {
    gw: Cloakroomd,
    held: mpsc::UnboundedReceiver<Held>,
    plain: RecordingUpstream,
    db_password: String,
    report_key: String,
}

async fn setup() -> Setup {
    let (held_url, held) = holding_upstream().await;
    let plain = RecordingUpstream::echo().await;
    let rest = format!(
        r#"{identity}
[[identity.api_keys]]
subject = "billing"
groups = ["agents"]
sha256 = "{billing}"
{f1}{f2}{f3}{allow}"#,
        identity = identity_section(),
        billing = sha256_hex(BILLING_KEY),
        f1 = function("billing", "http", &held_url, "/fn/billing"),
        f2 = function("reports", "http", &held_url, "/fn/reports"),
        f3 = function("plain", "http", &plain.url(), "/fn/plain"),
        allow = allow("agents call", &["billing", "reports", "plain"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let db_password = gw
        .put_secret(
            "db_password",
            DB_PASSWORD,
            json!({"functions": ["billing"], "locations": ["header:x-db"], "groups": ["agents"]}),
        )
        .await;
    let report_key =
        gw.put_secret("report_key", REPORT_KEY, json!({"functions": ["reports"], "locations": ["header:x-key"]})).await;
    Setup { gw, held, plain, db_password, report_key }
}

/// Starts a call to `function` as the agent; the function holds it.
async fn start_call(s: &mut Setup, function: &str) -> (Held, tokio::task::JoinHandle<reqwest::Response>) {
    let req = client().post(s.gw.url(&format!("/fn/{function}/run"))).bearer_auth(AGENT_KEY).body("{}");
    let call = tokio::spawn(async move { req.send().await.unwrap() });
    let held = s.held.recv().await.expect("the call reached the function");
    (held, call)
}

async fn redeem(
    gw: &Cloakroomd,
    token: Option<&str>,
    bearer: Option<&str>,
    placeholder: &str,
    call_id: &str,
) -> (u16, Value) {
    let mut req =
        client().post(gw.admin_url("/v1/redeem")).json(&json!({"placeholder": placeholder, "call_id": call_id}));
    if let Some(t) = token {
        req = req.header("cloakroom-redeem-token", t);
    }
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_function_identity_without_the_calls_token_is_refused() {
    let mut s = setup().await;
    let (held, call) = start_call(&mut s, "billing").await;
    let call_id = held.call_id();

    // The old attack: an identity named like the function, a call id it learned.
    let (status, body) = redeem(&s.gw, None, Some(BILLING_KEY), &s.db_password, &call_id).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(!body.to_string().contains(DB_PASSWORD));
    // An admin is no better, nor a made-up token.
    let (status, _) = redeem(&s.gw, None, Some(ADMIN_KEY), &s.db_password, &call_id).await;
    assert_eq!(status, 401);
    let guess = "A".repeat(43);
    let (status, body) = redeem(&s.gw, Some(&guess), Some(BILLING_KEY), &s.db_password, &call_id).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains(DB_PASSWORD));

    // The function handling the call, with its token (and no identity at all): released.
    let (status, body) = redeem(&s.gw, Some(&held.token()), None, &s.db_password, &call_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], DB_PASSWORD);
    held.release.send(()).unwrap();
    assert_eq!(call.await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_token_of_another_call_is_refused() {
    let mut s = setup().await;
    let (a, call_a) = start_call(&mut s, "billing").await;
    let (b, call_b) = start_call(&mut s, "billing").await;
    let (r, call_r) = start_call(&mut s, "reports").await;
    assert_ne!(a.token(), b.token());
    // Each call's token only for that call, whichever function holds the other call.
    for (token, call_id) in [(a.token(), b.call_id()), (b.token(), a.call_id()), (r.token(), a.call_id())] {
        let (status, body) = redeem(&s.gw, Some(&token), None, &s.db_password, &call_id).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (status, _) = redeem(&s.gw, Some(&b.token()), None, &s.db_password, &b.call_id()).await;
    assert_eq!(status, 200);
    for h in [a, b, r] {
        h.release.send(()).unwrap();
    }
    for c in [call_a, call_b, call_r] {
        assert_eq!(c.await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn the_token_is_refused_once_the_call_has_ended() {
    let mut s = setup().await;
    let (held, call) = start_call(&mut s, "billing").await;
    let (token, call_id) = (held.token(), held.call_id());
    let (status, _) = redeem(&s.gw, Some(&token), None, &s.db_password, &call_id).await;
    assert_eq!(status, 200);
    held.release.send(()).unwrap();
    let res = call.await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), "done");
    // The gateway ends the registration as the body ends; poll until it has.
    let mut refused = false;
    for _ in 0..200 {
        let (status, body) = redeem(&s.gw, Some(&token), None, &s.db_password, &call_id).await;
        assert!(status == 200 || status == 403, "{status} {body}");
        if status == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the token outlived its call");
    // For good: a later call does not revive it.
    let (held2, call2) = start_call(&mut s, "billing").await;
    let (status, _) = redeem(&s.gw, Some(&token), None, &s.db_password, &held2.call_id()).await;
    assert_eq!(status, 403);
    held2.release.send(()).unwrap();
    call2.await.unwrap();
}

#[tokio::test]
async fn a_placeholder_not_bound_to_the_function_is_refused() {
    let mut s = setup().await;
    let (held, call) = start_call(&mut s, "billing").await;
    let (status, body) = redeem(&s.gw, Some(&held.token()), None, &s.report_key, &held.call_id()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "secret_not_bound");
    assert!(!body.to_string().contains(REPORT_KEY));
    let unknown = format!("cloak_{}", "a".repeat(26));
    let (status, _) = redeem(&s.gw, Some(&held.token()), None, &unknown, &held.call_id()).await;
    assert_eq!(status, 404);
    held.release.send(()).unwrap();
    call.await.unwrap();
}

#[tokio::test]
async fn caller_forged_cloakroom_headers_are_stripped() {
    let mut s = setup().await;
    let forged = "F".repeat(43);
    let forge = |req: reqwest::RequestBuilder| {
        req.bearer_auth(AGENT_KEY)
            .header("cloakroom-redeem-token", &forged)
            .header("Cloakroom-Subject", "admin")
            .header("cloakroom-call-id", "00000000-0000-0000-0000-000000000000")
            .header("cloakroom-anything", "x")
            .body("{}")
    };
    // A function that may redeem nothing receives no token, and none of the forgeries.
    let res = forge(client().post(s.gw.url("/fn/plain/run"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = &s.plain.requests()[0];
    assert_eq!(seen.header("cloakroom-redeem-token"), None);
    assert_eq!(seen.header("cloakroom-subject").as_deref(), Some("agent"));
    assert_ne!(seen.header("cloakroom-call-id").as_deref(), Some("00000000-0000-0000-0000-000000000000"));
    assert_eq!(seen.header("cloakroom-anything"), None);

    // A function that may redeem receives the gateway's token, not the caller's.
    let req = forge(client().post(s.gw.url("/fn/billing/run")));
    let call = tokio::spawn(async move { req.send().await.unwrap() });
    let held = s.held.recv().await.unwrap();
    assert_eq!(held.headers.get_all("cloakroom-redeem-token").iter().count(), 1);
    assert_ne!(held.token(), forged);
    let (status, _) = redeem(&s.gw, Some(&forged), None, &s.db_password, &held.call_id()).await;
    assert_eq!(status, 403);
    let token = held.token();
    held.release.send(()).unwrap();

    // The function reflected the token in its response headers: the caller never sees it.
    let res = call.await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-echo-token").is_none());
    assert!(res.headers().get("cloakroom-redeem-token").is_none());
    // Nor does any log or audit record.
    assert!(!s.gw.stderr().contains(&token));
    let audit = s.gw.admin_get("/v1/audit?limit=100").await;
    assert!(!audit.to_string().contains(&token));
}
