//! Behaviours both embedded stores must have, the segment store (the default) and the
//! legacy sled store: one body per behaviour, which `segment_chain.rs` and `sled_chain.rs`
//! each run with their own store under a test of the same name. What only one store does
//! (its layout, recovery, migration, and how its stored bytes are edited) stays in that
//! store's file.

use std::path::Path;

use cloakroom_audit::{
    verify_store, AuditLog, AuditRecord, AuditStore, BreakKind, ChainBreak, Durability, RecordQuery, SegmentStore,
    Since, SledSink, VerifyReport,
};

use super::{append_n, embedded_log, sample_record, sled_log};

/// The chain id the test logs write to.
pub const CHAIN: &str = "replica-a";

/// An embedded store under test: how a log over it is opened, and the store itself
/// opened on what a log wrote (for verifying and editing its stored bytes).
pub trait EmbeddedStore: AuditStore + Sized {
    /// What the store's `kind()` says.
    const KIND: &'static str;

    /// Opens a log over this store in `<dir>/audit`, writing chain [`CHAIN`].
    async fn open_log(dir: &Path, durability: Durability) -> AuditLog;

    /// Opens the store a log wrote in `dir` (that log closed).
    async fn open_stored(dir: &Path) -> Self;
}

impl EmbeddedStore for SegmentStore {
    const KIND: &'static str = "segment";

    /// The log the gateway opens by default ([`embedded_log`]).
    async fn open_log(dir: &Path, durability: Durability) -> AuditLog {
        embedded_log(dir, durability).await
    }

    async fn open_stored(dir: &Path) -> Self {
        SegmentStore::open(&dir.join("audit")).await.unwrap()
    }
}

impl EmbeddedStore for SledSink {
    const KIND: &'static str = "sled";

    async fn open_log(dir: &Path, durability: Durability) -> AuditLog {
        sled_log(dir, durability).await
    }

    async fn open_stored(dir: &Path) -> Self {
        SledSink::open(&dir.join("audit")).unwrap()
    }
}

/// What a tamper test does to the stored record lines of chain [`CHAIN`]: it is handed
/// them (without their `\n`, in stored order) and what it leaves is written back.
pub type LineEdit<'a> = &'a mut dyn FnMut(&mut Vec<Vec<u8>>);

/// Writes `n` records through a log over store `S` in a fresh data directory, closes the
/// log and returns the directory.
pub async fn written<S: EmbeddedStore>(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = S::open_log(dir.path(), Durability::Batched).await;
    append_n(&log, n).await;
    log.close().await;
    dir
}

/// The first break of the one chain of `report`.
pub fn first_break(report: &VerifyReport) -> &ChainBreak {
    assert_eq!(report.chains.len(), 1);
    report.chains[0].first_break.as_ref().expect("a break is reported")
}

/// Records chain, verify, and the chain continues after the log is reopened. Returns the
/// data directory (six records, the log closed and dropped) for store-specific checks.
pub async fn records_chain_and_verify_and_survive_reopening<S: EmbeddedStore>() -> tempfile::TempDir {
    let dir = written::<S>(5).await;
    let log = S::open_log(dir.path(), Durability::Sync).await;
    assert_eq!(log.store().kind(), S::KIND, "the log is over the store under test");
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
    assert_eq!(log.store().head(CHAIN).await.unwrap(), Some((6, appended.hash.clone())));
    log.close().await;
    drop(log);
    dir
}

/// Queries from a seq, from a time, with a limit, of another chain and by call id; an
/// export holds the same records and verifies offline.
pub async fn queries_since_seq_and_time_and_by_call_id<S: EmbeddedStore>() {
    let dir = tempfile::tempdir().unwrap();
    let log = S::open_log(dir.path(), Durability::Sync).await;
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
    let other_chain = RecordQuery { chain_id: Some("replica-b".into()), since: Since::Start, limit: 10 };
    assert!(log.records(&other_chain).await.unwrap().is_empty());

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

/// `n` records written, the store opened, its stored lines edited by `edit_lines` (the
/// test file's way of editing that store's bytes) with `edit`, and the store verified.
async fn tampered<S: EmbeddedStore>(
    edit_lines: impl FnOnce(&S, LineEdit<'_>),
    n: usize,
    mut edit: impl FnMut(&mut Vec<Vec<u8>>),
) -> VerifyReport {
    let dir = written::<S>(n).await;
    let stored = S::open_stored(dir.path()).await;
    edit_lines(&stored, &mut edit);
    verify_store(&stored).await.unwrap()
}

/// A record whose stored text is changed (the subject) breaks the chain there.
pub async fn altered_record_bytes_are_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let report = tampered(edit_lines, 5, |lines| {
        let stored = String::from_utf8(lines[2].clone()).unwrap();
        let edited = stored.replace("\"subject\":\"alice\"", "\"subject\":\"mallory\"");
        assert_ne!(stored, edited);
        lines[2] = edited.into_bytes();
    })
    .await;
    let b = first_break(&report);
    assert!(matches!(b.kind, BreakKind::Altered { .. }), "{b:?}");
    assert_eq!(b.expected_seq, 3);
    assert_eq!(report.chains[0].head_seq, 2);
}

/// A stored line that is no record is reported as altered.
pub async fn garbage_bytes_are_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let report = tampered(edit_lines, 3, |lines| lines[1] = b"{not json".to_vec()).await;
    assert!(matches!(first_break(&report).kind, BreakKind::Altered { .. }));
}

/// A record taken out of the middle is reported as removed.
pub async fn removed_record_is_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let report = tampered(edit_lines, 5, |lines| {
        lines.remove(2);
    })
    .await;
    assert_eq!(first_break(&report).kind, BreakKind::Removed { from: 3, to: 3 });
}

/// The first record taken out is reported as removed.
pub async fn removed_first_record_is_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let report = tampered(edit_lines, 3, |lines| {
        lines.remove(0);
    })
    .await;
    assert_eq!(first_break(&report).kind, BreakKind::Removed { from: 1, to: 1 });
}

/// Two records swapped are reported as reordered.
pub async fn reordered_records_are_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let report = tampered(edit_lines, 5, |lines| lines.swap(1, 2)).await;
    assert_eq!(first_break(&report).kind, BreakKind::Reordered { expected: 2, found: 3 });
}

/// A forged record with a correct hash of its own, slotted in at seq 3: everything from
/// there is shifted one place up, and the break is where the next original no longer links.
pub async fn inserted_record_is_found<S: EmbeddedStore>(edit_lines: impl FnOnce(&S, LineEdit<'_>)) {
    let mut forged = sample_record(42);
    forged.chain_id = CHAIN.into();
    let report = tampered(edit_lines, 4, |lines| {
        let prev: AuditRecord = serde_json::from_slice(&lines[1]).unwrap();
        let text = cloakroom_audit::chain::seal(&mut forged, Some((prev.seq, prev.hash.as_str()))).unwrap();
        lines.insert(2, text.into_bytes());
    })
    .await;
    let b = first_break(&report);
    assert!(matches!(b.kind, BreakKind::Inserted { .. }), "{b:?}");
    assert_eq!(b.position, 3, "the forged record links; the next original does not");
}

/// A store nobody edited verifies, every record counted.
pub async fn untouched_store_verifies<S: EmbeddedStore>() {
    let dir = written::<S>(10).await;
    let stored = S::open_stored(dir.path()).await;
    let report = verify_store(&stored).await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.chains[0].records, 10);
}
