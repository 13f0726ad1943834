//! End-to-end: use budgets on secret bindings (docs/policy.md, "Use budgets") against a
//! real `cloakroomd` — counted in the embedded store on one node, and in one PostgreSQL
//! database shared by two replicas.

mod common;

use std::time::Duration;

use cloakroom_testkit::{PgDatabase, RecordingUpstream};
use common::{held::holding_upstream, *};
use serde_json::{json, Value};

const SECRET: &str = "sk_live_budget_3f9a7c2e1d5b4a60";
const OTHER: &str = "sk_live_other_8e2d4c6a0b1f3e57";
/// A second agent: same group, another subject.
const AGENT2_KEY: &str = "ck_test_agent_two_key_01234567";

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn config(echo: &str, billing: &str) -> String {
    format!(
        r#"{identity}
[[identity.api_keys]]
subject = "agent2"
groups = ["agents"]
sha256 = "{agent2}"
{echo_fn}{billing_fn}{allow}"#,
        identity = identity_section(),
        agent2 = sha256_hex(AGENT2_KEY),
        echo_fn = function("echo", "http", echo, "/fn/echo"),
        billing_fn = function("billing", "http", billing, "/fn/billing"),
        allow = allow("agents call", &["echo", "billing"], &["agents"]),
    )
}

struct Setup {
    gw: Cloakroomd,
    echo: RecordingUpstream,
}

async fn setup() -> Setup {
    let echo = RecordingUpstream::echo().await;
    let gw = Cloakroomd::start("", &config(&echo.url(), "http://127.0.0.1:9")).await;
    Setup { gw, echo }
}

/// An echo call through `gw` as `key`, with `placeholder` in `x-api-key` (and in the
/// JSON body too, when `body` names it).
async fn call(gw: &Cloakroomd, key: &str, header: &str, body: Option<&str>) -> reqwest::Response {
    let mut req = client().post(gw.url("/fn/echo/charge")).bearer_auth(key).header("x-api-key", header);
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(json!({"token": b}).to_string());
    }
    req.send().await.unwrap()
}

