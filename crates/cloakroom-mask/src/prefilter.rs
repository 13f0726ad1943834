//! The sampled q-gram prefilter in front of Aho-Corasick.
//!
//! Every pattern is at least [`Q`] = 8 bytes long. Let `m` be the shortest pattern and
//! `s = m - 7` the *stride*. Probing the input's 8-byte windows at positions
//! `from, from + s, from + 2s, …` always lands inside every occurrence: an occurrence
//! starting at `x` has a probe `q` in `x..x + s`, and `q + 8 <= x + m` so the probed
//! window lies inside it, at offset `q - x < s` of the pattern. So only the windows at
//! offsets `0..s` of each pattern are fingerprinted, into a blocked Bloom filter (three
//! bits in one 64-bit word per window, one cache line per probe) backed by an exact map
//! from each window to its *candidates*: every (pattern, offset) at which it occurs. A
//! probe whose bits are not all set proves that no occurrence contains that window at
//! those offsets; a Bloom hit is checked against the exact map, and only a window that
//! really belongs to a pattern means an occurrence may start at `q - offset` for one of
//! its candidates. The candidates sharing an offset are *every* pattern that can occur at
//! that start, so the matcher confirms them by comparing their bytes (few candidates) or
//! by an anchored Aho-Corasick search (many). (For very large sets the stride is lowered
//! so that the filter stays cache-sized: any `s <= m - 7` is correct.) On text holding
//! no secret the probes cost a load, two multiplications and one memory access per `s`
//! bytes (see docs/masking.md).

use crate::MaskError;

/// The window length fingerprinted by the prefilter (one `u64`).
pub(crate) const Q: usize = 8;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Bits of Bloom filter per fingerprinted window.
const BITS_PER_WINDOW: usize = 16;
/// The Bloom filter is kept within this many bits (2 MiB, the L2 cache of the machine
/// the targets are set on) by lowering the stride when the pattern set is large.
const MAX_FILTER_BITS: usize = 1 << 24;

/// One pattern a fingerprinted window occurs in: where the pattern is kept in the
/// filter's [`PatternStore`] and the window's offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cand {
    at: u32,
    offset: u32,
}

impl Cand {
    /// The offset of the window in the pattern: an occurrence would start `offset`
    /// bytes before the probe.
    #[inline(always)]
    pub(crate) fn offset(self) -> usize {
        self.offset as usize
    }
}

/// The candidates of a probed window: every (pattern, offset) it occurs at, grouped by
/// offset, highest first, and within an offset longest pattern first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cands<'f> {
    /// The usual case, kept in the window's own slot (no second memory access).
    One([Cand; 1]),
    /// A window shared by several (pattern, offset) pairs.
    Run(&'f [Cand]),
}

impl Cands<'_> {
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[Cand] {
        match self {
            Cands::One(one) => one,
            Cands::Run(run) => run,
        }
    }
}

/// The blocked Bloom filter of pattern windows, backed by an exact map from each window
/// to its candidates.
#[derive(Debug)]
pub(crate) struct QGramFilter {
    words: Box<[u64]>,
    shift: u32,
    stride: usize,
    exact: WindowSet,
    /// Candidates of the windows with more than one, grouped by window (each window's run
    /// is `exact`'s range), within a run by offset descending (leftmost start first), then
    /// by pattern length descending.
    cands: Box<[Cand]>,
    store: PatternStore,
    /// The global ids of the patterns in a crowd: a (window, offset) shared by more than
    /// the `crowd` given to [`QGramFilter::new`], sorted and without repeats.
    crowded: Vec<u32>,
}

impl QGramFilter {
    /// The stride for a set whose shortest pattern is `min_len` bytes, with `patterns`
    /// patterns: `min_len - 7`, lowered so the filter stays within [`MAX_FILTER_BITS`].
    pub(crate) fn stride_for(min_len: usize, patterns: usize) -> usize {
        let widest = min_len + 1 - Q;
        let fits = MAX_FILTER_BITS / (patterns.max(1) * BITS_PER_WINDOW);
        // At most 64: offsets are kept below 64 (and a probe names few of them).
        widest.min(fits.max(4)).clamp(1, 64)
    }

