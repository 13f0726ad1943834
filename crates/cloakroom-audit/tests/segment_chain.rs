//! The embedded segment store: chaining, reopening, segments, queries, tampering with
//! stored bytes, recovery after a crash and the migration from sled.
mod common;

use std::{path::Path, sync::Arc};

use cloakroom_audit::{
    verify_store, AuditConfig, AuditLog, AuditRecord, AuditSink, AuditStore, BreakKind, Durability, LogOptions,
    NoRedaction, RecordQuery, SealedRecord, SegmentStore, Since, SledSink,
};
use common::{
    append_n, embedded_log, sample_record, sled_log,
    store_behaviour::{self as behaviour, first_break, LineEdit, CHAIN},
};
use proptest::prelude::*;

/// Writes `n` records through the default embedded store in a fresh data directory,
/// closes the log and returns the directory.
async fn written(n: usize) -> tempfile::TempDir {
    behaviour::written::<SegmentStore>(n).await
}

/// A log over a segment store in `<dir>/audit` with segments of `segment_bytes`.
async fn small_segment_log(dir: &Path, segment_bytes: u64) -> (AuditLog, SegmentStore) {
    let store = SegmentStore::open_with_segment_bytes(&dir.join("audit"), segment_bytes).await.unwrap();
    let options =
        LogOptions::from_config(&AuditConfig { durability: Durability::Sync, ..AuditConfig::default() }, CHAIN);
    let log = AuditLog::with_sinks(Arc::new(store.clone()), None, options, Arc::new(NoRedaction)).await.unwrap();
    (log, store)
}

/// Writes `n` records through a log over segments of `segment_bytes` in `dir`, closes
/// and drops the log and returns its store.
async fn written_in_segments_of(dir: &Path, segment_bytes: u64, n: usize) -> SegmentStore {
    let (log, store) = small_segment_log(dir, segment_bytes).await;
    append_n(&log, n).await;
    log.close().await;
    drop(log);
    store
}

async fn open_store(dir: &tempfile::TempDir) -> SegmentStore {
    SegmentStore::open(&dir.path().join("audit")).await.unwrap()
}

/// The one `.log` of the chain (the stores written by `written` have one segment).
fn only_log(store: &SegmentStore) -> std::path::PathBuf {
    let logs = store.segment_logs(CHAIN).unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

/// Edits the stored lines of the chain's one `.log` file (without their `\n`) in place,
/// as an attacker with write access to the files would; the idx and calls files are left.
fn edit_log_file(store: &SegmentStore, edit: LineEdit<'_>) {
    let log = only_log(store);
    let bytes = std::fs::read(&log).unwrap();
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(lines.pop(), Some(Vec::new()), "the log ends with a newline");
    edit(&mut lines);
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    std::fs::write(&log, out).unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The number of complete lines of a log.
fn lines_of(log: &Path) -> u64 {
    std::fs::read(log).unwrap().iter().filter(|b| **b == b'\n').count() as u64
}

#[tokio::test]
async fn records_chain_and_verify_and_survive_reopening() {
    // The log opened as the gateway does (`embedded_log`) is over the segment store.
    let dir = behaviour::records_chain_and_verify_and_survive_reopening::<SegmentStore>().await;

    // The layout: one segment named by its first seq, an idx entry and a calls entry per record.
    let chain_dir = dir.path().join("audit/chains/replica-a");
    let log_file = chain_dir.join("00000000000000000001.log");
    assert_eq!(lines_of(&log_file), 6);
    assert_eq!(file_len(&chain_dir.join("00000000000000000001.idx")), 6 * 8);
    assert_eq!(file_len(&chain_dir.join("00000000000000000001.calls")), 6 * 24);
    let stored = std::fs::read_to_string(&log_file).unwrap();
    let exported: Vec<Vec<u8>> = open_store(&dir).await.query(&RecordQuery::from_start(10), CHAIN).await.unwrap();
    assert_eq!(stored.lines().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>(), exported, "stored text as hashed");
}

#[tokio::test]
async fn queries_since_seq_and_time_and_by_call_id() {
    behaviour::queries_since_seq_and_time_and_by_call_id::<SegmentStore>().await;
}

#[tokio::test]
async fn records_span_segments_and_every_read_crosses_them() {
    let dir = tempfile::tempdir().unwrap();
    // Records are ~700 bytes: a new segment every few records.
    let (log, store) = small_segment_log(dir.path(), 2000).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = sample_record(i);
        ids.push(r.call_id().unwrap());
        log.append(r).await.unwrap();
    }
    let logs = store.segment_logs(CHAIN).unwrap();
    assert!(logs.len() >= 8, "{logs:?}");
    // Each segment is named by its first seq and holds the records up to the next one.
    let firsts: Vec<u64> = logs.iter().map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap()).collect();
    assert_eq!(firsts[0], 1);
    let longest = store.scan(CHAIN, None, 100).await.unwrap().iter().map(|(_, v)| v.len() as u64 + 1).max().unwrap();
    for (i, p) in logs.iter().enumerate() {
        let next = firsts.get(i + 1).copied().unwrap_or(41);
        assert_eq!(lines_of(p), next - firsts[i], "{p:?}");
        assert!(file_len(p) < 2000 + longest, "a segment is closed once it reaches the limit");
    }

    let report = verify_store(&store).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.chains[0].records, report.chains[0].head_seq), (40, 40));
    for after in [None, Some(1), Some(3), Some(17), Some(39), Some(40)] {
        let page = store.scan(CHAIN, after, 5).await.unwrap();
        let from = after.map_or(1, |a| a + 1);
        let want: Vec<u64> = (from..=40).take(5).collect();
        assert_eq!(page.iter().map(|(k, _)| *k).collect::<Vec<_>>(), want, "after {after:?}");
        for (k, bytes) in &page {
            let r: AuditRecord = serde_json::from_slice(bytes).unwrap();
            assert_eq!(r.seq, *k);
        }
    }
    let since = log.records(&RecordQuery { chain_id: None, since: Since::Seq(22), limit: 100 }).await.unwrap();
    assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), (23..=40).collect::<Vec<_>>());
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(log.record(id).await.unwrap().unwrap().seq, i as u64 + 1);
    }
    log.close().await;
    drop(log);
    drop(store);

    // Reopened, the chain continues in the last segment or a new one.
    let (log, store) = small_segment_log(dir.path(), 2000).await;
    assert_eq!(log.append(sample_record(40)).await.unwrap().seq, 41);
    assert!(verify_store(&store).await.unwrap().is_ok());
    log.close().await;
}

