//! The compiled pattern set: every enabled encoded form of every secret, found
//! leftmost-longest behind the q-gram prefilter: a probe hit names its candidate
//! patterns, confirmed by comparing their bytes or, when many share the probed window,
//! by anchored Aho-Corasick (small sets and short patterns are searched by
//! Aho-Corasick directly).
//!
//! ```
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{Encoding, MaskEntry, MaskOptions, Matcher};
//!
//! let entries = [MaskEntry::new("stripe_key", Secret::from("sk_live_0123456789abcdef"), "cloak_stripe")];
//! let matcher = Matcher::build(entries, &MaskOptions::default()).unwrap();
//! let replaced = matcher.replace(br#"{"key":"sk_live_0123456789abcdef"}"#);
//! assert_eq!(replaced.output, br#"{"key":"cloak_stripe"}"#);
//! assert_eq!(replaced.total(), 1);
//!
//! let hits: Vec<_> = matcher.find_iter(b"c2tfbGl2ZV8wMTIzNDU2Nzg5YWJjZGVm").collect();
//! assert_eq!(hits[0].encoding, Encoding::Base64);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::detect::Detectors;
use crate::encoding::{Encoding, MIN_ENCODED_SECRET_LEN};
use crate::grammar::{self, Grammar, Target, View, ViewSearch};
use crate::prefilter::{Cand, QGramFilter, Q};
use crate::stream::StreamReplacer;
use crate::{MaskEntry, MaskError};

mod compile;
mod prefix_index;
mod search;

use compile::compile;
use prefix_index::PrefixIndex;
pub use search::FindIter;
pub(crate) use search::Search;

/// How a [`Matcher`] is built: which encodings are searched and whether the built-in
/// detectors run after the known secrets are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskOptions {
    /// The encodings searched (`raw` is always searched, listed or not).
    pub encodings: Vec<Encoding>,
    /// Whether the built-in detectors (AWS, GitHub, Slack, Stripe, PEM, JWT) run.
    pub detectors: bool,
}

impl Default for MaskOptions {
    /// All encodings, detectors on: what `[masking]` defaults to.
    fn default() -> Self {
        Self { encodings: Encoding::ALL.to_vec(), detectors: true }
    }
}

impl MaskOptions {
    /// Raw bytes only, no detectors: the shape used to find placeholders in requests.
    pub fn raw_only() -> Self {
        Self { encodings: vec![Encoding::Raw], detectors: false }
    }
}

/// One occurrence of a known secret in a haystack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    /// Index of the entry (in the order given to [`Matcher::build`]).
    pub entry: usize,
    /// The encoding the secret was found in.
    pub encoding: Encoding,
    /// Where it is, in bytes.
    pub range: Range<usize>,
}

/// The result of [`Matcher::replace`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// The masked bytes.
    pub output: Vec<u8>,
    /// Matches per secret name (only names that matched).
    pub counts: BTreeMap<String, u64>,
    /// Matches per detector kind (only kinds that matched).
    pub detected: BTreeMap<&'static str, u64>,
}

impl Replaced {
    /// All replacements made: known secrets and detector hits.
    pub fn total(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.detected.values().sum::<u64>()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PatternInfo {
    pub(crate) entry: u32,
    pub(crate) encoding: Encoding,
}

/// A raw match: global pattern id and span, and where it was found (0: the input's own
/// bytes; `k + 1`: the decoding view `k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawMatch {
    pub(crate) pattern: u32,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) view: u8,
}

struct EntryInfo {
    name: String,
    replacement: Bytes,
}

/// What a [`Matcher`] holds, in approximate heap bytes ([`Matcher::memory`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatcherMemory {
    /// The Aho-Corasick automata.
    pub automata: usize,
    /// The q-gram prefilter, with its copy of the long patterns' bytes.
    pub prefilter: usize,
    /// The sorted patterns and prefix bitsets a stream's tail is checked against.
    pub prefix_index: usize,
    /// Entries, pattern tables and the views' pattern copies.
    pub tables: usize,
}

impl MatcherMemory {
    /// All parts together.
    pub fn total(&self) -> usize {
        self.automata + self.prefilter + self.prefix_index + self.tables
    }
}

