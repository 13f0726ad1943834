use cloakroom_core::Secret;

use super::*;
use crate::{MaskEntry, MaskOptions};

const MULTILINE: &str = "mlk-first-line-0123456789\nmlk-second-line-abcdefghij";
const SECRET: &str = "sk_live_event_stream_0123456789abcdef";

fn framer() -> EventFramer {
    let entries = [
        MaskEntry::new("ml", Secret::from(MULTILINE), "cloak_ml"),
        MaskEntry::new("k", Secret::from(SECRET), "cloak_k"),
    ];
    EventFramer::new(Arc::new(Matcher::build(entries, &MaskOptions::default()).unwrap()))
}

/// `body` through a framer, `step` bytes at a time.
fn frame(body: &[u8], step: usize) -> Vec<u8> {
    let mut f = framer();
    let mut out = Vec::new();
    for chunk in body.chunks(step) {
        for event in f.push(chunk).unwrap() {
            out.extend_from_slice(&event);
        }
    }
    out.extend_from_slice(&f.finish());
    out
}

#[test]
fn data_lines_joined_into_a_secret_are_masked_at_every_chunking() {
    let (a, b) = MULTILINE.split_once('\n').unwrap();
    for eol in ["\n", "\r\n", "\r"] {
        let body = format!("event: message{eol}data: {a}{eol}data:{b}{eol}{eol}data: tail{eol}{eol}");
        for step in 1..=body.len() {
            let out = String::from_utf8(frame(body.as_bytes(), step)).unwrap();
            assert!(!out.contains(a) && !out.contains(b), "{eol:?} {step}: {out:?}");
            assert!(out.contains("event: message\ndata: cloak_ml\n\n"), "{eol:?} {step}: {out:?}");
            assert!(out.ends_with(&format!("data: tail{eol}{eol}")), "{eol:?} {step}: {out:?}");
        }
    }
}

#[test]
fn an_event_without_a_secret_passes_byte_for_byte() {
    let body = b"\xef\xbb\xbfid: 1\r\nevent: x\r\ndata: a\r\ndata\r\n: comment\r\n\r\ndata: b\n\n";
    for step in 1..=body.len() {
        assert_eq!(frame(body, step), body);
    }
}

#[test]
fn a_secret_in_the_first_event_after_a_bom_is_masked() {
    let (a, b) = MULTILINE.split_once('\n').unwrap();
    let body = format!("\u{feff}data: {a}\ndata: {b}\n\n");
    assert_eq!(frame(body.as_bytes(), 7), b"data: cloak_ml\n\n");
}

#[test]
fn an_unfinished_last_event_is_masked_too() {
    let (a, b) = MULTILINE.split_once('\n').unwrap();
    let body = format!("data: {a}\ndata: {b}");
    assert_eq!(frame(body.as_bytes(), 5), b"data: cloak_ml\n\n");
}

#[test]
fn a_secret_on_one_data_line_is_masked_with_the_other_lines_kept() {
    let body = format!("id: 7\ndata: {{\"k\":\"{SECRET}\"}}\ndata: more\n\n");
    assert_eq!(frame(body.as_bytes(), 3), b"id: 7\ndata: {\"k\":\"cloak_k\"}\ndata: more\n\n");
}

#[test]
fn an_event_longer_than_the_limit_is_an_error() {
    let mut f = framer();
    let line = vec![b'x'; 1024 * 1024];
    let mut result = Ok(Vec::new());
    for _ in 0..=MAX_EVENT_BYTES / line.len() {
        result = f.push(&line);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(EventTooLong));
    assert_eq!(f.held_back(), 0);
}

/// The data of each dispatched event, as a WHATWG EventSource client assembles it
/// (an unterminated last event is not dispatched).
fn client_events(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut data = String::new();
    let mut lines: Vec<&str> = normalized.split('\n').collect();
    // The text after the last line end is an unfinished line.
    lines.pop();
    for line in lines {
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                events.push(std::mem::take(&mut data));
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            data.push_str(value);
            data.push('\n');
        }
    }
    events
}

proptest::proptest! {
    #[test]
    fn a_client_assembles_the_masked_data_of_every_event_at_any_chunking(
        events in proptest::collection::vec(
            (proptest::collection::vec("[a-z0-9 ]{1,12}", 1..4), proptest::bool::ANY, 0usize..3),
            1..6,
        ),
        eol in 0usize..3,
        step in 1usize..40,
    ) {
        let eol = ["\n", "\r\n", "\r"][eol];
        let (a, b) = MULTILINE.split_once('\n').unwrap();
        let mut body = String::new();
        let mut expected = Vec::new();
        for (lines, with_secret, at) in &events {
            let mut lines = lines.clone();
            if *with_secret {
                let at = (*at).min(lines.len());
                lines.insert(at, b.to_owned());
                lines.insert(at, a.to_owned());
            }
            body.push_str(&format!("id: x{eol}"));
            for line in &lines {
                body.push_str(&format!("data: {line}{eol}"));
            }
            body.push_str(eol);
            expected.push(lines.join("\n").replace(MULTILINE, "cloak_ml"));
        }
        let out = frame(body.as_bytes(), step);
        proptest::prop_assert_eq!(client_events(&out), expected);
        if !events.iter().any(|e| e.1) {
            proptest::prop_assert_eq!(out, body.into_bytes());
        }
    }
}
