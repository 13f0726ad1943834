//! The PostgreSQL sink: migrations, a chain per replica in one table, queries, and
//! tampering with stored rows. Needs `source scripts/test-env.sh` (PostgreSQL on 5432).
mod common;

use std::sync::Arc;

use cloakroom_audit::{
    verify_store, AuditConfig, AuditLog, BreakKind, Durability, LogOptions, NoRedaction, PostgresSink, RecordQuery,
    Since, SinkKind,
};
use cloakroom_testkit::PgDatabase;
use common::sample_record;

async fn replica(db: &PgDatabase, chain: &str, durability: Durability) -> AuditLog {
    let sink = PostgresSink::connect(&db.url).await.expect("connect and migrate");
    let config = AuditConfig { durability, ..AuditConfig::default() };
    AuditLog::with_sinks(Arc::new(sink), None, LogOptions::from_config(&config, chain), Arc::new(NoRedaction))
        .await
        .unwrap()
}

async fn sql(db: &PgDatabase) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Two replicas appending concurrently into one table, `n` records each.
async fn two_replicas(db: &PgDatabase, n: usize) -> (AuditLog, AuditLog) {
    let a = replica(db, "replica-a", Durability::Sync).await;
    let b = replica(db, "replica-b", Durability::Batched).await;
    let (a2, b2) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move {
        for i in 0..n {
            a2.append(sample_record(i)).await.unwrap();
        }
    });
    let tb = tokio::spawn(async move {
        for i in 0..n {
            b2.append(sample_record(i)).await.unwrap();
        }
    });
    ta.await.unwrap();
    tb.await.unwrap();
    a.flush().await;
    b.flush().await;
    (a, b)
}

fn chain<'a>(report: &'a cloakroom_audit::VerifyReport, id: &str) -> &'a cloakroom_audit::ChainReport {
    report.chains.iter().find(|c| c.chain_id == id).expect("chain reported")
}

