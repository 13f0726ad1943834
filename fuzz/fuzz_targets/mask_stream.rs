//! Streams fuzzer-chosen bodies through fuzzer-chosen secret sets and chunkings, and
//! checks the output against the one-shot oracle (plain Aho-Corasick, no prefilter, no
//! streaming) for every search and confirmation path of the matcher, plus the detector
//! stage against its own one-shot run.
//!
//! The escape grammars (JSON, HTML, URL, line-broken base64, mixed-case hex) are
//! exercised by splicing a secret, escaped by the fuzzer's choices, into the body.
//!
//! Input layout: byte 0 = number of secrets (0..=7) and encoding mask; byte 1 = `html`
//! (bit 0) and the splice grammar (bits 1..=3, 0: none); then per secret a length byte
//! (1..=40) and the bytes; then a byte of chunking seed; then a byte choosing the secret
//! and where to splice it; the rest is the body, whose bytes also choose, per character,
//! how the spliced secret is escaped.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use cloakroom_core::Secret;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use cloakroom_mask::{oracle, BuildTuning, Encoding, MaskEntry, MaskOptions, Matcher};
use libfuzzer_sys::fuzz_target;

/// `secret` escaped in grammar `g`, each character's escape chosen by `choice`.
fn escape(g: u8, secret: &[u8], choice: &[u8]) -> Vec<u8> {
    let pick = |i: usize| choice.get(i % choice.len().max(1)).copied().unwrap_or(0);
    let mut out = Vec::new();
    match g {
        // JSON: literal, \uXXXX (either case), or the short escape.
        1 => match std::str::from_utf8(secret) {
            Ok(text) => {
                for (i, c) in text.chars().enumerate() {
                    let k = pick(i);
                    let short = match c {
                        '"' => Some("\\\""),
                        '\\' => Some("\\\\"),
                        '/' => Some("\\/"),
                        '\n' => Some("\\n"),
                        _ => None,
                    };
                    if k % 3 == 0 && c != '"' && c != '\\' && !c.is_control() {
                        out.extend_from_slice(c.to_string().as_bytes());
                    } else if k % 3 == 1 && short.is_some() {
                        out.extend_from_slice(short.unwrap_or_default().as_bytes());
                    } else {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            let e = if k & 4 != 0 { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") };
                            out.extend_from_slice(e.as_bytes());
                        }
                    }
                }
            }
            Err(_) => out.extend_from_slice(secret),
        },
        // Percent-encoding: literal (when safe), %XX in either case, or + for space.
        2 => {
            for (i, &b) in secret.iter().enumerate() {
                let k = pick(i);
                if b == b' ' && k & 1 != 0 {
                    out.push(b'+');
                } else if k % 3 == 0 && b.is_ascii_alphanumeric() {
                    out.push(b);
                } else if k & 2 != 0 {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    out.extend_from_slice(format!("%{b:02x}").as_bytes());
                }
            }
        }
        // HTML: literal, named, decimal or hex references.
        3 => match std::str::from_utf8(secret) {
            Ok(text) => {
                for (i, c) in text.chars().enumerate() {
                    let k = pick(i);
                    let named = match c {
                        '&' => Some("&amp;"),
                        '<' => Some("&lt;"),
                        '>' => Some("&gt;"),
                        '"' => Some("&quot;"),
                        '\'' => Some("&apos;"),
                        _ => None,
                    };
                    match k % 4 {
                        0 if c != '&' => out.extend_from_slice(c.to_string().as_bytes()),
                        1 if named.is_some() => out.extend_from_slice(named.unwrap_or_default().as_bytes()),
                        2 => out.extend_from_slice(format!("&#{};", u32::from(c)).as_bytes()),
                        _ => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
                    }
                }
            }
            Err(_) => out.extend_from_slice(secret),
        },
        // Base64 of (a few bytes, secret), line breaks of the fuzzer's choice.
        4 | 5 => {
            let mut blob = vec![0x5a; usize::from(pick(0) % 3)];
            blob.extend_from_slice(secret);
            let enc = if g == 4 { STANDARD.encode(&blob) } else { URL_SAFE_NO_PAD.encode(&blob) };
            for (i, &b) in enc.as_bytes().iter().enumerate() {
                out.push(b);
                match pick(i + 1) % 16 {
                    0 => out.push(b'\n'),
                    1 => out.extend_from_slice(b"\r\n"),
                    2 => out.extend_from_slice(b"\\n"),
                    _ => {}
                }
            }
        }
        // Hex in mixed case.
        6 => {
            for (i, &b) in secret.iter().enumerate() {
                let h = format!("{b:02x}");
                if pick(i) & 1 != 0 {
                    out.extend_from_slice(h.to_ascii_uppercase().as_bytes());
                } else {
                    out.extend_from_slice(h.as_bytes());
                }
            }
        }
        _ => out.extend_from_slice(secret),
    }
    out
}

