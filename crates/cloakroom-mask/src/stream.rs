//! Masking a body as it streams: push chunks in, take masked bytes out.
//!
//! The replacer holds back only a tail that could still begin a match — never more than
//! the longest pattern minus one byte (plus, with detectors on, a tail that begins a
//! detector's literal prefix, bounded by that detector's window). A chunk with nothing to
//! replace comes back as a slice of itself, without copying; so does every long stretch
//! between replacements.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{MaskEntry, MaskOptions, Matcher};
//!
//! let matcher = Arc::new(
//!     Matcher::build([MaskEntry::new("db", Secret::from("correct-horse-battery"), "cloak_db")], &MaskOptions::default())
//!         .unwrap(),
//! );
//! let mut stream = matcher.stream();
//! let mut out = Vec::new();
//! for chunk in ["password=correct-hor", "se-battery; ok"] {
//!     out.extend(stream.push(Bytes::from(chunk)).concat());
//! }
//! out.extend(stream.finish().concat());
//! assert_eq!(out, b"password=cloak_db; ok");
//! assert_eq!(stream.masked(), 1);
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::detect::DetectState;
use crate::matcher::{Matcher, Search};

/// Pieces shorter than this are copied into one buffer instead of being sliced, so a body
/// with many replacements does not turn into many tiny frames.
const SLICE_MIN: usize = 512;

/// The copied pieces of one push share buffers of at least this size, so a body with a
/// replacement every few KiB costs one allocation per chunk, not one per replacement.
const SMALL_CAPACITY: usize = 4096;

/// Extra bytes joined rather than handled in a seam, so a chunk handled in place is
/// long enough to hold every token straddling its start well before its hold-back.
const SEAM_SLACK: usize = 64;

/// Masked bytes ready to send: zero-copy slices of the input and small copied pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready(Vec<Bytes>);

impl Ready {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| b.is_empty())
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.0
    }

    /// All pieces in one buffer (no copy when there is a single piece).
    pub fn into_bytes(mut self) -> Bytes {
        match self.0.len() {
            0 => Bytes::new(),
            1 => self.0.pop().unwrap_or_default(),
            _ => Bytes::from(self.concat()),
        }
    }

    /// All pieces copied into one vector.
    pub fn concat(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for p in &self.0 {
            v.extend_from_slice(p);
        }
        v
    }
}

impl IntoIterator for Ready {
    type Item = Bytes;
    type IntoIter = std::vec::IntoIter<Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Collects output pieces, slicing long stretches and copying short ones.
#[derive(Default)]
pub(crate) struct Out {
    parts: Vec<Bytes>,
    small: BytesMut,
}

impl Out {
    pub(crate) fn slice(&mut self, src: &Bytes, start: usize, end: usize) {
        if end <= start {
            return;
        }
        if end - start >= SLICE_MIN {
            self.flush();
            self.parts.push(src.slice(start..end));
        } else {
            self.bytes(&src[start..end]);
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        if self.small.capacity() - self.small.len() < b.len() {
            self.small.reserve(b.len().max(SMALL_CAPACITY));
        }
        self.small.extend_from_slice(b);
    }

    fn flush(&mut self) {
        if !self.small.is_empty() {
            self.parts.push(self.small.split().freeze());
        }
    }

    pub(crate) fn finish(mut self) -> Ready {
        self.flush();
        Ready(self.parts)
    }
}

/// The streaming form of [`Matcher::replace`]: for every chunking of a body, the
/// concatenated output equals `replace` of the whole body.
pub struct StreamReplacer {
    matcher: Arc<Matcher>,
    held: Vec<u8>,
    masked: u64,
    detect: Option<DetectState>,
    /// Bytes already sent (or replaced) just before `held` that the decoding views
    /// still parse: a token of an escape grammar may straddle the cut. At most the
    /// longest token.
    ctx: Vec<u8>,
    /// Per decoding view: a token boundary of its grammar in `ctx + held`, where its
    /// parse resumes.
    syncs: Vec<usize>,
    scratch: Vec<u8>,
}

impl fmt::Debug for StreamReplacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReplacer").field("held", &self.held.len()).field("masked", &self.masked).finish()
    }
}

