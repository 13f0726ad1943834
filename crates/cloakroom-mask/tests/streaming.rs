//! The masker's behaviours, one per test: encodings, chunk boundaries, overlaps,
//! prefixes, short secrets, zero-copy pass-through and bounded hold-back.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{Encoding, MaskEntry, MaskError, MaskHandle, MaskOptions, MaskingConfig, Matcher};

const SECRET: &str = "s3cr3t/Value+with \"quotes\"&<ü>";

/// The probed search path: these small sets would otherwise go to Aho-Corasick
/// directly (the property tests cover both).
fn matcher(secrets: &[(&str, &str)], options: MaskOptions) -> Arc<Matcher> {
    let entries = secrets.iter().map(|(name, value)| MaskEntry::new(*name, Secret::from(*value), format!("<{name}>")));
    Arc::new(Matcher::build_probed(entries, &options).unwrap())
}

fn only(encoding: Encoding) -> MaskOptions {
    MaskOptions { encodings: vec![encoding], detectors: false }
}

fn stream_in(m: &Arc<Matcher>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = m.stream();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.push(Bytes::copy_from_slice(c)).concat());
    }
    out.extend(s.finish().concat());
    out
}

/// Every split of `body` into two and three chunks gives the one-shot output.
fn assert_every_split(m: &Arc<Matcher>, body: &[u8]) -> Vec<u8> {
    let expected = m.replace(body).output;
    for i in 0..=body.len() {
        assert_eq!(stream_in(m, &[&body[..i], &body[i..]]), expected, "split at {i}");
        let j = (i + 7).min(body.len());
        assert_eq!(stream_in(m, &[&body[..i], &body[i..j], &body[j..]]), expected, "split at {i} and {j}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(stream_in(m, &bytes), expected, "one byte at a time");
    expected
}

fn encoded_bodies() -> Vec<(Encoding, String)> {
    let json = serde_json::to_string(SECRET).unwrap();
    vec![
        (Encoding::Raw, format!("value: {SECRET}!")),
        (Encoding::Json, format!("{{\"v\":{json}}}")),
        (Encoding::Json, format!("{{\"v\":{}}}", json.replace('/', "\\/"))),
        (Encoding::Json, format!("{{\"v\":\"{}\"}}", r#"s3cr3t\/Value+with \"quotes\"\u0026\u003c\u00fc\u003e"#)),
        (Encoding::Url, "https://x.test/?k=s3cr3t%2FValue%2Bwith%20%22quotes%22%26%3C%C3%BC%3E&z=1".to_owned()),
        (Encoding::Url, "k=s3cr3t%2fvalue".to_owned() + "&k=s3cr3t%2fValue%2bwith+%22quotes%22%26%3c%c3%bc%3e"),
        (Encoding::Base64, format!("Basic {}", STANDARD.encode(format!("user:{SECRET}")))),
        (Encoding::Base64, format!("b={}.", STANDARD.encode(format!("xy{SECRET}")))),
        (Encoding::Base64, format!("b={}.", STANDARD.encode(SECRET))),
        (Encoding::Base64Url, format!("t={}", URL_SAFE_NO_PAD.encode(format!("a{SECRET}zz")))),
        (Encoding::Hex, format!("hex:{}", SECRET.bytes().map(|b| format!("{b:02x}")).collect::<String>())),
        (Encoding::Hex, format!("HEX:{}", SECRET.bytes().map(|b| format!("{b:02X}")).collect::<String>())),
    ]
}

#[test]
fn every_encoding_is_masked_when_enabled_and_only_then() {
    for (encoding, body) in encoded_bodies() {
        let on = matcher(&[("k", SECRET)], only(encoding));
        let out = on.replace(body.as_bytes());
        assert_eq!(out.counts.get("k"), Some(&1), "{encoding}: {body}");
        assert!(String::from_utf8_lossy(&out.output).contains("<k>"), "{encoding}");
        if encoding != Encoding::Raw {
            let off = matcher(&[("k", SECRET)], only(Encoding::Raw));
            assert_eq!(off.replace(body.as_bytes()).total(), 0, "{encoding} masked although disabled: {body}");
        }
    }
}

#[test]
fn every_encoding_is_found_across_every_chunk_boundary() {
    let m = matcher(&[("k", SECRET)], MaskOptions { detectors: false, ..MaskOptions::default() });
    for (encoding, body) in encoded_bodies() {
        let out = assert_every_split(&m, body.as_bytes());
        assert!(String::from_utf8_lossy(&out).contains("<k>"), "{encoding}");
    }
}

#[test]
fn overlapping_secrets_leftmost_wins() {
    let m = matcher(&[("a", "abcdefghij"), ("b", "fghijklmnop")], MaskOptions::raw_only());
    let out = assert_every_split(&m, b"xx abcdefghijklmnop yy fghijklmnop");
    assert_eq!(out, b"xx <a>klmnop yy <b>");
}

#[test]
fn overlapping_secrets_at_the_same_start_longest_wins() {
    let m = matcher(&[("short", "0123456789"), ("long", "0123456789abcdef")], MaskOptions::raw_only());
    assert_eq!(assert_every_split(&m, b"0123456789abcdef|0123456789abc"), b"<long>|<short>abc");
}

#[test]
fn a_secret_that_is_a_prefix_of_another_waits_for_the_longer_one() {
    let m = matcher(&[("p", "prefixvalue"), ("pl", "prefixvalue-longer")], MaskOptions::raw_only());
    let mut s = m.stream();
    // The shorter secret is complete but the longer may still follow: held back.
    assert_eq!(s.push(Bytes::from_static(b"a prefixvalue")).concat(), b"a ");
    assert_eq!(s.push(Bytes::from_static(b"-lon")).concat(), b"");
    let mut out = s.push(Bytes::from_static(b"ger b")).concat();
    out.extend(s.finish().concat());
    assert_eq!(out, b"<pl> b");
    assert_eq!(assert_every_split(&m, b"prefixvalue-long prefixvalue-longer"), b"<p>-long <pl>");
}

#[test]
fn short_secrets_are_masked_raw_and_their_encoded_forms_refused_with_a_clear_error() {
    let entries = [MaskEntry::new("pin", Secret::from("4711"), "<pin>")];
    let m = Arc::new(Matcher::build(entries, &MaskOptions { detectors: false, ..MaskOptions::default() }).unwrap());
    assert_eq!(m.refused(), &[MaskError::SecretTooShort { name: "pin".into(), len: 4, min: 8 }]);
    let msg = m.refused()[0].to_string();
    assert!(msg.contains("`pin`") && msg.contains("shorter than 8 bytes") && !msg.contains("4711"), "{msg}");
    // Raw is masked (across chunk boundaries too); hex "34373131" is not searched.
    assert_eq!(assert_every_split(&m, b"pin 4711, hex 34373131"), b"pin <pin>, hex 34373131");
}

#[test]
fn short_and_long_secrets_mix_leftmost_longest() {
    let m = matcher(&[("s", "abc"), ("l", "abcdefghijkl"), ("t", "xyz")], MaskOptions::raw_only());
    assert_eq!(assert_every_split(&m, b"abcdefghijkl abc abcdefgh xyzabcdefghijklxyz"), b"<l> <s> <s>defgh <t><l><t>");
}

#[test]
fn empty_secrets_are_refused_not_matched() {
    let entries = [MaskEntry::new("empty", Secret::from(""), "<e>")];
    let m = Matcher::build(entries, &MaskOptions::raw_only()).unwrap();
    assert_eq!(m.refused(), &[MaskError::EmptySecret { name: "empty".into() }]);
    assert_eq!(m.replace(b"anything").output, b"anything");
}

#[test]
fn a_chunk_without_a_match_passes_through_without_copying() {
    let m = matcher(&[("k", "abcdefgh12345678")], MaskOptions::raw_only());
    let mut s = m.stream();
    let chunk = Bytes::from(vec![b'.'; 64 * 1024]);
    let ready = s.push(chunk.clone());
    assert_eq!(ready.parts().len(), 1);
    assert_eq!(ready.parts()[0].as_ptr(), chunk.as_ptr(), "the chunk was copied");
    assert_eq!(s.held_back(), 0);
}

#[test]
fn long_stretches_between_matches_are_sliced_not_copied() {
    let m = matcher(&[("k", "abcdefgh12345678")], MaskOptions::raw_only());
    let mut body = vec![b'.'; 10_000];
    body[5000..5016].copy_from_slice(b"abcdefgh12345678");
    let chunk = Bytes::from(body);
    let ready = m.stream().push(chunk.clone());
    assert_eq!(ready.parts()[0].as_ptr(), chunk.as_ptr());
    assert!(ready.parts().iter().any(|p| p.as_ptr() == chunk[5016..].as_ptr()));
}

#[test]
fn hold_back_is_only_a_possible_match_prefix_and_never_a_whole_pattern() {
    let m =
        matcher(&[("k", "abcdefgh12345678"), ("j", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")], MaskOptions::raw_only());
    let mut s = m.stream();
    assert_eq!(s.push(Bytes::from_static(b"data: {\"x\":1}\n\n")).concat(), b"data: {\"x\":1}\n\n");
    assert_eq!(s.held_back(), 0, "an SSE event must not wait");
    assert_eq!(s.push(Bytes::from_static(b"data: abcdefgh1")).concat(), b"data: ");
    assert_eq!(s.held_back(), 9);
    let mut big = vec![b'z'; 100];
    big.extend_from_slice(b"zzzz");
    let out = s.push(Bytes::from(big)).concat();
    assert!(s.held_back() < m.max_pattern_len());
    assert!(out.starts_with(b"abcdefgh1<j>"), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn find_iter_reports_entry_encoding_and_range() {
    let m = matcher(&[("a", "firstsecret1"), ("b", "secondsecret2")], MaskOptions::default());
    let hay = format!("x firstsecret1 y {}", "secondsecret2".bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let found: Vec<_> = m.find_iter(hay.as_bytes()).collect();
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].entry, found[0].encoding, found[0].range.clone()), (0, Encoding::Raw, 2..14));
    assert_eq!((found[1].entry, found[1].encoding), (1, Encoding::Hex));
    assert_eq!(m.entry_name(1), Some("b"));
}

#[test]
fn replace_counts_per_secret_name() {
    let m = matcher(&[("a", "firstsecret1"), ("b", "secondsecret2")], MaskOptions::default());
    let r = m.replace(b"firstsecret1 firstsecret1 secondsecret2 Zmlyc3RzZWNyZXQx");
    assert_eq!(r.counts.get("a"), Some(&3));
    assert_eq!(r.counts.get("b"), Some(&1));
    assert_eq!(r.total(), 4);
}

#[test]
fn the_first_entry_wins_a_shared_value() {
    let m = matcher(&[("first", "samevalue123"), ("second", "samevalue123")], MaskOptions::raw_only());
    assert_eq!(m.replace(b"samevalue123").output, b"<first>");
}

#[test]
fn nothing_secret_is_printed_by_debug_or_errors() {
    let m = matcher(&[("k", "hunter2hunter2")], MaskOptions::default());
    let mut s = m.stream();
    let _ = s.push(Bytes::from_static(b"hunter2hun"));
    for text in [format!("{m:?}"), format!("{s:?}"), format!("{:?}", MaskHandle::new(Matcher::empty()))] {
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn a_stream_keeps_the_matcher_it_started_with_while_the_handle_swaps() {
    let handle = MaskHandle::new(
        Matcher::build([MaskEntry::new("old", Secret::from("oldsecret123"), "<old>")], &MaskOptions::raw_only())
            .unwrap(),
    );
    let mut s = handle.load().stream();
    handle.store(
        Matcher::build([MaskEntry::new("new", Secret::from("newsecret123"), "<new>")], &MaskOptions::raw_only())
            .unwrap(),
    );
    let mut out = s.push(Bytes::from_static(b"oldsecret123 newsecret123")).concat();
    out.extend(s.finish().concat());
    assert_eq!(out, b"<old> newsecret123");
    assert_eq!(handle.load().replace(b"oldsecret123 newsecret123").output, b"oldsecret123 <new>");
}

#[test]
fn detectors_run_after_known_secrets_and_only_when_enabled() {
    let key = "AKIAIOSFODNN7EXAMPLE";
    let on = matcher(&[("known", "sk_live_known_0123456789abcdefghij")], MaskOptions::default());
    let r = on.replace(format!("{key} sk_live_known_0123456789abcdefghij").as_bytes());
    assert_eq!(r.output, b"[REDACTED:aws_access_key_id] <known>");
    assert_eq!(r.detected.get("aws_access_key_id"), Some(&1));
    let off = matcher(&[], MaskOptions { detectors: false, ..MaskOptions::default() });
    assert_eq!(off.replace(key.as_bytes()).output, key.as_bytes());
    assert!(off.is_empty());
}

#[test]
fn detector_matches_split_across_chunks_are_found() {
    let m = matcher(&[], MaskOptions::default());
    let jwt =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let body = format!("a AKIAIOSFODNN7EXAMPLE b {jwt} c ghp_1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvWxYz d");
    let out = assert_every_split(&m, body.as_bytes());
    assert_eq!(out, b"a [REDACTED:aws_access_key_id] b [REDACTED:jwt] c [REDACTED:github_token] d");
}

#[test]
fn masking_config_parses_spec_section_and_defaults() {
    let c: MaskingConfig = toml::from_str(
        r#"replacement = "placeholder"
           encodings = ["raw", "json", "url", "base64", "base64url", "hex", "html"]
           detectors = "default""#,
    )
    .unwrap();
    assert_eq!(c, MaskingConfig::default());
    assert_eq!(c.replacement_for("stripe_key", "cloak_abc"), b"cloak_abc");
    assert_eq!(c.options(), MaskOptions::default());
    let empty: MaskingConfig = toml::from_str("").unwrap();
    assert_eq!(empty, MaskingConfig::default());
    assert!(toml::from_str::<MaskingConfig>("replacment = \"redact\"").is_err());
    assert!(toml::from_str::<MaskingConfig>("encodings = [\"rot13\"]").is_err());
}

#[test]
fn a_large_set_split_into_shards_still_matches_like_the_oracle() {
    // ~18,000 long patterns: more than one confirming automaton.
    let entries: Vec<MaskEntry> = (0..3000)
        .map(|i| {
            MaskEntry::new(
                format!("s{i}"),
                Secret::new(format!("secret-{i:05}-{}", i * 7919).into_bytes()),
                format!("<{i}>"),
            )
        })
        .collect();
    let options = MaskOptions { detectors: false, ..MaskOptions::default() };
    let m = Arc::new(Matcher::build(entries.clone(), &options).unwrap());
    assert!(m.pattern_count() > 16_384, "{}", m.pattern_count());
    let mut body = Vec::new();
    for i in (0..3000).step_by(97) {
        let v = format!("secret-{i:05}-{}", i * 7919);
        body.extend_from_slice(format!("a {v} b {} c ", STANDARD.encode(&v)).as_bytes());
        body.extend_from_slice(v.bytes().map(|b| format!("{b:02X}")).collect::<String>().as_bytes());
    }
    let expected = cloakroom_mask::oracle::replace(&entries, &options, &body);
    assert_eq!(m.replace(&body).output, expected);
    let chunks: Vec<&[u8]> = body.chunks(777).collect();
    assert_eq!(stream_in(&m, &chunks), expected);
    assert_eq!(m.replace(&body).total(), 3 * 31);
}
