//! Attacks on approvals against a real `cloakroomd`, each written as the attack first:
//! an approval granted for one call is presented with every field of the call changed
//! (method, path, query, content type, body, each header placeholder, the caller from
//! another issuer) and must be refused with `approval_invalid` with nothing forwarded;
//! requirements compose (rule approvers and secret approvers), each met by a distinct
//! person who is not the requester; approvers see the whole call.

mod common;

use biscuit_auth::{Biscuit, KeyPair};
use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::{json, Value};

const FIN_KEY: &str = "ck_test_finance_key_0123456789";
const LEAD2_KEY: &str = "ck_test_second_lead_key_012345";
const BOTH_KEY: &str = "ck_test_lead_and_finance_key_01";
const AGENTLEAD_KEY: &str = "ck_test_agent_who_leads_key_012";

/// The shared identities plus a finance member, a second lead, someone in both groups
/// and an agent who is also a lead; a Biscuit root key (the same subject `agent` from
/// another issuer).
fn identities(root: &KeyPair) -> String {
    let mut s = identity_section();
    for (subject, groups, key) in [
        ("fin", r#"["finance"]"#, FIN_KEY),
        ("lead2", r#"["leads"]"#, LEAD2_KEY),
        ("both", r#"["leads", "finance"]"#, BOTH_KEY),
        ("agentlead", r#"["agents", "leads"]"#, AGENTLEAD_KEY),
    ] {
        s.push_str(&format!(
            "\n[[identity.api_keys]]\nsubject = \"{subject}\"\ngroups = {groups}\nsha256 = \"{}\"\n",
            sha256_hex(key)
        ));
    }
    s.push_str(&format!("\n[identity.biscuit]\nroot_public_key = \"{}\"\n", root.public()));
    // A Datalog evaluation's max_time is wall-clock time: a debug build on a busy 2-core
    // machine can be descheduled for longer than the 20 ms default. Not what this tests.
    s.push_str("\n[policy.datalog_limits]\nmax_time = \"5s\"\n");
    s
}

struct Setup {
    gw: Cloakroomd,
    up: RecordingUpstream,
    root: KeyPair,
}

/// `refund` needs a lead's approval for agents; `webhook_text` receives the webhook.
async fn setup(extra_rules: &str, approvals: &str) -> Setup {
    let root = KeyPair::new();
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}\n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"refund\"]\n\
         groups = [\"agents\"]\napprovers = [\"leads\"]\n{extra_rules}\n{approvals}",
        identities(&root),
        function("refund", "http", &up.url(), "/fn/refund"),
    );
    let gw = Cloakroomd::start("", &rest).await;
    Setup { gw, up, root }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A call as a test describes it.
#[derive(Clone)]
struct Call {
    method: reqwest::Method,
    path: String,
    key: String,
    headers: Vec<(String, String)>,
    content_type: Option<String>,
    body: String,
}

impl Call {
    fn get(path: &str) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.into(),
            key: AGENT_KEY.into(),
            headers: vec![],
            content_type: None,
            body: String::new(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    async fn send(&self, s: &Setup, approval: Option<&str>) -> (u16, Value) {
        let mut req = client().request(self.method.clone(), s.gw.url(&self.path)).bearer_auth(&self.key);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(ct) = &self.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(id) = approval {
            req = req.header("cloakroom-approval", id);
        }
        let res = req.body(self.body.clone()).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Sends it without an approval: 202 and the approval id.
    async fn ask(&self, s: &Setup) -> String {
        let (status, body) = self.send(s, None).await;
        assert_eq!(status, 202, "{body}");
        body["approval_id"].as_str().unwrap().to_owned()
    }
}

async fn decide(s: &Setup, id: &str, key: &str, verb: &str) -> (u16, Value) {
    let res = client()
        .post(s.gw.admin_url(&format!("/v1/approvals/{id}/{verb}")))
        .bearer_auth(key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn approval(s: &Setup, id: &str) -> Value {
    s.gw.admin_get(&format!("/v1/approvals/{id}")).await
}

fn assert_invalid(what: &str, got: (u16, Value)) {
    assert_eq!(got.0, 403, "{what}: {}", got.1);
    assert_eq!(got.1["error"]["code"], "approval_invalid", "{what}: {}", got.1);
}

#[tokio::test]
async fn an_approval_for_one_call_is_refused_for_every_other_call() {
    let s = setup("", "").await;
    let mut approved = Call::get("/fn/refund/balance?account=1");
    approved.content_type = Some("application/json".into());
    let id = approved.ask(&s).await;
    assert_eq!(decide(&s, &id, APPROVER_KEY, "approve").await.0, 200);

    let biscuit_agent = Biscuit::builder()
        .code(r#"user("agent"); group("agents");"#)
        .unwrap()
        .build(&s.root)
        .unwrap()
        .to_base64()
        .unwrap();
    let variants: Vec<(&str, Call)> = vec![
        ("method", Call { method: reqwest::Method::DELETE, ..approved.clone() }),
        ("another path", Call { path: "/fn/refund/accounts/1?account=1".into(), ..approved.clone() }),
        ("a longer path", Call { path: "/fn/refund/balance/x?account=1".into(), ..approved.clone() }),
        ("query value", Call { path: "/fn/refund/balance?account=2".into(), ..approved.clone() }),
        ("extra query parameter", Call { path: "/fn/refund/balance?account=1&all=1".into(), ..approved.clone() }),
        ("no query", Call { path: "/fn/refund/balance".into(), ..approved.clone() }),
        ("content type", Call { content_type: Some("text/plain".into()), ..approved.clone() }),
        ("a second content type", approved.clone().header("content-type", "text/plain")),
        ("no content type", Call { content_type: None, ..approved.clone() }),
        ("body", Call { body: r#"{"all": true}"#.into(), ..approved.clone() }),
        ("method with a body", Call { method: reqwest::Method::POST, ..approved.clone() }),
        ("another caller", Call { key: OUTSIDER_KEY.into(), ..approved.clone() }),
        ("the same subject from another issuer", Call { key: biscuit_agent, ..approved.clone() }),
    ];
    for (what, call) in &variants {
        let got = call.send(&s, Some(&id)).await;
        if what == &"another caller" {
            // The outsider is not in `agents`: the rule does not even match, so no
            // approval is asked for and default deny answers first.
            assert_eq!(got.0, 403, "{what}: {}", got.1);
        } else {
            assert_invalid(what, got);
        }
    }
    assert!(s.up.requests().is_empty(), "nothing was forwarded");
    // The refusals did not use it up: the exact call goes ahead once.
    assert_eq!(approved.send(&s, Some(&id)).await.0, 200);
    assert_eq!(s.up.requests().len(), 1);
    assert_eq!(s.up.requests()[0].uri, "/balance?account=1");
    assert_invalid("used twice", approved.send(&s, Some(&id)).await);
    assert_eq!(s.up.requests().len(), 1);
}

#[tokio::test]
async fn an_approval_binds_every_header_placeholder_and_its_location() {
    let s = setup("", "").await;
    let bind = json!({"functions": ["refund"], "locations": ["header:x-api-key", "header:x-other"]});
    let plain = s.gw.put_secret("plain_key", "sk_plain_value_0001", bind.clone()).await;
    let mut guarded_bind = bind.clone();
    guarded_bind["approvers"] = json!(["finance"]);
    let guarded = s.gw.put_secret("guarded_key", "sk_guarded_value_0002", guarded_bind).await;

    let approved = Call::get("/fn/refund/balance").header("x-api-key", &plain);
    let id = approved.ask(&s).await;
    assert_eq!(decide(&s, &id, APPROVER_KEY, "approve").await.0, 200);

    let variants: Vec<(&str, Call)> = vec![
        ("another placeholder", Call::get("/fn/refund/balance").header("x-api-key", &guarded)),
        ("the placeholder in another header", Call::get("/fn/refund/balance").header("x-other", &plain)),
        ("a second placeholder", approved.clone().header("x-other", &guarded)),
        ("the same placeholder twice", approved.clone().header("x-other", &plain)),
        ("no placeholder", Call::get("/fn/refund/balance")),
    ];
    for (what, call) in &variants {
        assert_invalid(what, call.send(&s, Some(&id)).await);
    }
    assert!(s.up.requests().is_empty());
    assert_eq!(approved.send(&s, Some(&id)).await.0, 200);
    let got = &s.up.requests()[0];
    assert_eq!(got.header("x-api-key").as_deref(), Some("sk_plain_value_0001"));
}

#[tokio::test]
async fn a_secrets_approvers_compose_with_the_rules_and_need_a_distinct_person_each() {
    let s = setup("", "").await;
    let bind = json!({"functions": ["refund"], "locations": ["header:x-api-key"], "approvers": ["finance"]});
    let guarded = s.gw.put_secret("guarded_key", "sk_guarded_value_0003", bind).await;
    let call = Call::get("/fn/refund/balance").header("x-api-key", &guarded);
    let id = call.ask(&s).await;

    let a = approval(&s, &id).await;
    let groups: Vec<&str> =
        a["requirements"].as_array().unwrap().iter().map(|r| r["group"].as_str().unwrap()).collect();
    assert_eq!(groups, ["leads", "finance"], "{a}");
    assert!(a["requirements"].as_array().unwrap().iter().all(|r| r["met"] == false));

    // The rule's approver alone: still pending, and the secret is not substituted.
    let (status, after_lead) = decide(&s, &id, APPROVER_KEY, "approve").await;
    assert_eq!(status, 200);
    assert_eq!(after_lead["state"], "pending", "{after_lead}");
    let got = call.send(&s, Some(&id)).await;
    assert_invalid("only the rule's approver approved", got);
    assert!(s.up.requests().is_empty());

    // One person in both groups meets one requirement only; approving twice is refused.
    let (status, after_both) = decide(&s, &id, BOTH_KEY, "approve").await;
    assert_eq!(status, 200, "{after_both}");
    assert_eq!(after_both["state"], "approved", "both takes finance: {after_both}");
    assert_eq!(call.send(&s, Some(&id)).await.0, 200);
    assert_eq!(s.up.requests()[0].header("x-api-key").as_deref(), Some("sk_guarded_value_0003"));
    let a = approval(&s, &id).await;
    let met: Vec<&str> = a["requirements"].as_array().unwrap().iter().map(|r| r["met_by"].as_str().unwrap()).collect();
    assert_eq!(met, ["approver", "both"]);
}

#[tokio::test]
async fn one_person_cannot_meet_two_requirements_and_the_requester_none() {
    let s = setup("", "").await;
    let bind = json!({"functions": ["refund"], "locations": ["header:x-api-key"], "approvers": ["finance"]});
    let guarded = s.gw.put_secret("guarded_key", "sk_guarded_value_0004", bind).await;
    let mut call = Call::get("/fn/refund/balance").header("x-api-key", &guarded);
    call.key = AGENTLEAD_KEY.into();
    let id = call.ask(&s).await;

    // The requester is a lead: separation of duties.
    assert_eq!(decide(&s, &id, AGENTLEAD_KEY, "approve").await.0, 403);
    let (status, a) = decide(&s, &id, BOTH_KEY, "approve").await;
    assert_eq!((status, a["state"].as_str()), (200, Some("pending")), "{a}");
    let (status, again) = decide(&s, &id, BOTH_KEY, "approve").await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("conflict")), "{again}");
    assert_invalid("one requirement unmet", call.send(&s, Some(&id)).await);
    // A second lead completes it (both moves to finance or stays: either way, two people).
    let (status, a) = decide(&s, &id, LEAD2_KEY, "approve").await;
    assert_eq!((status, a["state"].as_str()), (200, Some("approved")), "{a}");
    assert_eq!(call.send(&s, Some(&id)).await.0, 200);
}

#[tokio::test]
async fn a_denial_by_any_required_approver_is_final() {
    let s = setup("", "").await;
    let call = Call::get("/fn/refund/balance");
    let id = call.ask(&s).await;
    assert_eq!(decide(&s, &id, FIN_KEY, "deny").await.0, 403, "finance is not required here");
    assert_eq!(decide(&s, &id, LEAD2_KEY, "deny").await.0, 200);
    assert_eq!(decide(&s, &id, APPROVER_KEY, "approve").await.0, 409);
    assert_invalid("denied", call.send(&s, Some(&id)).await);
    assert!(s.up.requests().is_empty());
}

#[tokio::test]
async fn an_expired_approval_is_refused() {
    // Long enough for the ask and the approval on a busy machine, which must land first.
    let s = setup("", "[approvals]\nttl = \"3s\"\n").await;
    let call = Call::get("/fn/refund/balance");
    let id = call.ask(&s).await;
    assert_eq!(decide(&s, &id, APPROVER_KEY, "approve").await.0, 200);
    // Wait until the store itself reports it expired (no fixed sleep).
    for _ in 0..300 {
        if approval(&s, &id).await["state"] == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(approval(&s, &id).await["state"], "expired");
    assert_invalid("expired", call.send(&s, Some(&id)).await);
    assert!(s.up.requests().is_empty());
}

#[tokio::test]
async fn approvers_see_the_whole_call_with_secrets_by_name_and_the_query_masked() {
    let hook = RecordingUpstream::start(|_| cloakroom_testkit::Reply::json(json!({"ok": true}))).await;
    let s = setup("", &format!("[approvals]\nwebhooks = [\"{}/hook\"]\n", hook.url())).await;
    let bind = json!({"functions": ["refund"], "locations": ["header:x-api-key"]});
    let p = s.gw.put_secret("stripe_key", "sk_live_query_secret_0005", bind).await;
    // A raw secret in the query (a caller mistake) must not reach approvers.
    let mut call = Call::get("/fn/refund/accounts/7?note=sk_live_query_secret_0005").header("x-api-key", &p);
    call.method = reqwest::Method::DELETE;
    let id = call.ask(&s).await;

    let a = approval(&s, &id).await;
    let scope = &a["scope"];
    assert_eq!(scope["method"], "DELETE", "{a}");
    assert_eq!(scope["path"], "/fn/refund/accounts/7");
    assert_eq!(scope["subject"], "agent");
    assert_eq!(scope["issuer"], "api_key");
    assert_eq!(scope["placeholders"][0]["secret"], "stripe_key");
    assert_eq!(scope["placeholders"][0]["location"], "header:x-api-key");
    assert_eq!(scope["placeholders"][0]["placeholder"], p.as_str());
    let text = a.to_string();
    assert!(!text.contains("sk_live_query_secret_0005"), "the query is masked for approvers: {text}");
    assert!(scope["query"].as_str().unwrap().contains(&p), "the secret shows as its placeholder: {text}");

    // The webhook names the call the same way, and never the secret.
    let mut got = hook.requests();
    for _ in 0..100 {
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        got = hook.requests();
    }
    let text = got[0].body_text();
    for expected in ["DELETE", "/fn/refund/accounts/7", "stripe_key", "header:x-api-key", "leads", id.as_str()] {
        assert!(text.contains(expected), "{expected} missing from the webhook text: {text}");
    }
    assert!(!text.contains("sk_live_query_secret_0005"), "{text}");

    // The audit record of the asking call names the approval.
    let records = s.gw.admin_get("/v1/audit?limit=100").await;
    assert!(records.to_string().contains(&id));
    assert_no_secret_in_files(&s.gw.dir.path().join("data"), "sk_live_query_secret_0005");
}
