//! Shared test helpers: sample records and logs.
#![allow(dead_code, unreachable_pub)]

pub mod store_behaviour;

use std::{path::Path, sync::Arc};

use cloakroom_audit::{
    AuditConfig, AuditLog, AuditRecord, Durability, LogOptions, NoRedaction, RecordBody, RecordDecision,
    RecordIdentity, SledSink,
};
use cloakroom_core::{Decision, Protocol};

/// A record of a plausible call, numbered `i` in its path.
pub fn sample_record(i: usize) -> AuditRecord {
    let mut r = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::now_utc());
    r.identity = Some(RecordIdentity {
        subject: "alice".into(),
        issuer: "api_key".into(),
        method: "api_key".into(),
        groups: vec!["payments-ops".into()],
    });
    r.source_ip = Some("127.0.0.1".into());
    r.function = Some("payments".into());
    r.protocol = Some(Protocol::Http);
    r.decision = Some(RecordDecision::from(&Decision::allow("ops", "rule matched")));
    r.request.method = "POST".into();
    r.request.path = format!("/fn/payments/charge/{i}");
    let body = format!("{{\"amount\":{i}}}");
    r.request.body = Some(RecordBody::capture(body.as_bytes(), body.len() as u64, 1024));
    r.response.status = Some(200);
    r
}

/// Opens an embedded log (the default store, segment files in `<dir>/audit`) in `dir`.
pub async fn embedded_log(dir: &Path, durability: Durability) -> AuditLog {
    let config = AuditConfig { durability, chain_id: Some("replica-a".into()), ..AuditConfig::default() };
    AuditLog::open(&config, dir, Arc::new(NoRedaction)).await.expect("open log")
}

/// Opens a log over a sled store in `<dir>/audit` (the previous embedded store).
pub async fn sled_log(dir: &Path, durability: Durability) -> AuditLog {
    let config = AuditConfig { durability, ..AuditConfig::default() };
    let store = SledSink::open(&dir.join("audit")).expect("open sled");
    let options = LogOptions::from_config(&config, "replica-a");
    AuditLog::with_sinks(Arc::new(store), None, options, Arc::new(NoRedaction)).await.expect("open log")
}

/// Appends `n` sample records.
pub async fn append_n(log: &AuditLog, n: usize) {
    for i in 0..n {
        log.append(sample_record(i)).await.expect("append");
    }
    log.flush().await;
}

/// Opens an embedded log in `dir` whose chain id comes from `<dir>/audit-replica-id`.
pub async fn embedded_log_with_replica_id(dir: &Path, durability: Durability) -> AuditLog {
    let config = AuditConfig { durability, ..AuditConfig::default() };
    AuditLog::open(&config, dir, Arc::new(NoRedaction)).await.expect("open log")
}
