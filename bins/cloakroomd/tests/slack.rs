//! Slack approvals against a real `cloakroomd`, with a local HTTP server standing in for
//! Slack's Web API (it records every `chat.postMessage`, `chat.update` and
//! `chat.postEphemeral`). A held call is posted with its details escaped for mrkdwn;
//! a click signed with the app's signing secret decides the approval as the mapped
//! Cloakroom identity, and the message is updated in place. Every forged, stale,
//! replayed or altered click is refused before anything is decoded, and clicks from
//! users who may not decide are refused privately; none of them changes anything.

mod common;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cloakroom_testkit::{RecordedRequest, RecordingUpstream, Reply};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const BOT_TOKEN: &str = "xoxb-test-bot-token-0123456789";
const SIGNING_SECRET: &str = "slack-signing-secret-0123456789abcdef";
const CHANNEL: &str = "C0APPROVALS";
const TS: &str = "1700000000.000100";
const TEAM: &str = "T0CLOAKROOM";
/// Slack users: one mapped to the `approver` lead, one to the requester `agent` (also
/// made a lead, so only separation of duties stops them), one to the `outsider`.
const LEAD: &str = "U0LEAD";
const REQUESTER: &str = "U0AGENT";
const OUTSIDER: &str = "U0OUTSIDER";
const UNMAPPED: &str = "U0NOBODY";
const FINANCE: &str = "U0FINANCE";

struct Setup {
    gw: Cloakroomd,
    up: RecordingUpstream,
    slack: RecordingUpstream,
}

async fn setup() -> Setup {
    setup_with_slow_posts(Duration::ZERO).await
}

