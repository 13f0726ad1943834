//! The writer: appending batches to a chain's open segment, starting segments and
//! recovering the last one on open.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The segment being written.
#[derive(Debug)]
pub(super) struct OpenSegment {
    pub(super) first: u64,
    pub(super) log: File,
    pub(super) idx: File,
    pub(super) calls: File,
    pub(super) log_len: u64,
    pub(super) idx_len: u64,
    pub(super) calls_len: u64,
}

impl OpenSegment {
    /// The `seq` the next record of this segment must have.
    pub(super) fn next_seq(&self) -> u64 {
        self.first + self.idx_len / IDX_ENTRY
    }
}

/// The write side of one chain.
#[derive(Debug)]
pub(super) struct ChainWriter {
    pub(super) chain_id: String,
    pub(super) dir: PathBuf,
    pub(super) seg: Option<OpenSegment>,
    /// The last stored position and the `hash` of the record there (when it parses).
    pub(super) head: Option<(u64, Option<String>)>,
}

/// A batch encoded for writing, built before the blocking task.
pub(super) struct Prepared {
    pub(super) chain_id: String,
    /// Every record's text and `\n`.
    pub(super) log: Vec<u8>,
    pub(super) recs: Vec<PreparedRecord>,
    /// Every record's `hash`, concatenated.
    pub(super) hashes: Vec<u8>,
}

pub(super) struct PreparedRecord {
    pub(super) seq: u64,
    /// Where its line starts in `Prepared::log`.
    pub(super) start: usize,
    pub(super) call: [u8; 16],
    /// Where its `hash` ends in `Prepared::hashes`.
    pub(super) hash_end: usize,
}

/// A record to write: borrowed from a [`SealedRecord`], or a stored line when migrating.
pub(super) struct Entry<'a> {
    pub(super) chain_id: &'a str,
    pub(super) seq: u64,
    /// `None` for a stored line that does not parse (indexed under no call).
    pub(super) call_id: Option<&'a str>,
    pub(super) hash: &'a str,
    pub(super) text: &'a [u8],
}

impl Prepared {
    pub(super) fn new<'a>(entries: impl ExactSizeIterator<Item = Entry<'a>>) -> Result<Option<Self>, SinkError> {
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

    pub(super) fn end(&self, i: usize) -> usize {
        self.recs.get(i + 1).map_or(self.log.len(), |r| r.start)
    }

    pub(super) fn hash(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.recs[i - 1].hash_end };
        &self.hashes[start..self.recs[i].hash_end]
    }
}

impl ChainWriter {
    /// Recovers the chain's last segment (see the module docs) and opens it for appending.
    pub(super) fn open(chain_id: &str, dir: PathBuf) -> Result<Self, SinkError> {
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
    pub(super) fn write(&mut self, p: &Prepared, segment_bytes: u64) -> Result<(), SinkError> {
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
    pub(super) fn roll(&mut self, first: u64) -> Result<(), SinkError> {
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
pub(super) fn write_group(seg: &mut OpenSegment, p: &Prepared, i: usize, j: usize) -> Result<(), SinkError> {
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
    release_written(&seg.log, seg.log_len, seg.log_len + (b - a) as u64);
    seg.log_len += (b - a) as u64;
    seg.idx_len += idx.len() as u64;
    seg.calls_len += calls.len() as u64;
    Ok(())
}

/// Tells the kernel that the log's whole pages between `from` and `to`, just made
/// durable, will not be read soon, so that it frees them now.
///
/// An audit log is written once and read rarely, by an auditor's query. Left in the page
/// cache, its pages grow it by the log's rate (~2.3 KB a call) until memory runs short,
/// and then the kernel must find and evict them; every batch also writes into pages the
/// process has never touched, which a virtual machine's host must back first (9 % of
/// cloakroomd's CPU in the cost report: docs/performance.md). Given back once clean, the
/// same few pages are used again and again. The partial last page stays: the next batch
/// writes into it, and the batch that fills it gives it back (`from` rounds down). The
/// pages are the kernel's own size (16 or 64 KiB on some arm64 kernels), which it rounds
/// the range to. Only advice: Linux drops only clean pages that nobody holds (a reader's
/// are skipped), and a kernel or file system that ignores it loses nothing, so its
/// answer is not checked.
fn release_written(log: &File, from: u64, to: u64) {
    let page = rustix::param::page_size() as u64;
    let (start, end) = (from - from % page, to - to % page);
    if let Some(len) = std::num::NonZeroU64::new(end.saturating_sub(start)) {
        let _ = rustix::fs::fadvise(log, start, Some(len), rustix::fs::Advice::DontNeed);
    }
}

pub(super) fn open_segment(seg: &Segment) -> Result<OpenSegment, SinkError> {
    let open = |ext: &str| OpenOptions::new().create(true).read(true).append(true).open(seg.path(ext));
    let (log, idx, calls) = (open("log")?, open("idx")?, open("calls")?);
    let (log_len, idx_len, calls_len) = (log.metadata()?.len(), idx.metadata()?.len(), calls.metadata()?.len());
    Ok(OpenSegment { first: seg.first, log, idx, calls, log_len, idx_len, calls_len })
}

/// Makes a chain's last segment consistent: cuts bytes after the log's last `\n`, then
/// rewrites the idx and calls files where they differ from what the log's complete lines
/// give. Returns the number of lines and the last line's `hash` (when it parses), or
/// `None` when the log holds no complete line.
pub(super) fn recover_segment(chain_id: &str, seg: &Segment) -> Result<Option<(u64, Option<String>)>, SinkError> {
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

pub(super) fn complete_lines(idx: &[u8]) -> u64 {
    (idx.len() as u64) / IDX_ENTRY
}
