//! End-to-end: two `cloakroomd` replicas sharing state through existing systems only —
//! secrets in a real OpenBao dev server, approvals and audit in a fresh PostgreSQL
//! database, the same placeholder key, distinct audit chain ids.

mod common;

use std::{process::Command, time::Duration};

use cloakroom_testkit::{OpenBao, PgDatabase, RecordingUpstream, Reply};
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk_live_replicas_7f3a9c1e5b2d4f60";
const TOKEN_ENV: &str = "CLOAKROOM_TEST_BAO_TOKEN";

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// The configuration of one replica (after `[server]`).
fn replica_config(chain_id: &str, bao: &OpenBao, echo: &str, slow: &str) -> String {
    format!(
        r#"{identity}{echo_fn}{pay_fn}{slow_fn}{allow}
[[policy.rules]]
name = "pay needs a lead"
effect = "approve"
functions = ["pay"]
groups = ["agents"]
approvers = ["leads"]

[vault]
backend = "openbao"

[vault.openbao]
address = "{address}"
token_env = "{TOKEN_ENV}"
cache_ttl = "1s"

[audit]
sink = "postgres"
chain_id = "{chain_id}"

[approvals]
store = "postgres"
"#,
        identity = identity_section(),
        echo_fn = function("echo", "http", echo, "/fn/echo"),
        pay_fn = function("pay", "http", echo, "/fn/pay"),
        slow_fn = function("slow", "http", slow, "/fn/slow"),
        allow = allow("agents may call echo and slow", &["echo", "slow"], &["agents"]),
        address = bao.address,
    )
}

/// Polls `check` every 100 ms until it holds; panics with `what` after a minute. (A
/// replica learns of another's secret at its next catalog refresh, `cache_ttl` = 1s.)
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

