//! End-to-end: when the audit sink cannot write, calls are refused, and with
//! `durability = "sync"` no caller sees the clean end of a call whose record was not
//! written (docs/audit.md, "When a sink cannot write: fail closed"). The attack: take the
//! audit database away under a running cloakroomd and keep calling. The record of each
//! call is sealed in line with the answer's last frame (AuditLog::append_now), so this
//! checks that the fast path still holds the end back until the record is durable.

mod common;

use cloakroom_testkit::{PgDatabase, RecordingUpstream};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_audit_database_gone_no_call_ends_cleanly() {
    let pg = PgDatabase::create();
    let echo = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}\n[audit]\nsink = \"postgres\"\ndurability = \"sync\"\n",
        identity_section(),
        function("echo", "http", &echo.url(), "/fn/echo"),
        allow("agents may call echo", &["echo"], &["agents"]),
    );
    let gw = Cloakroomd::start_with_env("", &rest, &[("CLOAKROOM_POSTGRES_URL", pg.url.as_str())]).await;
    let client = reqwest::Client::new();
    let call = || client.post(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).body("{\"n\":1}").send();
    let ok = call().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.bytes().await.is_ok(), "a recorded call ends cleanly");
    let recorded = psql(&pg.url, "SELECT count(*) FROM cloakroom_audit_records");
    assert_eq!(recorded.trim(), "1", "the first call is recorded");

    let admin = pg.url.replace(&format!("dbname={}", pg.name), "dbname=postgres");
    psql(&admin, &format!("DROP DATABASE {} WITH (FORCE)", pg.name));
    for i in 0..5 {
        match call().await {
            // Refused before anything was forwarded, or the answer's end withheld.
            Ok(res) if res.status() == 503 => {
                let text = res.text().await.unwrap();
                assert!(text.contains("audit_unavailable"), "{i}: {text}");
            }
            Ok(res) => {
                assert_eq!(res.status(), 200, "{i}");
                assert!(res.bytes().await.is_err(), "call {i} ended cleanly though its record was not written");
            }
            Err(e) => panic!("call {i}: {e}"),
        }
    }
}
