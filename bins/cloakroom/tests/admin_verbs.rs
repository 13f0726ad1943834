//! The admin verbs, one behaviour per test, against a real `cloakroomd`: argument
//! handling, the requests the CLI sends (seen through a wiretap), what it prints and its
//! exit statuses, with every answer and refusal coming from the real gateway — a 503
//! from a database that went away, a broken chain from an edited segment file, an outage
//! from a gateway restart.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use cloakroom_testkit::RecordingUpstream;
use common::{
    gateway::{cli_at, tokens, Gateway, Tokens},
    run_with,
    wiretap::Wiretap,
};
use serde_json::{json, Value};

/// A gateway, its upstream and three callers' tokens.
struct Setup {
    upstream: RecordingUpstream,
    t: Tokens,
    gw: Gateway,
}

async fn setup() -> Setup {
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let gw = Gateway::start(&root, &upstream.url()).await;
    Setup { upstream, t, gw }
}

impl Setup {
    async fn admin(&self, args: &[&str]) -> common::Run {
        self.gw.cli(args, Some(&self.t.admin)).await
    }

    /// Puts `name` through the CLI, bound to both functions at `header:X-Api-Key` for
    /// agents; returns its placeholder.
    async fn put_api_key(&self, name: &str, value: &str) -> String {
        let args = ["secret", "put", name, "--function", "payments", "--function", "refunds"];
        let args = [&args[..], &["--location", "header:X-Api-Key", "--group", "agents"]].concat();
        let r = self.gw.cli_stdin(&args, Some(&self.t.admin), Some(value.as_bytes())).await.ok();
        r.stdout.trim().to_owned()
    }

    /// A refund of `amount` by agent-7, held for a finance lead; returns the approval id.
    async fn pending_refund(&self, amount: u64) -> String {
        let (status, _, body) = self.gw.call(&self.t.agent, "/fn/refunds", json!({ "amount": amount }), None).await;
        assert_eq!(status, 202, "{body}");
        body["approval_id"].as_str().unwrap().to_owned()
    }

    /// The approvals in `state` (or all), as the CLI prints them with `-o json`.
    async fn approvals(&self, state: &str) -> Vec<Value> {
        let out = self.gw.cli(&["approval", "list", "--state", state, "-o", "json"], Some(&self.t.approver)).await;
        let v: Value = serde_json::from_str(&out.ok().stdout).unwrap();
        v["approvals"].as_array().unwrap().clone()
    }

    /// The one audit chain's id.
    async fn chain_id(&self) -> String {
        let out = self.admin(&["audit", "verify", "-o", "json"]).await.ok().stdout;
        let report: Value = serde_json::from_str(&out).unwrap();
        report["chains"][0]["chain_id"].as_str().unwrap().to_owned()
    }
}