/// Patterns of 8 bytes or more: the prefilter and its confirming automaton.
struct LongSet {
    filter: QGramFilter,
    /// Confirming automata, each over a shard of the long patterns with the global ids
    /// of its patterns. Large sets are split so the shards build in parallel. Used at a
    /// candidate start with more than `compare_max` candidates.
    shards: Vec<(AhoCorasick, Vec<u32>)>,
    /// At most this many candidates at one start are confirmed by comparing their bytes.
    compare_max: usize,
    /// For small sets with a short stride: one unanchored automaton with its own
    /// prefilter, used instead of the probes.
    direct: Option<(AhoCorasick, Vec<u32>)>,
}

/// Sets of at most this many long patterns whose stride is below [`DIRECT_MIN_STRIDE`]
/// are searched by Aho-Corasick directly (measured: 10 secrets of 12 bytes, 4 GB/s
/// direct against 1.9 GB/s probed).
const DIRECT_MAX_PATTERNS: usize = 100;
const DIRECT_MIN_STRIDE: usize = 16;

/// A candidate start named by at most this many patterns (all the patterns whose
/// window at that offset is the probed one, usually one) is confirmed by comparing those
/// patterns' bytes, longest first; more (many secrets sharing a prefix) go to the
/// anchored Aho-Corasick search. Measured: a compare costs one or two cache misses, an
/// anchored search over a cold automaton about 1–2 µs.
const COMPARE_MAX: usize = 8;

/// How [`Matcher::build_tuned`] searches and confirms, so tests and the fuzz target can
/// force each path. [`Matcher::build`] uses the default.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildTuning {
    /// Whether small sets with short patterns may be searched by Aho-Corasick directly
    /// instead of through the probes.
    pub allow_direct: bool,
    /// A candidate start with at most this many candidate patterns is confirmed by
    /// comparing bytes, one with more by anchored Aho-Corasick (0: always Aho-Corasick).
    pub compare_max: usize,
}

impl Default for BuildTuning {
    fn default() -> Self {
        Self { allow_direct: true, compare_max: COMPARE_MAX }
    }
}

/// Patterns per shard above which the long set is split (building the automaton is the
/// bulk of the build time and is linear in the pattern bytes).
const SHARD_PATTERNS: usize = 16_384;

/// Patterns shorter than 8 bytes (raw forms of short secrets): plain Aho-Corasick.
struct ShortSet {
    ac: AhoCorasick,
    ids: Vec<u32>,
}

/// The compiled set of secrets to mask. Build it off the request path (building for
/// 10,000 secrets in every encoding takes well under two seconds), share it behind an
/// `Arc` (usually in a [`MaskHandle`](crate::MaskHandle)).
pub struct Matcher {
    entries: Vec<EntryInfo>,
    /// Patterns of the input's own bytes, then the patterns of each view target.
    patterns: Vec<PatternInfo>,
    long: Option<LongSet>,
    short: Option<ShortSet>,
    prefixes: PrefixIndex,
    /// The longest match span (input bytes), views included.
    max_len: usize,
    /// The longest pattern of the input's own bytes.
    main_max_len: usize,
    detectors: Option<Arc<Detectors>>,
    refused: Vec<MaskError>,
    /// The decoding views searched besides the input's own bytes (docs/masking.md,
    /// "Escape grammars").
    views: Vec<View>,
    targets: Vec<Target>,
}

/// Distinct patterns in insertion order, first entry winning a shared one.
#[derive(Default)]
struct Patterns {
    infos: Vec<PatternInfo>,
    bytes: Vec<Arc<[u8]>>,
    seen: HashMap<Arc<[u8]>, u32>,
}

impl Patterns {
    fn push(&mut self, form: Vec<u8>, entry: u32, encoding: Encoding) {
        if form.is_empty() {
            return;
        }
        let form: Arc<[u8]> = form.into();
        if self.seen.contains_key(&form) {
            return;
        }
        self.seen.insert(form.clone(), self.infos.len() as u32);
        self.infos.push(PatternInfo { entry, encoding });
        self.bytes.push(form);
    }
}

/// The compiled searches over one pattern set.
struct Core {
    long: Option<LongSet>,
    short: Option<ShortSet>,
    prefixes: PrefixIndex,
    max_len: usize,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("entries", &self.entries.len())
            .field("patterns", &self.patterns.len())
            .field("max_len", &self.max_len)
            .field("detectors", &self.detectors.is_some())
            .finish_non_exhaustive()
    }
}

// === impl Matcher ===

