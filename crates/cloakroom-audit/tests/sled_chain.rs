//! The embedded sled sink: chaining, reopening, queries and tampering with stored bytes.
mod common;

use cloakroom_audit::{verify_store, BreakKind, Durability, RecordQuery, Since, SledSink};
use common::{append_n, sample_record, sled_log};

const CHAIN: &str = "replica-a";

/// Writes `n` records in a fresh directory, closes the log and returns the directory.
async fn written(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = sled_log(dir.path(), Durability::Batched).await;
    append_n(&log, n).await;
    log.close().await;
    dir
}

fn open_tree(dir: &tempfile::TempDir) -> (SledSink, sled::Tree) {
    let sink = SledSink::open(&dir.path().join("audit")).unwrap();
    let tree = sink.chain_tree(CHAIN).unwrap();
    (sink, tree)
}

/// Edits the stored bytes of the chain: every record line of every run, in order,
/// handed to `f`; what it leaves is written back into the first run's value.
fn edit_lines(tree: &sled::Tree, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let runs: Vec<(sled::IVec, sled::IVec)> = tree.scan_prefix(b"r").map(Result::unwrap).collect();
    let mut lines: Vec<Vec<u8>> = runs.iter().flat_map(|(_, v)| v.split(|b| *b == b'\n').map(<[u8]>::to_vec)).collect();
    f(&mut lines);
    for (k, _) in &runs[1..] {
        tree.remove(k).unwrap();
    }
    tree.insert(&runs[0].0, lines.join(&b'\n')).unwrap();
}

fn first_break(report: &cloakroom_audit::VerifyReport) -> &cloakroom_audit::ChainBreak {
    assert_eq!(report.chains.len(), 1);
    report.chains[0].first_break.as_ref().expect("a break is reported")
}

#[tokio::test]
async fn records_chain_and_verify_and_survive_reopening() {
    let dir = written(5).await;
    let log = sled_log(dir.path(), Durability::Sync).await;
    let appended = log.append(sample_record(99)).await.unwrap();
    assert_eq!(appended.seq, 6, "the chain continues after a restart");
    let records = log.records(&RecordQuery::from_start(100)).await.unwrap();
    assert_eq!(records.len(), 6);
    for w in records.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chains[0].head_seq, 6);
    assert_eq!(report.chains[0].head_hash, appended.hash);
    log.close().await;
}

#[tokio::test]
async fn queries_since_seq_and_time_and_by_call_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = sled_log(dir.path(), Durability::Sync).await;
    append_n(&log, 3).await;
    let t = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(5);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let last = sample_record(7);
    let id = last.call_id().unwrap();
    log.append(last).await.unwrap();

    let q = |since, limit| RecordQuery { chain_id: None, since, limit };
    let after2 = log.records(&q(Since::Seq(2), 10)).await.unwrap();
    assert_eq!(after2.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    let limited = log.records(&q(Since::Start, 2)).await.unwrap();
    assert_eq!(limited.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    let recent = log.records(&q(Since::Time(t), 10)).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
    assert_eq!(log.record(&id).await.unwrap().unwrap().seq, 4);
    assert!(log.record(&cloakroom_core::CallId::new()).await.unwrap().is_none());

    let mut out = Vec::new();
    assert_eq!(log.export_jsonl(&q(Since::Start, 10), &mut out).await.unwrap(), 4);
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[3].contains(&id.to_string()));
    // An export is checkable offline.
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &out).unwrap();
    let report = cloakroom_audit::verify_jsonl(&file).unwrap();
    assert!(report.is_ok() && report.chains[0].head_seq == 4, "{report:?}");
    log.close().await;
}

#[tokio::test]
async fn altered_record_bytes_are_found() {
    let dir = written(5).await;
    let (sink, tree) = open_tree(&dir);
    edit_lines(&tree, |lines| {
        let stored = String::from_utf8(lines[2].clone()).unwrap();
        let edited = stored.replace("\"subject\":\"alice\"", "\"subject\":\"mallory\"");
        assert_ne!(stored, edited);
        lines[2] = edited.into_bytes();
    });
    let report = verify_store(&sink).await.unwrap();
    let b = first_break(&report);
    assert!(matches!(b.kind, BreakKind::Altered { .. }), "{b:?}");
    assert_eq!(b.expected_seq, 3);
    assert_eq!(report.chains[0].head_seq, 2);
}

#[tokio::test]
async fn garbage_bytes_are_found() {
    let dir = written(3).await;
    let (sink, tree) = open_tree(&dir);
    edit_lines(&tree, |lines| lines[1] = b"{not json".to_vec());
    let report = verify_store(&sink).await.unwrap();
    assert!(matches!(first_break(&report).kind, BreakKind::Altered { .. }));
}

#[tokio::test]
async fn removed_record_is_found() {
    let dir = written(5).await;
    let (sink, tree) = open_tree(&dir);
    edit_lines(&tree, |lines| {
        lines.remove(2);
    });
    let report = verify_store(&sink).await.unwrap();
    assert_eq!(first_break(&report).kind, BreakKind::Removed { from: 3, to: 3 });
}

#[tokio::test]
async fn removed_first_record_is_found() {
    let dir = written(3).await;
    let (sink, tree) = open_tree(&dir);
    edit_lines(&tree, |lines| {
        lines.remove(0);
    });
    let report = verify_store(&sink).await.unwrap();
    assert_eq!(first_break(&report).kind, BreakKind::Removed { from: 1, to: 1 });
}

#[tokio::test]
async fn reordered_records_are_found() {
    let dir = written(5).await;
    let (sink, tree) = open_tree(&dir);
    edit_lines(&tree, |lines| lines.swap(1, 2));
    let report = verify_store(&sink).await.unwrap();
    assert_eq!(first_break(&report).kind, BreakKind::Reordered { expected: 2, found: 3 });
}

#[tokio::test]
async fn inserted_record_is_found() {
    let dir = written(4).await;
    let (sink, tree) = open_tree(&dir);
    // A forged record with a correct hash of its own, slotted in at seq 3: everything
    // from there is shifted one place up.
    let mut forged = sample_record(42);
    forged.chain_id = CHAIN.into();
    edit_lines(&tree, |lines| {
        let prev: cloakroom_audit::AuditRecord = serde_json::from_slice(&lines[1]).unwrap();
        let text = cloakroom_audit::chain::seal(&mut forged, Some((prev.seq, prev.hash.as_str()))).unwrap();
        lines.insert(2, text.into_bytes());
    });
    let report = verify_store(&sink).await.unwrap();
    let b = first_break(&report);
    assert!(matches!(b.kind, BreakKind::Inserted { .. }), "{b:?}");
    assert_eq!(b.position, 3, "the forged record links; the next original does not");
}

#[tokio::test]
async fn untouched_store_verifies() {
    let dir = written(10).await;
    let (sink, _) = open_tree(&dir);
    let report = verify_store(&sink).await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.chains[0].records, 10);
}
