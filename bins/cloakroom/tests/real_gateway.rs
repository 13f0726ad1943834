//! The admin verbs against the real `cloakroomd`, as one operator's day: Biscuit tokens
//! minted by this CLI, calls through the gateway to a real upstream, then approvals and
//! the audit log read, followed, verified and exported through the CLI. The behaviours
//! one at a time are in `admin_verbs.rs`.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use cloakroom_testkit::RecordingUpstream;
use common::gateway::{tokens, Gateway};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn cli_against_cloakroomd_approvals_and_audit() {
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let gw = Gateway::start(&root, &upstream.url()).await;

    // A call the agent may make, with a token minted by `cloakroom biscuit mint`.
    let (status, charge_id, _) = gw.call(&t.agent, "/fn/payments/charge", json!({"amount": 5}), None).await;
    assert_eq!(status, 200, "{}", gw.log());

    // A refund waits for a finance lead.
    let (status, _, pending) = gw.call(&t.agent, "/fn/refunds", json!({"amount": 5000}), None).await;
    assert_eq!(status, 202, "{pending}");
    let approval_id = pending["approval_id"].as_str().unwrap().to_owned();

    let list = gw.cli(&["approval", "list"], Some(&t.approver)).await.ok().stdout;
    assert!(list.contains(&approval_id) && list.contains("agent-7") && list.contains("refunds"), "{list}");
    assert!(list.contains("5000"), "arguments are shown to the approver: {list}");
    let j: Value =
        serde_json::from_str(&gw.cli(&["approval", "list", "-o", "json"], Some(&t.approver)).await.ok().stdout)
            .unwrap();
    assert_eq!(j["approvals"][0]["id"], approval_id.as_str());

    // The requester cannot approve their own call; the finance lead can.
    let r = gw.cli(&["approval", "approve", &approval_id], Some(&t.agent)).await.code(5);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    let r = gw.cli(&["approval", "approve", &approval_id], Some(&t.approver)).await.ok();
    assert!(r.stdout.starts_with(&format!("approved {approval_id}")), "{}", r.stdout);
    assert!(gw.cli(&["approval", "list"], Some(&t.approver)).await.ok().stdout.contains("no pending approvals"));

    let (status, refund_id, _) = gw.call(&t.agent, "/fn/refunds", json!({"amount": 5000}), Some(&approval_id)).await;
    assert_eq!(status, 200, "{}", gw.log());

    // Another refund, denied with a reason.
    let (_, _, pending) = gw.call(&t.agent, "/fn/refunds", json!({"amount": 9999}), None).await;
    let deny_id = pending["approval_id"].as_str().unwrap().to_owned();
    gw.cli(&["approval", "deny", &deny_id, "--reason", "too large"], Some(&t.approver)).await.ok();
    let denied: Value = serde_json::from_str(
        &gw.cli(&["approval", "list", "--state", "denied", "-o", "json"], Some(&t.approver)).await.ok().stdout,
    )
    .unwrap();
    assert_eq!(denied["approvals"][0]["id"], deny_id.as_str());
    assert_eq!(denied["approvals"][0]["reason"], "too large");
    gw.cli(&["approval", "approve", "0193a000-0000-7000-8000-000000000000"], Some(&t.approver)).await.code(6);

    // The audit log, through the CLI.
    let records = gw.records_at_least(&t.admin, 4).await;
    assert!(records.iter().any(|r| r["id"] == charge_id.as_str() && r["function"] == "payments"));

    let show = gw.cli(&["audit", "show", &refund_id], Some(&t.admin)).await.ok().stdout;
    for needle in [
        "agent-7 via biscuit",
        "refunds (http)",
        "refunds need a finance lead",
        &approval_id,
        "fin-lead",
        "\"amount\": 5000",
        "request: POST /fn/refunds",
    ] {
        assert!(show.contains(needle), "missing {needle:?}:\n{show}");
    }

    let r = gw.cli(&["audit", "verify"], Some(&t.admin)).await.ok();
    assert!(r.stdout.contains("every chain verifies"), "{}", r.stdout);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit.jsonl");
    gw.cli(
        &["audit", "export", "--format", "jsonl", "--out", out.to_str().unwrap(), "--page-size", "2"],
        Some(&t.admin),
    )
    .await
    .ok();
    let exported: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(exported.len() >= records.len(), "{} < {}", exported.len(), records.len());
    let seqs: Vec<u64> = exported.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "export is in chain order, no gaps");

    // Only admins read the audit log; no token at all is unauthenticated.
    assert!(gw.cli(&["audit", "verify"], Some(&t.agent)).await.code(5).stderr.contains("admin_groups"));
    assert!(gw.cli(&["audit", "verify"], None).await.code(4).stderr.contains("CLOAKROOM_TOKEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_audit_tail_follows_cloakroomd() {
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let gw = Gateway::start(&root, &upstream.url()).await;
    let (status, first, _) = gw.call(&t.agent, "/fn/payments/a", json!({"n": 1}), None).await;
    assert_eq!(status, 200, "{}", gw.log());
    gw.records_at_least(&t.admin, 1).await;

    let mut child = common::cmd(&["--admin", &gw.admin_url(), "audit", "tail", "-o", "json", "--interval", "100ms"])
        .env("CLOAKROOM_TOKEN", &t.admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let next = || -> Value {
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(60)).expect("a line from audit tail")).unwrap()
    };
    assert_eq!(next()["id"], first.as_str());
    let (_, second, _) = gw.call(&t.agent, "/fn/payments/b", json!({"n": 2}), None).await;
    let (_, third, _) = gw.call(&t.agent, "/fn/payments/c", json!({"n": 3}), None).await;
    assert_eq!(next()["id"], second.as_str());
    assert_eq!(next()["id"], third.as_str());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_secret_put_list_rm_against_cloakroomd() {
    const VALUE: &str = "sk_live_cli_e2e_0123456789abcdef";
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let gw = Gateway::start(&root, &upstream.url()).await;

    // Put a value with a binding; the CLI prints only the placeholder.
    let r = gw
        .cli_stdin(
            &[
                "secret",
                "put",
                "stripe_key",
                "--function",
                "payments",
                "--location",
                "header:X-Api-Key",
                "--group",
                "agents",
            ],
            Some(&t.admin),
            Some(format!("{VALUE}\n").as_bytes()),
        )
        .await
        .ok();
    let placeholder = r.stdout.trim().to_owned();
    assert!(placeholder.starts_with("cloak_") && placeholder.len() == 32, "{}", r.stdout);
    assert!(!r.stdout.contains(VALUE) && !r.stderr.contains(VALUE));

    // The list shows it with its binding, never the value.
    let list = gw.cli(&["secret", "list"], Some(&t.admin)).await.ok().stdout;
    let row: Vec<&str> = list.lines().find(|l| l.starts_with("stripe_key")).expect(&list).split_whitespace().collect();
    assert_eq!(row, ["stripe_key", placeholder.as_str(), "payments", "header:X-Api-Key", "agents", "-"], "{list}");
    assert!(list.lines().any(|l| l.starts_with("declared_key")), "config-declared secrets are listed: {list}");
    assert!(!list.contains(VALUE));

    // The placeholder works through the gateway: the function gets the value. (Masking
    // of the answer is the gateway's business and tested there.)
    let (status, call_id, _) =
        gw.call_with_headers(&t.agent, "/fn/payments/charge", &[("X-Api-Key", &placeholder)]).await;
    assert_eq!(status, 200, "{}", gw.log());
    let seen = upstream.requests().last().unwrap().header("x-api-key");
    assert_eq!(seen.as_deref(), Some(VALUE));

    // The auditor sees the secret used, by name.
    gw.records_at_least(&t.admin, 1).await;
    let show = gw.cli(&["audit", "show", &call_id], Some(&t.admin)).await.ok().stdout;
    assert!(show.contains(&format!("stripe_key ({placeholder}) at header:x-api-key")), "{show}");
    assert!(!show.contains(VALUE), "audit show must not print the value: {show}");

    // A different binding for a config-declared name conflicts (exit 7).
    let r = gw
        .cli_stdin(
            &["secret", "put", "declared_key", "--function", "refunds"],
            Some(&t.admin),
            Some(b"another-value-123"),
        )
        .await
        .code(7);
    assert!(r.stderr.contains("conflict"), "{}", r.stderr);
    assert!(!r.stderr.contains("another-value-123"));

    // Removing it, twice.
    gw.cli(&["secret", "rm", "stripe_key"], Some(&t.admin)).await.ok();
    gw.cli(&["secret", "rm", "stripe_key"], Some(&t.admin)).await.code(6);
    // Agents are not admins.
    gw.cli(&["secret", "list"], Some(&t.agent)).await.code(5);
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_policy_diff_replays_the_gateways_records_against_a_new_config() {
    let upstream = RecordingUpstream::echo().await;
    let (root, t) = tokens();
    let gw = Gateway::start(&root, &upstream.url()).await;
    for n in 0..2 {
        let (status, _, _) = gw.call(&t.agent, "/fn/payments/charge", json!({"n": n}), None).await;
        assert_eq!(status, 200, "{}", gw.log());
    }
    let (status, refund_id, _) = gw.call(&t.agent, "/fn/refunds", json!({"amount": 5}), None).await;
    assert_eq!(status, 202, "{}", gw.log());
    gw.records_at_least(&t.admin, 3).await;

    // The new configuration drops the payments rule and lets agents refund unheld.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.toml");
    std::fs::write(
        &new,
        "[[policy.rules]]\nname = \"agents may refund\"\neffect = \"allow\"\nfunctions = [\"refunds\"]\ngroups = [\"agents\"]\n",
    )
    .unwrap();
    let r = gw
        .cli(&["policy", "diff", "--config", new.to_str().unwrap(), "--since", "1h", "-o", "json"], Some(&t.admin))
        .await
        .ok();
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["replayed"], 3, "{report:#}");
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{report:#}");
    let payments = changes.iter().find(|g| g["function"] == "payments").unwrap();
    assert_eq!((&payments["from"], &payments["to"], &payments["calls"]), (&json!("allow"), &json!("deny"), &json!(2)));
    assert_eq!(payments["rule_then"], "agents may call payments");
    assert!(payments["rule_now"].is_null(), "{payments}");
    let refunds = changes.iter().find(|g| g["function"] == "refunds").unwrap();
    assert_eq!(
        (&refunds["from"], &refunds["to"], &refunds["rule_now"]),
        (&json!("approve"), &json!("allow"), &json!("agents may refund"))
    );
    assert_eq!(refunds["examples"], json!([refund_id]));
    assert!(
        report["caveats"].as_object().unwrap().keys().any(|c| c.contains("Biscuit")),
        "the callers' tokens are not recorded: {report:#}"
    );

    let human = gw
        .cli(&["policy", "diff", "--config", new.to_str().unwrap(), "--function", "refunds"], Some(&t.admin))
        .await
        .ok()
        .stdout;
    assert!(human.contains("held -> allowed") && !human.contains("payments"), "{human}");
    // Reading the audit log needs an admin.
    gw.cli(&["policy", "diff", "--config", new.to_str().unwrap()], Some(&t.agent)).await.code(5);
}