impl StreamReplacer {
    /// A replacer for one stream.
    pub fn new(matcher: Arc<Matcher>) -> Self {
        let detect = matcher.detectors().map(|_| DetectState::default());
        let syncs = vec![0; matcher.views().len()];
        Self { matcher, held: Vec::new(), masked: 0, detect, ctx: Vec::new(), syncs, scratch: Vec::new() }
    }

    /// Replacements made so far (known secrets and detector hits).
    pub fn masked(&self) -> u64 {
        self.masked + self.detect.as_ref().map_or(0, |d| d.count)
    }

    /// Bytes held back waiting for the next chunk.
    pub fn held_back(&self) -> usize {
        self.held.len() + self.detect.as_ref().map_or(0, |d| d.held.len())
    }

    /// Masks the next chunk; returns what is certain not to change.
    pub fn push(&mut self, chunk: Bytes) -> Ready {
        let mut out = Out::default();
        if self.matcher.pattern_count() == 0 {
            out.slice(&chunk, 0, chunk.len());
        } else {
            self.push_known(chunk, &mut out);
        }
        self.detect_stage(out.finish(), false)
    }

    /// Ends the stream: masks and returns what was held back.
    pub fn finish(&mut self) -> Ready {
        let mut out = Out::default();
        if !self.held.is_empty() {
            let mut buf = std::mem::take(&mut self.ctx);
            let from = buf.len();
            buf.extend_from_slice(&self.held);
            self.held.clear();
            let syncs = std::mem::take(&mut self.syncs);
            self.process(&Bytes::from(buf), from, &syncs, true, &mut out);
        }
        self.ctx.clear();
        self.detect_stage(out.finish(), true)
    }

    fn detect_stage(&mut self, ready: Ready, last: bool) -> Ready {
        let (Some(state), Some(detectors)) = (self.detect.as_mut(), self.matcher.detectors()) else {
            return ready;
        };
        let mut out = Out::default();
        for part in ready {
            state.push(detectors, part, false, &mut out);
        }
        if last {
            state.push(detectors, Bytes::new(), true, &mut out);
        }
        out.finish()
    }

    fn push_known(&mut self, chunk: Bytes, out: &mut Out) {
        if self.held.is_empty() && self.ctx.is_empty() {
            let syncs = std::mem::take(&mut self.syncs);
            let zero = vec![0; syncs.len()];
            self.process(&chunk, 0, &zero, false, out);
            return;
        }
        let max = self.matcher.max_pattern_len();
        let ctx_len = self.ctx.len();
        let pre = ctx_len + self.held.len();
        let syncs = std::mem::take(&mut self.syncs);
        if self.held.len() + chunk.len() <= 2 * max + SEAM_SLACK {
            // Small: join and rescan (copies at most two patterns' worth).
            let mut joined = std::mem::take(&mut self.ctx);
            joined.extend_from_slice(&self.held);
            self.held.clear();
            joined.extend_from_slice(&chunk);
            self.process(&Bytes::from(joined), ctx_len, &syncs, false, out);
            return;
        }
        // The seam: every match starting in the held bytes ends within max - 1 bytes of
        // the chunk, so decide those on a small joined buffer, then go on in the chunk
        // itself without copying it.
        let mut seam = std::mem::take(&mut self.ctx);
        seam.extend_from_slice(&self.held);
        self.held.clear();
        seam.extend_from_slice(&chunk[..max - 1]);
        let seam = Bytes::from(seam);
        let mut search = Search::streaming(&self.matcher, &seam, seam.len(), false, &syncs);
        let mut pos = ctx_len;
        while let Some(m) = search.next_from(pos) {
            if m.start >= pre {
                break;
            }
            out.slice(&seam, pos, m.start);
            out.bytes(self.matcher.replacement_of(m.pattern));
            self.masked += 1;
            pos = m.end;
        }
        if pos < pre {
            out.slice(&seam, pos, pre);
            pos = pre;
        }
        // Where each view's parse resumes in the chunk: its first token boundary there.
        let chunk_syncs: Vec<usize> = self
            .matcher
            .views()
            .iter()
            .zip(&syncs)
            .map(|(v, &sync)| v.grammar.boundary_after(&seam, sync, pre, seam.len()) - pre)
            .collect();
        self.process(&chunk, pos - pre, &chunk_syncs, false, out);
    }

