//! Test helper for the crash test (not a user tool): appends audit records in `sync`
//! mode to the embedded store in the directory given as the only argument, forever,
//! printing each acknowledged `seq` on its own line once `append` has returned. The
//! test kills it with SIGKILL at a random moment and checks the store.
use std::{io::Write, sync::Arc};

use cloakroom_audit::{AuditConfig, AuditLog, AuditRecord, Durability, NoRedaction, RecordBody};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: cloakroom-audit-crash-child DATA_DIR");
    let config = AuditConfig { durability: Durability::Sync, ..AuditConfig::default() };
    let log = AuditLog::open(&config, dir.as_ref(), Arc::new(NoRedaction)).await.expect("open audit log");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    // Several concurrent appenders, like concurrent calls sharing group commits.
    for _ in 0..4 {
        let (log, tx) = (log.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let mut r = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::now_utc());
                r.request.body = Some(RecordBody::capture(&[b'x'; 512], 512, 1024));
                let appended = log.append(r).await.expect("append");
                if tx.send(appended.seq).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    println!("ready");
    while let Some(seq) = rx.recv().await {
        writeln!(out, "{seq}").expect("stdout");
        out.flush().expect("stdout");
    }
}
