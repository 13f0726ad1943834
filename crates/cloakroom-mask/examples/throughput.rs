//! Quick single-pass throughput check of the masker (the full comparison is the criterion
//! bench `cargo bench -p cloakroom-benches --bench mask`).
//!
//! `cargo run --release -p cloakroom-mask --example throughput [secrets] [len]`

mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{MaskEntry, MaskOptions, Matcher};
use common::{Random, ALNUM};

/// Nanoseconds this thread has spent on a CPU (the machine may be shared).
fn cpu_now() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    std::time::Duration::from_nanos(stat.split_whitespace().next().and_then(|v| v.parse().ok()).expect("field"))
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(1000);
    let len = args.get(1).copied().unwrap_or(32);
    let mut random = Random::new(0x9E37_79B9_7F4A_7C15);
    let mut alnum = |k: usize| random.bytes(ALNUM, k);
    let entries: Vec<MaskEntry> =
        (0..n).map(|i| MaskEntry::new(format!("s{i}"), Secret::new(alnum(len)), format!("cloak_{i:026}"))).collect();
    let mut input = alnum(64 << 20);
    if args.get(2) == Some(&1) {
        // 1% of 64-byte windows hold a secret (raw or encoded).
        let forms = cloakroom_mask::oracle::forms(&entries, &MaskOptions::default());
        for k in 0..(input.len() / 64 / 100) {
            let f = &forms[(k * 7919) % forms.len()].0;
            let at = (k * 100 + (k * 31) % 100) * 64;
            if at + f.len() <= input.len() {
                input[at..at + f.len()].copy_from_slice(f);
            }
        }
    }
    let input = Bytes::from(input);
    let modes: &[bool] = if args.get(3) == Some(&0) { &[false] } else { &[false, true] };
    for &detectors in modes {
        let t = Instant::now();
        let matcher = Arc::new(
            Matcher::build(entries.clone(), &MaskOptions { detectors, ..MaskOptions::default() }).expect("build"),
        );
        let build = t.elapsed();
        for _ in 0..2 {
            let (t, c) = (Instant::now(), cpu_now());
            let mut s = matcher.stream();
            let mut out = 0;
            for at in (0..input.len()).step_by(64 << 10) {
                out += s.push(input.slice(at..(at + (64 << 10)).min(input.len()))).len();
            }
            out += s.finish().len();
            let (d, cpu) = (t.elapsed(), cpu_now() - c);
            println!(
                "{n} x {len} B, detectors {detectors}: {} patterns, build {build:.2?}, {:.2} GB/s per core ({:.2} GB/s wall, {out} bytes)",
                matcher.pattern_count(),
                input.len() as f64 / cpu.as_secs_f64() / 1e9,
                input.len() as f64 / d.as_secs_f64() / 1e9
            );
        }
    }
}
