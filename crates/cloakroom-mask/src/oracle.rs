//! The reference the fast path is checked against: every candidate match listed by brute
//! force (Aho-Corasick's overlapping search for the forms in the input's own bytes, every
//! start of every escape grammar's parse for the views), then taken leftmost-longest.
//! No prefilter, no regions, no streaming. Used by the property tests and the fuzz
//! target; not for production use.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, MatchKind};

use crate::grammar::{Grammar, Tok};
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

/// (target bytes, entry index), first entry winning.
type Targets = Vec<(Vec<u8>, usize)>;

/// Masks `hay` with the known secrets only (no detectors), by brute force: every
/// occurrence of every form searched in the input's own bytes (raw, base64 cores, hex)
/// and every span whose decoding in an escape grammar is a secret (or, for line-broken
/// base64 and mixed-case hex, a core or the lower-case hex) is a candidate; candidates
/// are taken leftmost first, longest first, the input's own bytes before the views in
/// the matcher's order (JSON, HTML, URL, URL with `+`, base64 lines, hex), skipping
/// those overlapping one taken.
pub fn replace(entries: &[MaskEntry], options: &MaskOptions, hay: &[u8]) -> Vec<u8> {
    let mut enabled = vec![Encoding::Raw];
    enabled.extend(options.encodings.iter().copied().filter(|e| *e != Encoding::Raw));
    let has = |e: Encoding| enabled.contains(&e);
    let (mut main, mut raw_t, mut b64_t, mut hex_t): (Targets, Targets, Targets, Targets) = Default::default();
    let mut seen: [HashSet<Vec<u8>>; 4] = Default::default();
    let mut push = |which: usize, set: &mut Targets, f: Vec<u8>, i: usize| {
        if !f.is_empty() && seen[which].insert(f.clone()) {
            set.push((f, i));
        }
    };
    for (i, e) in entries.iter().enumerate() {
        let value = e.value().expose();
        if value.is_empty() {
            continue;
        }
        let long = value.len() >= MIN_ENCODED_SECRET_LEN;
        for &enc in &enabled {
            if enc != Encoding::Raw && !long {
                continue;
            }
            match enc {
                Encoding::Raw => push(0, &mut main, value.to_vec(), i),
                Encoding::Json | Encoding::Url | Encoding::Html => push(1, &mut raw_t, value.to_vec(), i),
                Encoding::Base64 | Encoding::Base64Url => {
                    for f in enc.forms(value) {
                        push(0, &mut main, f.clone(), i);
                        push(2, &mut b64_t, f, i);
                    }
                }
                Encoding::Hex => {
                    for f in enc.forms(value) {
                        push(0, &mut main, f, i);
                    }
                    push(3, &mut hex_t, value.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect(), i);
                }
            }
        }
    }
    // (start, end, source, entry)
    let mut cands: Vec<(usize, usize, usize, usize)> = Vec::new();
    if !main.is_empty() {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(main.iter().map(|(f, _)| f))
            .expect("oracle automaton");
        for m in ac.find_overlapping_iter(hay) {
            cands.push((m.start(), m.end(), 0, main[m.pattern().as_usize()].1));
        }
    }
    let mut views: Vec<(Grammar, &Targets)> = Vec::new();
    for (g, on, t) in [
        (Grammar::Json, has(Encoding::Json), &raw_t),
        (Grammar::Html, has(Encoding::Html), &raw_t),
        (Grammar::Url, has(Encoding::Url), &raw_t),
        (Grammar::UrlPlus, has(Encoding::Url), &raw_t),
        (Grammar::Base64Lines, true, &b64_t),
        (Grammar::HexCase, true, &hex_t),
    ] {
        if on && !t.is_empty() {
            views.push((g, t));
        }
    }
    for (k, (g, targets)) in views.iter().enumerate() {
        let max = targets.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        let mut lookup: HashMap<&[u8], usize> = HashMap::new();
        for (t, entry) in targets.iter() {
            lookup.entry(t.as_slice()).or_insert(*entry);
        }
        let mut toks = Vec::new();
        let mut p = 0;
        while p < hay.len() {
            let tok = g.token_at(hay, p, hay.len(), true);
            toks.push((p, tok));
            p += tok.len();
        }
        for (i, &(s, first)) in toks.iter().enumerate() {
            if !matches!(first, Tok::Lit | Tok::Esc { .. }) {
                continue;
            }
            let mut dec: Vec<u8> = Vec::new();
            let mut breaks = 0;
            for &(q, tok) in &toks[i..] {
                match tok {
                    Tok::Lit => dec.push(hay[q]),
                    Tok::Esc { out, n, .. } => dec.extend_from_slice(&out[..usize::from(n)]),
                    Tok::Skip { .. } => {
                        breaks += 1;
                        if breaks > 2 {
                            break;
                        }
                        continue;
                    }
                    Tok::Stop | Tok::Incomplete => break,
                }
                breaks = 0;
                if dec.len() > max {
                    break;
                }
                if let Some(entry) = lookup.get(dec.as_slice()) {
                    cands.push((s, q + tok.len(), k + 1, *entry));
                }
            }
        }
    }
    cands.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut out = Vec::with_capacity(hay.len());
    let mut pos = 0;
    for (start, end, _, entry) in cands {
        if start < pos {
            continue;
        }
        out.extend_from_slice(&hay[pos..start]);
        out.extend_from_slice(entries[entry].replacement());
        pos = end;
    }
    out.extend_from_slice(&hay[pos..]);
    out
}
