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
//! previous embedded store, see [`SledSink`]) copies it into segment files first; see
//! docs/audit.md.

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

use super::{blocking, AuditSink, AuditStore, RecordQuery, SealedRecord, Since, SinkError, SledSink};

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

// === segments on disk ===

/// One segment of a chain.
#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    /// `<chain dir>/<first, 20 digits>`, without extension.
    base: PathBuf,
}

impl Segment {
    fn new(chain_dir: &Path, first: u64) -> Self {
        Self { first, base: chain_dir.join(segment_name(first)) }
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.base.with_extension(ext)
    }
}

/// The segments of a chain (those with a `.log`), oldest first.
fn list_segments(chain_dir: &Path) -> io::Result<Vec<Segment>> {
    let Some(entries) = if_exists(fs::read_dir(chain_dir))? else { return Ok(Vec::new()) };
    let mut segments = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else { continue };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(first) = stem.parse() {
            segments.push(Segment::new(chain_dir, first));
        }
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

/// Where to start reading record `first + k` of a segment: `(position, byte offset)`.
/// The idx is trusted only when its offset follows a `\n` of the log; otherwise (an
/// edited log) reading starts at the segment's first line.
fn seek_point(seg: &Segment, log: &File, k: u64) -> io::Result<(u64, u64)> {
    let start = (seg.first, 0);
    let Some(mut idx) = if_exists(File::open(seg.path("idx")))? else { return Ok(start) };
    let entries = idx.metadata()?.len() / IDX_ENTRY;
    if entries == 0 || k == 0 {
        return Ok(start);
    }
    // Entries the writer has not written yet: seek to the last one there is.
    let e = k.min(entries - 1);
    let mut buf = [0; 8];
    idx.seek(SeekFrom::Start(e * IDX_ENTRY))?;
    idx.read_exact(&mut buf)?;
    let offset = u64::from_le_bytes(buf);
    if offset == 0 || offset > log.metadata()?.len() {
        return Ok(start);
    }
    let mut before = [0; 1];
    let mut log = log;
    log.seek(SeekFrom::Start(offset - 1))?;
    log.read_exact(&mut before)?;
    Ok(if before[0] == b'\n' { (seg.first + e, offset) } else { start })
}

/// Visits the stored records of a chain from position `from` on, oldest first, as
/// `(position, line without its \n)`, until `f` returns `false`. A record's position is
/// its segment's first `seq` plus its line number in the segment.
fn visit_lines(
    chain_dir: &Path,
    from: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<bool, SinkError>,
) -> Result<(), SinkError> {
    let segments = list_segments(chain_dir)?;
    let start = segments.iter().rposition(|s| s.first <= from).unwrap_or(0);
    let mut line = Vec::with_capacity(8192);
    for (i, seg) in segments.iter().enumerate().skip(start) {
        let last = i + 1 == segments.len();
        let Some(log) = if_exists(File::open(seg.path("log")))? else { continue };
        let (mut pos, offset) =
            if from > seg.first { seek_point(seg, &log, from - seg.first)? } else { (seg.first, 0) };
        let mut reader = BufReader::with_capacity(256 << 10, log);
        reader.seek(SeekFrom::Start(offset))?;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if last {
                break; // a batch being written
            }
            if pos >= from && !f(pos, &line)? {
                return Ok(());
            }
            pos += 1;
        }
    }
    Ok(())
}

/// The last line of a segment's log (without its `\n`); with `complete_only`, bytes
/// after the last `\n` are ignored. `None` when there is no such line.
fn last_line(log: &File, complete_only: bool) -> io::Result<Option<Vec<u8>>> {
    let mut log = log;
    let len = log.metadata()?.len();
    let mut window: u64 = 64 << 10;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0; usize::try_from(len - start).map_err(io::Error::other)?];
        log.seek(SeekFrom::Start(start))?;
        log.read_exact(&mut buf)?;
        let end = if complete_only {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(e) => e,
                None if start == 0 => return Ok(None),
                None => {
                    window *= 4;
                    continue;
                }
            }
        } else if buf.last() == Some(&b'\n') {
            buf.len() - 1
        } else {
            buf.len()
        };
        match buf[..end].iter().rposition(|b| *b == b'\n') {
            Some(s) => return Ok(Some(buf[s + 1..end].to_vec())),
            None if start == 0 => return Ok((end > 0 || len > 0).then(|| buf[..end].to_vec())),
            None => window *= 4,
        }
    }
}

// === the writer ===