    /// Whether a match could start at `buf[y]` and run past the end of `buf`.
    fn could_start(&mut self, buf: &[u8], y: usize, view_from: &[(usize, Option<usize>)]) -> bool {
        if buf.len() - y <= self.matcher.main_max_len() && self.matcher.could_start_match(&buf[y..]) {
            return true;
        }
        // Past its last trigger byte a view decodes to the input's own bytes, and its
        // targets are patterns of those: the check above covers it.
        view_from.iter().enumerate().any(|(k, &(from, lt))| {
            y >= from
                && lt.is_some_and(|lt| y <= lt)
                && self.matcher.view_could_start(k, buf, y, buf.len(), &mut self.scratch)
        })
    }

    /// Masks `buf[from..]` (`buf[..from]` was sent already: the views parse it, view
    /// `k` from its token boundary `syncs[k]`). Unless `last`, keeps back the shortest
    /// tail that could still begin a match (or change the one found).
    fn process(&mut self, buf: &Bytes, from: usize, syncs: &[usize], last: bool, out: &mut Out) {
        let n = buf.len();
        let max = self.matcher.max_pattern_len();
        // A match starting before `limit` fits in `buf` whatever follows, so it is final.
        let limit = n.saturating_sub(max.saturating_sub(1));
        let matcher = self.matcher.clone();
        let mut search = Search::streaming(&matcher, buf, n, last, syncs);
        let mut pos = from;
        loop {
            let found = search.next_from(pos);
            if let Some(m) = found {
                if last || m.start < limit {
                    out.slice(buf, pos, m.start);
                    out.bytes(matcher.replacement_of(m.pattern));
                    self.masked += 1;
                    pos = m.end;
                    continue;
                }
            }
            if last {
                out.slice(buf, pos, n);
                self.syncs = vec![0; syncs.len()];
                return;
            }
            // The first position whose tail could still grow into a match.
            let lo = pos.max(limit);
            let view_from: Vec<(usize, Option<usize>)> = (0..matcher.views().len())
                .map(|k| {
                    let from = matcher.view_hold_from(k, buf, n).max(lo);
                    (from, matcher.views()[k].grammar.last_trigger(buf, from, n))
                })
                .collect();
            // Below this no tail can still begin a match.
            let first = view_from
                .iter()
                .filter(|(_, lt)| lt.is_some())
                .map(|&(from, _)| from)
                .chain([n.saturating_sub(matcher.main_max_len())])
                .min()
                .unwrap_or(n)
                .max(lo);
            let mut hold = n;
            for y in first..n {
                if self.could_start(buf, y, &view_from) {
                    hold = y;
                    break;
                }
            }
            if let Some(m) = found {
                // Nothing before it can reach past the buffer and nothing longer can
                // start where it starts: it is final.
                if m.start < hold {
                    out.slice(buf, pos, m.start);
                    out.bytes(matcher.replacement_of(m.pattern));
                    self.masked += 1;
                    pos = m.end;
                    continue;
                }
            }
            out.slice(buf, pos, hold);
            // Keep, per view, the last token boundary before the cut (a token may
            // straddle it), and the bytes from the earliest of them as context.
            let bounds: Vec<usize> = matcher
                .views()
                .iter()
                .zip(syncs)
                .map(|(v, &sync)| v.grammar.boundary_before(buf, sync.min(hold), hold, n))
                .collect();
            let base = bounds.iter().copied().min().unwrap_or(hold).min(hold);
            self.ctx.clear();
            self.ctx.extend_from_slice(&buf[base..hold]);
            self.held.extend_from_slice(&buf[hold..]);
            self.syncs = bounds.iter().map(|b| b - base).collect();
            return;
        }
    }
}
