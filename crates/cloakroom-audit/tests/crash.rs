//! A process appending in `sync` mode is killed with SIGKILL at a random moment; after
//! reopening, every record whose append had returned is there and the chain verifies.
mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use cloakroom_audit::{Durability, RecordQuery};
use rand::Rng;

#[tokio::test]
async fn sigkill_during_sync_appends_loses_no_acknowledged_record() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloakroom-audit-crash-child"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the appending child");
        let stdout = child.stdout.take().unwrap();
        // Read acknowledgements on a thread, so that the kill can land at any moment. The
        // first one is signalled: the kill comes a random while after the child is
        // appending, however long a busy machine takes to start it.
        let (first_ack, appending) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(seq) = line.parse::<u64>() {
                    if acked.is_empty() {
                        let _ = first_ack.send(());
                    }
                    acked.push(seq);
                }
            }
            acked
        });
        let started = tokio::task::spawn_blocking(move || appending.recv_timeout(Duration::from_secs(60)));
        assert!(started.await.unwrap().is_ok(), "round {round}: the child acknowledged nothing in 60 s");
        let wait = rand::thread_rng().gen_range(0..1000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        child.wait().unwrap();
        let acked = reader.join().unwrap();

        let log = common::embedded_log_with_replica_id(dir.path(), Durability::Sync).await;
        let report = log.verify().await.unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        let records = log.records(&RecordQuery::from_start(usize::MAX)).await.unwrap();
        let stored: std::collections::HashSet<u64> = records.iter().map(|r| r.seq).collect();
        for seq in &acked {
            assert!(stored.contains(seq), "round {round}: acknowledged seq {seq} is missing");
        }
        // The call index was recovered with the log: records are found by call id.
        for r in records.iter().step_by(97).chain(records.last()) {
            let found = log.record(&r.call_id().unwrap()).await.unwrap();
            assert_eq!(found.map(|f| f.seq), Some(r.seq), "round {round}: record {} by its call id", r.seq);
        }
        // The chain continues after the crash.
        let next = log.append(common::sample_record(0)).await.unwrap();
        assert_eq!(next.seq, report.chains[0].head_seq + 1);
        log.close().await;
    }
}