/// The segment being written.
#[derive(Debug)]
struct OpenSegment {
    first: u64,
    log: File,
    idx: File,
    calls: File,
    log_len: u64,
    idx_len: u64,
    calls_len: u64,
}

impl OpenSegment {
    /// The `seq` the next record of this segment must have.
    fn next_seq(&self) -> u64 {
        self.first + self.idx_len / IDX_ENTRY
    }
}

/// The write side of one chain.
#[derive(Debug)]
struct ChainWriter {
    chain_id: String,
    dir: PathBuf,
    seg: Option<OpenSegment>,
    /// The last stored position and the `hash` of the record there (when it parses).
    head: Option<(u64, Option<String>)>,
}

/// A batch encoded for writing, built before the blocking task.
struct Prepared {
    chain_id: String,
    /// Every record's text and `\n`.
    log: Vec<u8>,
    recs: Vec<PreparedRecord>,
    /// Every record's `hash`, concatenated.
    hashes: Vec<u8>,
}

struct PreparedRecord {
    seq: u64,
    /// Where its line starts in `Prepared::log`.
    start: usize,
    call: [u8; 16],
    /// Where its `hash` ends in `Prepared::hashes`.
    hash_end: usize,
}

/// A record to write: borrowed from a [`SealedRecord`], or a stored line when migrating.
struct Entry<'a> {
    chain_id: &'a str,
    seq: u64,
    /// `None` for a stored line that does not parse (indexed under no call).
    call_id: Option<&'a str>,
    hash: &'a str,
    text: &'a [u8],
}

impl Prepared {
    fn new<'a>(entries: impl ExactSizeIterator<Item = Entry<'a>>) -> Result<Option<Self>, SinkError> {
        let n = entries.len();
        let mut p: Option<Prepared> = None;
        for e in entries {
            let p = p.get_or_insert_with(|| Prepared {
                chain_id: e.chain_id.to_owned(),
                log: Vec::with_capacity(n * (e.text.len() + 1)),
                recs: Vec::with_capacity(n),
                hashes: Vec::with_capacity(n * e.hash.len()),
            });
            if e.chain_id != p.chain_id {
                return Err(SinkError::Invalid("a batch holds records of more than one chain".into()));
            }
            if let Some(prev) = p.recs.last() {
                if e.seq <= prev.seq {
                    return Err(SinkError::Invalid(format!("record {} follows record {} in a batch", e.seq, prev.seq)));
                }
            }
            if e.text.contains(&b'\n') {
                return Err(SinkError::Invalid(format!("record {} holds a raw newline", e.seq)));
            }
            let start = p.log.len();
            p.log.extend_from_slice(e.text);
            p.log.push(b'\n');
            p.hashes.extend_from_slice(e.hash.as_bytes());
            p.recs.push(PreparedRecord {
                seq: e.seq,
                start,
                call: e.call_id.map_or([0; 16], call_hash),
                hash_end: p.hashes.len(),
            });
        }
        if let Some(p) = &p {
            if p.chain_id.is_empty() {
                return Err(SinkError::Invalid("the chain id is empty".into()));
            }
        }
        Ok(p)
    }

    fn end(&self, i: usize) -> usize {
        self.recs.get(i + 1).map_or(self.log.len(), |r| r.start)
    }

    fn hash(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.recs[i - 1].hash_end };
        &self.hashes[start..self.recs[i].hash_end]
    }
}

impl ChainWriter {
    /// Recovers the chain's last segment (see the module docs) and opens it for appending.
    fn open(chain_id: &str, dir: PathBuf) -> Result<Self, SinkError> {
        let mut segments = list_segments(&dir)?;
        let mut head = None;
        let mut seg = None;
        while let Some(last) = segments.last() {
            match recover_segment(chain_id, last)? {
                Some((lines, last_hash)) => {
                    head = Some((last.first + lines - 1, last_hash));
                    seg = Some(open_segment(last)?);
                    break;
                }
                None => {
                    // Nothing but a partial batch: remove the segment.
                    for ext in ["log", "idx", "calls"] {
                        if_exists(fs::remove_file(last.path(ext)))?;
                    }
                    fsync_dir(&dir)?;
                    segments.pop();
                }
            }
        }
        Ok(Self { chain_id: chain_id.to_owned(), dir, seg, head })
    }

