//! The JSON-lines export: one canonical record per line, verifiable offline.
mod common;

use std::sync::Arc;

use cloakroom_audit::{verify_jsonl, AuditConfig, AuditLog, BreakKind, Durability, NoRedaction};
use common::sample_record;

/// Writes `n` records with an export and returns the directory and the export's lines.
async fn exported(n: usize) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        durability: Durability::Batched,
        export_jsonl: Some(dir.path().join("audit.jsonl")),
        chain_id: Some("replica-a".into()),
        ..AuditConfig::default()
    };
    let log = AuditLog::open(&config, dir.path(), Arc::new(NoRedaction)).await.unwrap();
    for i in 0..n {
        let mut r = sample_record(i);
        // Text that needs escaping must hash the same everywhere.
        r.request.path = format!("/fn/payments/\u{e9}t\u{e9}?q=\"{i}\"\t\u{1}");
        log.append(r).await.unwrap();
    }
    log.close().await;
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    (dir, text.lines().map(str::to_owned).collect())
}

fn rewrite(dir: &tempfile::TempDir, lines: &[String]) -> std::path::PathBuf {
    let path = dir.path().join("tampered.jsonl");
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    path
}

fn kind(path: &std::path::Path) -> BreakKind {
    let report = verify_jsonl(path).unwrap();
    report.chains[0].first_break.clone().expect("a break is reported").kind
}

#[tokio::test]
async fn the_export_has_one_canonical_record_per_line_and_verifies() {
    let (dir, lines) = exported(5).await;
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["seq"], i as u64 + 1);
        assert_eq!(&cloakroom_audit::chain::canonical_json(&v).unwrap(), line, "stored text is canonical");
    }
    let report = verify_jsonl(&dir.path().join("audit.jsonl")).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chains[0].records, 5);
}

#[tokio::test]
async fn edited_lines_are_found() {
    let (dir, mut lines) = exported(4).await;
    lines[2] = lines[2].replace("\"status\":200", "\"status\":500");
    assert!(matches!(kind(&rewrite(&dir, &lines)), BreakKind::Altered { .. }));
}

#[tokio::test]
async fn removed_lines_are_found() {
    let (dir, mut lines) = exported(4).await;
    lines.remove(1);
    assert_eq!(kind(&rewrite(&dir, &lines)), BreakKind::Removed { from: 2, to: 2 });
}

#[tokio::test]
async fn swapped_lines_are_found() {
    let (dir, mut lines) = exported(4).await;
    lines.swap(1, 2);
    assert_eq!(kind(&rewrite(&dir, &lines)), BreakKind::Reordered { expected: 2, found: 3 });
}

#[tokio::test]
async fn duplicated_lines_are_found() {
    let (dir, mut lines) = exported(4).await;
    let copy = lines[1].clone();
    lines.insert(2, copy);
    assert!(matches!(kind(&rewrite(&dir, &lines)), BreakKind::Inserted { .. }));
}

/// The documented offline check (docs/audit.md), run with Python's standard library:
/// an auditor needs nothing from Cloakroom to verify an export.
const PYTHON_VERIFY: &str = r#"
import hashlib, json, sys
heads = {}
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    rec = json.loads(line)
    claimed = rec.pop("hash")
    canon = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if hashlib.sha256(canon.encode("utf-8")).hexdigest() != claimed:
        sys.exit(f"line {n}: altered")
    seq, prev = heads.get(rec["chain_id"], (0, "0" * 64))
    if rec["seq"] != seq + 1 or rec["prev_hash"] != prev:
        sys.exit(f"line {n}: broken link")
    heads[rec["chain_id"]] = (rec["seq"], claimed)
print("ok", {c: s for c, (s, _) in heads.items()})
"#;

fn python(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new("python3").arg("-c").arg(PYTHON_VERIFY).arg(path).output().expect("python3 runs")
}

#[tokio::test]
async fn an_auditor_can_verify_an_export_with_python_alone() {
    let (dir, mut lines) = exported(3).await;
    let out = python(&dir.path().join("audit.jsonl"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("'replica-a': 3"));
    lines[1] = lines[1].replace("alice", "mallory");
    let out = python(&rewrite(&dir, &lines));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: altered"));
}
