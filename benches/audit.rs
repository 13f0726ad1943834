//! Audit log throughput: records/s appended with 1 KiB request and response bodies, for
//! the embedded segment store (the default) and sled (the previous default), each
//! `batched` (target >= 50,000/s) and `sync`, and PostgreSQL, with 64 concurrent callers
//! (as a busy gateway has), each record durable at the end of the measurement.
//!
//! `source scripts/test-env.sh && cargo bench -p cloakroom-benches --bench audit -- --warm-up-time 1 --measurement-time 3`
// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::{sync::Arc, time::Instant};

use cloakroom_audit::{
    AuditConfig, AuditLog, AuditRecord, AuditStore, Durability, LogOptions, NoRedaction, PostgresSink, RecordBody,
    SegmentStore, SledSink,
};
use cloakroom_core::CallId;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CALLERS: u64 = 64;

fn record() -> AuditRecord {
    let mut r = AuditRecord::now(CallId::new());
    let body = "x".repeat(1024);
    r.function = Some("payments".into());
    r.request.method = "POST".into();
    r.request.path = "/fn/payments/charge".into();
    r.request.body = Some(RecordBody::capture(body.as_bytes(), 1024, 65536));
    r.response.status = Some(200);
    r.response.body = Some(RecordBody::capture(body.as_bytes(), 1024, 65536));
    r
}

/// Appends `n` records from `CALLERS` concurrent tasks, then waits until all are durable.
async fn append_concurrently(log: &AuditLog, n: u64) -> std::time::Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let log = log.clone();
        let share = n / CALLERS + u64::from(c < n % CALLERS);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                log.append(record()).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    log.flush().await;
    start.elapsed()
}

fn options(durability: Durability) -> LogOptions {
    LogOptions::from_config(&AuditConfig { durability, ..AuditConfig::default() }, "bench")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("audit_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);

    for (store, durability) in [
        ("segment", Durability::Batched),
        ("segment", Durability::Sync),
        ("sled", Durability::Batched),
        ("sled", Durability::Sync),
    ] {
        let dir = std::env::temp_dir().join(format!("cloakroom-bench-audit-{}", CallId::new()));
        let log = rt.block_on(async {
            let sink: Arc<dyn AuditStore> = match store {
                "segment" => Arc::new(SegmentStore::open(&dir).await.unwrap()),
                _ => Arc::new(SledSink::open(&dir).unwrap()),
            };
            AuditLog::with_sinks(sink, None, options(durability), Arc::new(NoRedaction)).await.unwrap()
        });
        let name = format!("{store}_{durability:?}").to_lowercase();
        group.bench_function(name, |b| b.iter_custom(|iters| rt.block_on(append_concurrently(&log, iters))));
        rt.block_on(log.close());
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }

    let db = cloakroom_testkit::PgDatabase::create();
    for durability in [Durability::Batched, Durability::Sync] {
        let log = rt.block_on(async {
            let sink = PostgresSink::connect(&db.url).await.unwrap();
            let mut o = options(durability);
            o.chain_id = format!("bench-{durability:?}");
            AuditLog::with_sinks(Arc::new(sink), None, o, Arc::new(NoRedaction)).await.unwrap()
        });
        let name = format!("postgres_{durability:?}").to_lowercase();
        group.bench_function(name, |b| b.iter_custom(|iters| rt.block_on(append_concurrently(&log, iters))));
        rt.block_on(log.close());
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