    /// Writes a prepared batch: one group of writes per segment it lands in, each made
    /// durable before the next segment is created.
    fn write(&mut self, p: &Prepared, segment_bytes: u64) -> Result<(), SinkError> {
        let n = p.recs.len();
        let mut i = 0;
        // A batch retried after a failure whose writes could not be undone: the records
        // up to the stored head are already there (the head's hash proves they are the
        // same ones, the chain links them); anything else would fork the chain.
        if let Some((head_seq, head_hash)) = &self.head {
            if p.recs[0].seq <= *head_seq {
                match p.recs.iter().position(|r| r.seq == *head_seq) {
                    Some(k) if head_hash.as_deref().map(str::as_bytes) == Some(p.hash(k)) => i = k + 1,
                    _ => {
                        return Err(SinkError::Invalid(format!(
                            "chain {:?}: record {} is not after the stored head {head_seq}",
                            self.chain_id, p.recs[0].seq
                        )))
                    }
                }
            }
        }
        while i < n {
            let roll = match &self.seg {
                None => true,
                Some(s) => s.log_len >= segment_bytes || p.recs[i].seq != s.next_seq(),
            };
            if roll {
                self.roll(p.recs[i].seq)?;
            }
            let Some(seg) = self.seg.as_mut() else { unreachable!("a segment was just opened") };
            let mut len = seg.log_len + (p.end(i) - p.recs[i].start) as u64;
            let mut j = i + 1;
            while j < n && p.recs[j].seq == p.recs[j - 1].seq + 1 && len < segment_bytes {
                len += (p.end(j) - p.recs[j].start) as u64;
                j += 1;
            }
            write_group(seg, p, i, j)?;
            let hash = String::from_utf8_lossy(p.hash(j - 1)).into_owned();
            self.head = Some((p.recs[j - 1].seq, Some(hash)));
            i = j;
        }
        Ok(())
    }

    /// Starts a new segment whose first record is `first`.
    fn roll(&mut self, first: u64) -> Result<(), SinkError> {
        if let Some(old) = self.seg.take() {
            // Recovery only rebuilds the last segment's derived files: make this one's
            // durable before it stops being the last.
            old.idx.sync_data()?;
            old.calls.sync_data()?;
            if old.log_len == 0 {
                // Nothing was written to it: do not leave an empty segment behind.
                let empty = Segment::new(&self.dir, old.first);
                drop(old);
                for ext in ["log", "idx", "calls"] {
                    let _ = fs::remove_file(empty.path(ext));
                }
            }
        }
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                fsync_dir(parent)?;
            }
        }
        let seg = Segment::new(&self.dir, first);
        let open = |ext: &str| OpenOptions::new().create(true).read(true).append(true).open(seg.path(ext));
        let (log, idx, calls) = (open("log")?, open("idx")?, open("calls")?);
        if log.metadata()?.len() != 0 {
            return Err(SinkError::Invalid(format!(
                "chain {:?}: segment {} already exists",
                self.chain_id,
                segment_name(first)
            )));
        }
        // Stray derived files of a segment whose log never made it to disk.
        idx.set_len(0)?;
        calls.set_len(0)?;
        fsync_dir(&self.dir)?;
        self.seg = Some(OpenSegment { first, log, idx, calls, log_len: 0, idx_len: 0, calls_len: 0 });
        Ok(())
    }
}

/// Writes records `i..j` of `p` to `seg` and makes them durable; on failure, cuts the
/// files back to where they were.
fn write_group(seg: &mut OpenSegment, p: &Prepared, i: usize, j: usize) -> Result<(), SinkError> {
    let (a, b) = (p.recs[i].start, p.end(j - 1));
    let mut idx = Vec::with_capacity((j - i) * IDX_ENTRY as usize);
    let mut calls = Vec::with_capacity((j - i) * CALLS_ENTRY);
    for r in &p.recs[i..j] {
        idx.extend_from_slice(&(seg.log_len + (r.start - a) as u64).to_le_bytes());
        calls.extend_from_slice(&r.call);
        calls.extend_from_slice(&r.seq.to_le_bytes());
    }
    let written = (|| {
        seg.log.write_all(&p.log[a..b])?;
        seg.idx.write_all(&idx)?;
        seg.calls.write_all(&calls)?;
        // Only the log is made durable here: the idx and calls of the last segment are
        // rebuilt from it on open, and those of older segments are synced when the
        // segment is closed (`roll`). One fsync per batch instead of three.
        seg.log.sync_data()
    })();
    if let Err(e) = written {
        // Best effort: the writer is dropped after a failure and the next append
        // recovers the segment from its log anyway.
        let _ = seg.log.set_len(seg.log_len);
        let _ = seg.idx.set_len(seg.idx_len);
        let _ = seg.calls.set_len(seg.calls_len);
        return Err(e.into());
    }
    seg.log_len += (b - a) as u64;
    seg.idx_len += idx.len() as u64;
    seg.calls_len += calls.len() as u64;
    Ok(())
}

