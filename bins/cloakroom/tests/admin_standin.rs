//! The admin verbs against a SPEC §5-shaped stand-in: a real HTTP server on 127.0.0.1
//! (`cloakroom_testkit::RecordingUpstream`) that keeps secrets, approvals and audit
//! records in memory and answers with the shapes and error bodies of SPEC §5. The real
//! binary runs against it, so argument handling, request bodies, output and exit statuses
//! are all exercised end to end.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::Stdio,
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use cloakroom_testkit::{RecordedRequest, RecordingUpstream, Reply};
use common::{run_with, Run};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token";
const APPROVER: &str = "approver-token";

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, Value>,
    values: BTreeMap<String, String>,
    approvals: Vec<Value>,
    records: Vec<Value>,
    verify: Option<Value>,
    fail_with: Option<(u16, &'static str)>,
}

fn reply(status: u16, body: Value) -> Reply {
    let mut r = Reply::json(body);
    r.status = status;
    r
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    reply(
        status,
        json!({"error": {"code": code, "message": message, "call_id": "00000000-0000-0000-0000-000000000000"}}),
    )
}

fn query(uri: &str) -> BTreeMap<String, String> {
    uri.split_once('?')
        .map(|(_, q)| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
        })
        .unwrap_or_default()
}

fn record(seq: u64) -> Value {
    json!({
        "chain_id": "replica-a", "seq": seq, "prev_hash": format!("{:064}", seq - 1), "hash": format!("{seq:064}"),
        "id": format!("0193a000-0000-7000-8000-{seq:012}"), "time": format!("2026-11-25T21:30:{:02}.000Z", seq % 60),
        "duration_ms": 3, "identity": {"subject": "agent-7", "issuer": "biscuit", "method": "biscuit", "groups": ["payments-ops"]},
        "source_ip": "127.0.0.1", "function": "payments/refund", "protocol": "http",
        "decision": {"effect": "allow", "rule": "payments-ops may call payments", "reason": "allowed by rule"},
        "approval": {"id": "ap-1", "requested_by": "agent-7", "decided_by": "fin-lead", "decided_at": "2026-11-25T21:29:00Z"},
        "secrets_used": [{"name": "stripe_key", "placeholder": "cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa", "location": "header:authorization"}],
        "request": {"method": "POST", "path": "/fn/payments/refund", "headers": {"authorization": ["[REDACTED]"]},
                    "body": {"encoding": "utf8", "data": "{\"amount\":5000}", "bytes": 15, "truncated": false}},
        "response": {"status": 200, "headers": {"content-type": ["application/json"]},
                     "body": {"encoding": "utf8", "data": "{\"key\":\"cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "bytes": 39, "truncated": false}, "masked": 1},
        "upstream": {"status": 200, "duration_ms": 2}, "error": null
    })
}

/// The stand-in's placeholder: `cloak_` + the name's letters, padded with `a` to 26.
fn placeholder_of(name: &str) -> String {
    let letters: String = name.chars().filter(char::is_ascii_alphanumeric).take(26).collect();
    format!("cloak_{letters:a<26}")
}

fn handle(state: &Mutex<State>, req: &RecordedRequest) -> Reply {
    let mut st = state.lock().unwrap();
    if let Some((status, code)) = st.fail_with {
        return error(status, code, "the stand-in was told to fail");
    }
    let token = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
    let who = match token.as_deref() {
        Some(ADMIN) => "admin",
        Some(APPROVER) => "approver",
        _ => return error(401, "unauthenticated", "no credential, or one that did not verify"),
    };
    let path = req.uri.split('?').next().unwrap_or_default().to_owned();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = query(&req.uri);
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["v1", "secrets"]) => {
            let name = body["name"].as_str().unwrap_or_default().to_owned();
            if name == "declared" && body.get("binding").is_some() {
                return error(409, "conflict", "the binding of secret declared is set in the configuration file");
            }
            let placeholder = placeholder_of(&name);
            st.values.insert(name.clone(), body["value"].as_str().unwrap_or_default().to_owned());
            let binding =
                body.get("binding").cloned().unwrap_or(json!({"functions": [], "locations": ["body"], "groups": []}));
            st.secrets.insert(name.clone(), json!({"name": name, "placeholder": placeholder, "binding": binding}));
            reply(200, json!({"name": name, "placeholder": placeholder}))
        }
        ("GET", ["v1", "secrets"]) => reply(200, json!({"secrets": st.secrets.values().cloned().collect::<Vec<_>>()})),
        ("DELETE", ["v1", "secrets", name]) => match st.secrets.remove(&name.replace("%2F", "/")) {
            Some(_) => {
                let mut r = Reply::chunks(vec![]);
                r.status = 204;
                r
            }
            None => error(404, "not_found", "no secret with this name"),
        },
        ("GET", ["v1", "approvals"]) => {
            let list: Vec<Value> = st
                .approvals
                .iter()
                .filter(|a| q.get("state").is_none_or(|s| a["state"] == s.as_str()))
                .cloned()
                .collect();
            reply(200, json!({"approvals": list}))
        }
        ("POST", ["v1", "approvals", id, verb]) => {
            if who != "approver" {
                return error(403, "forbidden", "not an approver of this approval");
            }
            let Some(a) = st.approvals.iter_mut().find(|a| a["id"] == *id) else {
                return error(404, "not_found", "no approval with this id");
            };
            a["state"] = json!(if *verb == "approve" { "approved" } else { "denied" });
            a["decided_by"] = json!("fin-lead");
            a["reason"] = body.get("reason").cloned().unwrap_or(Value::Null);
            reply(200, a.clone())
        }
        ("GET", ["v1", "audit"]) => {
            let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let list: Vec<Value> =
                st.records.iter().filter(|r| r["seq"].as_u64().unwrap() > since).take(limit).cloned().collect();
            reply(200, json!({"records": list}))
        }
        ("GET", ["v1", "audit", "verify"]) => {
            reply(200, st.verify.clone().unwrap_or(json!({"ok": true, "chains": []})))
        }
        ("GET", ["v1", "audit", id]) => match st.records.iter().find(|r| r["id"] == *id) {
            Some(r) => reply(200, r.clone()),
            None => error(404, "not_found", "no audit record with this id"),
        },
        _ => error(404, "not_found", "no such admin endpoint"),
    }
}

