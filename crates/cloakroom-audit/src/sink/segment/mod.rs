//! The embedded store: append-only segment files in `<data_dir>/audit`.
//!
//! Layout: `<dir>/chains/<chain>/` per chain, where `<chain>` is the chain id with every
//! byte outside `[A-Za-z0-9_-]` percent-encoded (`%2E` for `.`, so never `.` or `..`).
//! A chain is a sequence of segments, each named by the `seq` of its first record,
//! zero-padded to 20 digits:
//!
//! - `<first>.log`: each record's canonical text followed by `\n` (canonical JSON has no
//!   raw newline), exactly as hashed. This is the only primary data.
//! - `<first>.idx`: the byte offset in the `.log` of each record, little-endian `u64`, so
//!   record `seq` is at entry `seq - first`.
//! - `<first>.calls`: per record, the first 16 bytes of SHA-256 of its call id and its
//!   `seq` (little-endian `u64`), for [`find`](AuditStore::find).
//!
//! The records of one segment have consecutive `seq`s. A new segment starts once the
//! current `.log` has reached the segment limit ([`DEFAULT_SEGMENT_BYTES`]), or when a
//! record does not follow the last one (a hole left by a batch given up on).
//!
//! `append` writes a batch with one write per file, then `sync_data` on the log, and
//! returns once the log is durable; the idx and calls files of a segment are synced when
//! the next segment starts (recovery rebuilds the last segment's from its log). A
//! directory is fsynced when a file is created in it. The current segment's files stay
//! open.
//!
//! Readers open the files read-only and use the idx only to seek to where they start;
//! the records are the lines of the `.log`, as stored, so that `verify` sees any edit.
//! Bytes after the last `\n` of a chain's last segment (a batch being written) are not
//! a record.
//!
//! Recovery on open: the idx and calls files are derived from the log. For the last
//! segment of each chain, a partial last line (a batch whose `append` never returned) is
//! cut, trailing empty segments are removed, and the idx and calls entries are rewritten
//! where they do not match the log's complete lines.
//!
//! `<dir>/LOCK` is `flock`ed exclusively while a store is open, so that a second process
//! cannot append to the same chains.
//!
//! Migration: [`SegmentStore::open`] on a directory holding a sled database (the
//! previous embedded store, `SledSink`) copies it into segment files first (with the
//! cargo feature `sled`; without it, the store is refused); see docs/audit.md.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{blocking, AuditSink, AuditStore, RecordQuery, SealedRecord, Since, SinkError};

mod disk;
mod migrate;
mod writer;

use disk::*;
use migrate::*;
use writer::*;

/// The default size at which a segment's `.log` is closed and a new segment started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// The directory under the store's directory holding one directory per chain.
const CHAINS: &str = "chains";
/// The file locked while a process has the store open.
const LOCK: &str = "LOCK";
/// Bytes of one idx entry.
const IDX_ENTRY: u64 = 8;
/// Bytes of one calls entry: 16 bytes of the call id's hash, then the `seq`.
const CALLS_ENTRY: usize = 24;
/// Records per batch when migrating from sled.
#[cfg(feature = "sled")]
const MIGRATION_PAGE: usize = 4096;

/// The embedded store of append-only segment files.
#[derive(Clone)]
pub struct SegmentStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    segment_bytes: u64,
    /// `<dir>/LOCK`, exclusively `flock`ed while the store is open: a second process (a
    /// second gateway on the same `data_dir`) would append to the same chains.
    _lock: File,
    /// The open segment of each chain written to; a chain's entry is dropped after a
    /// failed write and rebuilt (with recovery) by the next append.
    writers: Mutex<HashMap<String, ChainWriter>>,
}

impl std::fmt::Debug for SegmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentStore")
            .field("dir", &self.inner.dir)
            .field("segment_bytes", &self.inner.segment_bytes)
            .finish_non_exhaustive()
    }
}

