//! Masking a `text/event-stream` as its client reads it: event by event, over the
//! event's data as the client assembles it.
//!
//! An SSE client joins the `data:` lines of one event with `\n` (WHATWG HTML,
//! "Interpreting an event stream"). On the wire those lines are separated by `data: `
//! and a line end (LF, CRLF or a lone CR), so a secret that spans lines — a PEM block,
//! a certificate, base64 wrapped at 76 columns — never appears on the wire as it does
//! in the event the client dispatches. The [`EventFramer`] cuts the stream into events
//! (at blank lines), joins each event's data the way a client does and masks that; an
//! event whose data holds a secret is written again with the masked data, one `data: `
//! line per line of it; any other event passes byte for byte. The stream masker still
//! runs over the framer's output, so what a client that does not read SSE sees is masked
//! too.
//!
//! An event is held back until its blank line (or the end of the body): at most
//! [`MAX_EVENT_BYTES`]; a longer event ends the body with an error rather than pass on
//! data that could not be masked as a whole.
//!
//! A secret split across two events is two values to the client, not the secret; see
//! docs/threat-model.md.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::Matcher;

/// The longest event the framer holds back (8 MiB).
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

const BOM: &[u8] = "\u{feff}".as_bytes();

/// An event longer than [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event of the function's event stream is longer than 8 MiB, the most the gateway masks as one event")]
pub struct EventTooLong;

/// Cuts an SSE body into events and masks each event's assembled data.
#[derive(Debug)]
pub(crate) struct EventFramer {
    matcher: Arc<Matcher>,
    buf: BytesMut,
    /// Where the next line of `buf` starts.
    line_start: usize,
    /// How far `buf` was searched for a line end without finding one.
    searched: usize,
    /// Whether the first event is still to come (a BOM may start it).
    first: bool,
    masked: u64,
}

impl EventFramer {
    pub(crate) fn new(matcher: Arc<Matcher>) -> Self {
        Self { matcher, buf: BytesMut::new(), line_start: 0, searched: 0, first: true, masked: 0 }
    }

    /// Replacements made so far.
    pub(crate) fn masked(&self) -> u64 {
        self.masked
    }

    /// Bytes held back.
    pub(crate) fn held_back(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next chunk; returns the events it completed, masked.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, EventTooLong> {
        self.buf.extend_from_slice(chunk);
        let out = self.complete_events();
        if self.buf.len() > MAX_EVENT_BYTES {
            self.buf.clear();
            self.line_start = 0;
            self.searched = 0;
            return Err(EventTooLong);
        }
        Ok(out)
    }

    /// The events `buf` holds up to their blank line, masked.
    fn complete_events(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        loop {
            let Some((end, next)) = line_end(&self.buf, self.line_start.max(self.searched), false) else {
                // Nothing before the last byte ends a line (a CR there may begin a CRLF).
                self.searched = self.buf.len().saturating_sub(1).max(self.line_start);
                break;
            };
            if end == self.line_start {
                // A blank line: the event ends here.
                let event = self.buf.split_to(next).freeze();
                self.line_start = 0;
                self.searched = 0;
                out.push(self.event(event));
            } else {
                self.line_start = next;
            }
        }
        out
    }

    /// Ends the body: the unfinished event, masked like a finished one.
    pub(crate) fn finish(&mut self) -> Bytes {
        let rest = self.buf.split().freeze();
        self.line_start = 0;
        self.searched = 0;
        if rest.is_empty() {
            return rest;
        }
        self.event(rest)
    }

    /// One event's bytes (with its line ends), masked.
    fn event(&mut self, event: Bytes) -> Bytes {
        let first = std::mem::replace(&mut self.first, false);
        let mut lines = Vec::new();
        let mut start = 0;
        while start < event.len() {
            let (end, next) = line_end(&event, start, true).unwrap_or((event.len(), event.len()));
            lines.push(&event[start..end]);
            start = next;
        }
        if let Some(line) = lines.first_mut().filter(|_| first) {
            *line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let data: Vec<&[u8]> = lines.iter().filter_map(|l| data_value(l)).collect();
        let joined: Cow<'_, [u8]> = match data.as_slice() {
            [] => return event,
            [one] => Cow::Borrowed(one),
            many => Cow::Owned(many.join(&b'\n')),
        };
        if !self.matcher.finds(&joined) {
            return event;
        }
        let replaced = self.matcher.replace(&joined);
        self.masked += replaced.total();
        let mut out = Vec::with_capacity(event.len());
        for line in lines.iter().filter(|l| !l.is_empty() && data_value(l).is_none()) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        for line in replaced.output.split(|b| *b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// Masks a whole `text/event-stream` body at once, as a [`MaskBody`](crate::MaskBody)
/// reading it as events does: each event's data as a client joins it, then the bytes.
/// Returns the masked body and the number of replacements. For bodies already in
/// memory (no event size limit applies); a gateway step that writes an event stream of
/// its own from upstream data masks its output with this.
///
/// ```
/// use std::sync::Arc;
/// use cloakroom_core::Secret;
/// use cloakroom_mask::{mask_event_stream, MaskEntry, MaskOptions, Matcher};
///
/// let secret = "first-line-0123456789\nsecond-line-abcdefghij";
/// let matcher = Arc::new(
///     Matcher::build([MaskEntry::new("pem", Secret::from(secret), "cloak_pem")], &MaskOptions::default()).unwrap(),
/// );
/// let body = b"event: message\ndata: first-line-0123456789\ndata: second-line-abcdefghij\n\n";
/// let (masked, n) = mask_event_stream(&matcher, body);
/// assert_eq!(masked, b"event: message\ndata: cloak_pem\n\n");
/// assert_eq!(n, 1);
/// ```
pub fn mask_event_stream(matcher: &Arc<Matcher>, body: &[u8]) -> (Vec<u8>, u64) {
    if matcher.is_empty() {
        return (body.to_vec(), 0);
    }
    let mut framer = EventFramer::new(matcher.clone());
    framer.buf.extend_from_slice(body);
    let mut stream = matcher.stream();
    let mut out = Vec::with_capacity(body.len());
    for event in framer.complete_events().into_iter().chain([framer.finish()]) {
        out.extend(stream.push(event).concat());
    }
    out.extend(stream.finish().concat());
    (out, framer.masked() + stream.masked())
}

/// The value of a `data` field line (`data`, `data:x`, `data: x`), else `None`.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line == b"data" {
        return Some(b"");
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The end of the first line end at or after `from` and where the next line starts: a line ends at
/// LF, CRLF or a lone CR. A CR that ends `buf` could be the start of a CRLF, so it only
/// counts when `last` (no more bytes will come).
fn line_end(buf: &[u8], from: usize, last: bool) -> Option<(usize, usize)> {
    let i = from + buf.get(from..)?.iter().position(|b| *b == b'\n' || *b == b'\r')?;
    if buf[i] == b'\n' {
        return Some((i, i + 1));
    }
    match buf.get(i + 1) {
        Some(b'\n') => Some((i, i + 2)),
        Some(_) => Some((i, i + 1)),
        None if last => Some((i, i + 1)),
        None => None,
    }
}

#[cfg(test)]
#[path = "event_stream_tests.rs"]
mod tests;
