//! Every call leaves exactly one audit record, however the caller leaves: the attack is
//! a burst of concurrent calls whose callers drop the response unread (a client timeout,
//! a closed socket) while the records queue for the audit chain's lock and the writer.
//! The record used to be written by a future the response body owned: a body dropped
//! while that future waited (for the chain lock, for room in the writer's queue) took
//! the record with it, silently — calls counted, records missing, nothing lost counted.

mod common;

use std::time::Duration;

use cloakroom_testkit::{RecordingUpstream, Reply};
use common::{allow, function, identity_section, Cloakroomd, ADMIN_KEY, AGENT_KEY};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CALLS: usize = 120;

async fn records_of(gw: &Cloakroomd, function: &str) -> usize {
    let page: Value = reqwest::Client::new()
        .get(gw.admin_url("/v1/audit?limit=1000"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["records"].as_array().unwrap().iter().filter(|r| r["function"] == function).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_drop_their_answers_unread_still_leave_one_record_each() {
    let up = RecordingUpstream::start(|_| Reply::json(json!({"answer": "x".repeat(2048)}))).await;
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("burst", "http", &up.url(), "/fn/burst"),
        allow("agents may call burst", &["burst"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;

    // Half through a client that gives up on each answer without reading it, half over
    // raw sockets closed right after the request is written.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let url = gw.url("/fn/burst/x");
        let addr = gw.addr.clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let res = client.get(url).bearer_auth(AGENT_KEY).send().await;
                drop(res);
            } else {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let req = format!(
                    "GET /fn/burst/x HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {AGENT_KEY}\r\nconnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.unwrap();
                let mut first = [0u8; 1];
                let _ = s.read(&mut first).await;
                drop(s);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // And one after another on one kept-alive client, each answer dropped unread.
    for _ in 0..CALLS {
        drop(client.get(gw.url("/fn/burst/x")).bearer_auth(AGENT_KEY).send().await);
    }
    drop(client);

    // The upstream saw every call; the audit log must hold a record of each.
    let mut seen = 0;
    for _ in 0..200 {
        seen = records_of(&gw, "burst").await;
        if seen >= 2 * CALLS && up.requests().len() >= 2 * CALLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up.requests().len(), 2 * CALLS, "every call reached the upstream");
    assert_eq!(seen, 2 * CALLS, "one audit record per call: {}", gw.stderr());
    let report: Value = reqwest::Client::new()
        .get(gw.admin_url("/v1/audit/verify"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
}
