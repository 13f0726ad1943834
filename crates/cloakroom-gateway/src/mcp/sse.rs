//! Server-sent events, just enough to rewrite the `data` of buffered events.

/// Rewrites the `data` of each event in a complete SSE body with `f` (`None` keeps the
/// event's data as it was). Other fields (`event:`, `id:`, comments) are kept.
pub fn map_events(body: &[u8], mut f: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    // Lines end in CRLF, LF or a lone CR (WHATWG `EventSource`): a client splits on all
    // three, so must this, or an event hidden behind a CR escapes the rewrite.
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n").replace('\r', "\n");
    // A client drops one leading byte-order mark; left in, it would hide the first
    // event's `data:` from the rewrite.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = Vec::with_capacity(body.len());
    let mut events = text.split("\n\n").peekable();
    while let Some(event) = events.next() {
        let last = events.peek().is_none();
        if event.is_empty() {
            if !last {
                out.extend_from_slice(b"\n\n");
            }
            continue;
        }
        let data: Vec<&str> = event.lines().filter_map(data_value).collect();
        let replaced = if data.is_empty() { None } else { f(data.join("\n").as_bytes()) };
        match replaced {
            Some(new) => {
                for line in event.lines().filter(|l| data_value(l).is_none()) {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                for line in String::from_utf8_lossy(&new).split('\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
            None => {
                out.extend_from_slice(event.as_bytes());
                // The last event keeps its own ending: a newline added here would finish
                // an event the upstream left unfinished, which a client discards.
                if !last {
                    out.push(b'\n');
                }
            }
        }
        if !last {
            out.push(b'\n');
        }
    }
    // Output that starts with a byte-order mark (a field line that began with one, now
    // first) would lose it to the client: give the client one to drop.
    if out.starts_with("\u{feff}".as_bytes()) {
        out.splice(0..0, "\u{feff}".bytes());
    }
    out
}

/// The value of a `data` field line: after `data:` and one optional space, or empty for a
/// bare `data` (a field with no colon has an empty value).
fn data_value(line: &str) -> Option<&str> {
    if line == "data" {
        return Some("");
    }
    line.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found by fuzz/fuzz_targets/sse.rs: a client ends lines at a lone CR too, so these
    // events were passed on without being rewritten.
    #[test]
    fn a_lone_cr_ends_lines_and_events() {
        let out = map_events(b"data: a\r\rdata: b\r\r", |d| Some([b"<", d, b">"].concat()));
        assert_eq!(String::from_utf8(out).unwrap(), "data: <a>\n\ndata: <b>\n\n");
    }

    #[test]
    fn an_unfinished_last_event_stays_unfinished() {
        assert_eq!(map_events(b"\ndata:\r", |_| None), b"\ndata:\n");
        assert_eq!(map_events(b"data: a\n\ndata: b\n", |_| None), b"data: a\n\ndata: b\n");
    }

    #[test]
    fn a_leading_byte_order_mark_does_not_hide_the_first_event() {
        let out = map_events("\u{feff}data: a\n\n".as_bytes(), |d| Some([b"<", d, b">"].concat()));
        assert_eq!(String::from_utf8(out).unwrap(), "data: <a>\n\n");
    }

    #[test]
    fn a_line_starting_with_a_byte_order_mark_keeps_it() {
        let body = "\u{feff}\u{feff}data: x\n\n";
        assert_eq!(map_events(body.as_bytes(), |_| None), body.as_bytes());
    }

    #[test]
    fn a_bare_data_field_is_data() {
        let out = map_events(b"data\ndata:x\n\n", |d| Some([b"<", d, b">"].concat()));
        assert_eq!(String::from_utf8(out).unwrap(), "data: <\ndata: x>\n\n");
    }

    #[test]
    fn data_is_rewritten_and_other_fields_kept() {
        let body = b"event: message\nid: 1\ndata: {\"a\":1}\n\nevent: message\ndata: keep\n\n";
        let out = map_events(body, |d| (d == b"{\"a\":1}").then(|| b"{\"a\":2}".to_vec()));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: message\nid: 1\ndata: {\"a\":2}\n\nevent: message\ndata: keep\n\n"
        );
    }
}