/// The secret `name` as `GET /v1/secrets` lists it.
async fn listed(gw: &Cloakroomd, name: &str) -> Value {
    let list = gw.admin_get("/v1/secrets").await;
    list["secrets"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().expect("listed")
}

/// The audit record of `call_id`, once it is written.
async fn audit_record(gw: &Cloakroomd, call_id: &str) -> Value {
    for _ in 0..300 {
        let r = client().get(gw.admin_url(&format!("/v1/audit/{call_id}"))).bearer_auth(ADMIN_KEY).send().await;
        if let Ok(r) = r {
            if r.status() == 200 {
                return r.json().await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no audit record for {call_id}");
}

fn call_id(res: &reqwest::Response) -> String {
    res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned()
}

/// Every answer body, the log and the audit never hold the value.
fn assert_never_shown(texts: &[String], gw: &Cloakroomd, secret: &str) {
    for t in texts {
        assert!(!t.contains(secret), "an answer holds the secret: {t}");
    }
    assert!(!gw.stderr().contains(secret), "the log holds the secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_lets_three_calls_through_and_refuses_the_fourth_with_budget_exhausted_audited() {
    let s = setup().await;
    let p =
        s.gw.put_secret(
            "capped",
            SECRET,
            json!({"functions": ["echo"], "locations": ["header:x-api-key", "body"], "max_uses": 3}),
        )
        .await;
    let mut texts = Vec::new();
    // The placeholder twice in one call (header and body) is one use.
    let res = call(&s.gw, AGENT_KEY, &p, Some(&p)).await;
    assert_eq!(res.status(), 200);
    texts.push(res.text().await.unwrap());
    assert_eq!(listed(&s.gw, "capped").await["uses"]["total"], 1);
    for _ in 0..2 {
        let res = call(&s.gw, AGENT_KEY, &p, None).await;
        assert_eq!(res.status(), 200);
        texts.push(res.text().await.unwrap());
    }
    assert_eq!(s.echo.requests().len(), 3);
    let res = call(&s.gw, AGENT_KEY, &p, None).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_none(), "max_uses never refills: no Retry-After");
    let id = call_id(&res);
    let text = res.text().await.unwrap();
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "budget_exhausted", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("\"capped\""), "{err}");
    texts.push(text);
    assert_eq!(s.echo.requests().len(), 3, "the refused call was not forwarded");
    let record = audit_record(&s.gw, &id).await;
    assert_eq!(record["error"]["code"], "budget_exhausted", "{record}");
    assert!(record["error"]["message"].as_str().unwrap().contains("capped"), "{record}");
    assert_eq!(record["decision"]["effect"], "deny", "{record}");
    texts.push(record.to_string());
    let entry = listed(&s.gw, "capped").await;
    assert_eq!(entry["uses"], json!({"total": 3, "max_uses": 3}), "{entry}");
    assert_eq!(entry["binding"]["max_uses"], 3, "{entry}");
    texts.push(entry.to_string());
    assert_never_shown(&texts, &s.gw, SECRET);
    assert_no_secret_in_files(&s.gw.dir.path().join("data").join("budgets"), SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_budget_sends_retry_after_within_the_period_and_refills_in_the_next_window() {
    let s = setup().await;
    let p = s
        .gw
        .put_secret(
            "windowed",
            SECRET,
            json!({"functions": ["echo"], "locations": ["header:x-api-key"], "max_uses_per": {"count": 2, "period": "2s"}}),
        )
        .await;
    // Windows are aligned to the epoch: keep calling until one is refused.
    let mut refused = None;
    for _ in 0..20 {
        let res = call(&s.gw, AGENT_KEY, &p, None).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200);
    }
    let res = refused.expect("a third call within one 2s window is refused");
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after} is within the period");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "budget_exhausted");
    let entry = listed(&s.gw, "windowed").await;
    assert_eq!(entry["uses"]["max_uses_per"], json!({"count": 2, "period": "2s"}), "{entry}");
    assert!(entry["uses"]["window_count"].as_u64().unwrap() <= 2, "{entry}");
    assert!(entry["uses"]["window_resets_at"].is_string(), "{entry}");
    // The next window refills it.
    let mut served = false;
    for _ in 0..100 {
        if call(&s.gw, AGENT_KEY, &p, None).await.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served, "the budget never refilled");
    assert!(!s.gw.stderr().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_caller_budget_refuses_the_caller_who_spent_it_and_serves_another() {
    let s = setup().await;
    let p =
        s.gw.put_secret(
            "per_caller",
            SECRET,
            json!({"functions": ["echo"], "locations": ["header:x-api-key"], "max_uses": 1, "budget_scope": "caller"}),
        )
        .await;
    assert_eq!(call(&s.gw, AGENT_KEY, &p, None).await.status(), 200);
    let res = call(&s.gw, AGENT_KEY, &p, None).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "budget_exhausted");
    assert_eq!(call(&s.gw, AGENT2_KEY, &p, None).await.status(), 200, "another caller has a budget of its own");
    assert_eq!(call(&s.gw, AGENT2_KEY, &p, None).await.status(), 429);
    let entry = listed(&s.gw, "per_caller").await;
    assert_eq!(entry["uses"]["total"], 2, "summed over callers: {entry}");
    assert_eq!(entry["binding"]["budget_scope"], "caller", "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_for_one_secret_spends_no_budget_of_the_others() {
    let s = setup().await;
    let binding = |max: u64| json!({"functions": ["echo"], "locations": ["header:x-api-key"], "max_uses": max});
    let a = s.gw.put_secret("a_key", SECRET, binding(5)).await;
    let b = s.gw.put_secret("b_key", OTHER, binding(1)).await;
    let unbound =
        s.gw.put_secret(
            "elsewhere",
            "sk_live_elsewhere_0123456789",
            json!({"functions": ["billing"], "locations": ["header:x-api-key"]}),
        )
        .await;
    assert_eq!(call(&s.gw, AGENT_KEY, &b, None).await.status(), 200);
    // b is spent: a call carrying a and b is refused and a keeps its whole budget.
    let res = call(&s.gw, AGENT_KEY, &format!("{a} {b}"), None).await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("b_key"));
    // A placeholder outside its binding refuses the call before anything is spent.
    let res = call(&s.gw, AGENT_KEY, &format!("{a} {unbound}"), None).await;
    assert_eq!(res.status(), 403);
    assert_eq!(listed(&s.gw, "a_key").await["uses"]["total"], 0);
    assert_eq!(s.echo.requests().len(), 1);
    assert_eq!(call(&s.gw, AGENT_KEY, &a, None).await.status(), 200);
    assert_eq!(listed(&s.gw, "a_key").await["uses"]["total"], 1);
    assert_eq!(listed(&s.gw, "b_key").await["uses"]["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_for_approval_spends_nothing_until_it_is_forwarded() {
    let s = setup().await;
    let p =
        s.gw.put_secret(
            "approved_key",
            SECRET,
            json!({"functions": ["echo"], "locations": ["header:x-api-key"], "approvers": ["leads"], "max_uses": 1}),
        )
        .await;
    let res = call(&s.gw, AGENT_KEY, &p, None).await;
    assert_eq!(res.status(), 202);
    let pending: Value = res.json().await.unwrap();
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(listed(&s.gw, "approved_key").await["uses"]["total"], 0, "a held call spends nothing");
    let res = client()
        .post(s.gw.admin_url(&format!("/v1/approvals/{id}/approve")))
        .bearer_auth(APPROVER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(listed(&s.gw, "approved_key").await["uses"]["total"], 0, "approving spends nothing");
    let res = client()
        .post(s.gw.url("/fn/echo/charge"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", &p)
        .header("cloakroom-approval", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(listed(&s.gw, "approved_key").await["uses"]["total"], 1, "the forwarded call spent it");
    assert_eq!(s.echo.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeem_spends_a_use_unless_the_call_already_spent_it() {
    let (held_url, mut held) = holding_upstream().await;
    let echo = RecordingUpstream::echo().await;
    let gw = Cloakroomd::start("", &config(&echo.url(), &held_url)).await;
    let p = gw
        .put_secret(
            "db_password",
            SECRET,
            json!({"functions": ["billing"], "locations": ["header:x-db"], "max_uses": 2}),
        )
        .await;
    let c = client();
    let redeem = |h: &common::held::Held| {
        c.post(gw.admin_url("/v1/redeem"))
            .header("cloakroom-redeem-token", h.token())
            .json(&json!({"placeholder": p, "call_id": h.call_id()}))
            .send()
    };
    let start = |with_placeholder: bool| {
        let mut req = c.post(gw.url("/fn/billing/run")).bearer_auth(AGENT_KEY);
        if with_placeholder {
            req = req.header("x-db", p.as_str());
        }
        tokio::spawn(req.send())
    };
    // Call 1 substitutes the secret (one use); redeeming it in the same call is free.
    let pending = start(true);
    let h = held.recv().await.unwrap();
    assert_eq!(h.header("x-db").as_deref(), Some(SECRET));
    for _ in 0..2 {
        let r = redeem(&h).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["value"], SECRET);
    }
    h.release.send(()).unwrap();
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);
    assert_eq!(listed(&gw, "db_password").await["uses"]["total"], 1);
    // Call 2 carries no placeholder: its redemption is the second use.
    let pending = start(false);
    let h = held.recv().await.unwrap();
    assert_eq!(redeem(&h).await.unwrap().status(), 200);
    assert_eq!(redeem(&h).await.unwrap().status(), 200, "a second redemption in the call spends nothing");
    h.release.send(()).unwrap();
    pending.await.unwrap().unwrap();
    assert_eq!(listed(&gw, "db_password").await["uses"]["total"], 2);
    // Call 3: the budget is spent, redemption is refused — every one of many racing
    // redemptions, none answered before the first's spend was refused.
    let pending = start(false);
    let h = held.recv().await.unwrap();
    let racing: Vec<_> = (0..16).map(|_| tokio::spawn(redeem(&h))).collect();
    for r in racing {
        let r = r.await.unwrap().unwrap();
        assert_eq!(r.status(), 429);
        let text = r.text().await.unwrap();
        assert!(!text.contains(SECRET));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "budget_exhausted");
    }
    assert_eq!(listed(&gw, "db_password").await["uses"]["total"], 2, "refused redemptions spend nothing");
    h.release.send(()).unwrap();
    pending.await.unwrap().unwrap();
    assert!(!gw.stderr().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_spend_one_budget_exactly_and_refuse_when_it_is_gone() {
    let pg = PgDatabase::create();
    let placeholder_key = sha256_hex(&cloakroom_testkit::random_name(32));
    let echo = RecordingUpstream::echo().await;
    let rest = format!(
        r#"{identity}{echo_fn}{allow}
[vault]
backend = "memory"

[approvals]
store = "postgres"

[[secrets]]
name = "shared"
functions = ["echo"]
locations = ["header:x-api-key"]
max_uses = 10
"#,
        identity = identity_section(),
        echo_fn = function("echo", "http", &echo.url(), "/fn/echo"),
        allow = allow("agents call", &["echo"], &["agents"]),
    );
    let env = [("CLOAKROOM_PLACEHOLDER_KEY", placeholder_key.as_str()), ("CLOAKROOM_POSTGRES_URL", pg.url.as_str())];
    // Started together: both create the table in the same empty database.
    let (a, b) = tokio::join!(Cloakroomd::start_with_env("", &rest, &env), Cloakroomd::start_with_env("", &rest, &env));
    // Each replica's memory vault gets the value; the budget is one, in PostgreSQL.
    let p = a.put_secret("shared", SECRET, Value::Null).await;
    assert_eq!(b.put_secret("shared", SECRET, Value::Null).await, p);

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..30 {
        let url = if i % 2 == 0 { a.url("/fn/echo/x") } else { b.url("/fn/echo/x") };
        let p = p.clone();
        calls.spawn(async move {
            let res = client().get(url).bearer_auth(AGENT_KEY).header("x-api-key", p).send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            (status, body)
        });
    }
    let (mut ok, mut exhausted) = (0, 0);
    while let Some(done) = calls.join_next().await {
        let (status, body) = done.unwrap();
        assert!(!body.contains(SECRET), "{body}");
        match status {
            200 => ok += 1,
            429 => {
                assert!(body.contains("budget_exhausted"), "{body}");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, exhausted), (10, 20));
    assert_eq!(echo.requests().len(), 10, "exactly ten calls reached the function");
    for gw in [&a, &b] {
        assert_eq!(listed(gw, "shared").await["uses"], json!({"total": 10, "max_uses": 10}));
    }
    assert_eq!(psql(&pg.url, "SELECT SUM(uses) FROM cloakroom_budget_uses").trim(), "10");

    // PostgreSQL gone: the calls are refused (fail closed) and audited.
    let admin = pg.url.replace(&format!("dbname={}", pg.name), "dbname=postgres");
    psql(&admin, &format!("DROP DATABASE {} WITH (FORCE)", pg.name));
    for gw in [&a, &b] {
        let res =
            client().get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).header("x-api-key", &p).send().await.unwrap();
        assert_eq!(res.status(), 503);
        let id = call_id(&res);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "vault_unavailable", "{err}");
        let record = audit_record(gw, &id).await;
        assert_eq!(record["error"]["code"], "vault_unavailable", "{record}");
        assert!(!record.to_string().contains(SECRET));
        assert!(!gw.stderr().contains(SECRET));
    }
    assert_eq!(echo.requests().len(), 10, "nothing forwarded without the budget store");
}