#[tokio::test]
async fn a_hole_left_by_a_lost_batch_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = SegmentStore::open(&dir.path().join("audit")).await.unwrap();
    let sealed = |seq: u64| {
        let mut r = sample_record(seq as usize);
        r.chain_id = CHAIN.into();
        r.seq = seq;
        SealedRecord {
            chain_id: CHAIN.into(),
            seq,
            call_id: r.id.clone(),
            time: r.time.clone(),
            hash: format!("h{seq}"),
            text: serde_json::to_string(&r).unwrap(),
        }
    };
    store.append(&[sealed(1), sealed(2)]).await.unwrap();
    store.append(&[sealed(5), sealed(6)]).await.unwrap();
    let names: Vec<String> = store
        .segment_logs(CHAIN)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["00000000000000000001.log", "00000000000000000005.log"]);
    let keys: Vec<u64> = store.scan(CHAIN, None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [1, 2, 5, 6]);
    assert_eq!(store.scan(CHAIN, Some(2), 10).await.unwrap()[0].0, 5);

    // A batch retried after its write was kept: the stored part is skipped, not doubled.
    store.append(&[sealed(6), sealed(7)]).await.unwrap();
    let keys: Vec<u64> = store.scan(CHAIN, None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [1, 2, 5, 6, 7]);
    // A different record 7 would fork the chain: refused.
    let mut fork = sealed(7);
    fork.hash = "another".into();
    let err = store.append(&[fork, sealed(8)]).await.unwrap_err();
    assert!(err.to_string().contains("not after the stored head 7"), "{err}");
    // As are batches the store cannot keep apart.
    let mut newline = sealed(8);
    newline.text.push('\n');
    assert!(store.append(&[newline]).await.is_err());
    let mut other = sealed(9);
    other.chain_id = "replica-b".into();
    assert!(store.append(&[sealed(8), other]).await.is_err());
    assert_eq!(store.head(CHAIN).await.unwrap().unwrap().0, 7);
}

#[tokio::test]
async fn a_store_is_open_in_one_place_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_store(&dir).await;
    let err = SegmentStore::open(&dir.path().join("audit")).await.unwrap_err();
    assert!(err.to_string().contains("is open already"), "{err}");
    drop(first);
    open_store(&dir).await;
}

