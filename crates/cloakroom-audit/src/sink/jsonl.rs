//! The JSON-lines export: one canonical record per line, appended and fsynced.
//!
//! The file is what an auditor or SIEM receives; [`verify_jsonl`] checks it offline.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{blocking, AuditSink, SealedRecord, SinkError};
use crate::{
    chain::{ChainVerifier, VerifyReport},
    AuditRecord,
};

/// An append-only JSON-lines file.
#[derive(Debug, Clone)]
pub struct JsonlSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl JsonlSink {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_owned(), file: Arc::new(Mutex::new(file)) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    fn kind(&self) -> &'static str {
        "jsonl"
    }

    async fn append(&self, batch: &[SealedRecord]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(batch.iter().map(|r| r.text.len() + 1).sum());
        for r in batch {
            buf.extend_from_slice(r.text.as_bytes());
            buf.push(b'\n');
        }
        let file = self.file.clone();
        blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            let before = f.metadata().map(|m| m.len()).ok();
            let res = f.write_all(&buf).and_then(|()| f.sync_data());
            if res.is_err() {
                // Roll back a partial line so that a retry does not leave half a record.
                if let Some(len) = before {
                    let _ = f.set_len(len);
                }
            }
            res.map_err(SinkError::from)
        })
        .await
    }
}

/// Verifies every chain found in a JSON-lines export, offline: each line must be a
/// record whose hash matches, and each chain's records must follow one another.
/// Lines that do not parse count against the chain of the line before them.
pub fn verify_jsonl(path: &Path) -> Result<VerifyReport, SinkError> {
    let reader = BufReader::new(File::open(path)?);
    let mut chains: BTreeMap<String, ChainVerifier> = BTreeMap::new();
    let mut last_chain = String::new();
    for line in reader.split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct ChainOnly {
            chain_id: String,
        }
        if let Ok(c) = serde_json::from_slice::<ChainOnly>(&line) {
            last_chain = c.chain_id;
        }
        chains.entry(last_chain.clone()).or_insert_with(|| ChainVerifier::new(last_chain.clone())).push(&line);
    }
    Ok(VerifyReport { chains: chains.into_values().map(ChainVerifier::finish).collect() })
}

/// Parses the records of a JSON-lines export (for tools; no verification).
pub fn read_jsonl(path: &Path) -> Result<Vec<AuditRecord>, SinkError> {
    let reader = BufReader::new(File::open(path)?);
    reader
        .lines()
        .filter(|l| !matches!(l, Ok(l) if l.is_empty()))
        .map(|l| serde_json::from_str(&l?).map_err(|e| SinkError::Corrupt(e.to_string())))
        .collect()
}
