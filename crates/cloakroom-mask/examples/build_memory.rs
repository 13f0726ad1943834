//! What building the masker costs: time, resident memory and the matcher's own account
//! of it, for N random 32-character hex secrets in every encoding with the default detectors
//! (what cloakroomd's `[masking]` builds; docs/performance.md, "Cost per call").
//!
//! `cargo run --release -p cloakroom-mask --example build_memory -- 100000`

use std::time::Instant;

use cloakroom_core::Secret;
use cloakroom_mask::{MaskEntry, MaskOptions, Matcher};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100_000, |a| a.parse().expect("N: a number of secrets"));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Hex, like the load benchmark's seeded secrets.
    const A: &[u8] = b"0123456789abcdef";
    let entries: Vec<MaskEntry> = (0..n)
        .map(|i| {
            let value: Vec<u8> = (0..32).map(|_| A[(next() % 16) as usize]).collect();
            MaskEntry::new(format!("masked_{i:06}"), Secret::new(value), format!("cloak_{i:026}"))
        })
        .collect();
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let matcher = Matcher::build(entries, &MaskOptions::default()).expect("build");
    let took = started.elapsed();
    let after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let m = matcher.memory();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!("secrets: {n}, patterns (distinct forms): {}", matcher.pattern_count());
    println!("build: {:.2} s", took.as_secs_f64());
    println!(
        "RSS: {:.0} MiB before, {:.0} MiB after (+{:.0}), peak {:.0} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after - before) as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "held: {:.0} MiB = automata {:.0} + prefilter {:.0} + prefix index {:.0} + tables {:.0}",
        mib(m.total()),
        mib(m.automata),
        mib(m.prefilter),
        mib(m.prefix_index),
        mib(m.tables)
    );
    drop(matcher);
}