impl Matcher {
    /// A matcher with no secrets and no detectors: masks nothing.
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
            patterns: Vec::new(),
            long: None,
            short: None,
            prefixes: PrefixIndex::new(Vec::new()),
            max_len: 0,
            detectors: None,
            refused: Vec::new(),
            views: Vec::new(),
            targets: Vec::new(),
            main_max_len: 0,
        }
    }

    /// Compiles `entries` in the encodings of `options`.
    ///
    /// Entries that cannot be masked in full do not fail the build: an empty value is
    /// skipped, and a value shorter than [`MIN_ENCODED_SECRET_LEN`] is masked in its raw
    /// form only; both are reported by [`Matcher::refused`]. When two entries share a
    /// form, the first one given wins. Fails only when the automaton cannot be built.
    pub fn build(entries: impl IntoIterator<Item = MaskEntry>, options: &MaskOptions) -> Result<Self, MaskError> {
        Self::build_tuned(entries, options, BuildTuning::default())
    }

    /// [`Matcher::build`] that always uses the q-gram probes, even for small sets that
    /// would be searched directly: lets tests and the fuzz target cover that path.
    #[doc(hidden)]
    pub fn build_probed(
        entries: impl IntoIterator<Item = MaskEntry>,
        options: &MaskOptions,
    ) -> Result<Self, MaskError> {
        Self::build_tuned(entries, options, BuildTuning { allow_direct: false, ..BuildTuning::default() })
    }

    /// [`Matcher::build`] with the search and confirmation paths chosen by `tuning`
    /// (for tests and the fuzz target; the output is the same for every tuning).
    #[doc(hidden)]
    pub fn build_tuned(
        entries: impl IntoIterator<Item = MaskEntry>,
        options: &MaskOptions,
        tuning: BuildTuning,
    ) -> Result<Self, MaskError> {
        let mut infos = Vec::new();
        let mut main = Patterns::default();
        // View targets: the values themselves (JSON, HTML, URL views), base64 cores
        // (line-broken base64), lower-case hex (mixed-case hex).
        let (mut raw_t, mut b64_t, mut hex_t) = (Patterns::default(), Patterns::default(), Patterns::default());
        let mut refused = Vec::new();
        let mut encodings: Vec<Encoding> = vec![Encoding::Raw];
        for e in &options.encodings {
            if !encodings.contains(e) {
                encodings.push(*e);
            }
        }
        for entry in entries {
            let index = infos.len() as u32;
            let value = entry.value().expose();
            if value.is_empty() {
                refused.push(MaskError::EmptySecret { name: entry.name().to_owned() });
                infos.push(EntryInfo { name: entry.name().to_owned(), replacement: entry.replacement().clone() });
                continue;
            }
            let short = value.len() < MIN_ENCODED_SECRET_LEN;
            if short && encodings.len() > 1 {
                refused.push(MaskError::SecretTooShort {
                    name: entry.name().to_owned(),
                    len: value.len(),
                    min: MIN_ENCODED_SECRET_LEN,
                });
            }
            for &encoding in &encodings {
                if short && encoding != Encoding::Raw {
                    continue;
                }
                match encoding {
                    Encoding::Raw => main.push(value.to_vec(), index, encoding),
                    // Found through their grammars' views, in any mix of escapes.
                    Encoding::Json | Encoding::Url | Encoding::Html => raw_t.push(value.to_vec(), index, encoding),
                    Encoding::Base64 | Encoding::Base64Url => {
                        for form in encoding.forms(value) {
                            main.push(form.clone(), index, encoding);
                            b64_t.push(form, index, encoding);
                        }
                    }
                    Encoding::Hex => {
                        for form in encoding.forms(value) {
                            main.push(form, index, encoding);
                        }
                        hex_t.push(value.iter().flat_map(|b| hex_pair(*b)).collect(), index, encoding);
                    }
                }
            }
            infos.push(EntryInfo { name: entry.name().to_owned(), replacement: entry.replacement().clone() });
        }

        let core = compile(&main.bytes, tuning)?;
        let mut patterns = main.infos;
        let mut max_len = core.max_len;
        let mut views = Vec::new();
        let mut targets = Vec::new();
        let has = |e: Encoding| encodings.contains(&e);
        let mut add_target = |t: Patterns, grammars: &[Grammar], patterns: &mut Vec<PatternInfo>| {
            if t.infos.is_empty() || grammars.is_empty() {
                return Ok::<(), MaskError>(());
            }
            let tcore = compile(&t.bytes, tuning)?;
            let bytes: Vec<Vec<u8>> = t.bytes.iter().map(|b| b.to_vec()).collect();
            let min_len = bytes.iter().map(Vec::len).min().unwrap_or(0);
            let mut byte_set = [0u64; 4];
            for &b in bytes.iter().flatten() {
                byte_set[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            let target = Target {
                byte_set,
                max_len: tcore.max_len,
                min_len,
                offset: patterns.len() as u32,
                matcher: Matcher { patterns: t.infos.clone(), ..Matcher::from_core(tcore) },
                bytes,
            };
            for &g in grammars {
                max_len = max_len.max(g.max_span(target.max_len) + g.max_token());
                views.push(View { grammar: g, target: targets.len() });
            }
            patterns.extend(t.infos);
            targets.push(target);
            Ok(())
        };
        let mut raw_grammars = Vec::new();
        if has(Encoding::Json) {
            raw_grammars.push(Grammar::Json);
        }
        if has(Encoding::Html) {
            raw_grammars.push(Grammar::Html);
        }
        if has(Encoding::Url) {
            raw_grammars.push(Grammar::Url);
            // `+` for space can only matter to a value holding a space.
            if raw_t.bytes.iter().any(|b| b.contains(&b' ')) {
                raw_grammars.push(Grammar::UrlPlus);
            }
        }
        add_target(raw_t, &raw_grammars, &mut patterns)?;
        add_target(b64_t, &[Grammar::Base64Lines], &mut patterns)?;
        add_target(hex_t, &[Grammar::HexCase], &mut patterns)?;
        Ok(Self {
            entries: infos,
            patterns,
            max_len,
            detectors: options.detectors.then(Detectors::shared),
            refused,
            views,
            targets,
            ..Self::from_core(core)
        })
    }

    fn from_core(core: Core) -> Self {
        Self {
            long: core.long,
            short: core.short,
            prefixes: core.prefixes,
            max_len: core.max_len,
            main_max_len: core.max_len,
            ..Self::empty()
        }
    }

    /// What could not be masked in full (names only, never values).
    pub fn refused(&self) -> &[MaskError] {
        &self.refused
    }

    /// Number of entries given to [`Matcher::build`].
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Number of distinct byte patterns searched for (in the input's own bytes and in
    /// the decoding views).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// The name of entry `index`.
    pub fn entry_name(&self, index: usize) -> Option<&str> {
        self.entries.get(index).map(|e| e.name.as_str())
    }

    /// The replacement of entry `index`.
    pub fn entry_replacement(&self, index: usize) -> Option<&Bytes> {
        self.entries.get(index).map(|e| &e.replacement)
    }

    /// The longest span a match can cover in the input (an escaped secret is longer
    /// than the secret), in bytes: a stream never holds back more than one byte less.
    pub fn max_pattern_len(&self) -> usize {
        self.max_len
    }

    /// Whether the built-in detectors run.
    pub fn has_detectors(&self) -> bool {
        self.detectors.is_some()
    }

    /// Whether this matcher can change any input (secrets or detectors).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.detectors.is_none()
    }

    /// Approximate heap bytes held by the prefilter (for metrics and docs).
    pub fn prefilter_bytes(&self) -> usize {
        self.long.as_ref().map_or(0, |l| l.filter.heap_size())
    }

    /// Approximate heap bytes held, by part (escape grammars' views included), for the
    /// build benchmark (`examples/build_memory.rs`) and docs/performance.md.
    #[doc(hidden)]
    pub fn memory(&self) -> MatcherMemory {
        let ac = |a: &AhoCorasick, ids: &Vec<u32>| a.memory_usage() + ids.capacity() * 4;
        let mut m = MatcherMemory {
            automata: self.long.as_ref().map_or(0, |l| {
                l.shards.iter().map(|(a, ids)| ac(a, ids)).sum::<usize>()
                    + l.direct.as_ref().map_or(0, |(a, ids)| ac(a, ids))
            }) + self.short.as_ref().map_or(0, |s| ac(&s.ac, &s.ids)),
            prefilter: self.prefilter_bytes(),
            prefix_index: self.prefixes.heap_size(),
            tables: self.entries.capacity() * size_of::<EntryInfo>()
                + self.entries.iter().map(|e| e.name.capacity() + e.replacement.len()).sum::<usize>()
                + self.patterns.capacity() * size_of::<PatternInfo>(),
        };
        for t in &self.targets {
            let inner = t.matcher.memory();
            m.automata += inner.automata;
            m.prefilter += inner.prefilter;
            m.prefix_index += inner.prefix_index;
            m.tables += inner.tables + t.bytes.iter().map(|b| b.capacity() + size_of::<Vec<u8>>()).sum::<usize>();
        }
        m
    }

    /// Every occurrence of a known secret in `haystack`, leftmost-longest and
    /// non-overlapping (detectors are not applied here).
    pub fn find_iter<'m, 'h>(&'m self, haystack: &'h [u8]) -> FindIter<'m, 'h> {
        FindIter { search: Search::new(self, haystack, haystack.len()), pos: 0 }
    }

    /// Masks `haystack` in one go: the same output a [`StreamReplacer`] produces for any
    /// chunking of it.
    pub fn replace(&self, haystack: &[u8]) -> Replaced {
        let mut counts: HashMap<u32, u64> = HashMap::new();
        let mut out = Vec::with_capacity(haystack.len());
        let mut pos = 0;
        for m in self.find_iter(haystack) {
            out.extend_from_slice(&haystack[pos..m.range.start]);
            out.extend_from_slice(&self.entries[m.entry].replacement);
            *counts.entry(m.entry as u32).or_default() += 1;
            pos = m.range.end;
        }
        out.extend_from_slice(&haystack[pos..]);
        let mut replaced = Replaced { output: out, ..Replaced::default() };
        for (entry, n) in counts {
            *replaced.counts.entry(self.entries[entry as usize].name.clone()).or_default() += n;
        }
        if let Some(d) = &self.detectors {
            let (output, detected) = d.replace_all(&replaced.output);
            replaced.output = output;
            replaced.detected = detected;
        }
        replaced
    }

    /// Whether [`replace`](Self::replace) would replace anything in `haystack` (a known
    /// secret in any encoding, or a detector hit): the same searches, stopped at the
    /// first match, without building the masked copy.
    pub fn finds(&self, haystack: &[u8]) -> bool {
        self.find_iter(haystack).next().is_some() || self.detectors.as_ref().is_some_and(|d| d.finds(haystack))
    }

    /// A streaming replacer over this matcher (push chunks, then finish).
    pub fn stream(self: &Arc<Self>) -> StreamReplacer {
        StreamReplacer::new(self.clone())
    }

    pub(crate) fn pattern_info(&self, pattern: u32) -> PatternInfo {
        self.patterns[pattern as usize]
    }

    pub(crate) fn replacement_of(&self, pattern: u32) -> &Bytes {
        &self.entries[self.patterns[pattern as usize].entry as usize].replacement
    }

    pub(crate) fn detectors(&self) -> Option<&Detectors> {
        self.detectors.as_deref()
    }

    /// Whether `tail` is a prefix of (or equal to) some pattern of the input's own bytes.
    pub(crate) fn could_start_match(&self, tail: &[u8]) -> bool {
        self.prefixes.is_prefix(tail)
    }

    /// The decoding views.
    pub(crate) fn views(&self) -> &[View] {
        &self.views
    }

    /// The longest pattern of the input's own bytes (a longer tail is no prefix of one).
    pub(crate) fn main_max_len(&self) -> usize {
        self.main_max_len
    }

    /// The first position of `hay[..end]` from which a match of view `k` could still run
    /// past `end` (a lower bound).
    pub(crate) fn view_hold_from(&self, k: usize, hay: &[u8], end: usize) -> usize {
        let view = &self.views[k];
        let target = &self.targets[view.target];
        let lo = end.saturating_sub(view.grammar.max_span(target.max_len) + view.grammar.max_token());
        match view.grammar {
            // The tail must be hex digits (base64 and line breaks) up to the end.
            Grammar::HexCase => {
                let lo = end.saturating_sub(target.max_len);
                end - hay[lo..end].iter().rev().take_while(|b| b.is_ascii_hexdigit()).count()
            }
            Grammar::Base64Lines => {
                end - hay[lo..end]
                    .iter()
                    .rev()
                    .take_while(|&&b| grammar::is_b64(b) || matches!(b, b'\r' | b'\n' | b'\\'))
                    .count()
            }
            _ => lo,
        }
    }

    /// Whether a match in view `k` could start at `hay[y]` and run past `end`.
    pub(crate) fn view_could_start(&self, k: usize, hay: &[u8], y: usize, end: usize, scratch: &mut Vec<u8>) -> bool {
        let view = &self.views[k];
        grammar::could_start(view.grammar, &self.targets[view.target], hay, y, end, scratch)
    }
}

fn hex_pair(b: u8) -> [u8; 2] {
    const D: &[u8; 16] = b"0123456789abcdef";
    [D[usize::from(b >> 4)], D[usize::from(b & 0xf)]]
}
