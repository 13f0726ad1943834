//! What building the masker costs: time, resident memory and the matcher's own account
//! of it, for N random 32-character hex secrets in every encoding with the default detectors
//! (what cloakroomd's `[masking]` builds; docs/performance.md, "Cost per call").
//!
//! `cargo run --release -p cloakroom-mask --example build_memory -- 100000`

mod common;

use std::time::Instant;

use cloakroom_core::Secret;
use cloakroom_mask::{MaskEntry, MaskOptions, Matcher};
use common::{status_kib, Random};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100_000, |a| a.parse().expect("N: a number of secrets"));
    let mut random = Random::new(0x9e37_79b9_7f4a_7c15);
    // Hex, like the load benchmark's seeded secrets.
    let entries: Vec<MaskEntry> = (0..n)
        .map(|i| {
            let value = random.bytes(b"0123456789abcdef", 32);
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
