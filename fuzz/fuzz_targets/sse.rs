//! Feeds fuzzer-chosen SSE bodies through `cloakroom_gateway::mcp::sse::map_events`, the
//! parser the MCP rescue step uses to rewrite JSON-RPC errors and filter `tools/list`
//! results in `text/event-stream` responses, and compares what an SSE client (a parser
//! written from the WHATWG `EventSource` rules, below) sees before and after.
//!
//! What must hold: no panic; with no event rewritten, a client sees the same events;
//! with every event's data rewritten by a function, a client sees exactly the rewritten
//! events — the same number, types and ids, each data passed through the function once.
//! A disagreement here lets an upstream hide an event from the rewrite (a `tools/list`
//! result the filter never saw) while the client still receives it.
//!
//! Input layout: byte 0 selects the rewrite (bit 0: rewrite every event), the rest is
//! the body.
#![no_main]

use cloakroom_gateway::mcp::sse::map_events;
use libfuzzer_sys::fuzz_target;

/// An event as an `EventSource` client dispatches it.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    kind: String,
    data: String,
    id: String,
}

/// The WHATWG "interpret an event stream" rules: lines end in CRLF, LF or CR; a blank
/// line dispatches the event if it has data; `:` starts a comment; a field without a
/// colon has an empty value; one space after the colon is dropped; an event not ended
/// by a blank line at the end of the stream is discarded.
fn client_events(body: &[u8]) -> Vec<Event> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::new();
    let (mut data, mut kind, mut id) = (String::new(), String::new(), String::new());
    let mut rest = text;
    loop {
        let Some(end) = rest.find(['\r', '\n']) else { break };
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                out.push(Event { kind: std::mem::take(&mut kind), data: std::mem::take(&mut data), id: id.clone() });
            }
            kind.clear();
            data.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "event" => kind = value.to_owned(),
            "id" if !value.contains('\0') => id = value.to_owned(),
            _ => {}
        }
    }
    out
}

fn rewrite(data: &[u8]) -> Vec<u8> {
    let mut v = b"<".to_vec();
    v.extend_from_slice(data);
    v.push(b'>');
    v
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else { return };
    // map_events reads the body as UTF-8 (lossily); compare on what it reads.
    let body = String::from_utf8_lossy(body).into_owned();
    let before = client_events(body.as_bytes());
    if mode & 1 == 0 {
        let out = map_events(body.as_bytes(), |_| None);
        assert_eq!(client_events(&out), before, "an unchanged body changed what a client sees");
    } else {
        let mut seen = 0usize;
        let out = map_events(body.as_bytes(), |d| {
            seen += 1;
            Some(rewrite(d))
        });
        let want: Vec<Event> = before
            .into_iter()
            .map(|e| Event { data: String::from_utf8_lossy(&rewrite(e.data.as_bytes())).into_owned(), ..e })
            .collect();
        assert_eq!(client_events(&out), want, "the client sees other events than the rewrite made");
        let _ = seen;
    }
});
