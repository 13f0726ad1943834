//! The sampled q-gram prefilter in front of Aho-Corasick.
//!
//! Every pattern is at least [`Q`] = 8 bytes long. Let `m` be the shortest pattern and
//! `s = m - 7` the *stride*. Probing the input's 8-byte windows at positions
//! `from, from + s, from + 2s, …` always lands inside every occurrence: an occurrence
//! starting at `x` has a probe `q` in `x..x + s`, and `q + 8 <= x + m` so the probed
//! window lies inside it, at offset `q - x < s` of the pattern. So only the windows at
//! offsets `0..s` of each pattern are fingerprinted, into a blocked Bloom filter (three
//! bits in one 64-bit word per window, one cache line per probe) backed by an exact hash
//! set of the same windows. A probe whose bits are not all set proves that no occurrence
//! contains that window at those offsets; a Bloom hit is checked against the exact set,
//! and only a window that really belongs to a pattern means an occurrence may start in
//! `q + 1 - s ..= q`; only that region is handed to Aho-Corasick. (For very large sets the
//! stride is lowered so that the filter stays cache-sized: any `s <= m - 7` is correct.) On text holding no secret the automaton runs on a few percent of the
//! input, and the probes cost a load, two multiplications and one memory access per
//! `s` bytes (see docs/masking.md).

/// The window length fingerprinted by the prefilter (one `u64`).
pub(crate) const Q: usize = 8;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Bits of Bloom filter per fingerprinted window.
const BITS_PER_WINDOW: usize = 16;
/// The Bloom filter is kept within this many bits (2 MiB, the L2 cache of the machine
/// the targets are set on) by lowering the stride when the pattern set is large.
const MAX_FILTER_BITS: usize = 1 << 24;

/// The blocked Bloom filter of pattern windows, backed by an exact set of them.
#[derive(Debug)]
pub(crate) struct QGramFilter {
    words: Box<[u64]>,
    shift: u32,
    stride: usize,
    exact: WindowSet,
}

impl QGramFilter {
    /// The stride for a set whose shortest pattern is `min_len` bytes, with `patterns`
    /// patterns: `min_len - 7`, lowered so the filter stays within [`MAX_FILTER_BITS`].
    pub(crate) fn stride_for(min_len: usize, patterns: usize) -> usize {
        let widest = min_len + 1 - Q;
        let fits = MAX_FILTER_BITS / (patterns.max(1) * BITS_PER_WINDOW);
        // At most 64: a window's possible offsets in the patterns are kept as a u64 mask.
        widest.min(fits.max(4)).clamp(1, 64)
    }

    /// Fingerprints the first `stride` windows of every pattern (each at least
    /// `stride + 7` bytes long).
    pub(crate) fn new<'a>(patterns: impl Iterator<Item = &'a [u8]> + Clone, stride: usize) -> Self {
        debug_assert!(stride >= 1);
        let windows: usize = patterns.clone().map(|p| (p.len() + 1 - Q).min(stride)).sum();
        // Three bits in one 64-bit word per window: a false-positive rate near 0.5% at
        // 16 bits per window, and one cache line per probe.
        let bits = (windows.max(1) * BITS_PER_WINDOW).next_power_of_two().clamp(1 << 12, 1 << 30);
        let words = bits / 64;
        let shift = 64 - words.trailing_zeros();
        let mut exact = WindowSet::with_capacity(windows);
        let mut filter =
            Self { words: vec![0u64; words].into_boxed_slice(), shift, stride, exact: WindowSet::with_capacity(0) };
        for p in patterns {
            for off in 0..(p.len() + 1 - Q).min(stride) {
                let w = load(p, off);
                let (i, mask) = filter.slot(w);
                filter.words[i] |= mask;
                exact.insert(w, off);
            }
        }
        filter.exact = exact;
        filter
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

    /// The offsets (bit `o` set: offset `o`) at which the window at `at` occurs in some
    /// pattern, among the fingerprinted offsets; 0 when it occurs in none.
    #[inline]
    pub(crate) fn offsets_at(&self, hay: &[u8], at: usize) -> u64 {
        let w = load(hay, at);
        if self.maybe(w) {
            self.exact.offsets(w)
        } else {
            0
        }
    }

    /// The first probe position `q` in `from, from + s, …` with `q + 8 <= end` whose window
    /// is one of the fingerprinted pattern windows, with its offsets mask.
    #[inline]
    pub(crate) fn next_hit(&self, hay: &[u8], from: usize, end: usize) -> Option<(usize, u64)> {
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
                        let offsets = self.exact.offsets(load(hay, q + k * s));
                        if offsets != 0 {
                            return Some((q + k * s, offsets));
                        }
                    }
                }
            }
            q += 4 * s;
        }
        while q <= last {
            let offsets = self.offsets_at(hay, q);
            if offsets != 0 {
                return Some((q, offsets));
            }
            q += s;
        }
        None
    }

    /// Bytes of memory held.
    pub(crate) fn heap_size(&self) -> usize {
        self.words.len() * 8 + self.exact.heap_size()
    }
}

/// An exact map from 8-byte windows to the offsets (a bit mask) at which they occur in
/// the patterns: open addressing, linear probing, at most three quarters full.
#[derive(Debug)]
struct WindowSet {
    /// (window, offsets mask) pairs, so a lookup touches one cache line.
    slots: Box<[(u64, u64)]>,
    shift: u32,
    zero: u64,
}

impl WindowSet {
    fn with_capacity(n: usize) -> Self {
        let cap = (n + n / 3 + 1).next_power_of_two().max(16);
        Self { slots: vec![(0u64, 0u64); cap].into_boxed_slice(), shift: 64 - cap.trailing_zeros(), zero: 0 }
    }

    #[inline(always)]
    fn home(&self, w: u64) -> usize {
        ((w ^ (w >> 31)).wrapping_mul(K1) >> self.shift) as usize
    }

    fn insert(&mut self, w: u64, offset: usize) {
        let bit = 1u64 << offset;
        if w == 0 {
            self.zero |= bit;
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(w);
        while self.slots[i].0 != 0 && self.slots[i].0 != w {
            i = (i + 1) & mask;
        }
        self.slots[i].0 = w;
        self.slots[i].1 |= bit;
    }

    #[inline]
    fn offsets(&self, w: u64) -> u64 {
        if w == 0 {
            return self.zero;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(w);
        loop {
            let (k, offsets) = self.slots[i];
            if k == w {
                return offsets;
            }
            if k == 0 {
                return 0;
            }
            i = (i + 1) & mask;
        }
    }

    fn heap_size(&self) -> usize {
        self.slots.len() * 16
    }
}

#[inline(always)]
pub(crate) fn load(hay: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&hay[at..at + Q]);
    u64::from_le_bytes(w)
}
