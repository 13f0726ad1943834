//! Attacks on the credential checks, against a real `cloakroomd`: a Biscuit token's own
//! checks (TTL, attenuation blocks) hold on every admin route and on the data path, with
//! facts that describe the operation (docs/identity.md).
//!
//! Before: the admin listener read only the token's `user`/`group` facts, so a token
//! attenuated with `--ttl 1s` still listed secrets after it expired, and one carrying a
//! check that can never hold was accepted everywhere.

mod common;

use std::time::{Duration, SystemTime};

use biscuit_auth::{builder_ext::BuilderExt, Biscuit, BlockBuilder, KeyPair};
use cloakroom_testkit::RecordingUpstream;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A gateway that accepts Biscuits signed by `root` (and the usual API keys), with two
/// functions whose calls need a `finance` approval: `refund` and `payments`.
async fn gateway(root: &KeyPair) -> (Cloakroomd, RecordingUpstream) {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        r#"{identity}
[identity.biscuit]
root_public_key = "{key}"

# A Datalog evaluation's max_time is wall-clock time: a debug build on a busy 2-core
# machine can be descheduled for longer than the 20 ms default. Not what this tests.
[policy.datalog_limits]
max_time = "5s"
{refund}{payments}
[[policy.rules]]
name = "calls need finance"
effect = "approve"
functions = ["refund", "payments"]
groups = ["agents"]
approvers = ["finance"]

[[policy.rules]]
name = "agents may call reports"
effect = "allow"
functions = ["reports"]
groups = ["agents"]
{reports}
"#,
        identity = identity_section(),
        key = root.public(),
        refund = function("refund", "http", &up.url(), "/fn/refund"),
        payments = function("payments", "http", &up.url(), "/fn/payments"),
        reports = function("reports", "http", &up.url(), "/fn/reports"),
    );
    (Cloakroomd::start("", &rest).await, up)
}

/// A token minted by the root key for `user` in `groups`.
fn mint(root: &KeyPair, user: &str, groups: &[&str]) -> Biscuit {
    let mut code = format!("user({user:?});");
    for g in groups {
        code.push_str(&format!("group({g:?});"));
    }
    Biscuit::builder().code(code.as_str()).unwrap().build(root).unwrap()
}

/// `token` narrowed by a block of Datalog, as `cloakroom biscuit attenuate --check` does.
fn attenuate(token: &Biscuit, code: &str) -> String {
    token.append(BlockBuilder::new().code(code).unwrap()).unwrap().to_base64().unwrap()
}

/// `token` with a TTL that has passed, as `cloakroom biscuit attenuate --ttl 1s` a while ago.
fn expired(token: &Biscuit) -> String {
    let past = SystemTime::now() - Duration::from_secs(3600);
    token.append(BlockBuilder::new().check_expiration_date(past)).unwrap().to_base64().unwrap()
}

