//! What the masker's examples (and tests/confirm.rs) share: reproducible random input and the
//! process's memory.
// Each example uses a part of this module.
#![allow(dead_code)]

/// Letters and digits, the alphabet of most generated secrets.
pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A xorshift64 generator: the same bytes on every run, so runs compare.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` bytes drawn from `alphabet`.
    pub(crate) fn bytes(&mut self, alphabet: &[u8], n: usize) -> Vec<u8> {
        (0..n).map(|_| alphabet[(self.next_u64() % alphabet.len() as u64) as usize]).collect()
    }
}

/// A `kB` field of /proc/self/status (`"VmRSS:"`, `"VmHWM:"`), in KiB.
pub(crate) fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}