/// The directory name of a chain: every byte outside `[A-Za-z0-9_-]` as `%XX`.
pub fn encode_chain_id(chain_id: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(chain_id.len());
    for b in chain_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The chain id whose directory name is `name` (as [`encode_chain_id`] makes it); `None`
/// for any other name.
pub fn decode_chain_id(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    let id = String::from_utf8(out).ok().filter(|id| !id.is_empty())?;
    // Only the one name `encode_chain_id` gives (`%2E`, not `%2e`), so that the chain's
    // directory is found again from its id.
    (encode_chain_id(&id) == name).then_some(id)
}

/// The 16 bytes a call id is indexed by.
fn call_hash(call_id: &str) -> [u8; 16] {
    let digest = Sha256::digest(call_id.as_bytes());
    let mut h = [0; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

fn segment_name(first: u64) -> String {
    format!("{first:020}")
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `Ok(None)` for a file or directory that is not there (never made, or removed by
/// recovery meanwhile).
fn if_exists<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The fields of a stored record the store itself reads.
#[derive(Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

#[derive(Deserialize)]
struct CallOf {
    id: String,
}

#[derive(Deserialize)]
struct TimeOf {
    time: String,
}

// === the store ===

impl SegmentStore {
    /// Opens (creating) the store in directory `dir` (`<data_dir>/audit`), with segments
    /// of [`DEFAULT_SEGMENT_BYTES`]. A sled store found there is migrated first: see
    /// docs/audit.md.
    pub async fn open(dir: &Path) -> Result<Self, SinkError> {
        Self::open_with_segment_bytes(dir, DEFAULT_SEGMENT_BYTES).await
    }

    /// [`open`](Self::open) with segments closed once their log reaches `segment_bytes`.
    pub async fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> Result<Self, SinkError> {
        migrate_from_sled(dir, segment_bytes).await?;
        let dir = dir.to_owned();
        blocking(move || Self::open_here(&dir, segment_bytes)).await
    }

    /// Opens the segment store in `dir`, recovering every chain; no migration.
    fn open_here(dir: &Path, segment_bytes: u64) -> Result<Self, SinkError> {
        let chains = dir.join(CHAINS);
        if !chains.is_dir() {
            fs::create_dir_all(&chains)?;
            fsync_dir(dir)?;
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
        }
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK))?;
        if let Err(e) = rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            let e = io::Error::from(e);
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                SinkError::Io(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("the audit store {} is open already (another gateway on this data_dir?)", dir.display()),
                ))
            } else {
                e.into()
            });
        }
        let store = Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                segment_bytes,
                _lock: lock,
                writers: Mutex::new(HashMap::new()),
            }),
        };
        let mut writers = HashMap::new();
        for chain_id in store.chain_ids_here()? {
            let writer = ChainWriter::open(&chain_id, store.chain_dir(&chain_id))?;
            writers.insert(chain_id, writer);
        }
        *store.inner.writers.lock().unwrap_or_else(|p| p.into_inner()) = writers;
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The directory of chain `chain_id` (for tools and tests that inspect stored bytes).
    pub fn chain_dir(&self, chain_id: &str) -> PathBuf {
        self.inner.dir.join(CHAINS).join(encode_chain_id(chain_id))
    }

    /// The `.log` files of a chain, oldest first (for tools and tests).
    pub fn segment_logs(&self, chain_id: &str) -> Result<Vec<PathBuf>, SinkError> {
        Ok(list_segments(&self.chain_dir(chain_id))?.iter().map(|s| s.path("log")).collect())
    }

    fn chain_ids_here(&self) -> Result<Vec<String>, SinkError> {
        let Some(entries) = if_exists(fs::read_dir(self.inner.dir.join(CHAINS)))? else { return Ok(Vec::new()) };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(id) = entry.file_name().to_str().and_then(decode_chain_id) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Creates the directory of a chain with no records yet (the migration from sled).
    #[cfg(feature = "sled")]
    fn create_chain(&self, chain_id: &str) -> Result<(), SinkError> {
        if chain_id.is_empty() {
            return Err(SinkError::Invalid("the chain id is empty".into()));
        }
        let dir = self.chain_dir(chain_id);
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            fsync_dir(&self.inner.dir.join(CHAINS))?;
        }
        Ok(())
    }

    async fn write(&self, p: Prepared) -> Result<(), SinkError> {
        let inner = self.inner.clone();
        let dir = self.chain_dir(&p.chain_id);
        blocking(move || {
            let mut writers = inner.writers.lock().unwrap_or_else(|p| p.into_inner());
            let writer = match writers.entry(p.chain_id.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(ChainWriter::open(&p.chain_id, dir)?),
            };
            let written = writer.write(&p, inner.segment_bytes);
            if written.is_err() {
                // Forget the segment's state: the next append recovers it from the log.
                writers.remove(&p.chain_id);
            }
            written
        })
        .await
    }

    /// Reads, on a blocking thread, with the chain's directory.
    async fn read<T: Send + 'static>(
        &self,
        chain_id: &str,
        f: impl FnOnce(&Path) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        let dir = self.chain_dir(chain_id);
        blocking(move || f(&dir)).await
    }
}