#[tokio::test]
async fn chain_ids_of_any_text_are_stored_under_safe_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = SegmentStore::open(&dir.path().join("audit")).await.unwrap();
    for chain in ["..", "a/b", "gw eu.1"] {
        let options = LogOptions::from_config(&AuditConfig::default(), chain);
        let log = AuditLog::with_sinks(Arc::new(store.clone()), None, options, Arc::new(NoRedaction)).await.unwrap();
        log.append(sample_record(1)).await.unwrap();
        log.close().await;
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("audit/chains"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["%2E%2E", "a%2Fb", "gw%20eu%2E1"]);
    assert_eq!(store.chain_ids().await.unwrap(), ["..", "a/b", "gw eu.1"]);
    let report = verify_store(&store).await.unwrap();
    assert!(report.is_ok() && report.chains.len() == 3, "{report:?}");
}

#[tokio::test]
async fn altered_record_bytes_are_found() {
    behaviour::altered_record_bytes_are_found(edit_log_file).await;
}

#[tokio::test]
async fn one_changed_byte_is_found_and_reopening_keeps_it() {
    let dir = written(5).await;
    let store = open_store(&dir).await;
    let log = only_log(&store);
    let mut bytes = std::fs::read(&log).unwrap();
    // The `3` of `"amount":3` in the fourth record's body: same length, other value.
    let fourth = bytes.split(|b| *b == b'\n').take(3).map(|l| l.len() + 1).sum::<usize>();
    let at = fourth + String::from_utf8_lossy(&bytes[fourth..]).find("amount\\\":3").unwrap() + "amount\\\":".len();
    bytes[at] = b'8';
    std::fs::write(&log, &bytes).unwrap();
    drop(store);
    // Recovery does not "repair" an edited log: it only rebuilds what is derived.
    let store = open_store(&dir).await;
    assert_eq!(std::fs::read(&log).unwrap(), bytes);
    let b = first_break(&verify_store(&store).await.unwrap()).clone();
    assert!(matches!(b.kind, BreakKind::Altered { .. }), "{b:?}");
    assert_eq!(b.expected_seq, 4);
}

#[tokio::test]
async fn garbage_bytes_are_found() {
    behaviour::garbage_bytes_are_found(edit_log_file).await;
}

#[tokio::test]
async fn removed_record_is_found() {
    behaviour::removed_record_is_found(edit_log_file).await;
}

#[tokio::test]
async fn removed_first_record_is_found() {
    behaviour::removed_first_record_is_found(edit_log_file).await;
}

#[tokio::test]
async fn reordered_records_are_found() {
    behaviour::reordered_records_are_found(edit_log_file).await;
}

#[tokio::test]
async fn inserted_record_is_found() {
    behaviour::inserted_record_is_found(edit_log_file).await;
}

#[tokio::test]
async fn a_truncated_closed_segment_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = written_in_segments_of(dir.path(), 2000, 20).await;
    let logs = store.segment_logs(CHAIN).unwrap();
    assert!(logs.len() >= 3);
    // Cut the first segment's last record and a half.
    let first = &logs[0];
    let bytes = std::fs::read(first).unwrap();
    let ends: Vec<usize> = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
    assert!(ends.len() >= 2, "{} records in the first segment", ends.len());
    // Line k (from 0) is cut in half, the lines after it are gone.
    let k = ends.len() - 2;
    let start = if k == 0 { 0 } else { ends[k - 1] + 1 };
    std::fs::write(first, &bytes[..start + (ends[k] - start) / 2]).unwrap();
    drop(store);
    let store = SegmentStore::open_with_segment_bytes(&dir.path().join("audit"), 2000).await.unwrap();
    let report = verify_store(&store).await.unwrap();
    let b = first_break(&report);
    // The half line is stored bytes of a closed segment: it is read and does not link.
    assert!(matches!(b.kind, BreakKind::Altered { .. } | BreakKind::Removed { .. }), "{b:?}");
    assert_eq!(b.expected_seq, k as u64 + 1);
}