    /// Fingerprints the first `stride` windows of every pattern (each at least
    /// `stride + 7` bytes long), given with its global pattern id, and notes the patterns
    /// that share a window at one offset with more than `crowd` others
    /// ([`crowded`](Self::crowded)).
    pub(crate) fn new<'a>(
        patterns: impl Iterator<Item = (u32, &'a [u8])> + Clone,
        stride: usize,
        crowd: usize,
    ) -> Result<Self, MaskError> {
        debug_assert!(stride >= 1);
        let windows: usize = patterns.clone().map(|(_, p)| (p.len() + 1 - Q).min(stride)).sum();
        // Run lengths and list positions must stay below `Entry::ONE`.
        if windows >= Entry::ONE as usize {
            return Err(MaskError::Build("too many pattern windows for the prefilter".into()));
        }
        // Three bits in one 64-bit word per window: a false-positive rate near 0.5% at
        // 16 bits per window, and one cache line per probe.
        let bits = (windows.max(1) * BITS_PER_WINDOW).next_power_of_two().clamp(1 << 12, 1 << 30);
        let words = bits / 64;
        let shift = 64 - words.trailing_zeros();
        let mut filter = Self {
            words: vec![0u64; words].into_boxed_slice(),
            shift,
            stride,
            exact: WindowSet::with_capacity(windows),
            cands: Box::default(),
            store: PatternStore::default(),
            crowded: Vec::new(),
        };
        // (slot, offset, pattern length, store position) per window, then grouped.
        let mut found: Vec<(u32, u32, u32, u32)> = Vec::with_capacity(windows);
        for (id, p) in patterns {
            let at = filter.store.push(id, p)?;
            let len = u32::try_from(p.len()).map_err(|_| MaskError::Build("a pattern is too long".into()))?;
            for off in 0..(p.len() + 1 - Q).min(stride) {
                let w = load(p, off);
                let (i, mask) = filter.slot(w);
                filter.words[i] |= mask;
                found.push((filter.exact.insert(w), off as u32, len, at));
            }
        }
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let mut cands = Vec::new();
        for run in found.chunk_by(|a, b| a.0 == b.0) {
            let slot = run[0].0;
            // Runs are sorted by offset: a group is a stretch of one offset, and holds
            // every pattern that can occur at the start the probe names.
            for group in run.chunk_by(|a, b| a.1 == b.1) {
                if group.len() > crowd {
                    filter.crowded.extend(group.iter().map(|&(.., at)| filter.store.get(at).0));
                }
            }
            if let [(_, offset, _, at)] = run {
                filter.exact.set(slot, Entry::one(Cand { at: *at, offset: *offset }));
            } else {
                let first = cands.len() as u32;
                cands.extend(run.iter().map(|&(_, offset, _, at)| Cand { at, offset }));
                filter.exact.set(slot, Entry::run(first, run.len() as u32));
            }
        }
        filter.crowded.sort_unstable();
        filter.crowded.dedup();
        filter.cands = cands.into_boxed_slice();
        Ok(filter)
    }

    /// The patterns found in a crowd (see [`new`](Self::new)): the only ones a probe
    /// hit can name more than `crowd` of at one start, so the only ones the confirming
    /// automata need to hold. Taken out once, for the build: the filter does not keep
    /// the list.
    pub(crate) fn take_crowded(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.crowded)
    }

    /// The probe stride.
    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    #[inline(always)]
    fn slot(&self, w: u64) -> (usize, u64) {
        let h1 = w.wrapping_mul(K1);
        let h2 = (w ^ (w >> 29)).wrapping_mul(K2);
        // The high bits of a multiplicative hash depend on every input bit.
        let i = (h1 >> self.shift) as usize;
        let mask = (1u64 << (h2 >> 58)) | (1u64 << ((h2 >> 52) & 63)) | (1u64 << ((h2 >> 46) & 63));
        (i, mask)
    }

    /// Whether the window `w` may belong to a pattern (Bloom filter only).
    #[inline(always)]
    fn maybe(&self, w: u64) -> bool {
        let (i, mask) = self.slot(w);
        self.words[i] & mask == mask
    }

    /// The candidates of window `w`, if it is a fingerprinted window.
    #[inline]
    fn cands_of(&self, w: u64) -> Option<Cands<'_>> {
        let e = self.exact.get(w)?;
        Some(if e.1 & Entry::ONE != 0 {
            Cands::One([Cand { at: e.0, offset: e.1 & !Entry::ONE }])
        } else {
            Cands::Run(&self.cands[e.0 as usize..(e.0 + e.1) as usize])
        })
    }

    /// The first probe position `q` in `from, from + s, …` with `q + 8 <= end` whose window
    /// is one of the fingerprinted pattern windows, with its candidates (never empty).
    #[inline]
    pub(crate) fn next_hit(&self, hay: &[u8], from: usize, end: usize) -> Option<(usize, Cands<'_>)> {
        let s = self.stride;
        let mut q = from;
        if end < Q {
            return None;
        }
        let last = end - Q;
        // Four independent probes per round let their memory accesses overlap.
        while q + 3 * s <= last {
            let a = self.maybe(load(hay, q));
            let b = self.maybe(load(hay, q + s));
            let c = self.maybe(load(hay, q + 2 * s));
            let d = self.maybe(load(hay, q + 3 * s));
            if a | b | c | d {
                for (k, hit) in [a, b, c, d].into_iter().enumerate() {
                    if hit {
                        if let Some(cands) = self.cands_of(load(hay, q + k * s)) {
                            return Some((q + k * s, cands));
                        }
                    }
                }
            }
            q += 4 * s;
        }
        while q <= last {
            let w = load(hay, q);
            if self.maybe(w) {
                if let Some(cands) = self.cands_of(w) {
                    return Some((q, cands));
                }
            }
            q += s;
        }
        None
    }

    /// The global id and bytes of a candidate's pattern.
    #[inline]
    pub(crate) fn pattern(&self, cand: Cand) -> (u32, &[u8]) {
        self.store.get(cand.at)
    }

    /// Bytes of memory held.
    pub(crate) fn heap_size(&self) -> usize {
        self.words.len() * 8 + self.exact.heap_size() + self.cands.len() * size_of::<Cand>() + self.store.data.len()
    }
}