// === secrets ===

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_sends_the_value_from_stdin_and_prints_the_placeholder() {
    let s = setup().await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    // declared_key is bound in the configuration: a put without binding flags keeps it.
    let r = cli_at(&tap.url(), &["secret", "put", "declared_key"], Some(&s.t.admin), Some(b"sk_live_abcdef123456\n"))
        .await
        .ok();
    let placeholder = r.stdout.strip_suffix('\n').unwrap().to_owned();
    assert!(placeholder.starts_with("cloak_") && placeholder.len() == 32, "{}", r.stdout);
    assert!(!r.stdout.contains("sk_live") && !r.stderr.contains("sk_live"));
    let reqs = tap.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let req = &reqs[0];
    assert_eq!((req.method.as_str(), req.uri.as_str()), ("POST", "/v1/secrets"));
    assert_eq!(req.header("authorization"), Some(format!("Bearer {}", s.t.admin).as_str()));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"name": "declared_key", "value": "sk_live_abcdef123456"}),
        "one trailing newline is dropped, nothing else; no binding flags, no binding"
    );
    // The gateway stored exactly that: the function gets it for the placeholder.
    let (status, _, _) =
        s.gw.call_with_headers(&s.t.agent, "/fn/payments/charge", &[("X-Declared", &placeholder)]).await;
    assert_eq!(status, 200, "{}", s.gw.log());
    assert_eq!(s.upstream.requests().last().unwrap().header("x-declared").as_deref(), Some("sk_live_abcdef123456"));
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_sends_the_binding_flags() {
    let s = setup().await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    cli_at(
        &tap.url(),
        &[
            "secret",
            "put",
            "stripe_key",
            "--function",
            "payments/*",
            "--function",
            "payments",
            "--location",
            "header:Authorization",
            "--group",
            "agents",
            "--approver",
            "finance-leads",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
        Some(&s.t.admin),
        Some(b"v4lue-of-the-key"),
    )
    .await
    .ok();
    let binding = json!({"functions": ["payments/*", "payments"], "locations": ["header:Authorization"],
        "groups": ["agents"], "approvers": ["finance-leads"], "expires": "2030-01-01T00:00:00Z"});
    assert_eq!(
        tap.requests()[0].json(),
        json!({"name": "stripe_key", "value": "v4lue-of-the-key", "binding": binding})
    );
    // The gateway keeps the binding as sent.
    let list: Value = serde_json::from_str(&s.admin(&["secret", "list", "-o", "json"]).await.ok().stdout).unwrap();
    let stored = list["secrets"].as_array().unwrap().iter().find(|s| s["name"] == "stripe_key").unwrap().clone();
    assert_eq!(stored["binding"], binding);
    assert_eq!((&stored["origin"], &stored["has_value"]), (&json!("api"), &json!(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_conflict_exits_7_without_echoing_the_value() {
    let s = setup().await;
    let r = s
        .gw
        .cli_stdin(&["secret", "put", "declared_key", "--group", "ops"], Some(&s.t.admin), Some(b"hunter2-very-secret"))
        .await
        .code(7);
    assert!(r.stderr.contains("conflict") && r.stderr.contains("configuration"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_refuses_an_empty_value_before_sending() {
    let s = setup().await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let r = cli_at(&tap.url(), &["secret", "put", "k"], Some(&s.t.admin), Some(b"\n")).await.code(1);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    assert!(tap.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_list_prints_a_table_and_json() {
    let s = setup().await;
    let args = [
        "secret",
        "put",
        "stripe_key",
        "--function",
        "payments/*",
        "--location",
        "header:Authorization",
        "--group",
        "ops",
    ];
    let stripe = s.gw.cli_stdin(&args, Some(&s.t.admin), Some(b"x1234567890")).await.ok().stdout;
    let db =
        s.gw.cli_stdin(&["secret", "put", "db_password"], Some(&s.t.admin), Some(b"y1234567890")).await.ok().stdout;
    let r = s.admin(&["secret", "list"]).await.ok();
    let lines: Vec<Vec<&str>> = r.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "PLACEHOLDER", "FUNCTIONS", "LOCATIONS", "GROUPS", "USES"]);
    let row = |name: &str| lines.iter().find(|l| l[0] == name).unwrap_or_else(|| panic!("{}", r.stdout)).clone();
    assert_eq!(row("db_password"), ["db_password", db.trim(), "-", "-", "-", "-"], "no binding: never substituted");
    assert_eq!(row("stripe_key"), ["stripe_key", stripe.trim(), "payments/*", "header:Authorization", "ops", "-"]);
    assert_eq!(row("declared_key")[2..], ["payments", "header:X-Declared", "agents", "-"]);
    assert!(!r.stdout.contains("x1234567890") && !r.stdout.contains("y1234567890"));
    let j: Value = serde_json::from_str(&s.admin(&["secret", "list", "-o", "json"]).await.ok().stdout).unwrap();
    assert_eq!(j["secrets"].as_array().unwrap().len(), 3, "{j}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_rm_removes_and_an_unknown_name_exits_6() {
    let s = setup().await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let url = tap.url();
    let cli = |args: &'static [&'static str]| cli_at(&url, args, Some(&s.t.admin), None);
    s.gw.cli_stdin(&["secret", "put", "db_password"], Some(&s.t.admin), Some(b"x1234567890")).await.ok();
    let r = cli(&["secret", "rm", "db_password"]).await.ok();
    assert_eq!(r.stdout, "removed secret db_password\n");
    let r = cli(&["secret", "rm", "db_password"]).await.code(6);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
    // A name is one path segment, whatever it holds; this one is no secret name.
    let r = cli(&["secret", "rm", "a/b"]).await.code(8);
    assert!(r.stderr.contains("bad_request") && r.stderr.contains("invalid secret name"), "{}", r.stderr);
    let uris: Vec<(String, String)> = tap.requests().into_iter().map(|r| (r.method, r.uri)).collect();
    let delete = |uri: &str| ("DELETE".to_owned(), uri.to_owned());
    assert_eq!(
        uris,
        [delete("/v1/secrets/db_password"), delete("/v1/secrets/db_password"), delete("/v1/secrets/a%2Fb")]
    );
}

// === errors ===

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_exits_4_and_says_which_variable_to_set() {
    let s = setup().await;
    let r = s.gw.cli(&["secret", "list"], None).await.code(4);
    assert!(r.stderr.contains("unauthenticated") && r.stderr.contains("CLOAKROOM_TOKEN"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_store_exits_9() {
    // The audit log in a PostgreSQL database that goes away under the running gateway.
    let pg = cloakroom_testkit::PgDatabase::create();
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let env = [("CLOAKROOM_POSTGRES_URL", pg.url.as_str())];
    let gw = Gateway::start_with(&root, &upstream.url(), "\n[audit]\nsink = \"postgres\"\n", &env).await;
    gw.cli(&["audit", "verify"], Some(&t.admin)).await.ok();
    // Dropping the database terminates its connections (DROP DATABASE … WITH (FORCE)).
    drop(pg);
    let r = gw.cli(&["audit", "verify"], Some(&t.admin)).await.code(9);
    assert!(r.stderr.contains("audit_unavailable") && r.stderr.contains("HTTP 503"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_admin_api_exits_10() {
    const TOKEN: &str = "admin-token";
    let port = cloakroom_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let r = tokio::task::spawn_blocking(move || {
        run_with(&["--admin", &url, "secret", "list"], &[("CLOAKROOM_TOKEN", TOKEN)], None)
    })
    .await
    .unwrap()
    .code(10);
    assert!(r.stderr.contains("cannot reach the admin API"), "{}", r.stderr);
    assert!(!r.stderr.contains(TOKEN), "the token must not be printed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_url_comes_from_cloakroom_admin_and_the_token_is_trimmed() {
    let s = setup().await;
    let (url, token) = (s.gw.admin_url(), format!("{}\n", s.t.admin));
    let r = tokio::task::spawn_blocking(move || {
        run_with(&["secret", "list", "-o", "json"], &[("CLOAKROOM_TOKEN", &token), ("CLOAKROOM_ADMIN", &url)], None)
    })
    .await
    .unwrap()
    .ok();
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list["secrets"][0]["name"], "declared_key", "{list}");
}

// === approvals ===

#[tokio::test(flavor = "multi_thread")]
async fn approval_list_shows_pending_by_default() {
    let s = setup().await;
    let pending = s.pending_refund(5000).await;
    let decided = s.pending_refund(7000).await;
    s.gw.cli(&["approval", "approve", &decided], Some(&s.t.approver)).await.ok();
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let r = cli_at(&tap.url(), &["approval", "list"], Some(&s.t.approver), None).await.ok();
    assert_eq!(tap.requests().last().unwrap().uri, "/v1/approvals?state=pending");
    assert!(r.stdout.contains(&pending) && !r.stdout.contains(&decided), "{}", r.stdout);
    assert!(
        r.stdout.contains("agent-7") && r.stdout.contains("refunds") && r.stdout.contains("finance-leads"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(r#"{"amount":5000}"#), "{}", r.stdout);
    assert_eq!(s.approvals("all").await.len(), 2);
    s.gw.cli(&["approval", "deny", &pending, "--reason", "no"], Some(&s.t.approver)).await.ok();
    assert_eq!(s.gw.cli(&["approval", "list"], Some(&s.t.approver)).await.ok().stdout, "no pending approvals\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_approve_and_deny() {
    let s = setup().await;
    let (first, second) = (s.pending_refund(5000).await, s.pending_refund(9999).await);
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let r = cli_at(&tap.url(), &["approval", "approve", &first], Some(&s.t.approver), None).await.ok();
    assert!(r.stdout.starts_with(&format!("approved {first} (refunds for agent-7)")), "{}", r.stdout);
    let r = cli_at(&tap.url(), &["approval", "deny", &second, "--reason", "not this week"], Some(&s.t.approver), None)
        .await
        .ok();
    assert!(r.stdout.starts_with(&format!("denied {second}")), "{}", r.stdout);
    let reqs = tap.requests();
    assert_eq!(reqs[0].uri, format!("/v1/approvals/{first}/approve"));
    assert_eq!(reqs[0].json(), json!({}));
    assert_eq!(reqs[1].uri, format!("/v1/approvals/{second}/deny"));
    assert_eq!(reqs[1].json(), json!({"reason": "not this week"}));
    let all = s.approvals("all").await;
    let state = |id: &str| all.iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(state(&first)["state"], "approved");
    assert_eq!((&state(&second)["state"], &state(&second)["reason"]), (&json!("denied"), &json!("not this week")));
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_by_a_non_approver_exits_5() {
    let s = setup().await;
    let id = s.pending_refund(5000).await;
    // An admin is not a finance lead.
    let r = s.admin(&["approval", "approve", &id]).await.code(5);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    let unknown = "0193a000-0000-7000-8000-000000000000";
    let r = s.gw.cli(&["approval", "deny", unknown, "--reason", "x"], Some(&s.t.approver)).await.code(6);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
}

// === audit ===

#[tokio::test(flavor = "multi_thread")]
async fn audit_show_reads_like_an_auditor_needs() {
    const VALUE: &str = "sk_live_show_0123456789";
    let s = setup().await;
    let placeholder = s.put_api_key("stripe_key", VALUE).await;
    let key = [("X-Api-Key", placeholder.as_str())];
    let (status, _, pending) = s.gw.call_with(&s.t.agent, "/fn/refunds", json!({"amount": 5000}), &key, None).await;
    assert_eq!(status, 202, "{pending}");
    let approval = pending["approval_id"].as_str().unwrap();
    s.gw.cli(&["approval", "approve", approval], Some(&s.t.approver)).await.ok();
    let (status, id, _) =
        s.gw.call_with(&s.t.agent, "/fn/refunds", json!({"amount": 5000}), &key, Some(approval)).await;
    assert_eq!(status, 200, "{}", s.gw.log());
    s.gw.wait_for_records(&s.t.admin, 2).await;

    let j: Value = serde_json::from_str(&s.admin(&["audit", "show", &id, "-o", "json"]).await.ok().stdout).unwrap();
    assert_eq!(j["id"], id.as_str());
    let out = s.admin(&["audit", "show", &id]).await.ok().stdout;
    for needle in [
        "agent-7 via biscuit",
        j["time"].as_str().unwrap(),
        "allow by rule refunds need a finance lead",
        &format!("{approval} requested by agent-7, decided by fin-lead"),
        &format!("stripe_key ({placeholder}) at header:x-api-key"),
        "request: POST /fn/refunds",
        "\"amount\": 5000",
        "response: 200 (1 secret value(s) masked)",
    ] {
        assert!(out.contains(needle), "missing {needle:?}:\n{out}");
    }
    assert!(!out.contains(VALUE), "{out}");
    s.admin(&["audit", "show", "0193a000-0000-7000-8000-999999999999"]).await.code(6);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_exits_0_when_every_chain_verifies() {
    let s = setup().await;
    s.gw.calls(&s.t.agent, 12, 4, &[]).await;
    s.gw.wait_for_records(&s.t.admin, 12).await;
    let chain = s.chain_id().await;
    let r = s.admin(&["audit", "verify"]).await.ok();
    assert!(
        r.stdout.contains(&format!("chain {chain}: ok, 12 records, head seq 12"))
            && r.stdout.contains("every chain verifies"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_exits_3_and_prints_the_first_broken_link() {
    let mut s = setup().await;
    s.gw.calls(&s.t.agent, 5, 1, &[]).await;
    s.gw.wait_for_records(&s.t.admin, 5).await;
    let chain = s.chain_id().await;
    // Someone edits the fourth record on disk while the gateway is down: `"n":4` → `"n":8`.
    s.gw.stop();
    let (path, mut bytes) = segment_holding(&s.gw.data_dir().join("audit"), br#"\"n\":4}"#);
    let at = find(&bytes, br#"\"n\":4}"#).unwrap() + br#"\"n\":"#.len();
    bytes[at] = b'8';
    std::fs::write(&path, &bytes).unwrap();
    s.gw.start_again().await;

    let r = s.admin(&["audit", "verify"]).await.code(3);
    assert!(r.stdout.contains(&format!("chain {chain}: BROKEN")), "{}", r.stdout);
    assert!(!r.stdout.contains("every chain verifies"), "{}", r.stdout);
    assert!(r.stderr.contains("first broken link at position 3 (expected seq 4): altered: "), "{}", r.stderr);
    let r = s.admin(&["audit", "verify", "-o", "json"]).await.code(3);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap()["ok"], false);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The file under `dir` whose bytes hold `needle`, and its bytes.
fn segment_holding(dir: &std::path::Path, needle: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                if find(&bytes, needle).is_some() {
                    return (path, bytes);
                }
            }
        }
    }
    panic!("no file under {} holds {:?}", dir.display(), String::from_utf8_lossy(needle));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_export_pages_through_every_record_in_order() {
    let s = setup().await;
    s.gw.calls(&s.t.agent, 1234, 16, &[]).await;
    s.gw.wait_for_records(&s.t.admin, 1234).await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let r = cli_at(
        &tap.url(),
        &["audit", "export", "--format", "jsonl", "--out", path.to_str().unwrap(), "--page-size", "100"],
        Some(&s.t.admin),
        None,
    )
    .await
    .ok();
    assert!(r.stderr.contains("exported 1234 records"), "{}", r.stderr);
    assert!(!r.stderr.contains('…'), "no progress when stderr is not a terminal: {}", r.stderr);
    assert!(r.stdout.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    let seqs: Vec<u64> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=1234).collect::<Vec<_>>());
    // 13 pages, each after the previous page's last seq.
    let pages: Vec<String> = tap.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(pages.len(), 13, "{pages:?}");
    assert_eq!(pages[0], "/v1/audit?limit=100");
    assert_eq!(pages[1], "/v1/audit?limit=100&since=100");
    // To stdout as well.
    let out = s.admin(&["audit", "export", "--format", "jsonl"]).await.ok().stdout;
    assert_eq!(out.lines().count(), 1234);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_tail_no_follow_prints_the_most_recent_records() {
    let s = setup().await;
    let placeholder = s.put_api_key("stripe_key", "sk_live_tail_0123456789").await;
    s.gw.calls(&s.t.agent, 30, 1, &[("X-Api-Key", &placeholder)]).await;
    let records = s.gw.records_at_least(&s.t.admin, 30).await;
    let id = |seq: u64| records.iter().find(|r| r["seq"] == seq).unwrap()["id"].as_str().unwrap().to_owned();
    let out = s.admin(&["audit", "tail", "--no-follow", "-n", "5"]).await.ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[0].starts_with("TIME"), "{out}");
    assert!(lines[1].contains(&id(26)) && lines[5].contains(&id(30)), "{out}");
    assert!(lines[1].contains("agent-7") && lines[1].contains("stripe_key") && lines[1].contains("allow"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_tail_follows_new_records_across_a_gateway_restart() {
    let mut s = setup().await;
    s.gw.calls(&s.t.agent, 3, 1, &[]).await;
    s.gw.wait_for_records(&s.t.admin, 3).await;
    let tap = Wiretap::start(&s.gw.admin_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = common::cmd(&["--admin", &tap.url(), "audit", "tail", "-o", "json", "--interval", "50ms"])
        .env("CLOAKROOM_TOKEN", &s.t.admin)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // A guard against a hang, not a timing assertion.
    let next = || rx.recv_timeout(Duration::from_secs(60)).expect("a line from audit tail");
    let seq = |l: String| serde_json::from_str::<Value>(&l).unwrap()["seq"].as_u64().unwrap();
    assert_eq!([seq(next()), seq(next()), seq(next())], [1, 2, 3]);
    s.gw.calls(&s.t.agent, 2, 1, &[]).await;
    assert_eq!([seq(next()), seq(next())], [4, 5]);
    // The gateway restarts: tail keeps following through the outage.
    s.gw.stop();
    while tap.refused() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.gw.start_again().await;
    s.gw.calls(&s.t.agent, 1, 1, &[]).await;
    assert_eq!(seq(next()), 6);
    assert!(child.try_wait().unwrap().is_none(), "tail must still be running");
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(stderr.matches("still following").count(), 1, "{stderr}");
    assert!(stderr.contains("admin API is back"), "{stderr}");
    // Every follow-up poll asked only for records after the last one seen: its `since`
    // is a seq already printed, never going back.
    let polls: Vec<String> = tap.requests().iter().skip(1).map(|r| r.uri.clone()).collect();
    let since: Vec<u64> = polls
        .iter()
        .map(|u| u.split("since=").nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{polls:?}")))
        .collect();
    assert!(since.windows(2).all(|w| w[0] <= w[1]) && since.iter().all(|s| (3..=6).contains(s)), "{polls:?}");
}

// === terminals ===

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_on_a_terminal_prompts_without_echo() {
    use std::io::{Read, Write};
    let s = setup().await;
    // `script` (util-linux) gives the CLI a pseudo-terminal as stdin and /dev/tty.
    let cli = format!("{} --admin {} secret put declared_key", env!("CARGO_BIN_EXE_cloakroom"), s.gw.admin_url());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cli, "/dev/null"])
        .env("CLOAKROOM_TOKEN", &s.t.admin)
        .env_remove("CLOAKROOM_ADMIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` from util-linux is needed for this test (apt-get install bsdutils)");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // Type only once the prompt is up (echo is off by then). The timeout guards a hang.
    while !String::from_utf8_lossy(&seen).contains("Value for declared_key: ") {
        seen.extend(rx.recv_timeout(Duration::from_secs(60)).expect("the prompt"));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"typed-secret-value\n").unwrap();
    stdin.flush().unwrap();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(60)) {
        seen.extend(chunk);
    }
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let screen = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("typed-secret-value"), "the value was echoed: {screen}");
    let placeholder = screen.split_whitespace().find(|w| w.starts_with("cloak_")).expect(&screen).to_owned();
    // The gateway stored what was typed.
    let (status, _, _) =
        s.gw.call_with_headers(&s.t.agent, "/fn/payments/charge", &[("X-Declared", &placeholder)]).await;
    assert_eq!(status, 200, "{}", s.gw.log());
    assert_eq!(s.upstream.requests().last().unwrap().header("x-declared").as_deref(), Some("typed-secret-value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_export_shows_progress_when_stderr_is_a_terminal() {
    let s = setup().await;
    s.gw.calls(&s.t.agent, 250, 25, &[]).await;
    s.gw.wait_for_records(&s.t.admin, 250).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cli = format!(
        "{} --admin {} audit export --format jsonl --page-size 100 --out {}",
        env!("CARGO_BIN_EXE_cloakroom"),
        s.gw.admin_url(),
        path.display()
    );
    let token = s.t.admin.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-q", "-e", "-c", &cli, "/dev/null"])
            .env("CLOAKROOM_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .expect("`script` from util-linux is needed for this test (apt-get install bsdutils)")
    })
    .await
    .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("exported 100 records…") && screen.contains("exported 200 records…"), "{screen}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 250);
}
