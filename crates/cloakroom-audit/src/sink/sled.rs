//! The embedded store: sled in `<data_dir>/audit`.
//!
//! One tree per chain (`chain:<id>`), keys `r` + big-endian `seq` for records and
//! `c` + call id for the call-id index, written together with one atomic batch and
//! flushed before `append` returns.

use std::path::Path;

use async_trait::async_trait;

use super::{AuditSink, AuditStore, RecordQuery, SealedRecord, Since, SinkError};
use crate::AuditRecord;

const TREE_PREFIX: &str = "chain:";

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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SinkError::Task(e.to_string()))?
}

impl SledSink {
    /// Opens (creating) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, SinkError> {
        let db = sled::Config::new().path(dir).open()?;
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

    /// The key under which record `seq` is stored in its chain's tree.
    pub fn record_key(seq: u64) -> [u8; 9] {
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
        let tree = self.chain_tree(&first.chain_id)?;
        let mut b = sled::Batch::default();
        for r in batch {
            debug_assert_eq!(r.chain_id, first.chain_id, "one chain per batch");
            b.insert(&record_key(r.seq)[..], r.text.as_bytes());
            b.insert(call_key(&r.call_id), &r.seq.to_be_bytes()[..]);
        }
        let db = self.db.clone();
        blocking(move || {
            tree.apply_batch(b)?;
            db.flush()?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SledSink {
    async fn head(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError> {
        let tree = self.chain_tree(chain_id)?;
        let Some((k, v)) = tree.scan_prefix(b"r").next_back().transpose()? else { return Ok(None) };
        let seq = seq_of_key(&k)?;
        let record: AuditRecord = serde_json::from_slice(&v)
            .map_err(|e| SinkError::Corrupt(format!("head record {seq} of chain {chain_id:?}: {e}")))?;
        Ok(Some((seq, record.hash)))
    }

    async fn chain_ids(&self) -> Result<Vec<String>, SinkError> {
        let mut ids: Vec<String> = self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter_map(|n| n.strip_prefix(TREE_PREFIX).map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn scan(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
        let tree = self.chain_tree(chain_id)?;
        let start = match after {
            None => record_key(0),
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(s) => record_key(s + 1),
        };
        let mut out = Vec::new();
        for item in tree.range(start..=record_key(u64::MAX)).take(limit) {
            let (k, v) = item?;
            out.push((seq_of_key(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    async fn query(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError> {
        let chains = match &query.chain_id {
            Some(c) => vec![c.clone()],
            None => self.chain_ids().await?,
        };
        let mut out = Vec::new();
        for chain in chains {
            let tree = self.chain_tree(&chain)?;
            let start = match query.since {
                Since::Seq(s) if chain == local_chain || query.chain_id.is_some() => record_key(s.saturating_add(1)),
                Since::Seq(_) => continue,
                _ => record_key(0),
            };
            for item in tree.range(start..=record_key(u64::MAX)) {
                if out.len() >= query.limit {
                    break;
                }
                let (_, v) = item?;
                if let Since::Time(t) = query.since {
                    let r: AuditRecord = serde_json::from_slice(&v).map_err(|e| SinkError::Corrupt(e.to_string()))?;
                    if r.time < crate::record::format_time(t) {
                        continue;
                    }
                }
                out.push(v.to_vec());
            }
        }
        Ok(out)
    }

    async fn find(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        for chain in self.chain_ids().await? {
            let tree = self.chain_tree(&chain)?;
            if let Some(seq) = tree.get(call_key(call_id))? {
                let seq: [u8; 8] = seq.as_ref().try_into().map_err(|_| SinkError::Corrupt("call index".into()))?;
                return Ok(tree.get(record_key(u64::from_be_bytes(seq)))?.map(|v| v.to_vec()));
            }
        }
        Ok(None)
    }
}