struct StandIn {
    server: RecordingUpstream,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let server = RecordingUpstream::start(move |req| handle(&s, req)).await;
        Self { server, state }
    }

    /// Runs the binary (off the runtime's threads) with the admin URL and a token.
    async fn run(&self, args: &[&str], token: Option<&str>, stdin: Option<&[u8]>) -> Run {
        let mut argv: Vec<String> = vec!["--admin".into(), self.server.url()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let token = token.map(str::to_owned);
        let stdin = stdin.map(<[u8]>::to_vec);
        tokio::task::spawn_blocking(move || {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = token.as_deref().map(|t| vec![("CLOAKROOM_TOKEN", t)]).unwrap_or_default();
            run_with(&argv, &env, stdin.as_deref())
        })
        .await
        .unwrap()
    }

    async fn admin(&self, args: &[&str]) -> Run {
        self.run(args, Some(ADMIN), None).await
    }
}

// === secrets ===

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_sends_the_value_from_stdin_and_prints_the_placeholder() {
    let s = StandIn::start().await;
    let r = s.run(&["secret", "put", "stripe_key"], Some(ADMIN), Some(b"sk_live_abcdef123456\n")).await.ok();
    assert_eq!(r.stdout, format!("{}\n", placeholder_of("stripe_key")));
    assert!(!r.stdout.contains("sk_live") && !r.stderr.contains("sk_live"));
    let st = s.state.lock().unwrap();
    assert_eq!(st.values["stripe_key"], "sk_live_abcdef123456", "one trailing newline is dropped, nothing else");
    let req = s.server.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(req.header("authorization").as_deref(), Some("Bearer admin-token"));
    assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert!(body.get("binding").is_none(), "no binding flags, no binding: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_sends_the_binding_flags() {
    let s = StandIn::start().await;
    s.run(
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
            "payments-ops",
            "--approver",
            "finance-leads",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
        Some(ADMIN),
        Some(b"v4lue-of-the-key"),
    )
    .await
    .ok();
    let req = s.server.requests().into_iter().find(|r| r.method == "POST").unwrap();
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"name": "stripe_key", "value": "v4lue-of-the-key", "binding": {
            "functions": ["payments/*", "payments"], "locations": ["header:Authorization"],
            "groups": ["payments-ops"], "approvers": ["finance-leads"], "expires": "2030-01-01T00:00:00Z"}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_conflict_exits_7_without_echoing_the_value() {
    let s = StandIn::start().await;
    let r = s
        .run(&["secret", "put", "declared", "--group", "ops"], Some(ADMIN), Some(b"hunter2-very-secret"))
        .await
        .code(7);
    assert!(r.stderr.contains("conflict") && r.stderr.contains("configuration file"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_refuses_an_empty_value_before_sending() {
    let s = StandIn::start().await;
    let r = s.run(&["secret", "put", "k"], Some(ADMIN), Some(b"\n")).await.code(1);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    assert!(s.server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_list_prints_a_table_and_json() {
    let s = StandIn::start().await;
    s.run(
        &[
            "secret",
            "put",
            "stripe_key",
            "--function",
            "payments/*",
            "--location",
            "header:Authorization",
            "--group",
            "ops",
        ],
        Some(ADMIN),
        Some(b"x1234567890"),
    )
    .await
    .ok();
    s.run(&["secret", "put", "db_password"], Some(ADMIN), Some(b"y1234567890")).await.ok();
    let r = s.admin(&["secret", "list"]).await.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "PLACEHOLDER", "FUNCTIONS", "LOCATIONS", "GROUPS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["db_password", &placeholder_of("db_password"), "-", "body", "-"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["stripe_key", &placeholder_of("stripe_key"), "payments/*", "header:Authorization", "ops"]
    );
    assert!(!r.stdout.contains("x1234567890"));
    let j: Value = serde_json::from_str(&s.admin(&["secret", "list", "-o", "json"]).await.ok().stdout).unwrap();
    assert_eq!(j["secrets"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_rm_removes_and_an_unknown_name_exits_6() {
    let s = StandIn::start().await;
    s.run(&["secret", "put", "a/b"], Some(ADMIN), Some(b"x1234567890")).await.ok();
    let r = s.admin(&["secret", "rm", "a/b"]).await.ok();
    assert_eq!(r.stdout, "removed secret a/b\n");
    assert!(s.server.requests().iter().any(|r| r.method == "DELETE" && r.uri == "/v1/secrets/a%2Fb"));
    let r = s.admin(&["secret", "rm", "a/b"]).await.code(6);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
}

// === errors ===

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_exits_4_and_says_which_variable_to_set() {
    let s = StandIn::start().await;
    let r = s.run(&["secret", "list"], None, None).await.code(4);
    assert!(r.stderr.contains("unauthenticated") && r.stderr.contains("CLOAKROOM_TOKEN"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_store_exits_9() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().fail_with = Some((503, "audit_unavailable"));
    let r = s.admin(&["audit", "verify"]).await.code(9);
    assert!(r.stderr.contains("audit_unavailable"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_admin_api_exits_10() {
    let port = cloakroom_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let r = tokio::task::spawn_blocking(move || {
        run_with(&["--admin", &url, "secret", "list"], &[("CLOAKROOM_TOKEN", ADMIN)], None)
    })
    .await
    .unwrap()
    .code(10);
    assert!(r.stderr.contains("cannot reach the admin API"), "{}", r.stderr);
    assert!(!r.stderr.contains(ADMIN), "the token must not be printed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_url_comes_from_cloakroom_admin_and_the_token_is_trimmed() {
    let s = StandIn::start().await;
    let url = s.server.url();
    let r = tokio::task::spawn_blocking(move || {
        run_with(
            &["secret", "list", "-o", "json"],
            &[("CLOAKROOM_TOKEN", "admin-token\n"), ("CLOAKROOM_ADMIN", &url)],
            None,
        )
    })
    .await
    .unwrap()
    .ok();
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), json!({"secrets": []}));
}

// === approvals ===

fn approval(id: &str, state: &str) -> Value {
    json!({"id": id, "requester": {"subject": "agent-7", "issuer": "biscuit", "groups": ["payments-ops"]},
           "function": "payments/refund", "digest": "d", "arguments": {"amount": 5000, "card": "cloak_x"},
           "call_id": "c1", "rule": "refunds need finance", "created_at": "2026-11-25T21:00:00Z",
           "expires_at": "2026-11-25T21:15:00Z", "approvers": ["finance-leads"], "state": state})
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_list_shows_pending_by_default() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().approvals = vec![approval("ap-1", "pending"), approval("ap-2", "approved")];
    let r = s.admin(&["approval", "list"]).await.ok();
    assert!(s.server.requests().last().unwrap().uri.ends_with("/v1/approvals?state=pending"));
    assert!(r.stdout.contains("ap-1") && !r.stdout.contains("ap-2"), "{}", r.stdout);
    assert!(
        r.stdout.contains("agent-7") && r.stdout.contains("payments/refund") && r.stdout.contains("finance-leads"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(r#"{"amount":5000,"card":"cloak_x"}"#), "{}", r.stdout);
    let r = s.admin(&["approval", "list", "--state", "all", "-o", "json"]).await.ok();
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap()["approvals"].as_array().unwrap().len(), 2);
    s.state.lock().unwrap().approvals.clear();
    assert_eq!(s.admin(&["approval", "list"]).await.ok().stdout, "no pending approvals\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_approve_and_deny() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().approvals = vec![approval("ap-1", "pending"), approval("ap-2", "pending")];
    let r = s.run(&["approval", "approve", "ap-1"], Some(APPROVER), None).await.ok();
    assert!(r.stdout.starts_with("approved ap-1 (payments/refund for agent-7)"), "{}", r.stdout);
    let r = s.run(&["approval", "deny", "ap-2", "--reason", "not this week"], Some(APPROVER), None).await.ok();
    assert!(r.stdout.starts_with("denied ap-2"), "{}", r.stdout);
    let deny = s.server.requests().into_iter().find(|r| r.uri == "/v1/approvals/ap-2/deny").unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&deny.body).unwrap(), json!({"reason": "not this week"}));
    let st = s.state.lock().unwrap();
    assert_eq!(st.approvals[0]["state"], "approved");
    assert_eq!(st.approvals[1]["state"], "denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_by_a_non_approver_exits_5() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().approvals = vec![approval("ap-1", "pending")];
    let r = s.admin(&["approval", "approve", "ap-1"]).await.code(5);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    assert!(s
        .run(&["approval", "deny", "nope", "--reason", "x"], Some(APPROVER), None)
        .await
        .code(6)
        .stderr
        .contains("not_found"));
}

// === audit ===

#[tokio::test(flavor = "multi_thread")]
async fn audit_show_reads_like_an_auditor_needs() {
    let s = StandIn::start().await;
    let rec = record(1);
    let id = rec["id"].as_str().unwrap().to_owned();
    s.state.lock().unwrap().records = vec![rec];
    let out = s.admin(&["audit", "show", &id]).await.ok().stdout;
    for needle in [
        "agent-7 via biscuit",
        "2026-11-25T21:30:01.000Z",
        "allow by rule payments-ops may call payments",
        "ap-1 requested by agent-7, decided by fin-lead",
        "stripe_key (cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa) at header:authorization",
        "request: POST /fn/payments/refund",
        "\"amount\": 5000",
        "response: 200 (1 secret value(s) masked)",
    ] {
        assert!(out.contains(needle), "missing {needle:?}:\n{out}");
    }
    let j: Value = serde_json::from_str(&s.admin(&["audit", "show", &id, "-o", "json"]).await.ok().stdout).unwrap();
    assert_eq!(j["id"], id.as_str());
    s.admin(&["audit", "show", "0193a000-0000-7000-8000-999999999999"]).await.code(6);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_exits_0_when_every_chain_verifies() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().verify = Some(json!({"ok": true, "chains": [
        {"chain_id": "replica-a", "records": 12, "head_seq": 12, "head_hash": "ab", "first_break": null},
        {"chain_id": "replica-b", "records": 3, "head_seq": 3, "head_hash": "cd", "first_break": null}]}));
    let r = s.admin(&["audit", "verify"]).await.ok();
    assert!(
        r.stdout.contains("chain replica-a: ok, 12 records") && r.stdout.contains("every chain verifies"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_verify_exits_3_and_prints_the_first_broken_link() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().verify = Some(json!({"ok": false, "chains": [
        {"chain_id": "replica-a", "records": 12, "head_seq": 12, "head_hash": "ab", "first_break": null},
        {"chain_id": "replica-b", "records": 9, "head_seq": 4, "head_hash": "cd",
         "first_break": {"position": 4, "expected_seq": 5, "kind": "altered", "detail": "hash does not match the content"}}]}));
    let r = s.admin(&["audit", "verify"]).await.code(3);
    assert!(r.stdout.contains("chain replica-b: BROKEN"), "{}", r.stdout);
    assert!(r.stderr.contains("position 4 (expected seq 5): altered: hash does not match"), "{}", r.stderr);
    let r = s.admin(&["audit", "verify", "-o", "json"]).await.code(3);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap()["ok"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_export_pages_through_every_record_in_order() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().records = (1..=1234).map(record).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let r = s
        .admin(&["audit", "export", "--format", "jsonl", "--out", path.to_str().unwrap(), "--page-size", "100"])
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
    let pages: Vec<String> = s.server.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(pages.len(), 13);
    assert_eq!(pages[1], "/v1/audit?limit=100&since=100");
    // To stdout as well.
    let out = s.admin(&["audit", "export", "--format", "jsonl"]).await.ok().stdout;
    assert_eq!(out.lines().count(), 1234);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_tail_no_follow_prints_the_most_recent_records() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().records = (1..=30).map(record).collect();
    let out = s.admin(&["audit", "tail", "--no-follow", "-n", "5"]).await.ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(lines[0].starts_with("TIME"), "{out}");
    assert!(lines[1].contains("-000000000026") && lines[5].contains("-000000000030"), "{out}");
    assert!(lines[1].contains("agent-7") && lines[1].contains("stripe_key") && lines[1].contains("allow"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_tail_follows_new_records() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().records = (1..=3).map(record).collect();
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut child = common::cmd(&["--admin", &s.server.url(), "audit", "tail", "-o", "json", "--interval", "50ms"])
        .env("CLOAKROOM_TOKEN", ADMIN)
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
    s.state.lock().unwrap().records.extend([record(4), record(5)]);
    assert_eq!([seq(next()), seq(next())], [4, 5]);
    // The admin API goes away for a while (a restart): tail keeps following.
    s.state.lock().unwrap().fail_with = Some((503, "audit_unavailable"));
    let refused_from = s.server.requests().len();
    while s.server.requests().len() < refused_from + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let mut st = s.state.lock().unwrap();
        st.fail_with = None;
        st.records.push(record(6));
    }
    assert_eq!(seq(next()), 6);
    assert!(child.try_wait().unwrap().is_none(), "tail must still be running");
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(stderr.matches("still following").count(), 1, "{stderr}");
    // Every follow-up poll asked only for records after the last one seen.
    let polls: Vec<String> = s.server.requests().iter().skip(1).map(|r| r.uri.clone()).collect();
    assert!(polls.iter().all(|u| ["since=3", "since=5", "since=6"].iter().any(|s| u.contains(s))), "{polls:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_put_on_a_terminal_prompts_without_echo() {
    use std::io::{Read, Write};
    let s = StandIn::start().await;
    // `script` (util-linux) gives the CLI a pseudo-terminal as stdin and /dev/tty.
    let cli = format!("{} --admin {} secret put tty_key", env!("CARGO_BIN_EXE_cloakroom"), s.server.url());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cli, "/dev/null"])
        .env("CLOAKROOM_TOKEN", ADMIN)
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
    while !String::from_utf8_lossy(&seen).contains("Value for tty_key: ") {
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
    assert!(screen.contains(&placeholder_of("tty_key")), "{screen}");
    assert!(!screen.contains("typed-secret-value"), "the value was echoed: {screen}");
    assert_eq!(s.state.lock().unwrap().values["tty_key"], "typed-secret-value");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_export_shows_progress_when_stderr_is_a_terminal() {
    let s = StandIn::start().await;
    s.state.lock().unwrap().records = (1..=250).map(record).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cli = format!(
        "{} --admin {} audit export --format jsonl --page-size 100 --out {}",
        env!("CARGO_BIN_EXE_cloakroom"),
        s.server.url(),
        path.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("script")
            .args(["-q", "-e", "-c", &cli, "/dev/null"])
            .env("CLOAKROOM_TOKEN", ADMIN)
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
