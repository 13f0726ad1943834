//! The embedded store: sled in `<data_dir>/audit`.
//!
//! One tree per chain (`chain:<id>`). Records are stored in runs: key `r` + big-endian
//! `seq` of the run's first record -> the canonical texts of up to [`RUN_LEN`]
//! consecutive records joined by `\n` (canonical JSON has no raw newline). sled copies a
//! leaf on every insert, so one value per run instead of one per record is what makes
//! group commits of 1 KiB-body records fast. Key `c` + call id -> `seq` indexes calls.
//! A batch is written with one atomic sled batch and flushed before `append` returns.
//! Every sled call (writes, reads, scans; they block on disk I/O) runs on tokio's
//! blocking pool, never on a serving thread.

use std::path::Path;

use async_trait::async_trait;

use super::{blocking, AuditSink, AuditStore, RecordQuery, SealedRecord, Since, SinkError};
use crate::AuditRecord;

const TREE_PREFIX: &str = "chain:";

/// The most records stored in one sled value.
pub const RUN_LEN: usize = 32;

/// The embedded sled store.
#[derive(Debug, Clone)]
pub struct SledSink {
    db: sled::Db,
}

fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn call_key(call_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + call_id.len());
    k.push(b'c');
    k.extend_from_slice(call_id.as_bytes());
    k
}

fn seq_of_key(key: &[u8]) -> Result<u64, SinkError> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SinkError::Corrupt(format!("record key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

impl SledSink {
    /// Opens (creating) the store in directory `dir`, waiting up to two seconds for a
    /// directory lock that a handle just closed may still hold
    /// ([`cloakroom_core::sled_open`]).
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        // `append` flushes itself; sled's own periodic flush would only add fsyncs.
        let config = sled::Config::new().path(dir).flush_every_ms(None).mode(sled::Mode::HighThroughput);
        let db = cloakroom_core::sled_open::open(&config)?;
        Ok(Self { db })
    }

    /// The sled database, for tools and tests that inspect stored bytes.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The tree holding chain `chain_id`.
    pub fn chain_tree(&self, chain_id: &str) -> Result<sled::Tree, SinkError> {
        Ok(self.db.open_tree(format!("{TREE_PREFIX}{chain_id}"))?)
    }

    /// The key of the run starting at record `seq` in its chain's tree.
    pub fn run_key(seq: u64) -> [u8; 9] {
        record_key(seq)
    }
}

#[async_trait]
impl AuditSink for SledSink {
    fn kind(&self) -> &'static str {
        "sled"
    }

    async fn append(&self, batch: &[SealedRecord]) -> Result<(), SinkError> {
        let Some(first) = batch.first() else { return Ok(()) };
        let mut b = sled::Batch::default();
        for run in batch.chunks(RUN_LEN) {
            let mut value = Vec::with_capacity(run.iter().map(|r| r.text.len() + 1).sum());
            for (i, r) in run.iter().enumerate() {
                debug_assert_eq!(r.chain_id, first.chain_id, "one chain per batch");
                if i > 0 {
                    value.push(b'\n');
                }
                value.extend_from_slice(r.text.as_bytes());
                b.insert(call_key(&r.call_id), &r.seq.to_be_bytes()[..]);
            }
            b.insert(&record_key(run[0].seq)[..], value);
        }
        let (s, chain_id) = (self.clone(), first.chain_id.clone());
        blocking(move || {
            let (tree, db) = (s.chain_tree(&chain_id)?, &s.db);
            tree.apply_batch(b)?;
            db.flush()?;
            Ok(())
        })
        .await
    }
}