/// A call to `function` that needs approval: returns the pending approval's id.
async fn pending_approval(gw: &Cloakroomd, function: &str) -> String {
    let res = client()
        .post(gw.url(&format!("/fn/{function}/go")))
        .bearer_auth(AGENT_KEY)
        .json(&json!({"amount": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{function}");
    let v: Value = res.json().await.unwrap();
    v["approval_id"].as_str().unwrap().to_owned()
}

/// Every authenticated admin route: (method, path, body).
fn admin_routes(approval: &str, call_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/secrets".into(), None),
        (
            Method::POST,
            "/v1/secrets".into(),
            Some(
                json!({"name": "tok_test", "value": "v4lue-tok-test", "binding": {"functions": ["reports"], "locations": ["body"]}}),
            ),
        ),
        (Method::POST, "/v1/secrets".into(), None),
        (Method::DELETE, "/v1/secrets/tok_test".into(), None),
        (Method::GET, "/v1/approvals".into(), None),
        (Method::GET, "/v1/approvals?state=pending".into(), None),
        (Method::GET, format!("/v1/approvals/{approval}"), None),
        (Method::GET, "/v1/approvals/no-such-approval".into(), None),
        (Method::POST, format!("/v1/approvals/{approval}/deny"), Some(json!({"reason": "no"}))),
        (Method::POST, format!("/v1/approvals/{approval}/approve"), None),
        (Method::GET, "/v1/audit".into(), None),
        (Method::GET, "/v1/audit?limit=1".into(), None),
        (Method::GET, format!("/v1/audit/{call_id}"), None),
        (Method::GET, "/v1/audit/verify".into(), None),
        (Method::POST, "/v1/reload".into(), None),
    ]
}

async fn send(gw: &Cloakroomd, token: &str, (method, path, body): &(Method, String, Option<Value>)) -> (u16, Value) {
    let mut req = client().request(method.clone(), gw.admin_url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A token refused by its own checks gets 403 `forbidden` on every admin route and
/// changes nothing; the same token without the narrowing block is accepted.
async fn refused_everywhere(gw: &Cloakroomd, narrowed: &str, why: &str) {
    let approval = pending_approval(gw, "refund").await;
    let call_id = gw.admin_get("/v1/audit?limit=1").await["records"][0]["id"].as_str().unwrap().to_owned();
    for route in admin_routes(&approval, &call_id) {
        let (status, body) = send(gw, narrowed, &route).await;
        assert_eq!(status, 403, "{why}: {} {} answered {status} {body}", route.0, route.1);
        assert_eq!(body["error"]["code"], "forbidden", "{why}: {} {}", route.0, route.1);
    }
    // Nothing was done: the approval is still pending, the secret was never stored.
    let a = gw.admin_get(&format!("/v1/approvals/{approval}")).await;
    assert_eq!(a["state"], "pending", "{why}");
    let secrets = gw.admin_get("/v1/secrets").await;
    assert!(!secrets.to_string().contains("tok_test"), "{why}: {secrets}");
}

#[tokio::test]
async fn an_expired_token_is_refused_on_every_admin_route() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let lead = mint(&root, "lead", &["admins", "finance"]);
    refused_everywhere(&gw, &expired(&lead), "expired").await;

    // The same token before expiry works on each route (none answers 401/403).
    let fresh = lead
        .append(BlockBuilder::new().check_expiration_date(SystemTime::now() + Duration::from_secs(3600)))
        .unwrap()
        .to_base64()
        .unwrap();
    let approval = pending_approval(&gw, "refund").await;
    let call_id = gw.admin_get("/v1/audit?limit=1").await["records"][0]["id"].as_str().unwrap().to_owned();
    for route in admin_routes(&approval, &call_id) {
        let (status, body) = send(&gw, &fresh, &route).await;
        assert!(status != 401 && status != 403, "{} {} answered {status} {body}", route.0, route.1);
    }
}

#[tokio::test]
async fn a_token_with_a_check_that_never_holds_is_refused_on_every_admin_route() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let lead = mint(&root, "lead", &["admins", "finance"]);
    refused_everywhere(&gw, &attenuate(&lead, r#"check if false;"#), "check if false").await;
    refused_everywhere(&gw, &attenuate(&lead, r#"check if operation("no-such-operation");"#), "unknown operation")
        .await;
    // A check in the authority block itself holds everywhere too.
    let narrowed = Biscuit::builder()
        .code(r#"user("lead"); group("admins"); group("finance"); check if operation("reload");"#)
        .unwrap()
        .build(&root)
        .unwrap();
    let (status, _) = send(&gw, &narrowed.to_base64().unwrap(), &(Method::GET, "/v1/secrets".into(), None)).await;
    assert_eq!(status, 403);
    let (status, _) = send(&gw, &narrowed.to_base64().unwrap(), &(Method::POST, "/v1/reload".into(), None)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_later_block_cannot_add_the_facts_an_earlier_check_wants() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let lead = mint(&root, "lead", &["admins", "finance"]);
    let narrowed = lead.append(BlockBuilder::new().code(r#"check if operation("audit:verify");"#).unwrap()).unwrap();
    let forged = attenuate(&narrowed, r#"operation("audit:verify"); operation("secrets:list"); resource("x");"#);
    let (status, _) = send(&gw, &forged, &(Method::GET, "/v1/secrets".into(), None)).await;
    assert_eq!(status, 403);
    let (status, _) = send(&gw, &forged, &(Method::GET, "/v1/audit/verify".into(), None)).await;
    assert_eq!(status, 200);
}

/// The token an operator hands out as "approve refunds for one hour" (docs/identity.md):
/// `cloakroom biscuit attenuate --ttl 1h --check 'check if operation("approvals:approve"),
/// function($f), $f.starts_with("refund")'`.
#[tokio::test]
async fn an_approve_refunds_for_one_hour_token_approves_refunds_and_nothing_else() {
    let root = KeyPair::new();
    let (gw, up) = gateway(&root).await;
    let lead = mint(&root, "lead", &["admins", "finance"]);
    let one_hour = SystemTime::now() + Duration::from_secs(3600);
    let refunds_only = lead
        .append(
            BlockBuilder::new()
                .code(r#"check if operation("approvals:approve"), function($f), $f.starts_with("refund");"#)
                .unwrap()
                .check_expiration_date(one_hour),
        )
        .unwrap()
        .to_base64()
        .unwrap();
    let refund = pending_approval(&gw, "refund").await;
    let payment = pending_approval(&gw, "payments").await;
    let c = client();
    let approve = |id: &str| c.post(gw.admin_url(&format!("/v1/approvals/{id}/approve"))).bearer_auth(&refunds_only);

    // Another function's approval: refused, and still pending.
    let res = approve(&payment).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(gw.admin_get(&format!("/v1/approvals/{payment}")).await["state"], "pending");
    // Every other operation, though the unattenuated token is an admin's.
    for (method, path) in [
        (Method::GET, "/v1/secrets".to_owned()),
        (Method::GET, "/v1/approvals".to_owned()),
        (Method::GET, format!("/v1/approvals/{refund}")),
        (Method::POST, format!("/v1/approvals/{refund}/deny")),
        (Method::GET, "/v1/audit".to_owned()),
        (Method::POST, "/v1/reload".to_owned()),
    ] {
        let (status, _) = send(&gw, &refunds_only, &(method.clone(), path.clone(), None)).await;
        assert_eq!(status, 403, "{method} {path}");
    }
    // Nor a call on the data path.
    let res = c.post(gw.url("/fn/reports/x")).bearer_auth(&refunds_only).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 403);

    // The refund: approved, and the call goes ahead.
    let res = approve(&refund).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let a: Value = res.json().await.unwrap();
    assert_eq!(a["state"], "approved");
    let res = c
        .post(gw.url("/fn/refund/go"))
        .bearer_auth(AGENT_KEY)
        .header("cloakroom-approval", &refund)
        .json(&json!({"amount": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.requests().len(), 1);

    // The same check written on `resource` works the same way.
    let by_resource =
        attenuate(&lead, r#"check if operation("approvals:approve"), resource($r), $r.starts_with("refund");"#);
    let refund = pending_approval(&gw, "refund").await;
    let (status, _) = send(&gw, &by_resource, &(Method::POST, format!("/v1/approvals/{payment}/approve"), None)).await;
    assert_eq!(status, 403);
    let (status, _) = send(&gw, &by_resource, &(Method::POST, format!("/v1/approvals/{refund}/approve"), None)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_token_checks_hold_on_the_data_path() {
    let root = KeyPair::new();
    let (gw, up) = gateway(&root).await;
    let agent = mint(&root, "agent-7", &["agents"]);
    let c = client();
    let call = |token: String| c.post(gw.url("/fn/reports/x")).bearer_auth(token).body("{}").send();

    assert_eq!(call(agent.to_base64().unwrap()).await.unwrap().status(), 200);
    let forwarded = up.requests().len();
    // Expired, never-holding, narrowed to an admin operation, narrowed to another function.
    for narrowed in [
        expired(&agent),
        attenuate(&agent, "check if false;"),
        attenuate(&agent, r#"check if operation("secrets:list");"#),
        attenuate(&agent, r#"check if operation("call"), resource("refund");"#),
        attenuate(&agent, r#"check if function("payments");"#),
    ] {
        let res = call(narrowed).await.unwrap();
        assert_eq!(res.status(), 403);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    assert_eq!(up.requests().len(), forwarded, "nothing refused reached the function");
    // Narrowed to calls of reports: calls work, the admin API does not.
    let calls_only = attenuate(&agent, r#"check if operation("call"), resource("reports");"#);
    assert_eq!(call(calls_only.clone()).await.unwrap().status(), 200);
    let admin_calls_only = attenuate(&mint(&root, "lead", &["admins"]), r#"check if operation("call");"#);
    let (status, _) = send(&gw, &admin_calls_only, &(Method::GET, "/v1/secrets".into(), None)).await;
    assert_eq!(status, 403);
    // The refusal is in the audit record.
    let records = gw.admin_get("/v1/audit?limit=100").await;
    let denied = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"]["effect"] == "deny" && r["identity"]["subject"] == "agent-7")
        .count();
    assert!(denied >= 5, "{records}");
}
