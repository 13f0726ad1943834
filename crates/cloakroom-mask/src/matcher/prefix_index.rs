//! The sorted pattern index a stream asks whether its buffer's tail could still begin a
//! match (exact bitsets for short tails, hashed ones and a binary search for longer).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Sorted patterns, to tell whether a buffer's tail could still begin a match.
pub(super) struct PrefixIndex {
    pub(super) sorted: Vec<Arc<[u8]>>,
    /// Bit `a` is set when some pattern starts with the byte `a` (exact).
    pub(super) ones: Box<[u64]>,
    /// Bit `a << 8 | b` is set when some pattern starts with `a b` (exact).
    pub(super) twos: Box<[u64]>,
    /// Bit `h(a, b, c)` is set when some pattern starts with `a b c`.
    pub(super) threes: Box<[u64]>,
    /// Bit `h(a, b, c, d)` is set when some pattern starts with the bytes `a b c d`.
    pub(super) quads: Box<[u64]>,
    pub(super) quad_shift: u32,
}

impl PrefixIndex {
    /// Bytes held: the sorted list (its patterns are shared with the matcher's
    /// table, counted once there) and the bitsets.
    pub(super) fn heap_size(&self) -> usize {
        self.sorted.capacity() * size_of::<Arc<[u8]>>()
            + self.sorted.iter().map(|p| p.len()).sum::<usize>()
            + (self.ones.len() + self.twos.len() + self.threes.len() + self.quads.len()) * 8
    }
}

pub(super) fn quad_slot(p: &[u8], shift: u32) -> usize {
    let x = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    (x.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

/// Bits of the three-byte prefix set.
pub(super) const THREE_BITS: u32 = 16;

pub(super) fn three_slot(p: &[u8]) -> usize {
    let x = u32::from_le_bytes([p[0], p[1], p[2], 0]);
    (x.wrapping_mul(0x9E37_79B1) >> (32 - THREE_BITS)) as usize
}

pub(super) fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

pub(super) fn has_bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

impl PrefixIndex {
    pub(super) fn new(mut sorted: Vec<Arc<[u8]>>) -> Self {
        sorted.sort_unstable();
        // ~64 bits per pattern, at most 128 KiB: a tail of four bytes or more is
        // rejected without a binary search unless some pattern's first four bytes hash
        // to the same bit. Tails of one and two bytes are answered exactly by bitsets,
        // of three bytes by an 8 KiB hashed one.
        let bits = (sorted.len() * 64).next_power_of_two().clamp(1 << 10, 1 << 20);
        let quad_shift = 32 - bits.trailing_zeros();
        let mut quads = vec![0u64; bits / 64].into_boxed_slice();
        // An empty set (the empty matcher is built often) allocates none of them.
        let words = |n: usize| vec![0u64; if sorted.is_empty() { 0 } else { n / 64 }].into_boxed_slice();
        let (mut ones, mut twos, mut threes) = (words(256), words(1 << 16), words(1 << THREE_BITS));
        for p in &sorted {
            if let Some(&a) = p.first() {
                set_bit(&mut ones, usize::from(a));
            }
            if p.len() >= 2 {
                set_bit(&mut twos, usize::from(p[0]) << 8 | usize::from(p[1]));
            }
            if p.len() >= 3 {
                set_bit(&mut threes, three_slot(p));
            }
            if p.len() >= 4 {
                set_bit(&mut quads, quad_slot(p, quad_shift));
            }
        }
        Self { sorted, ones, twos, threes, quads, quad_shift }
    }

    pub(super) fn is_prefix(&self, tail: &[u8]) -> bool {
        if self.sorted.is_empty() {
            return false;
        }
        match tail.len() {
            0 => return true,
            // Every pattern is at least one byte long: the bitsets are exact here.
            1 => return has_bit(&self.ones, usize::from(tail[0])),
            2 => return has_bit(&self.twos, usize::from(tail[0]) << 8 | usize::from(tail[1])),
            3 => {
                if !has_bit(&self.threes, three_slot(tail)) {
                    return false;
                }
            }
            _ => {
                if !has_bit(&self.quads, quad_slot(tail, self.quad_shift)) {
                    return false;
                }
            }
        }
        let at = self.sorted.partition_point(|p| &p[..] < tail);
        self.sorted.get(at).is_some_and(|p| p.starts_with(tail))
    }
}