/// The stored records of a chain from the run holding position `from` on, as
/// `(position, bytes)`: a run's first record has the run key's `seq`, the next one more.
fn records_from(tree: &sled::Tree, from: u64) -> impl Iterator<Item = Result<(u64, Vec<u8>), SinkError>> {
    let start = match tree.range(record_key(0)..=record_key(from)).next_back() {
        Some(Ok((k, _))) => k.to_vec(),
        _ => record_key(0).to_vec(),
    };
    tree.range(start..=record_key(u64::MAX).to_vec())
        .map(|item| -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
            let (k, v) = item?;
            let first = seq_of_key(&k)?;
            Ok(v.split(|b| *b == b'\n').enumerate().map(|(i, line)| (first + i as u64, line.to_vec())).collect())
        })
        .flat_map(|run| match run {
            Ok(lines) => lines.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
        .filter(move |r| !matches!(r, Ok((pos, _)) if *pos < from))
}

#[async_trait]
impl AuditStore for SledSink {
    async fn head(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError> {
        let (s, chain_id) = (self.clone(), chain_id.to_owned());
        blocking(move || s.head_now(&chain_id)).await
    }

    async fn chain_ids(&self) -> Result<Vec<String>, SinkError> {
        let s = self.clone();
        blocking(move || Ok(s.chain_ids_now())).await
    }

    async fn scan(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
        let (s, chain_id) = (self.clone(), chain_id.to_owned());
        blocking(move || s.scan_now(&chain_id, after, limit)).await
    }

    async fn query(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError> {
        let (s, query, local_chain) = (self.clone(), query.clone(), local_chain.to_owned());
        blocking(move || s.query_now(&query, &local_chain)).await
    }

    async fn find(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let (s, call_id) = (self.clone(), call_id.to_owned());
        blocking(move || s.find_now(&call_id)).await
    }
}

/// The reads of [`AuditStore`], blocking (called on the blocking pool).
impl SledSink {
    fn head_now(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError> {
        let tree = self.chain_tree(chain_id)?;
        let Some((k, v)) = tree.scan_prefix(b"r").next_back().transpose()? else { return Ok(None) };
        let first = seq_of_key(&k)?;
        let last = v.split(|b| *b == b'\n').next_back().unwrap_or_default();
        let record: AuditRecord = serde_json::from_slice(last)
            .map_err(|e| SinkError::Corrupt(format!("last record of chain {chain_id:?} (run {first}): {e}")))?;
        Ok(Some((record.seq, record.hash)))
    }

    fn chain_ids_now(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter_map(|n| n.strip_prefix(TREE_PREFIX).map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    fn scan_now(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
        let tree = self.chain_tree(chain_id)?;
        let from = match after {
            None => 0,
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(s) => s + 1,
        };
        records_from(&tree, from).take(limit).collect()
    }

    fn query_now(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError> {
        let chains = match &query.chain_id {
            Some(c) => vec![c.clone()],
            None => self.chain_ids_now(),
        };
        let mut out = Vec::new();
        for chain in chains {
            let tree = self.chain_tree(&chain)?;
            let from = match query.since {
                Since::Seq(s) if chain == local_chain || query.chain_id.is_some() => s.saturating_add(1),
                Since::Seq(_) => continue,
                _ => 0,
            };
            let since_time = match query.since {
                Since::Time(t) => Some(crate::record::format_time(t)),
                _ => None,
            };
            for item in records_from(&tree, from) {
                if out.len() >= query.limit {
                    break;
                }
                let (_, v) = item?;
                if let Some(t) = &since_time {
                    let r: AuditRecord = serde_json::from_slice(&v).map_err(|e| SinkError::Corrupt(e.to_string()))?;
                    if r.time < *t {
                        continue;
                    }
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    fn find_now(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        for chain in self.chain_ids_now() {
            let tree = self.chain_tree(&chain)?;
            if let Some(seq) = tree.get(call_key(call_id))? {
                let seq: [u8; 8] = seq.as_ref().try_into().map_err(|_| SinkError::Corrupt("call index".into()))?;
                let seq = u64::from_be_bytes(seq);
                // The id decides, not the position: a tampered run may have shifted lines.
                let needle = format!("\"id\":\"{call_id}\"");
                for item in records_from(&tree, seq).take(RUN_LEN * 2) {
                    let (_, v) = item?;
                    if v.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        return Ok(Some(v));
                    }
                }
                return Ok(None);
            }
        }
        Ok(None)
    }
}
