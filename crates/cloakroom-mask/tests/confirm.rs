//! Confirming a probe hit: the candidates a probed window names are compared byte for
//! byte, or handed to anchored Aho-Corasick when many patterns share the window. Every
//! test runs on each confirmation path and checks the result against the one-shot oracle.

use std::sync::Arc;

use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{oracle, BuildTuning, MaskEntry, MaskOptions, Matcher};

// The examples' reproducible random source, shared rather than written again.
#[path = "../examples/common/mod.rs"]
mod common;
use common::Random;

fn entries(values: &[&str]) -> Vec<MaskEntry> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| MaskEntry::new(format!("s{i}"), Secret::from(*v), format!("<{i}>")))
        .collect()
}

/// The probed matcher with candidates confirmed by comparing bytes (default limit and
/// always) and by anchored Aho-Corasick (always), plus the default build.
fn paths(entries: &[MaskEntry], options: &MaskOptions) -> Vec<(&'static str, Arc<Matcher>)> {
    let probed = |compare_max| BuildTuning { allow_direct: false, compare_max };
    [
        ("default", BuildTuning::default()),
        ("probed", probed(BuildTuning::default().compare_max)),
        ("compare always", probed(usize::MAX)),
        ("aho-corasick always", probed(0)),
    ]
    .into_iter()
    .map(|(name, t)| (name, Arc::new(Matcher::build_tuned(entries.to_vec(), options, t).unwrap())))
    .collect()
}

fn raw() -> MaskOptions {
    MaskOptions::raw_only()
}

fn all_encodings() -> MaskOptions {
    MaskOptions { detectors: false, ..MaskOptions::default() }
}

fn stream_in(m: &Arc<Matcher>, body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = m.stream();
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain([&body.len()]) {
        out.extend(s.push(Bytes::copy_from_slice(&body[prev..c])).concat());
        prev = c;
    }
    out.extend(s.finish().concat());
    out
}

/// `body` gives the oracle's output on every path, in one go and streamed with every
/// single cut and with a second cut 5 bytes later.
fn assert_like_oracle(entries: &[MaskEntry], options: &MaskOptions, body: &[u8]) -> Vec<u8> {
    let expected = oracle::replace(entries, options, body);
    for (path, m) in paths(entries, options) {
        assert_eq!(m.replace(body).output, expected, "{path}: one shot");
        for i in 0..=body.len() {
            assert_eq!(stream_in(&m, body, &[i]), expected, "{path}: cut at {i}");
            let j = (i + 5).min(body.len());
            assert_eq!(stream_in(&m, body, &[i, j]), expected, "{path}: cut at {i} and {j}");
        }
    }
    expected
}

#[test]
fn a_window_shared_by_many_secrets_finds_each_of_them() {
    // 40 secrets share their first 16 bytes: every window at offsets 0..8 names 40
    // candidates, more than the byte comparison takes by default.
    let values: Vec<String> = (0..40).map(|i| format!("sk_live_shared__{i:03}x{}", i * 37)).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let entries = entries(&refs);
    let body = format!(
        "a {} b {}{} c sk_live_shared__999x0 d {} e sk_live_shared__01",
        values[3], values[17], values[39], values[0]
    );
    let out = assert_like_oracle(&entries, &raw(), body.as_bytes());
    assert_eq!(out, b"a <3> b <17><39> c sk_live_shared__999x0 d <0> e sk_live_shared__01");
}

#[test]
fn secrets_sharing_a_window_at_the_same_start_longest_wins() {
    let entries = entries(&["abcdefgh1234", "abcdefgh12345678", "abcdefgh1234567", "abcdefgh1234567Z"]);
    let out = assert_like_oracle(&entries, &raw(), b"<abcdefgh12345678>(abcdefgh1234567Z)[abcdefgh12345]");
    assert_eq!(out, b"<<1>>(<3>)[<0>5]");
}

#[test]
fn a_window_at_different_offsets_of_two_secrets_tries_the_leftmost_start_first() {
    // "abcdefgh" is at offset 8 of the first secret and offset 0 of the second.
    let entries = entries(&["XXXXXXXXabcdefgh", "abcdefghYYYYYYYY"]);
    let out = assert_like_oracle(&entries, &raw(), b"XXXXXXXXabcdefghYYYYYYYY.XXXXXXXabcdefghYYYYYYYY");
    assert_eq!(out, b"<0>YYYYYYYY.XXXXXXX<1>");
}

#[test]
fn a_candidate_running_past_the_end_of_the_body_is_not_masked() {
    let entries = entries(&["abcdefgh12345678", "abcdefgh1234567890"]);
    let out = assert_like_oracle(&entries, &raw(), b"..abcdefgh1234567");
    assert_eq!(out, b"..abcdefgh1234567");
    let out = assert_like_oracle(&entries, &raw(), b"..abcdefgh123456789");
    assert_eq!(out, b"..<0>9");
}