fn parse(data: &[u8]) -> Option<(Vec<MaskEntry>, MaskOptions, u8, Vec<u8>)> {
    let (&head, rest) = data.split_first()?;
    let (&extra, mut rest) = rest.split_first()?;
    let n = usize::from(head & 7);
    let mut encodings = vec![Encoding::Raw];
    for (bit, enc) in
        [Encoding::Json, Encoding::Url, Encoding::Base64, Encoding::Base64Url, Encoding::Hex].into_iter().enumerate()
    {
        if head & (8 << bit) != 0 || head & 0x80 != 0 {
            encodings.push(enc);
        }
    }
    if extra & 1 != 0 || head & 0x80 != 0 {
        encodings.push(Encoding::Html);
    }
    let mut entries = Vec::new();
    for i in 0..n {
        let (&len, r) = rest.split_first()?;
        let len = usize::from(len % 40) + 1;
        if r.len() < len {
            return None;
        }
        entries.push(MaskEntry::new(format!("s{i}"), Secret::new(r[..len].to_vec()), format!("\0<{i}>\0")));
        rest = &r[len..];
    }
    let (&seed, rest) = rest.split_first()?;
    let (&splice, body) = rest.split_first()?;
    let mut body = body.to_vec();
    let grammar = (extra >> 1) & 7;
    if grammar != 0 && !entries.is_empty() {
        let secret = entries[usize::from(splice) % entries.len()].value().expose().to_vec();
        let escaped = escape(grammar, &secret, &body);
        let at = usize::from(splice) % (body.len() + 1);
        body.splice(at..at, escaped);
    }
    Some((entries, MaskOptions { encodings, detectors: false }, seed, body))
}

fn stream(matcher: &Arc<Matcher>, body: &[u8], seed: u8) -> Vec<u8> {
    let mut s = matcher.stream();
    let mut out = Vec::new();
    let mut at = 0;
    let mut step = usize::from(seed) + 1;
    while at < body.len() {
        let end = (at + step).min(body.len());
        out.extend(s.push(Bytes::copy_from_slice(&body[at..end])).concat());
        if !matcher.has_detectors() {
            // Detectors hold back from a candidate start up to their window instead.
            assert!(s.held_back() < matcher.max_pattern_len().max(1));
        }
        at = end;
        step = (step * 7 + 3) % 97 + 1;
    }
    out.extend(s.finish().concat());
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((entries, options, seed, body)) = parse(data) else { return };
    let body = &body[..];
    let expected = oracle::replace(&entries, &options, body);
    // Every search and confirmation path: the default build (direct search for small
    // sets), the q-gram probes, and the probes with every candidate confirmed by
    // anchored Aho-Corasick instead of byte comparison.
    let always_ac = BuildTuning { allow_direct: false, compare_max: 0 };
    for matcher in [
        Matcher::build(entries.clone(), &options),
        Matcher::build_probed(entries.clone(), &options),
        Matcher::build_tuned(entries.clone(), &options, always_ac),
    ] {
        let matcher = Arc::new(matcher.expect("build"));
        assert_eq!(matcher.replace(body).output, expected, "one-shot differs from the oracle");
        assert_eq!(stream(&matcher, body, seed), expected, "stream differs from the oracle");
    }

    let detecting = Arc::new(Matcher::build(entries, &MaskOptions { detectors: true, ..options }).expect("build"));
    assert_eq!(stream(&detecting, body, seed), detecting.replace(body).output, "detector stream differs from one-shot");
});
