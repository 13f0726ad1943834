//! `cloakroom policy diff --from FILE.jsonl`: recorded calls replayed against a new
//! configuration, offline (the real binary, no gateway).

mod common;

use cloakroom_audit::{AuditRecord, RecordIdentity};
use cloakroom_core::{ApprovalRef, CallId, Decision, Protocol};
use common::run;
use serde_json::Value;

const NEW_CONFIG: &str = r#"
[[policy.rules]]
name = "bob may refund"
effect = "allow"
functions = ["payments/refund"]
subjects = ["bob"]

[[policy.rules]]
name = "refunds need approval"
effect = "approve"
functions = ["payments/refund"]
groups = ["finance"]
approvers = ["leads"]

[[policy.rules]]
name = "interns may echo"
effect = "allow"
functions = ["echo"]
groups = ["interns"]

[[policy.rules]]
name = "interns are held"
effect = "approve"
functions = ["echo"]
groups = ["interns"]
approvers = ["leads"]

[[policy.rules]]
name = "a shadow rule does not count"
effect = "deny"
functions = ["payments/refund"]
mode = "shadow"
"#;

fn record(subject: &str, groups: &[&str], function: &str, decision: Decision, days_ago: i64) -> AuditRecord {
    let when = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let mut r = AuditRecord::new(CallId::new(), when);
    r.identity = Some(RecordIdentity {
        subject: subject.into(),
        issuer: "api_key".into(),
        method: "api_key".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    });
    r.function = Some(function.into());
    r.protocol = Some(Protocol::Http);
    r.request.method = "POST".into();
    r.decision = Some((&decision).into());
    r
}

/// The export, its records in order (ids of interest returned), and the new config.
fn files() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut approved =
        record("carol", &["finance"], "payments/refund", Decision::allow("refunds need approval", "ok"), 1);
    approved.approval = Some(ApprovalRef {
        id: "ap1".into(),
        requested_by: "carol".into(),
        decided_by: Some("lee".into()),
        decided_at: None,
    });
    let mut unauthenticated = AuditRecord::now(CallId::new());
    unauthenticated.request.method = "POST".into();
    let records = [
        record("alice", &["ops"], "echo", Decision::allow("ops may echo", "allowed by rule"), 1),
        record("alice", &["ops"], "echo", Decision::allow("ops may echo", "allowed by rule"), 2),
        record("bob", &[], "payments/refund", Decision::default_deny(), 1),
        approved,
        record("dave", &["interns"], "echo", Decision::allow("interns may echo", "allowed by rule"), 1),
        record("alice", &["ops"], "echo", Decision::allow("ops may echo", "allowed by rule"), 40),
        unauthenticated,
    ];
    let jsonl: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(dir.path().join("audit.jsonl"), jsonl).unwrap();
    std::fs::write(dir.path().join("new.toml"), NEW_CONFIG).unwrap();
    (dir, records.iter().map(|r| r.id.clone()).collect())
}

fn diff(dir: &tempfile::TempDir, extra: &[&str]) -> Value {
    let (config, from) = (dir.path().join("new.toml"), dir.path().join("audit.jsonl"));
    let mut args =
        vec!["policy", "diff", "--config", config.to_str().unwrap(), "--from", from.to_str().unwrap(), "-o", "json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run(&args).ok().stdout).unwrap()
}

fn group<'a>(report: &'a Value, function: &str, from: &str, to: &str) -> &'a Value {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["function"] == function && g["from"] == from && g["to"] == to)
        .unwrap_or_else(|| panic!("no {function} {from} -> {to} in {report:#}"))
}

#[test]
fn diff_groups_what_would_change_by_function_and_rule() {
    let (dir, ids) = files();
    let r = diff(&dir, &["--since", "7d"]);
    assert_eq!(r["read"], 7, "{r:#}");
    // The 40-day-old call is outside --since; the unauthenticated one cannot be replayed.
    assert_eq!(r["replayed"], 5, "{r:#}");
    assert_eq!(r["unchanged"], 1, "the approved refund is still held for approval: {r:#}");
    assert_eq!(r["skipped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 1, "{r:#}");
    let denied = group(&r, "echo", "allow", "deny");
    assert_eq!(
        (denied["calls"].as_u64(), &denied["rule_then"], &denied["rule_now"]),
        (Some(2), &"ops may echo".into(), &Value::Null)
    );
    assert_eq!(denied["examples"].as_array().unwrap().len(), 2);
    assert!(denied["examples"].as_array().unwrap().contains(&ids[0].clone().into()));
    let allowed = group(&r, "payments/refund", "deny", "allow");
    assert_eq!((allowed["calls"].as_u64(), &allowed["rule_now"]), (Some(1), &"bob may refund".into()));
    let held = group(&r, "echo", "allow", "approve");
    assert_eq!((held["calls"].as_u64(), &held["rule_now"]), (Some(1), &"interns are held".into()));
    assert_eq!(r["changes"].as_array().unwrap().len(), 3, "{r:#}");

    // Without --since the old call counts too.
    let all = diff(&dir, &[]);
    assert_eq!(group(&all, "echo", "allow", "deny")["calls"], 3, "{all:#}");
}

#[test]
fn diff_filters_by_function_glob() {
    let (dir, _) = files();
    let r = diff(&dir, &["--function", "payments/*"]);
    assert_eq!(r["replayed"], 2, "{r:#}");
    assert_eq!(r["changes"].as_array().unwrap().len(), 1, "{r:#}");
    group(&r, "payments/refund", "deny", "allow");
}

#[test]
fn diff_human_output_is_a_table_and_a_summary() {
    let (dir, _) = files();
    let (config, from) = (dir.path().join("new.toml"), dir.path().join("audit.jsonl"));
    let out =
        run(&["policy", "diff", "--config", config.to_str().unwrap(), "--from", from.to_str().unwrap()]).ok().stdout;
    assert!(out.contains("FUNCTION") && out.contains("allowed -> denied"), "{out}");
    assert!(out.contains("ops may echo -> (default deny)"), "{out}");
    assert!(out.contains("denied -> allowed") && out.contains("allowed -> held"), "{out}");
    assert!(out.contains("skipped 1: "), "{out}");
    assert!(out.contains("7 records read, 6 replayed: 5 would change, 1 unchanged."), "{out}");
}

#[test]
fn diff_reports_a_line_that_is_not_json() {
    let (dir, _) = files();
    std::fs::write(dir.path().join("audit.jsonl"), "{not json\n").unwrap();
    let (config, from) = (dir.path().join("new.toml"), dir.path().join("audit.jsonl"));
    let r = run(&["policy", "diff", "--config", config.to_str().unwrap(), "--from", from.to_str().unwrap()]).code(1);
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
}