#[test]
fn a_candidate_differing_in_its_last_byte_is_not_masked() {
    let entries = entries(&["abcdefgh12345678", "zyxwvuts12345678"]);
    let out = assert_like_oracle(&entries, &raw(), b"abcdefgh12345679 zyxwvuts1234567 abcdefgh12345678");
    assert_eq!(out, b"abcdefgh12345679 zyxwvuts1234567 <0>");
}

#[test]
fn encoded_forms_sharing_windows_are_masked_across_every_cut() {
    // Secrets with a shared prefix in every encoding: base64 cores, hex and percent
    // forms share windows too.
    let entries = entries(&["token/0001/aaaa-bbbb", "token/0001/aaaa-cccc", "token/0002/\"x\""]);
    let mut body = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let forms = oracle::forms(std::slice::from_ref(e), &all_encodings());
        for (f, _) in forms.iter().skip(i % 2) {
            body.extend_from_slice(f);
            body.extend_from_slice(b" ; ");
        }
    }
    let out = assert_like_oracle(&entries, &all_encodings(), &body);
    assert!(out.starts_with(b"<0> ; <0> ; "), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn hits_at_chunk_boundaries_of_a_long_body_are_masked() {
    // 200 secrets of 23 bytes sharing prefixes ("secret-0", "secret-1"), ~2,000
    // occurrences in 64 KiB of text, streamed in chunks of many sizes.
    let values: Vec<String> = (0..200).map(|i| format!("secret-{i:03}-{:012}", i * 7919)).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let entries = entries(&refs);
    let mut body = Vec::new();
    let mut random = Random::new(0x2545_F491_4F6C_DD1D);
    while body.len() < 64 << 10 {
        let x = random.next_u64();
        body.extend_from_slice(values[(x % 200) as usize].as_bytes());
        body.extend((0..(x >> 32) % 24).map(|k| b"abcdefghij -"[((x >> k) % 12) as usize]));
    }
    let expected = oracle::replace(&entries, &all_encodings(), &body);
    assert!(expected.len() < body.len() / 2, "most of the body is secrets");
    for (path, m) in paths(&entries, &all_encodings()) {
        for size in [1, 2, 3, 5, 7, 8, 13, 16, 22, 23, 24, 31, 47, 64, 97, 4096, 64 << 10] {
            let cuts: Vec<usize> = (size..body.len()).step_by(size).collect();
            assert!(stream_in(&m, &body, &cuts) == expected, "{path}: chunks of {size} bytes");
        }
    }
}

#[test]
fn the_confirming_automata_hold_only_crowded_patterns() {
    // 1,000 random secrets in every encoding: no window is shared by more than the byte
    // comparison takes, so no automaton is built (they were half of the masker's memory).
    let mut random = Random::new(0x2545_f491_4f6c_dd1d);
    let values: Vec<String> = (0..1000)
        .map(|_| String::from_utf8(random.bytes(b"0123456789abcdefghijklmnopqrstuvwxyz", 32)).unwrap())
        .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let lone = entries(&refs);
    let probed = BuildTuning { allow_direct: false, ..BuildTuning::default() };
    let m = Matcher::build_tuned(lone.clone(), &all_encodings(), probed).unwrap();
    assert_eq!(m.memory().automata, 0, "no crowd, no automaton");
    // Every secret is still found, each by comparing bytes.
    let body = format!("x {} y {} z", values[0], values[999]);
    assert_eq!(assert_like_oracle(&lone, &all_encodings(), body.as_bytes()), b"x <0> y <999> z");

    // 40 secrets sharing their first 16 bytes crowd their windows: those (and only
    // those) are in an automaton, and it finds them.
    let shared: Vec<String> = (0..40).map(|i| format!("sk_live_shared__{i:03}x{}", i * 37)).collect();
    let mut both = refs.clone();
    both.extend(shared.iter().map(String::as_str));
    let both = entries(&both);
    let m = Matcher::build_tuned(both.clone(), &raw(), probed).unwrap();
    let crowded = m.memory().automata;
    assert!(crowded > 0, "the crowd has its automaton");
    let alone = Matcher::build_tuned(entries(&shared.iter().map(String::as_str).collect::<Vec<_>>()), &raw(), probed)
        .unwrap()
        .memory()
        .automata;
    assert_eq!(crowded, alone, "the automaton holds the 40 crowded secrets and none of the 1,000 others");
    let body = format!("a {} b {} c", shared[7], values[5]);
    assert_eq!(assert_like_oracle(&both, &raw(), body.as_bytes()), b"a <1007> b <5> c");
}
