//! Peak-memory check: a 1 GiB body streamed through `MaskBody` in 64 KiB chunks, with
//! 1,000 secrets of 32 bytes in every encoding and a secret in every 16th chunk, must
//! stay under 64 MiB resident. Prints the process's peak RSS (VmHWM).
//!
//! `cargo run --release -p cloakroom-mask --example rss_1gib`

mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{oracle, MaskBody, MaskEntry, MaskOptions, Matcher};
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use common::{status_kib, Random, ALNUM};

const TOTAL: usize = 1 << 30;
const CHUNK: usize = 64 << 10;

fn main() {
    let mut random = Random::new(0x1234_5678_9abc_def0);
    let mut alnum = |n: usize| random.bytes(ALNUM, n);
    let entries: Vec<MaskEntry> =
        (0..1000).map(|i| MaskEntry::new(format!("s{i}"), Secret::new(alnum(32)), format!("cloak_{i:026}"))).collect();
    let options = MaskOptions::default();
    let forms = oracle::forms(&entries, &options);
    let matcher = Arc::new(Matcher::build(entries, &options).expect("build"));
    let blocks: Vec<Bytes> = (0..16).map(|_| Bytes::from(alnum(CHUNK))).collect();
    let after_build = status_kib("VmHWM:");

    let chunks = (0..TOTAL / CHUNK).map(move |i| {
        let block = &blocks[i % blocks.len()];
        let data = if i % 16 == 0 {
            // A fresh buffer holding a secret: the masker must copy and replace.
            let mut v = block.to_vec();
            let f = &forms[i / 16 % forms.len()].0;
            let at = (i * 7919) % (CHUNK - f.len());
            v[at..at + f.len()].copy_from_slice(f);
            Bytes::from(v)
        } else {
            block.clone()
        };
        Ok::<_, std::convert::Infallible>(Frame::data(data))
    });
    let body = MaskBody::new(StreamBody::new(stream::iter(chunks)), matcher);

    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let start = Instant::now();
    let (bytes, masked) = rt.block_on(async move {
        let mut body = body;
        let mut bytes = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("infallible").into_data() {
                bytes += data.len();
            }
        }
        (bytes, body.masked())
    });
    let elapsed = start.elapsed();
    let peak = status_kib("VmHWM:");
    println!(
        "streamed {} MiB in 64 KiB chunks in {:.2?} ({:.2} GB/s), {} replacements",
        TOTAL >> 20,
        elapsed,
        TOTAL as f64 / elapsed.as_secs_f64() / 1e9,
        masked
    );
    println!("output {} bytes", bytes);
    println!("peak RSS after building the matcher: {:.1} MiB", after_build as f64 / 1024.0);
    println!("peak RSS (VmHWM) after 1 GiB: {:.1} MiB", peak as f64 / 1024.0);
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is over 64 MiB");
}
