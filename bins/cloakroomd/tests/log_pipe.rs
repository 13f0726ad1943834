//! End-to-end: the log's reader stops reading. cloakroomd's stderr is a pipe that
//! nobody drains (a wedged log collector). Calls must still be served while the log
//! buffer has room, and SIGTERM must still end the process: the log's last lines are
//! waited on for at most a second (bins/cloakroomd/src/log.rs, docs/operations.md).

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cloakroom_testkit::RecordingUpstream;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_stops_reading_neither_stops_calls_nor_shutdown() {
    let up = RecordingUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    let admin = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    let config = format!(
        "[server]\nlisten = \"{addr}\"\nadmin_listen = \"{admin}\"\ndata_dir = \"{}\"\n{}{}{}",
        dir.path().join("data").display(),
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
        allow("agents may call echo", &["echo"], &["agents"]),
    );
    let path = dir.path().join("cloakroom.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(&path)
        .env("CLOAKROOM_LOG", "info")
        .env("CLOAKROOM_PLACEHOLDER_KEY", sha256_hex("log pipe placeholder key"))
        .env("CLOAKROOM_VAULT_KEY", sha256_hex("log pipe vault key"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open and never read: writes to it block once the pipe (64 KiB) is full.
    let _unread = child.stderr.take();
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client.get(format!("http://{admin}/healthz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(ready.elapsed() < Duration::from_secs(30), "cloakroomd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 1,000 `call finished` lines: several times what the pipe holds, within the
    // buffer's 1 MiB. From 25 clients at once (one client's calls are slow here).
    let mut clients = tokio::task::JoinSet::new();
    for k in 0..25 {
        let (client, addr) = (client.clone(), addr.clone());
        clients.spawn(async move {
            for i in 0..40 {
                let res =
                    client.get(format!("http://{addr}/fn/echo/{k}/{i}")).bearer_auth(AGENT_KEY).send().await.unwrap();
                assert_eq!(res.status(), 200, "call {k}/{i}");
                res.bytes().await.unwrap();
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    assert_eq!(up.requests().len(), 1000);
    let stopping = Instant::now();
    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("cloakroomd did not exit on SIGTERM with its log's reader stuck");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
