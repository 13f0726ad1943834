//! Segments on disk: listing a chain's segments, seeking by index, reading lines.

#[allow(clippy::wildcard_imports)]
use super::*;

/// One segment of a chain.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) first: u64,
    /// `<chain dir>/<first, 20 digits>`, without extension.
    pub(super) base: PathBuf,
}

impl Segment {
    pub(super) fn new(chain_dir: &Path, first: u64) -> Self {
        Self { first, base: chain_dir.join(segment_name(first)) }
    }

    pub(super) fn path(&self, ext: &str) -> PathBuf {
        self.base.with_extension(ext)
    }
}

/// The segments of a chain (those with a `.log`), oldest first.
pub(super) fn list_segments(chain_dir: &Path) -> io::Result<Vec<Segment>> {
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
pub(super) fn seek_point(seg: &Segment, log: &File, k: u64) -> io::Result<(u64, u64)> {
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
pub(super) fn visit_lines(
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
pub(super) fn last_line(log: &File, complete_only: bool) -> io::Result<Option<Vec<u8>>> {
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