/// The long patterns' bytes, each behind its global id and length, so that confirming a
/// candidate reads one place.
#[derive(Debug, Default)]
struct PatternStore {
    data: Vec<u8>,
}

impl PatternStore {
    fn push(&mut self, id: u32, bytes: &[u8]) -> Result<u32, MaskError> {
        if self.data.len() + 8 + bytes.len() > u32::MAX as usize {
            return Err(MaskError::Build("the patterns exceed 4 GiB".into()));
        }
        let at = self.data.len() as u32;
        self.data.extend_from_slice(&id.to_le_bytes());
        self.data.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.data.extend_from_slice(bytes);
        Ok(at)
    }

    #[inline]
    fn get(&self, at: u32) -> (u32, &[u8]) {
        let at = at as usize;
        let word = |i: usize| u32::from_le_bytes([self.data[i], self.data[i + 1], self.data[i + 2], self.data[i + 3]]);
        let (id, len) = (word(at), word(at + 4) as usize);
        (id, &self.data[at + 8..at + 8 + len])
    }
}

/// A window's candidates as kept in its slot: either the one candidate itself
/// (`(at, offset | ONE)`) or a run of the filter's candidate list (`(first, count)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u32, u32);

impl Entry {
    /// Marks an entry holding its single candidate (offsets are below 64; counts of runs
    /// stay below `u32::MAX / 2` as there are fewer windows).
    const ONE: u32 = 1 << 31;

    fn one(c: Cand) -> Self {
        Self(c.at, c.offset | Self::ONE)
    }

    fn run(first: u32, count: u32) -> Self {
        Self(first, count)
    }
}

/// An exact map from 8-byte windows to their candidates: open addressing, linear
/// probing, at most three quarters full.
#[derive(Debug)]
struct WindowSet {
    /// (window, entry), so a lookup touches one cache line.
    slots: Box<[(u64, Entry)]>,
    shift: u32,
    /// The entry of the all-zero window (0 marks an empty slot).
    zero: Option<Entry>,
}

/// The slot index [`WindowSet::insert`] gives the all-zero window.
const ZERO_SLOT: u32 = u32::MAX;

impl WindowSet {
    fn with_capacity(n: usize) -> Self {
        let cap = (n + n / 3 + 1).next_power_of_two().max(16);
        Self { slots: vec![(0u64, Entry(0, 0)); cap].into_boxed_slice(), shift: 64 - cap.trailing_zeros(), zero: None }
    }

    #[inline(always)]
    fn home(&self, w: u64) -> usize {
        ((w ^ (w >> 31)).wrapping_mul(K1) >> self.shift) as usize
    }

    /// Adds `w` (if new) and returns its slot.
    fn insert(&mut self, w: u64) -> u32 {
        if w == 0 {
            return ZERO_SLOT;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(w);
        while self.slots[i].0 != 0 && self.slots[i].0 != w {
            i = (i + 1) & mask;
        }
        self.slots[i].0 = w;
        i as u32
    }

    fn set(&mut self, slot: u32, entry: Entry) {
        if slot == ZERO_SLOT {
            self.zero = Some(entry);
        } else {
            self.slots[slot as usize].1 = entry;
        }
    }

    /// The entry of `w`, if it is in the map.
    #[inline]
    fn get(&self, w: u64) -> Option<Entry> {
        if w == 0 {
            return self.zero;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(w);
        loop {
            let (k, entry) = self.slots[i];
            if k == w {
                return Some(entry);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    fn heap_size(&self) -> usize {
        self.slots.len() * size_of::<(u64, Entry)>()
    }
}

#[inline(always)]
pub(crate) fn load(hay: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&hay[at..at + Q]);
    u64::from_le_bytes(w)
}