#[async_trait]
impl AuditSink for SegmentStore {
    fn kind(&self) -> &'static str {
        "segment"
    }

    async fn append(&self, batch: &[SealedRecord]) -> Result<(), SinkError> {
        let entries = batch.iter().map(|r| Entry {
            chain_id: &r.chain_id,
            seq: r.seq,
            call_id: Some(&r.call_id),
            hash: &r.hash,
            text: r.text.as_bytes(),
        });
        match Prepared::new(entries)? {
            Some(p) => self.write(p).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl AuditStore for SegmentStore {
    async fn head(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError> {
        if chain_id.is_empty() {
            return Ok(None);
        }
        let chain = chain_id.to_owned();
        self.read(chain_id, move |dir| {
            let segments = list_segments(dir)?;
            for (i, seg) in segments.iter().enumerate().rev() {
                let Some(log) = if_exists(File::open(seg.path("log")))? else { continue };
                let Some(line) = last_line(&log, i + 1 == segments.len())? else { continue };
                let head: Head = serde_json::from_slice(&line).map_err(|e| {
                    SinkError::Corrupt(format!(
                        "last record of chain {chain:?} (segment {}): {e}",
                        segment_name(seg.first)
                    ))
                })?;
                return Ok(Some((head.seq, head.hash)));
            }
            Ok(None)
        })
        .await
    }

    async fn chain_ids(&self) -> Result<Vec<String>, SinkError> {
        let store = self.clone();
        blocking(move || store.chain_ids_here()).await
    }

    async fn scan(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
        let from = match after {
            None => 0,
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(s) => s + 1,
        };
        if limit == 0 || chain_id.is_empty() {
            return Ok(Vec::new());
        }
        self.read(chain_id, move |dir| {
            let mut out = Vec::new();
            visit_lines(dir, from, |pos, line| {
                out.push((pos, line.to_vec()));
                Ok(out.len() < limit)
            })?;
            Ok(out)
        })
        .await
    }

    async fn query(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError> {
        let chains = match &query.chain_id {
            Some(c) => vec![c.clone()],
            None => self.chain_ids().await?,
        };
        let since_time = match query.since {
            Since::Time(t) => Some(crate::record::format_time(t)),
            _ => None,
        };
        let mut out = Vec::new();
        for chain in chains {
            if out.len() >= query.limit {
                break;
            }
            let from = match query.since {
                Since::Seq(s) if chain == local_chain || query.chain_id.is_some() => s.saturating_add(1),
                Since::Seq(_) => continue,
                _ => 0,
            };
            if chain.is_empty() {
                continue;
            }
            let (limit, since_time) = (query.limit, since_time.clone());
            out = self
                .read(&chain, move |dir| {
                    visit_lines(dir, from, |_, line| {
                        if out.len() >= limit {
                            return Ok(false);
                        }
                        if let Some(t) = &since_time {
                            let r: TimeOf =
                                serde_json::from_slice(line).map_err(|e| SinkError::Corrupt(e.to_string()))?;
                            if r.time < *t {
                                return Ok(true);
                            }
                        }
                        out.push(line.to_vec());
                        Ok(out.len() < limit)
                    })?;
                    Ok(out)
                })
                .await?;
        }
        Ok(out)
    }

    async fn find(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let wanted = call_hash(call_id);
        for chain in self.chain_ids().await? {
            let call = call_id.to_owned();
            let found = self.read(&chain, move |dir| find_in_chain(dir, &call, &wanted)).await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// Whether a stored line is the record of call `call_id`: its own `id` decides.
fn is_record_of(line: &[u8], call_id: &str) -> bool {
    serde_json::from_slice::<CallOf>(line).is_ok_and(|c| c.id == call_id)
}

/// The record of a call in one chain: the calls files newest segment first, then the
/// line they point at, which must be the call's own record. When it is not (lines of an
/// edited log have moved), the segment's lines are searched.
fn find_in_chain(dir: &Path, call_id: &str, wanted: &[u8; 16]) -> Result<Option<Vec<u8>>, SinkError> {
    let segments = list_segments(dir)?;
    for (i, seg) in segments.iter().enumerate().rev() {
        let Some(calls) = if_exists(fs::read(seg.path("calls")))? else { continue };
        let mut candidates = calls.chunks_exact(CALLS_ENTRY).rev().filter(|e| e[..16] == wanted[..]).peekable();
        if candidates.peek().is_none() {
            continue;
        }
        // Reading within this segment only: from its first line, or the candidate's.
        let next_first = segments.get(i + 1).map(|s| s.first);
        let within = |pos: u64| pos >= seg.first && next_first.is_none_or(|n| pos < n);
        for entry in candidates {
            let seq = u64::from_le_bytes(entry[16..24].try_into().unwrap_or_default());
            if !within(seq) {
                continue;
            }
            let mut hit = None;
            visit_lines(dir, seq, |pos, line| {
                if pos == seq && is_record_of(line, call_id) {
                    hit = Some(line.to_vec());
                }
                Ok(false)
            })?;
            if hit.is_some() {
                return Ok(hit);
            }
        }
        let mut hit = None;
        visit_lines(dir, seg.first, |pos, line| {
            if !within(pos) {
                return Ok(false);
            }
            if is_record_of(line, call_id) {
                hit = Some(line.to_vec());
                return Ok(false);
            }
            Ok(true)
        })?;
        if hit.is_some() {
            return Ok(hit);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
