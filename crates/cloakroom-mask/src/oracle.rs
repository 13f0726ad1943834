//! The reference the fast path is checked against: plain leftmost-longest Aho-Corasick
//! over every form of every entry, in one pass, no prefilter, no streaming.
//! Used by the property tests and the fuzz target; not for production use.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::{Encoding, MaskEntry, MaskOptions, MIN_ENCODED_SECRET_LEN};

/// Every (form, replacement) pair the matcher should search for, first entry winning a
/// shared form.
pub fn forms(entries: &[MaskEntry], options: &MaskOptions) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for e in entries {
        let value = e.value().expose();
        if value.is_empty() {
            continue;
        }
        let mut encodings = vec![Encoding::Raw];
        if value.len() >= MIN_ENCODED_SECRET_LEN {
            encodings.extend(options.encodings.iter().copied().filter(|e| *e != Encoding::Raw));
        }
        for enc in encodings {
            for f in enc.forms(value) {
                if seen.insert(f.clone()) {
                    out.push((f, e.replacement().to_vec()));
                }
            }
        }
    }
    out
}

/// Masks `hay` with the known secrets only (no detectors).
pub fn replace(entries: &[MaskEntry], options: &MaskOptions, hay: &[u8]) -> Vec<u8> {
    let forms = forms(entries, options);
    if forms.is_empty() {
        return hay.to_vec();
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(forms.iter().map(|(f, _)| f))
        .expect("oracle automaton");
    let mut out = Vec::with_capacity(hay.len());
    let mut pos = 0;
    for m in ac.find_iter(hay) {
        out.extend_from_slice(&hay[pos..m.start()]);
        out.extend_from_slice(&forms[m.pattern().as_usize()].1);
        pos = m.end();
    }
    out.extend_from_slice(&hay[pos..]);
    out
}