fn open_segment(seg: &Segment) -> Result<OpenSegment, SinkError> {
    let open = |ext: &str| OpenOptions::new().create(true).read(true).append(true).open(seg.path(ext));
    let (log, idx, calls) = (open("log")?, open("idx")?, open("calls")?);
    let (log_len, idx_len, calls_len) = (log.metadata()?.len(), idx.metadata()?.len(), calls.metadata()?.len());
    Ok(OpenSegment { first: seg.first, log, idx, calls, log_len, idx_len, calls_len })
}

/// Makes a chain's last segment consistent: cuts bytes after the log's last `\n`, then
/// rewrites the idx and calls files where they differ from what the log's complete lines
/// give. Returns the number of lines and the last line's `hash` (when it parses), or
/// `None` when the log holds no complete line.
fn recover_segment(chain_id: &str, seg: &Segment) -> Result<Option<(u64, Option<String>)>, SinkError> {
    let log = OpenOptions::new().read(true).write(true).open(seg.path("log"))?;
    let len = log.metadata()?.len();
    let mut idx = Vec::new();
    let mut calls = Vec::new();
    let mut last = None;
    let mut complete = 0u64;
    {
        let mut reader = BufReader::with_capacity(256 << 10, &log);
        let mut line = Vec::with_capacity(8192);
        let mut pos = seg.first;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
                break;
            }
            line.pop();
            idx.extend_from_slice(&complete.to_le_bytes());
            // A line that does not parse (damaged; `verify` reports it) is indexed under
            // no call id.
            let call = serde_json::from_slice::<CallOf>(&line).map_or([0; 16], |c| call_hash(&c.id));
            calls.extend_from_slice(&call);
            calls.extend_from_slice(&pos.to_le_bytes());
            complete += line.len() as u64 + 1;
            pos += 1;
            last = Some(std::mem::take(&mut line));
        }
    }
    if complete < len {
        tracing::warn!(
            chain = chain_id,
            segment = %segment_name(seg.first),
            bytes = len - complete,
            "cutting a partial audit batch at the end of the chain (its append never returned)"
        );
        log.set_len(complete)?;
        log.sync_data()?;
    }
    let mut created = false;
    for (ext, want) in [("idx", &idx), ("calls", &calls)] {
        let path = seg.path(ext);
        let have = if_exists(fs::read(&path))?.unwrap_or_else(|| {
            created = true;
            Vec::new()
        });
        if have != *want || created {
            tracing::info!(chain = chain_id, segment = %segment_name(seg.first), file = ext, "rebuilding an audit index from its log");
            let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
            f.write_all(want)?;
            f.sync_data()?;
        }
    }
    if created {
        if let Some(parent) = seg.base.parent() {
            fsync_dir(parent)?;
        }
    }
    let Some(last) = last else { return Ok(None) };
    let hash = serde_json::from_slice::<Head>(&last).ok().map(|h| h.hash);
    Ok(Some((complete_lines(&idx), hash)))
}