async fn readyz(gw: &Cloakroomd) -> (u16, Value) {
    let res = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_secrets_approvals_and_audit_and_survive_one_being_killed() {
    let bao = OpenBao::start();
    let pg = PgDatabase::create();
    let placeholder_key = sha256_hex(&cloakroom_testkit::random_name(32));
    let echo = RecordingUpstream::echo().await;
    // The slow function answers after a minute: long enough to kill a replica mid-call.
    let slow = RecordingUpstream::start(|_| Reply { delay: Duration::from_secs(60), ..Reply::json(json!({})) }).await;
    let env = [
        ("CLOAKROOM_PLACEHOLDER_KEY", placeholder_key.as_str()),
        (TOKEN_ENV, bao.root_token.as_str()),
        ("CLOAKROOM_POSTGRES_URL", pg.url.as_str()),
    ];
    // Started together: both migrate the same empty database (under advisory locks).
    let config_a = replica_config("replica-a", &bao, &echo.url(), &slow.url());
    let config_b = replica_config("replica-b", &bao, &echo.url(), &slow.url());
    let (mut a, b) =
        tokio::join!(Cloakroomd::start_with_env("", &config_a, &env), Cloakroomd::start_with_env("", &config_b, &env));
    let c = client();

    // Each probe has a 2 s budget: on a busy machine one slow read of OpenBao or
    // PostgreSQL reports "unavailable" for a moment. Both become ready.
    for gw in [&a, &b] {
        eventually("both replicas ready", || async {
            let (status, body) = readyz(gw).await;
            status == 200 && body["checks"] == json!({"audit": "ok", "vault": "ok", "approvals": "ok"})
        })
        .await;
    }

    // --- A secret put through A is usable through B ------------------------------------
    let res = c
        .post(a.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "name": "shared_key",
            "value": SECRET,
            "binding": {"functions": ["echo"], "locations": ["header:x-api-key"], "groups": ["agents"]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let placeholder = res.json::<Value>().await.unwrap()["placeholder"].as_str().unwrap().to_owned();
    // It lives in OpenBao, not in A.
    let (status, stored) = bao.api("GET", "/v1/secret/metadata/cloakroom/shared_key", None).await;
    assert_eq!(status, 200, "{stored}");
    eventually("B lists the secret with a value", || async {
        let listed = b.admin_get("/v1/secrets").await;
        listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "shared_key" && s["has_value"] == true && s["placeholder"] == placeholder.as_str())
    })
    .await;
    let res = c
        .get(b.url("/fn/echo/charge"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", placeholder.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    // The function received the secret; the caller got it back only as the placeholder.
    assert_eq!(echo.requests().last().unwrap().header("x-api-key").as_deref(), Some(SECRET));
    assert!(!text.contains(SECRET), "the response leaks the secret: {text}");
    let echoed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(echoed["headers"]["x-api-key"], placeholder.as_str(), "{text}");

    // --- An approval requested on A, approved through B, used once on A ---------------
    let body = r#"{"amount": 500}"#;
    let pay = |gw: &Cloakroomd| {
        c.post(gw.url("/fn/pay/refund")).bearer_auth(AGENT_KEY).header("content-type", "application/json").body(body)
    };
    let res = pay(&a).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let pending: Value = res.json().await.unwrap();
    assert_eq!(pending["status"], "pending_approval", "{pending}");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    let seen_by_b: Value = c
        .get(b.admin_url(&format!("/v1/approvals/{id}")))
        .bearer_auth(APPROVER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen_by_b["state"], "pending", "{seen_by_b}");
    // Still refused on A before the decision.
    let early = pay(&a).header("cloakroom-approval", &id).send().await.unwrap();
    assert_ne!(early.status(), 200);
    let res =
        c.post(b.admin_url(&format!("/v1/approvals/{id}/approve"))).bearer_auth(APPROVER_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "approved");
    let forwarded_before = echo.requests().len();
    // Granted through B, checked on A with the same binding: another call is refused.
    for (what, other) in [
        ("method", c.put(a.url("/fn/pay/refund"))),
        ("path", c.post(a.url("/fn/pay/refund/all"))),
        ("query", c.post(a.url("/fn/pay/refund?all=1"))),
    ] {
        let res = other
            .bearer_auth(AGENT_KEY)
            .header("content-type", "application/json")
            .header("cloakroom-approval", &id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{what}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "approval_invalid", "{what}: {err}");
    }
    let res = pay(&a).header("cloakroom-approval", &id).header("content-type", "text/plain").send().await.unwrap();
    assert_eq!(res.status(), 403, "content type");
    assert_eq!(echo.requests().len(), forwarded_before);
    let res = pay(&a).header("cloakroom-approval", &id).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(echo.requests().len(), forwarded_before + 1);
    // Used once: a second use is refused on either replica, and nothing more is forwarded.
    for gw in [&a, &b] {
        let again = pay(gw).header("cloakroom-approval", &id).send().await.unwrap();
        assert_eq!(again.status(), 403, "{}", again.text().await.unwrap());
    }
    assert_eq!(echo.requests().len(), forwarded_before + 1);
    let state = psql(&pg.url, &format!("SELECT state FROM cloakroom_approvals WHERE id = '{id}'"));
    assert_eq!(state.trim(), "used");

    // Presented on both replicas at the same moment, an approval is still used once.
    let pending: Value = pay(&b).send().await.unwrap().json().await.unwrap();
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    let res =
        c.post(a.admin_url(&format!("/v1/approvals/{id}/approve"))).bearer_auth(APPROVER_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let forwarded_before = echo.requests().len();
    let (on_a, on_b) = tokio::join!(
        pay(&a).header("cloakroom-approval", &id).send(),
        pay(&b).header("cloakroom-approval", &id).send()
    );
    let mut statuses = [on_a.unwrap().status().as_u16(), on_b.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 403]);
    assert_eq!(echo.requests().len(), forwarded_before + 1);

    // --- Both audit chains verify, and both live in the one PostgreSQL table ----------
    for gw in [&a, &b] {
        let verify = gw.admin_get("/v1/audit/verify").await;
        assert_eq!(verify["ok"], true, "{verify}");
        let chains: Vec<(String, u64)> = verify["chains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["chain_id"].as_str().unwrap().to_owned(), c["records"].as_u64().unwrap()))
            .collect();
        assert_eq!(chains.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["replica-a", "replica-b"], "{verify}");
        assert!(chains.iter().all(|c| c.1 > 0), "{verify}");
    }
    let per_chain = psql(&pg.url, "SELECT chain_id, count(*) FROM cloakroom_audit_records GROUP BY 1 ORDER BY 1");
    let per_chain: Vec<&str> = per_chain.lines().collect();
    assert_eq!(per_chain.len(), 2, "{per_chain:?}");
    assert!(per_chain[0].starts_with("replica-a|") && per_chain[1].starts_with("replica-b|"), "{per_chain:?}");
    // A calls on A: the secret on B, the approval flow on A.
    let dump = psql(&pg.url, "SELECT t::text FROM cloakroom_audit_records t");
    assert!(!dump.contains(SECRET), "the audit table holds the secret");

    // --- Killing A mid-call leaves B serving ------------------------------------------
    let slow_before = slow.requests().len();
    let in_flight = tokio::spawn(c.get(a.url("/fn/slow/wait")).bearer_auth(AGENT_KEY).send());
    eventually("the slow call reaches the upstream through A", || async { slow.requests().len() > slow_before }).await;
    a.kill_hard();
    assert!(!a.is_running());
    let cut = in_flight.await.unwrap();
    assert!(cut.is_err(), "the call through the killed replica cannot have completed");
    let res = c
        .get(b.url("/fn/echo/after"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", placeholder.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(echo.requests().last().unwrap().header("x-api-key").as_deref(), Some(SECRET));
    assert!(!res.text().await.unwrap().contains(SECRET));
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 200, "{body}");
    // A's chain, cut off mid-call, still verifies from B.
    let verify = b.admin_get("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");

    // --- /readyz follows the shared systems -----------------------------------------
    let mut bao = bao;
    bao.stop();
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"], json!({"audit": "ok", "vault": "unavailable", "approvals": "ok"}));
    // Dropping the database terminates its connections (DROP DATABASE … WITH (FORCE)).
    drop(pg);
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"], json!({"audit": "unavailable", "vault": "unavailable", "approvals": "unavailable"}));
    assert_eq!(client().get(b.admin_url("/healthz")).send().await.unwrap().status(), 200);
}

#[test]
fn a_postgres_store_without_its_environment_variable_is_a_start_up_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{}\n[approvals]\nstore = \"postgres\"\npostgres_url_env = \"CLOAKROOM_TEST_UNSET_APPROVALS_PG\"\n",
        cloakroom_testkit::free_port(),
        cloakroom_testkit::free_port(),
        dir.path().join("data").display(),
        identity_section(),
    );
    let path = dir.path().join("cloakroom.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(binary())
        .arg("--config")
        .arg(&path)
        .env_remove("CLOAKROOM_TEST_UNSET_APPROVALS_PG")
        .env("CLOAKROOM_PLACEHOLDER_KEY", sha256_hex("p"))
        .env("CLOAKROOM_VAULT_KEY", sha256_hex("v"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("approvals") && stderr.contains("CLOAKROOM_TEST_UNSET_APPROVALS_PG"), "{stderr}");
}
