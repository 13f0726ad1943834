//! The sampled q-gram prefilter in front of Aho-Corasick.
//!
//! Every pattern is at least [`Q`] = 8 bytes long. Let `m` be the shortest pattern and
//! `s = m - 7` the *stride*. Probing the input's 8-byte windows at positions
//! `from, from + s, from + 2s, …` always lands inside every occurrence: an occurrence
//! starting at `x` has a probe `q` in `x..x + s`, and `q + 8 <= x + m` so the probed
//! window lies inside it, at offset `q - x < s` of the pattern. So only the windows at
//! offsets `0..s` of each pattern are fingerprinted, into a blocked Bloom filter (two bits
//! in one 64-bit word per window, one cache line per probe). A probe whose two bits are
//! not both set proves that no occurrence contains that window at those offsets; a hit
//! means an occurrence may start in `q + 1 - s ..= q`, and only that region is handed to
//! Aho-Corasick. On text holding no secret the automaton runs on a few percent of the
//! input, and the probes cost a load, two multiplications and one memory access per
//! `s` bytes (see docs/masking.md).

/// The window length fingerprinted by the prefilter (one `u64`).
pub(crate) const Q: usize = 8;

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// The blocked Bloom filter of pattern windows.
#[derive(Debug)]
pub(crate) struct QGramFilter {
    words: Box<[u64]>,
    shift: u32,
    stride: usize,
}

impl QGramFilter {
    /// Fingerprints the first `stride` windows of every pattern (each at least
    /// `stride + 7` bytes long).
    pub(crate) fn new<'a>(patterns: impl Iterator<Item = &'a [u8]> + Clone, stride: usize) -> Self {
        debug_assert!(stride >= 1);
        let windows: usize = patterns.clone().map(|p| (p.len() + 1 - Q).min(stride)).sum();
        // ~24 bits per window: with two bits per window the false-positive rate is about
        // (1 - e^(-2/24))^2 ≈ 0.6% while the table stays within L2 for ~1,000 secrets.
        let bits = (windows.max(1) * 24).next_power_of_two().clamp(1 << 12, 1 << 30);
        let words = bits / 64;
        let shift = 64 - words.trailing_zeros();
        let mut filter = Self { words: vec![0u64; words].into_boxed_slice(), shift, stride };
        for p in patterns {
            for off in 0..(p.len() + 1 - Q).min(stride) {
                let w = load(p, off);
                let (i, mask) = filter.slot(w);
                filter.words[i] |= mask;
            }
        }
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
        let mask = (1u64 << (h2 >> 58)) | (1u64 << ((h2 >> 52) & 63));
        (i, mask)
    }

    /// Whether the window `w` may belong to a pattern.
    #[inline(always)]
    pub(crate) fn maybe(&self, w: u64) -> bool {
        let (i, mask) = self.slot(w);
        self.words[i] & mask == mask
    }

    /// The first probe position `q` in `from, from + s, …` with `q + 8 <= end` whose window
    /// may belong to a pattern.
    #[inline]
    pub(crate) fn next_hit(&self, hay: &[u8], from: usize, end: usize) -> Option<usize> {
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
                return Some(if a {
                    q
                } else if b {
                    q + s
                } else if c {
                    q + 2 * s
                } else {
                    q + 3 * s
                });
            }
            q += 4 * s;
        }
        while q <= last {
            if self.maybe(load(hay, q)) {
                return Some(q);
            }
            q += s;
        }
        None
    }

    /// Bytes of memory held.
    pub(crate) fn heap_size(&self) -> usize {
        self.words.len() * 8
    }
}

#[inline(always)]
pub(crate) fn load(hay: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&hay[at..at + Q]);
    u64::from_le_bytes(w)
}