#[tokio::test]
async fn two_replicas_keep_two_chains_in_one_table() {
    let db = PgDatabase::create();
    let (a, b) = two_replicas(&db, 20).await;
    let report = a.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.chains.len(), 2);
    assert_eq!(chain(&report, "replica-a").head_seq, 20);
    assert_eq!(chain(&report, "replica-b").head_seq, 20);

    // Queries: by seq on the local chain, by time across chains, by call id anywhere.
    let mine = a.records(&RecordQuery { chain_id: None, since: Since::Seq(18), limit: 10 }).await.unwrap();
    assert_eq!(
        mine.iter().map(|r| (r.chain_id.as_str(), r.seq)).collect::<Vec<_>>(),
        [("replica-a", 19), ("replica-a", 20)]
    );
    let all = a.records(&RecordQuery::from_start(100)).await.unwrap();
    assert_eq!(all.len(), 40);
    assert!(all.windows(2).all(|w| w[0].time <= w[1].time));
    let theirs = b.records(&RecordQuery { chain_id: None, since: Since::Seq(0), limit: 1 }).await.unwrap();
    assert_eq!(theirs[0].chain_id, "replica-b");
    let id = theirs[0].call_id().unwrap();
    assert_eq!(a.record(&id).await.unwrap().unwrap().chain_id, "replica-b");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_replica_restarting_continues_its_chain_and_migrations_run_once() {
    let db = PgDatabase::create();
    let url_var = format!("CLOAKROOM_AUDIT_TEST_PG_{}", cloakroom_testkit::random_name(8).to_uppercase());
    std::env::set_var(&url_var, &db.url);
    let dir = tempfile::tempdir().unwrap();
    let config =
        AuditConfig { sink: SinkKind::Postgres, postgres_url_env: Some(url_var.clone()), ..AuditConfig::default() };
    let log = AuditLog::open(&config, dir.path(), Arc::new(NoRedaction)).await.unwrap();
    let chain_id = log.chain_id().to_owned();
    log.append(sample_record(1)).await.unwrap();
    log.close().await;
    drop(log);
    // Same data_dir: same replica id, same chain.
    let log = AuditLog::open(&config, dir.path(), Arc::new(NoRedaction)).await.unwrap();
    assert_eq!(log.chain_id(), chain_id);
    assert_eq!(log.append(sample_record(2)).await.unwrap().seq, 2);
    assert!(log.verify().await.unwrap().is_ok());
    let client = sql(&db).await;
    let n: i64 = client.query_one("SELECT count(*) FROM cloakroom_audit_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    log.close().await;
    // A missing environment variable is a configuration error, not a panic.
    let config = AuditConfig { postgres_url_env: Some(format!("{url_var}_UNSET")), ..config };
    let err = AuditLog::open(&config, dir.path(), Arc::new(NoRedaction)).await.unwrap_err();
    assert!(err.to_string().contains("_UNSET"), "{err}");
}

#[tokio::test]
async fn an_altered_row_breaks_only_its_own_chain() {
    let db = PgDatabase::create();
    let (a, b) = two_replicas(&db, 5).await;
    let client = sql(&db).await;
    let n = client
        .execute(
            "UPDATE cloakroom_audit_records SET record = replace(record, '\"subject\":\"alice\"', '\"subject\":\"eve\"')
             WHERE chain_id = 'replica-a' AND seq = 4",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let report = verify_store(&**a.store()).await.unwrap();
    let brk = chain(&report, "replica-a").first_break.as_ref().unwrap();
    assert!(matches!(brk.kind, BreakKind::Altered { .. }), "{brk:?}");
    assert_eq!(brk.expected_seq, 4);
    assert!(chain(&report, "replica-b").is_ok());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_deleted_row_is_found() {
    let db = PgDatabase::create();
    let (a, b) = two_replicas(&db, 5).await;
    sql(&db)
        .await
        .execute("DELETE FROM cloakroom_audit_records WHERE chain_id = 'replica-b' AND seq = 2", &[])
        .await
        .unwrap();
    let report = a.verify().await.unwrap();
    assert_eq!(chain(&report, "replica-b").first_break.as_ref().unwrap().kind, BreakKind::Removed { from: 2, to: 2 });
    assert!(chain(&report, "replica-a").is_ok());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn reordered_rows_are_found() {
    let db = PgDatabase::create();
    let (a, b) = two_replicas(&db, 5).await;
    let client = sql(&db).await;
    // Swap the positions of records 3 and 4.
    client
        .batch_execute(
            "BEGIN;
             UPDATE cloakroom_audit_records SET seq = 1000 WHERE chain_id = 'replica-a' AND seq = 3;
             UPDATE cloakroom_audit_records SET seq = 3 WHERE chain_id = 'replica-a' AND seq = 4;
             UPDATE cloakroom_audit_records SET seq = 4 WHERE chain_id = 'replica-a' AND seq = 1000;
             COMMIT;",
        )
        .await
        .unwrap();
    let report = a.verify().await.unwrap();
    assert_eq!(
        chain(&report, "replica-a").first_break.as_ref().unwrap().kind,
        BreakKind::Reordered { expected: 3, found: 4 }
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn an_inserted_row_is_found() {
    let db = PgDatabase::create();
    let (a, b) = two_replicas(&db, 3).await;
    let client = sql(&db).await;
    // A row copied from the other chain, placed at the end of this one.
    client
        .execute(
            "INSERT INTO cloakroom_audit_records (chain_id, seq, call_id, time, hash, record)
             SELECT 'replica-a', 4, call_id, time, hash, record FROM cloakroom_audit_records
             WHERE chain_id = 'replica-b' AND seq = 1",
            &[],
        )
        .await
        .unwrap();
    let report = a.verify().await.unwrap();
    let brk = chain(&report, "replica-a").first_break.as_ref().unwrap();
    assert!(matches!(brk.kind, BreakKind::Inserted { .. }), "{brk:?}");
    assert_eq!(brk.position, 3);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_retried_batch_that_was_already_committed_counts_as_written_and_a_fork_is_refused() {
    use cloakroom_audit::{AuditSink, SealedRecord};
    let db = PgDatabase::create();
    let sink = PostgresSink::connect(&db.url).await.unwrap();
    let mut r = sample_record(1);
    r.chain_id = "replica-a".into();
    let text = cloakroom_audit::chain::seal(&mut r, None).unwrap();
    let sealed = SealedRecord {
        chain_id: r.chain_id.clone(),
        seq: r.seq,
        call_id: r.id.clone(),
        time: r.time.clone(),
        hash: r.hash.clone(),
        text,
    };
    sink.append(std::slice::from_ref(&sealed)).await.unwrap();
    sink.append(std::slice::from_ref(&sealed)).await.expect("the same batch again is a no-op");
    // Another writer on the same chain position with different content is refused.
    let mut other = sample_record(2);
    other.chain_id = "replica-a".into();
    let text = cloakroom_audit::chain::seal(&mut other, None).unwrap();
    let fork = SealedRecord { hash: other.hash.clone(), call_id: other.id.clone(), text, ..sealed.clone() };
    assert!(sink.append(&[fork]).await.is_err());
}

#[tokio::test]
async fn while_postgres_cannot_write_calls_are_refused_and_nothing_is_lost_once_it_recovers() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{service_fn, Layer, ServiceExt};

    let db = PgDatabase::create();
    let log = replica(&db, "replica-a", Durability::Sync).await;
    log.append(sample_record(0)).await.unwrap();
    let client = sql(&db).await;
    client.batch_execute("ALTER TABLE cloakroom_audit_records RENAME TO parked").await.unwrap();
    // The write of record 2 fails: the caller is told, and the log becomes unavailable.
    assert!(matches!(log.append(sample_record(1)).await, Err(cloakroom_audit::AuditError::Unavailable)));
    assert!(!log.is_available());
    let svc = cloakroom_audit::AuditLayer::new(log.clone(), &AuditConfig::default()).layer(service_fn(
        |_req: http::Request<cloakroom_audit::layer::RequestBody<Full<Bytes>>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("ran"))))
        },
    ));
    let res = svc.clone().oneshot(http::Request::new(Full::new(Bytes::new()))).await.unwrap();
    assert_eq!(res.status(), 503);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("audit_unavailable"));

    // The table comes back: the writer's retry lands and calls flow again.
    client.batch_execute("ALTER TABLE parked RENAME TO cloakroom_audit_records").await.unwrap();
    for _ in 0..1000 {
        if log.is_available() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(log.is_available(), "the log recovers once PostgreSQL writes again");
    let res = svc.oneshot(http::Request::new(Full::new(Bytes::new()))).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ran");
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let seqs: Vec<u64> = log.records(&RecordQuery::from_start(10)).await.unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "the failed write was retried, the refused call was not chained");
    log.close().await;
}