#[tokio::test]
async fn a_truncated_last_segment_shortens_the_chain_which_only_an_anchor_shows() {
    let dir = written(5).await;
    let store = open_store(&dir).await;
    let log = only_log(&store);
    let bytes = std::fs::read(&log).unwrap();
    let third_end = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(2).unwrap().0;
    std::fs::write(&log, &bytes[..third_end + 10]).unwrap();
    // Read live, the bytes after the last newline are no record.
    let report = verify_store(&store).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chains[0].head_seq, 3);
    drop(store);
    // Reopened, the partial line is cut and the chain goes on from 3.
    let log_handle = embedded_log(dir.path(), Durability::Sync).await;
    assert_eq!(file_len(&log), third_end as u64 + 1);
    assert_eq!(log_handle.append(sample_record(5)).await.unwrap().seq, 4);
    log_handle.close().await;
}

#[tokio::test]
async fn untouched_store_verifies() {
    behaviour::untouched_store_verifies::<SegmentStore>().await;
}

/// Recovery: a crash leaves a partial line in the log and idx/calls files that are
/// short or long; reopening makes them match the log's complete lines exactly.
#[tokio::test]
async fn reopening_after_a_crash_cuts_partial_writes_and_rebuilds_the_indexes() {
    type Damage = fn(&Path, &Path, &Path);
    let cases: [(&str, Damage); 6] = [
        ("garbage tail", |log, _, _| append_bytes(log, b"{\"chain_id\":\"replica-a\",\"seq\":9")),
        ("garbage tail with a newline-free binary blob", |log, _, _| append_bytes(log, &[0xff; 5000])),
        ("short idx", |_, idx, _| shorten(idx, 8 * 2 + 3)),
        ("extra idx entries", |_, idx, _| append_bytes(idx, &[7; 8 * 3])),
        ("short calls and a partial log line", |log, _, calls| {
            shorten(calls, 24 + 5);
            append_bytes(log, b"{\"a\":");
        }),
        ("extra calls entries and a zeroed idx entry", |_, idx, calls| {
            append_bytes(calls, &[1; 24 * 2]);
            let mut b = std::fs::read(idx).unwrap();
            b[8..16].fill(0);
            std::fs::write(idx, b).unwrap();
        }),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = embedded_log(dir.path(), Durability::Sync).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            let r = sample_record(i);
            ids.push(r.call_id().unwrap());
            log.append(r).await.unwrap();
        }
        let head = log.store().head(CHAIN).await.unwrap();
        log.close().await;
        drop(log);
        let base = dir.path().join("audit/chains/replica-a/00000000000000000001");
        let (log_file, idx, calls) =
            (base.with_extension("log"), base.with_extension("idx"), base.with_extension("calls"));
        let good = (std::fs::read(&log_file).unwrap(), std::fs::read(&idx).unwrap(), std::fs::read(&calls).unwrap());
        damage(&log_file, &idx, &calls);

        let log = embedded_log(dir.path(), Durability::Sync).await;
        let repaired =
            (std::fs::read(&log_file).unwrap(), std::fs::read(&idx).unwrap(), std::fs::read(&calls).unwrap());
        assert!(repaired == good, "{name}: the files are back to the log's complete lines");
        assert_eq!(log.store().head(CHAIN).await.unwrap(), head, "{name}");
        let next = log.append(sample_record(9)).await.unwrap();
        assert_eq!(next.seq, 5, "{name}");
        ids.push(log.records(&RecordQuery::from_start(10)).await.unwrap()[4].call_id().unwrap());
        let report = log.verify().await.unwrap();
        assert!(report.is_ok() && report.chains[0].records == 5, "{name}: {report:?}");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(log.record(id).await.unwrap().map(|r| r.seq), Some(i as u64 + 1), "{name}");
        }
        assert_eq!(file_len(&idx), 5 * 8, "{name}");
        assert_eq!(file_len(&calls), 5 * 24, "{name}");
        log.close().await;
    }
}

#[tokio::test]
async fn a_segment_holding_only_a_partial_batch_is_removed_on_reopening() {
    let dir = tempfile::tempdir().unwrap();
    drop(written_in_segments_of(dir.path(), 1, 3).await);
    // A crash right after the fourth segment was created and half its batch written.
    let chain_dir = dir.path().join("audit/chains/replica-a");
    append_bytes(&chain_dir.join("00000000000000000004.log"), b"{\"chain_id\":");
    std::fs::write(chain_dir.join("00000000000000000004.idx"), [0; 8]).unwrap();
    let (log, store) = small_segment_log(dir.path(), 1).await;
    assert_eq!(store.segment_logs(CHAIN).unwrap().len(), 3);
    assert!(!chain_dir.join("00000000000000000004.idx").exists());
    assert_eq!(log.append(sample_record(3)).await.unwrap().seq, 4);
    assert_eq!(store.segment_logs(CHAIN).unwrap().len(), 4);
    assert!(verify_store(&store).await.unwrap().is_ok());
    log.close().await;
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(bytes).unwrap();
}