/// [`setup`] with a Slack whose `chat.postMessage` answers only after `delay`.
async fn setup_with_slow_posts(delay: Duration) -> Setup {
    let up = RecordingUpstream::echo().await;
    let slack = RecordingUpstream::start(move |r| {
        let mut reply = Reply::json(json!({"ok": true, "channel": CHANNEL, "ts": TS}));
        if r.uri == "/chat.postMessage" {
            reply.delay = delay;
        }
        reply
    })
    .await;
    let rest = format!(
        r#"{}{}{}
[[policy.rules]]
name = "refunds need a lead <!channel>"
effect = "approve"
functions = ["refund"]
groups = ["agents"]
approvers = ["leads"]

[[policy.rules]]
name = "payouts need a lead and finance"
effect = "approve"
functions = ["payout"]
groups = ["agents"]
approvers = ["leads", "finance"]

[approvals.slack]
bot_token_env = "TEST_SLACK_BOT_TOKEN"
signing_secret_env = "TEST_SLACK_SIGNING_SECRET"
channel = "{CHANNEL}"
api_url = "{}"
team_id = "{TEAM}"

[approvals.slack.users]
{LEAD} = {{ subject = "approver", groups = ["leads"] }}
{REQUESTER} = {{ subject = "agent", groups = ["leads"] }}
{OUTSIDER} = {{ subject = "outsider", groups = ["outsiders"] }}
{FINANCE} = {{ subject = "fin", groups = ["finance"] }}
"#,
        identity_section(),
        function("refund", "http", &up.url(), "/fn/refund"),
        function("payout", "http", &up.url(), "/fn/payout"),
        slack.url(),
    );
    let gw = Cloakroomd::start_with_env(
        "",
        &rest,
        &[("TEST_SLACK_BOT_TOKEN", BOT_TOKEN), ("TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET)],
    )
    .await;
    Setup { gw, up, slack }
}

/// A held call: 202 and its approval id.
async fn ask(s: &Setup, path: &str) -> String {
    let res = reqwest::Client::new().get(s.gw.url(path)).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let body: Value = res.json().await.unwrap();
    body["approval_id"].as_str().unwrap().to_owned()
}

/// The requests to Slack method `method` so far.
fn calls(s: &Setup, method: &str) -> Vec<RecordedRequest> {
    s.slack.requests().into_iter().filter(|r| r.uri == format!("/{method}")).collect()
}

/// Waits until Slack got `count` calls of `method`.
async fn wait_for(s: &Setup, method: &str, count: usize) -> Vec<RecordedRequest> {
    for _ in 0..100 {
        let got = calls(s, method);
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Slack did not get {count} {method}: {:?}", s.slack.requests());
}

fn json_body(r: &RecordedRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Slack's signature: an independent implementation of the documented scheme.
fn sign(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The form body Slack posts when `user` of `team` clicks `verb` on approval `id`.
fn click_body(user: &str, team: &str, verb: &str, id: &str) -> String {
    // Each real click differs (its `action_ts` and `trigger_id`), so two clicks by one
    // user in one second are two requests, not a replay.
    static CLICKS: AtomicU64 = AtomicU64::new(0);
    let n = CLICKS.fetch_add(1, Ordering::Relaxed);
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": team},
        "team": {"id": team, "domain": "example"},
        "channel": {"id": CHANNEL, "name": "approvals"},
        "container": {"type": "message", "message_ts": TS, "channel_id": CHANNEL, "is_ephemeral": false},
        "actions": [{"type": "button", "block_id": "cloakroom_decision", "action_id": format!("cloakroom_{verb}:{id}"),
                     "value": id, "action_ts": format!("1700000001.{n:06}")}],
        "trigger_id": format!("1700000001.{n}.abcdef"),
        "response_url": "https://hooks.slack.com/actions/T0/1/xyz",
    });
    form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish()
}

/// Posts `body` to the interactions endpoint with these headers.
async fn post(s: &Setup, body: &str, ts: Option<&str>, signature: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(s.gw.admin_url("/v1/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(ts) = ts {
        req = req.header("x-slack-request-timestamp", ts);
    }
    if let Some(sig) = signature {
        req = req.header("x-slack-signature", sig);
    }
    let res = req.body(body.to_owned()).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A correctly signed click, sent now.
async fn click(s: &Setup, user: &str, verb: &str, id: &str) -> (u16, Value) {
    let body = click_body(user, TEAM, verb, id);
    let ts = now().to_string();
    post(s, &body, Some(&ts), Some(&sign(SIGNING_SECRET, &ts, &body))).await
}

async fn state(s: &Setup, id: &str) -> String {
    s.gw.admin_get(&format!("/v1/approvals/{id}")).await["state"].as_str().unwrap().to_owned()
}

/// Every text in a message's blocks, joined.
fn texts(message: &Value) -> String {
    let mut out = String::new();
    for b in message["blocks"].as_array().unwrap() {
        if let Some(t) = b["text"]["text"].as_str() {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

fn buttons(message: &Value) -> Vec<String> {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().iter().map(|e| e["action_id"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn a_held_call_is_posted_with_its_details_escaped_and_buttons_carrying_the_approval_id() {
    let s = setup().await;
    let key =
        s.gw.put_secret(
            "refund_api_key",
            "sk_live_refund_value_0001",
            json!({"functions": ["refund"], "locations": ["header:x-api-key"]}),
        )
        .await;
    let res = reqwest::Client::new()
        .post(s.gw.url("/fn/refund/pay&<!channel>?note=<@U0BOSS>%20<https://evil.example|click>"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", &key)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let id = res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned();

    let posted = wait_for(&s, "chat.postMessage", 1).await;
    assert_eq!(posted.len(), 1);
    let r = &posted[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("authorization").as_deref(), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    let m = json_body(r);
    assert_eq!(m["channel"], CHANNEL);
    let text = texts(&m);
    for needed in [
        "*Requester:* \"agent\" (\"api_key\")",
        "*Function:* \"refund\"",
        "*Method:* \"POST\"",
        "*Path:* \"/fn/refund/pay&amp;%3C!channel%3E?note=%3C%40U0BOSS%3E",
        "*Secrets:* \"refund_api_key\" at \"header:x-api-key\"",
        "*Rule:* \"refunds need a lead &lt;!channel&gt;\"",
        "leads\" (unmet)",
        &format!("*Approval:* \"{id}\""),
        "*Expires:* ",
    ] {
        assert!(text.contains(needed), "{needed:?} missing from {text}");
    }
    assert_eq!(buttons(&m), vec![format!("cloakroom_approve:{id}"), format!("cloakroom_deny:{id}")]);
    // No mention, broadcast or link survives: Slack parses those only inside `<…>`.
    let raw = r.body_text();
    for markup in ["<!", "<@", "<http", "<#"] {
        assert!(!raw.contains(markup), "{markup} in {raw}");
    }
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(!raw.contains("sk_live_refund_value_0001"), "the secret value is never shown");
    assert!(!s.gw.stderr().contains(BOT_TOKEN) && !s.gw.stderr().contains(SIGNING_SECRET));

    // The same markup sent raw, not percent-encoded, in the path and the query.
    let raw =
        s.gw.raw(
            format!(
                "GET /fn/refund/x&<!channel>?q=<@U0BOSS>|<https://evil.example|x> HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {AGENT_KEY}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    // hyper refuses such a request line outright (`<` is not a URI character): no
    // approval is asked for and nothing is posted. What reaches Slack from a path is
    // percent-encoded or, like `&` above, escaped.
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls(&s, "chat.postMessage").len(), 1);
}

#[tokio::test]
async fn a_signed_approve_click_approves_and_the_message_shows_who_approved() {
    let s = setup().await;
    let id = ask(&s, "/fn/refund/balance").await;
    wait_for(&s, "chat.postMessage", 1).await;

    assert_eq!(click(&s, LEAD, "approve", &id).await.0, 200);
    assert_eq!(state(&s, &id).await, "approved");
    let a = s.gw.admin_get(&format!("/v1/approvals/{id}")).await;
    assert_eq!(a["grants"][0]["subject"], "approver");
    assert_eq!(a["grants"][0]["issuer"], "slack");

    let updated = wait_for(&s, "chat.update", 1).await;
    let m = json_body(&updated[0]);
    assert_eq!((m["channel"].as_str(), m["ts"].as_str()), (Some(CHANNEL), Some(TS)));
    assert_eq!(updated[0].header("authorization").as_deref(), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    let text = texts(&m);
    assert!(text.contains("*Approved* by \"approver\" at "), "{text}");
    assert!(buttons(&m).is_empty(), "a decided approval has no buttons: {m}");

    // The caller's retried call goes through, once.
    let res = reqwest::Client::new()
        .get(s.gw.url("/fn/refund/balance"))
        .bearer_auth(AGENT_KEY)
        .header("cloakroom-approval", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(s.up.requests().len(), 1);
}

#[tokio::test]
async fn forged_stale_altered_and_replayed_clicks_are_refused_and_change_nothing() {
    let s = setup().await;
    let id = ask(&s, "/fn/refund/balance").await;
    wait_for(&s, "chat.postMessage", 1).await;
    let body = click_body(LEAD, TEAM, "approve", &id);
    let ts = now().to_string();
    let good = sign(SIGNING_SECRET, &ts, &body);
    let stale = (now() - 310).to_string();
    let future = (now() + 310).to_string();
    let altered = click_body(LEAD, TEAM, "approve", &format!("{id}x"));
    let attempts: Vec<(&str, String, Option<String>, Option<String>)> = vec![
        (
            "a signature made with another secret",
            body.clone(),
            Some(ts.clone()),
            Some(sign("not the secret", &ts, &body)),
        ),
        (
            "a stale timestamp, correctly signed",
            body.clone(),
            Some(stale.clone()),
            Some(sign(SIGNING_SECRET, &stale, &body)),
        ),
        (
            "a future timestamp, correctly signed",
            body.clone(),
            Some(future.clone()),
            Some(sign(SIGNING_SECRET, &future, &body)),
        ),
        ("another timestamp than signed", body.clone(), Some((now() - 1).to_string()), Some(good.clone())),
        ("no timestamp", body.clone(), None, Some(good.clone())),
        ("no signature", body.clone(), Some(ts.clone()), None),
        ("no headers", body.clone(), None, None),
        ("a body altered after signing", altered, Some(ts.clone()), Some(good.clone())),
        ("another user than signed", click_body(REQUESTER, TEAM, "approve", &id), Some(ts.clone()), Some(good.clone())),
        ("a malformed signature", body.clone(), Some(ts.clone()), Some(format!("v1={}", &good[3..]))),
    ];
    for (what, body, ts, sig) in &attempts {
        let (status, err) = post(&s, body, ts.as_deref(), sig.as_deref()).await;
        assert_eq!(status, 401, "{what}: {err}");
        assert_eq!(err["error"]["code"], "unauthenticated", "{what}: {err}");
        assert_eq!(state(&s, &id).await, "pending", "{what}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.slack.requests().len(), 1, "nothing but the first post went to Slack");

    // The genuine click works once; the same signed request again is a replay.
    assert_eq!(post(&s, &body, Some(&ts), Some(&good)).await.0, 200);
    assert_eq!(state(&s, &id).await, "approved");
    wait_for(&s, "chat.update", 1).await;
    let (status, err) = post(&s, &body, Some(&ts), Some(&good)).await;
    assert_eq!(status, 401, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("replay"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.slack.requests().len(), 2, "the replay sent nothing to Slack");
    assert!(!s.gw.stderr().contains(SIGNING_SECRET) && !s.gw.stderr().contains(&good[3..]));
}

#[tokio::test]
async fn clicks_from_users_who_may_not_decide_are_refused_privately() {
    let s = setup().await;
    let id = ask(&s, "/fn/refund/balance").await;
    wait_for(&s, "chat.postMessage", 1).await;

    let refusals = [
        (UNMAPPED, "approve", "not mapped to a Cloakroom identity"),
        (REQUESTER, "approve", "separation of duties"),
        (REQUESTER, "deny", "separation of duties"),
        (OUTSIDER, "approve", "only members of"),
        (OUTSIDER, "deny", "only members of"),
    ];
    for (n, (user, verb, why)) in refusals.iter().enumerate() {
        assert_eq!(click(&s, user, verb, &id).await.0, 200, "{user} {verb}");
        let told = wait_for(&s, "chat.postEphemeral", n + 1).await;
        let m = json_body(&told[n]);
        assert_eq!((m["channel"].as_str(), m["user"].as_str()), (Some(CHANNEL), Some(*user)));
        assert!(m["text"].as_str().unwrap().contains(why), "{user} {verb}: {m}");
        assert_eq!(state(&s, &id).await, "pending", "{user} {verb}");
    }
    // Another workspace, even correctly signed and naming a mapped lead.
    let body = click_body(LEAD, "T0ELSEWHERE", "approve", &id);
    let ts = now().to_string();
    assert_eq!(post(&s, &body, Some(&ts), Some(&sign(SIGNING_SECRET, &ts, &body))).await.0, 200);
    let told = wait_for(&s, "chat.postEphemeral", refusals.len() + 1).await;
    assert!(json_body(told.last().unwrap())["text"].as_str().unwrap().contains("workspace"));
    assert_eq!(state(&s, &id).await, "pending");
    assert!(calls(&s, "chat.update").is_empty(), "no refusal touched the message");

    // A lead's deny is final and shown in place.
    assert_eq!(click(&s, LEAD, "deny", &id).await.0, 200);
    assert_eq!(state(&s, &id).await, "denied");
    let m = json_body(&wait_for(&s, "chat.update", 1).await[0]);
    assert!(texts(&m).contains("*Denied* by \"approver\""), "{m}");
    assert!(buttons(&m).is_empty());
    // Clicking again on the decided approval changes nothing and says why.
    assert_eq!(click(&s, LEAD, "approve", &id).await.0, 200);
    let told = wait_for(&s, "chat.postEphemeral", refusals.len() + 2).await;
    assert!(json_body(told.last().unwrap())["text"].as_str().unwrap().contains("denied"), "{:?}", told.last());
    assert_eq!(state(&s, &id).await, "denied");
}

#[tokio::test]
async fn each_grant_updates_the_message_with_what_is_still_needed() {
    let s = setup().await;
    let id = ask(&s, "/fn/payout/run").await;
    wait_for(&s, "chat.postMessage", 1).await;

    assert_eq!(click(&s, LEAD, "approve", &id).await.0, 200);
    assert_eq!(state(&s, &id).await, "pending");
    let m = json_body(&wait_for(&s, "chat.update", 1).await[0]);
    let text = texts(&m);
    assert!(text.contains("Approved by \"approver\" at "), "{text}");
    assert!(text.contains("still needs an approver from: \"finance\""), "{text}");
    assert!(text.contains("\"leads\" (met by \"approver\")"), "{text}");
    assert_eq!(buttons(&m).len(), 2, "still pending: the buttons stay");

    // The same lead again cannot meet the finance requirement.
    assert_eq!(click(&s, LEAD, "approve", &id).await.0, 200);
    let told = wait_for(&s, "chat.postEphemeral", 1).await;
    assert!(json_body(&told[0])["text"].as_str().unwrap().contains("already approved"), "{:?}", told[0]);
    assert_eq!(state(&s, &id).await, "pending");

    assert_eq!(click(&s, FINANCE, "approve", &id).await.0, 200);
    assert_eq!(state(&s, &id).await, "approved");
    let m = json_body(&wait_for(&s, "chat.update", 2).await[1]);
    let text = texts(&m);
    assert!(text.contains("*Approved* by \"approver\" at ") && text.contains("\"fin\" at "), "{text}");
    assert!(buttons(&m).is_empty());
}

#[tokio::test]
async fn a_decision_through_the_admin_api_updates_the_message_too() {
    let s = setup().await;
    let id = ask(&s, "/fn/refund/balance").await;
    wait_for(&s, "chat.postMessage", 1).await;
    deny_in_the_api(&s, &id).await;
    assert_denied_by_the_api(&wait_for(&s, "chat.update", 1).await[0]);
}

/// A decision made while the message is still being posted (Slack has not said where it
/// went yet) is shown once it has: the message never keeps buttons for a decided call.
#[tokio::test]
async fn a_decision_made_while_the_message_is_being_posted_updates_it_once_posted() {
    let s = setup_with_slow_posts(Duration::from_millis(1500)).await;
    let id = ask(&s, "/fn/refund/balance").await;
    // The post has reached Slack, whose answer is still 1.5 s away.
    wait_for(&s, "chat.postMessage", 1).await;
    deny_in_the_api(&s, &id).await;
    let updates = wait_for(&s, "chat.update", 1).await;
    assert_denied_by_the_api(&updates[0]);
    // Shown once: the decision is final, so its message is forgotten.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls(&s, "chat.update").len(), 1);
}

async fn deny_in_the_api(s: &Setup, id: &str) {
    let res = reqwest::Client::new()
        .post(s.gw.admin_url(&format!("/v1/approvals/{id}/deny")))
        .bearer_auth(APPROVER_KEY)
        .json(&json!({"reason": "not today <!here>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

fn assert_denied_by_the_api(update: &RecordedRequest) {
    let m = json_body(update);
    assert_eq!(m["ts"], TS);
    let text = texts(&m);
    assert!(text.contains("*Denied* by \"approver\"") && text.contains("\"not today &lt;!here&gt;\""), "{text}");
    assert!(buttons(&m).is_empty());
}

#[test]
fn a_gateway_whose_slack_token_variable_is_unset_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{}\n\
         [approvals.slack]\nbot_token_env = \"TEST_SLACK_UNSET_TOKEN\"\nsigning_secret_env = \"TEST_SLACK_SECRET\"\n\
         channel = \"{CHANNEL}\"\n",
        cloakroom_testkit::free_port(),
        cloakroom_testkit::free_port(),
        dir.path().join("data").display(),
        identity_section(),
    );
    let path = dir.path().join("cloakroom.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(binary())
        .arg("--config")
        .arg(&path)
        .env("CLOAKROOM_PLACEHOLDER_KEY", sha256_hex("placeholder key"))
        .env("CLOAKROOM_VAULT_KEY", sha256_hex("vault key"))
        .env_remove("TEST_SLACK_UNSET_TOKEN")
        .env("TEST_SLACK_SECRET", SIGNING_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TEST_SLACK_UNSET_TOKEN"), "{stderr}");
    assert!(!stderr.contains(SIGNING_SECRET), "{stderr}");
}
