//! Server-sent events, just enough to rewrite the `data` of buffered events.

/// Rewrites the `data` of each event in a complete SSE body with `f` (`None` keeps the
/// event's data as it was). Other fields (`event:`, `id:`, comments) are kept.
pub fn map_events(body: &[u8], mut f: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
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
        let data: Vec<&str> =
            event.lines().filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))).collect();
        let replaced = if data.is_empty() { None } else { f(data.join("\n").as_bytes()) };
        match replaced {
            Some(new) => {
                for line in event.lines().filter(|l| !l.starts_with("data:")) {
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
                out.push(b'\n');
            }
        }
        if !last {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