fn shorten(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

#[tokio::test]
async fn reads_while_appending_see_whole_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (log, store) = small_segment_log(dir.path(), 4096).await;
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                log.append(sample_record(i)).await.unwrap();
            }
        })
    };
    let mut seen = 0;
    while seen < 300 {
        let all = store.scan(CHAIN, None, usize::MAX).await.unwrap();
        for (i, (k, bytes)) in all.iter().enumerate() {
            assert_eq!(*k, i as u64 + 1);
            let r: AuditRecord = serde_json::from_slice(bytes).expect("a whole record");
            assert_eq!(r.seq, *k);
        }
        assert!(all.len() >= seen, "records never disappear");
        seen = all.len();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(verify_store(&store).await.unwrap().is_ok());
    log.close().await;
}

// === migration from sled ===

#[tokio::test]
async fn a_sled_store_is_migrated_once_and_kept_as_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    // Two chains in sled, one of them longer than a sled run (32 records).
    let mut heads = Vec::new();
    let mut ids = Vec::new();
    {
        let sled = SledSink::open(&audit).unwrap();
        for (chain, n) in [("replica-a", 70), ("replica-b", 3)] {
            let options = LogOptions::from_config(&AuditConfig::default(), chain);
            let log = AuditLog::with_sinks(Arc::new(sled.clone()), None, options, Arc::new(NoRedaction)).await.unwrap();
            for i in 0..n {
                let r = sample_record(i);
                ids.push((r.call_id().unwrap(), chain));
                log.append(r).await.unwrap();
            }
            log.close().await;
            heads.push((chain, sled.head(chain).await.unwrap().unwrap()));
        }
    }
    // A migration that crashed half way left this behind; it is started again.
    std::fs::create_dir_all(dir.path().join("audit.migrating/chains/stale")).unwrap();

    let store = SegmentStore::open(&audit).await.unwrap();
    assert!(audit.join("chains").is_dir());
    assert!(!dir.path().join("audit.migrating").exists());
    let backup = dir.path().join("audit.sled-backup");
    assert!(backup.join("conf").is_file() && backup.join("db").is_file(), "the sled store is kept");
    assert!(!audit.join("db").exists());
    assert_eq!(store.chain_ids().await.unwrap(), ["replica-a", "replica-b"]);
    let report = verify_store(&store).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chains.iter().map(|c| c.records).collect::<Vec<_>>(), [70, 3]);
    for (chain, head) in &heads {
        assert_eq!(store.head(chain).await.unwrap().as_ref(), Some(head));
    }
    for (id, chain) in &ids {
        let found = store.find(&id.to_string()).await.unwrap().expect("found after migration");
        let r: AuditRecord = serde_json::from_slice(&found).unwrap();
        assert_eq!((r.id, r.chain_id.as_str()), (id.to_string(), *chain));
    }
    // The backup still verifies as it was.
    let sled = SledSink::open(&backup).unwrap();
    assert_eq!(sled.head("replica-a").await.unwrap().as_ref(), Some(&heads[0].1));
    drop(sled);
    drop(store);

    // Opened again (through the log, as the gateway does): nothing to migrate.
    let before = std::fs::read(audit.join("chains/replica-a/00000000000000000001.log")).unwrap();
    let log = embedded_log(dir.path(), Durability::Sync).await;
    assert_eq!(log.append(sample_record(70)).await.unwrap().seq, 71, "the migrated chain continues");
    assert!(log.verify().await.unwrap().is_ok());
    log.close().await;
    drop(log);
    let after = std::fs::read(audit.join("chains/replica-a/00000000000000000001.log")).unwrap();
    assert_eq!(&after[..before.len()], &before[..]);
    let entries: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!entries.iter().any(|e| e.contains("migrating")), "{entries:?}");
}

