//! Streams fuzzer-chosen bodies through fuzzer-chosen secret sets and chunkings, and
//! checks the output against the one-shot oracle (plain Aho-Corasick, no prefilter, no
//! streaming) for every search and confirmation path of the matcher, plus the detector
//! stage against its own one-shot run.
//!
//! Input layout: byte 0 = number of secrets (0..=7) and encoding mask; then per secret
//! a length byte (1..=40) and the bytes; then a byte of chunking seed; the rest is the
//! body.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{oracle, BuildTuning, Encoding, MaskEntry, MaskOptions, Matcher};
use libfuzzer_sys::fuzz_target;

fn parse(data: &[u8]) -> Option<(Vec<MaskEntry>, MaskOptions, u8, &[u8])> {
    let (&head, mut rest) = data.split_first()?;
    let n = usize::from(head & 7);
    let mut encodings = vec![Encoding::Raw];
    for (bit, enc) in
        [Encoding::Json, Encoding::Url, Encoding::Base64, Encoding::Base64Url, Encoding::Hex].into_iter().enumerate()
    {
        if head & (8 << bit) != 0 || head & 0x80 != 0 {
            encodings.push(enc);
        }
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
    let (&seed, body) = rest.split_first()?;
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