fn complete_lines(idx: &[u8]) -> u64 {
    (idx.len() as u64) / IDX_ENTRY
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

    /// Creates the directory of a chain with no records yet.
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

// === migration from sled ===

/// The fields of a stored sled record copied into the calls file and the writer's head.
#[derive(Deserialize)]
struct Migrated {
    id: String,
    hash: String,
}

/// Migrates a sled store in `dir` to segment files, when there is one (see docs/audit.md):
/// builds `<dir>.migrating`, checks every chain's head, then renames `dir` to
/// `<dir>.sled-backup` and `<dir>.migrating` to `dir`.
async fn migrate_from_sled(dir: &Path, segment_bytes: u64) -> Result<(), SinkError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SinkError::Migration(format!("{} has no directory name", dir.display())))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let migrating = parent.join(format!("{name}.migrating"));
    let backup = parent.join(format!("{name}.sled-backup"));
    if dir.join(CHAINS).is_dir() {
        return Ok(());
    }
    let is_sled = dir.join("conf").is_file() || dir.join("db").is_file();
    if !is_sled {
        // A crash between the two renames: the sled store is in the backup and the
        // migrated one (complete: it was checked before the first rename) is waiting.
        if !dir.exists() && backup.is_dir() && migrating.join(CHAINS).is_dir() {
            fs::rename(&migrating, dir)?;
            fsync_dir(&parent)?;
            tracing::info!(backup = %backup.display(), "finished the migration of the audit store from sled");
        }
        return Ok(());
    }
    if backup.exists() {
        return Err(SinkError::Migration(format!(
            "{} holds a sled audit store to migrate, but {} exists already; move it away and restart",
            dir.display(),
            backup.display()
        )));
    }
    if migrating.exists() {
        // Left by a migration that did not finish: start again.
        fs::remove_dir_all(&migrating)?;
    }
    let records = {
        let sled = SledSink::open(dir)?;
        let store = blocking({
            let migrating = migrating.clone();
            move || SegmentStore::open_here(&migrating, segment_bytes)
        })
        .await?;
        let mut records = 0u64;
        for chain_id in sled.chain_ids().await? {
            store.create_chain(&chain_id)?;
            let mut after = None;
            let mut next = None;
            loop {
                let page = sled.scan(&chain_id, after, MIGRATION_PAGE).await?;
                let Some((last_key, _)) = page.last() else { break };
                after = Some(*last_key);
                // Positions as sled gives them: its first key, then one more per line.
                let first = *next.get_or_insert(page[0].0);
                let meta: Vec<Option<Migrated>> = page.iter().map(|(_, v)| serde_json::from_slice(v).ok()).collect();
                let entries = page.iter().zip(&meta).enumerate().map(|(i, ((_, text), m))| Entry {
                    chain_id: &chain_id,
                    seq: first + i as u64,
                    call_id: m.as_ref().map(|m| m.id.as_str()),
                    hash: m.as_ref().map_or("", |m| &m.hash),
                    text: text.as_slice(),
                });
                if let Some(p) = Prepared::new(entries)? {
                    store.write(p).await?;
                }
                next = Some(first + page.len() as u64);
                records += page.len() as u64;
                if page.len() < MIGRATION_PAGE {
                    break;
                }
            }
            let (old, new) = (sled.head(&chain_id).await?, store.head(&chain_id).await?);
            if old != new {
                return Err(SinkError::Migration(format!(
                    "chain {chain_id:?}: the migrated head {new:?} is not sled's {old:?}; the sled store is left as it was"
                )));
            }
        }
        fsync_dir(&migrating.join(CHAINS))?;
        fsync_dir(&migrating)?;
        records
    };
    fs::rename(dir, &backup)?;
    fs::rename(&migrating, dir)?;
    fsync_dir(&parent)?;
    tracing::info!(
        records,
        backup = %backup.display(),
        "migrated the audit store from sled to segment files; the sled store is kept as a backup"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_are_encoded_to_safe_names_and_back() {
        for id in ["replica-a", "gw_eu_1", ".", "..", "a/b", "x y%", "ünï", "3f0c-AA"] {
            let name = encode_chain_id(id);
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'%'), "{name}");
            assert!(name != "." && name != "..");
            assert_eq!(decode_chain_id(&name).as_deref(), Some(id));
        }
        assert_eq!(encode_chain_id(".."), "%2E%2E");
        assert_eq!(decode_chain_id("a.b"), None);
        assert_eq!(decode_chain_id("%2"), None);
        assert_eq!(decode_chain_id("%2e%2E"), None, "not the name the id is stored under");
        assert_eq!(decode_chain_id("%61"), None);
        assert_eq!(decode_chain_id(""), None);
    }

    #[test]
    fn last_line_ignores_a_partial_tail_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let read = |bytes: &[u8], complete_only| {
            fs::write(&path, bytes).unwrap();
            last_line(&File::open(&path).unwrap(), complete_only).unwrap()
        };
        assert_eq!(read(b"a\nbb\ncc", true), Some(b"bb".to_vec()));
        assert_eq!(read(b"a\nbb\ncc", false), Some(b"cc".to_vec()));
        assert_eq!(read(b"a\nbb\n", true), Some(b"bb".to_vec()));
        assert_eq!(read(b"bb\n", true), Some(b"bb".to_vec()));
        assert_eq!(read(b"bb", true), None);
        assert_eq!(read(b"", true), None);
        let long = [vec![b'x'; 300_000], b"\n".to_vec(), vec![b'y'; 200_000], b"\n".to_vec()].concat();
        assert_eq!(read(&long, true), Some(vec![b'y'; 200_000]));
    }
}