#[tokio::test]
async fn a_migration_interrupted_between_its_renames_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let log = sled_log(dir.path(), Durability::Sync).await;
    append_n(&log, 4).await;
    let head = log.store().head(CHAIN).await.unwrap();
    log.close().await;
    drop(log);
    SegmentStore::open(&audit).await.unwrap();
    // As if the crash came after `audit` -> `audit.sled-backup`, before the second rename.
    std::fs::rename(&audit, dir.path().join("audit.migrating")).unwrap();
    let store = SegmentStore::open(&audit).await.unwrap();
    assert_eq!(store.head(CHAIN).await.unwrap(), head);
    assert!(!dir.path().join("audit.migrating").exists());
}

#[tokio::test]
async fn a_migration_does_not_overwrite_an_earlier_backup() {
    let dir = tempfile::tempdir().unwrap();
    let log = sled_log(dir.path(), Durability::Sync).await;
    append_n(&log, 2).await;
    log.close().await;
    drop(log);
    std::fs::create_dir_all(dir.path().join("audit.sled-backup")).unwrap();
    let err = SegmentStore::open(&dir.path().join("audit")).await.unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    assert!(dir.path().join("audit/db").is_file(), "the sled store is untouched");
}

// === property: what is appended is what is read ===

fn texts_strategy() -> impl Strategy<Value = Vec<Vec<String>>> {
    // Any text without a raw newline (canonical JSON has none), in batches of any size.
    let text = proptest::string::string_regex("[^\n]{0,300}").unwrap();
    proptest::collection::vec(proptest::collection::vec(text, 1..20), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn appended_batches_are_scanned_back_in_order(batches in texts_strategy(), segment_bytes in 1u64..3000) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::open_with_segment_bytes(&dir.path().join("audit"), segment_bytes).await.unwrap();
            let mut seq = 0;
            let mut all = Vec::new();
            for batch in &batches {
                let records: Vec<SealedRecord> = batch
                    .iter()
                    .map(|text| {
                        seq += 1;
                        SealedRecord {
                            chain_id: CHAIN.into(),
                            seq,
                            call_id: format!("call-{seq}"),
                            time: String::new(),
                            hash: format!("hash-{seq}"),
                            text: text.clone(),
                        }
                    })
                    .collect();
                store.append(&records).await.unwrap();
                all.extend(batch.iter().cloned());
            }
            let check = |scanned: Vec<(u64, Vec<u8>)>| {
                let keys: Vec<u64> = scanned.iter().map(|(k, _)| *k).collect();
                let texts: Vec<String> = scanned.into_iter().map(|(_, v)| String::from_utf8(v).unwrap()).collect();
                assert_eq!(keys, (1..=all.len() as u64).collect::<Vec<_>>());
                assert_eq!(texts, all);
            };
            check(store.scan(CHAIN, None, usize::MAX).await.unwrap());
            // In pages, as verify reads.
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = store.scan(CHAIN, after, 7).await.unwrap();
                let Some((last, _)) = page.last() else { break };
                after = Some(*last);
                paged.extend(page);
            }
            check(paged);
            drop(store);
            // And the same after reopening (recovery cuts nothing).
            let store = SegmentStore::open_with_segment_bytes(&dir.path().join("audit"), segment_bytes).await.unwrap();
            check(store.scan(CHAIN, None, usize::MAX).await.unwrap());
        });
    }
}

/// How many bytes of the file at `path` are in the page cache, as util-linux's
/// `fincore` reports them (`mincore(2)` over a mapping that faults nothing in).
fn resident_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("fincore prints a number of bytes")
}

/// Once a batch is durable, the log's whole pages it filled leave the page cache
/// (docs/audit.md): a log written at every call's rate must not grow it by every record.
/// The partial last page stays, for the next batch to write into.
#[tokio::test]
async fn the_pages_of_durable_batches_leave_the_page_cache() {
    // Under the target directory, on a file system with a page cache (ext4, XFS, btrfs):
    // tmpfs, where /tmp often is, keeps every page whatever it is told.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = written_in_segments_of(dir.path(), 64 << 20, 300).await;
    let log = only_log(&store);
    let page = rustix::param::page_size() as u64;
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(len >= 8 * page, "the records filled {len} bytes; the test needs 8 pages of {page}");
    let resident = resident_bytes(&log);
    assert!(resident <= page, "{resident} of the log's {len} bytes are still in the page cache");
    // The records are all there, read back from the disk; reading brings them back (so
    // fincore does see this file system's page cache).
    let records = store.query(&RecordQuery::from_start(1000), CHAIN).await.unwrap();
    assert_eq!(records.len(), 300);
    assert!(resident_bytes(&log) > resident, "fincore sees pages that are read");
}
