//! Hostile clients against a real `cloakroomd` (issue 18): slow heads, slow bodies,
//! header floods, idle-connection floods, HTTP/2 rapid reset and stream floods,
//! connection churn. One property per test; the limits are set small in the config
//! (`[server]`), and no assertion is on speed: a test waits for a condition, giving up
//! only after a bound many times the configured timeout.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use cloakroom_testkit::{RecordedRequest, RecordingUpstream, Reply};
use common::{allow, function, identity_section, Cloakroomd, AGENT_KEY};

/// Small limits, so the tests see them act quickly.
const LIMITS: &str = r#"
workers = 1
header_read_timeout = "1s"
idle_timeout = "2s"
body_read_timeout = "1s"
body_min_rate = 0
max_connections = 16
max_headers = 50
max_header_bytes = 16384
http2_max_concurrent_streams = 8
max_concurrent_calls = 64
"#;

/// Longest a test waits for something the limits above make happen within ~2 s.
const PATIENCE: Duration = Duration::from_secs(30);

/// [`LIMITS`] with the `key = value` lines of `extra` replacing the same keys.
fn limits(extra: &str) -> String {
    let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
    let replaced: Vec<String> = extra.lines().filter(|l| l.contains('=')).map(key).collect();
    let mut out: String = LIMITS.lines().filter(|l| !replaced.contains(&key(l))).map(|l| format!("{l}\n")).collect();
    out.push_str(extra);
    out.push('\n');
    out
}

async fn gateway(extra: &str) -> (Cloakroomd, RecordingUpstream) {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
        allow("agents", &["echo"], &["agents"])
    );
    (Cloakroomd::start(&limits(extra), &rest).await, up)
}

/// A well-behaved call: one GET on a fresh connection; its status.
async fn good_call(gw: &Cloakroomd) -> Option<u16> {
    let c = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let r = c.get(gw.url("/fn/echo/ok")).bearer_auth(AGENT_KEY).send().await.ok()?;
    Some(r.status().as_u16())
}

/// Waits for a well-behaved call to be answered 200, retrying while refused.
async fn eventually_served(gw: &Cloakroomd) {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if good_call(gw).await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a well-behaved caller was not served: {}", gw.stderr());
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset), reading and dropping what it sent.
fn closed_by_server(s: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sends `chunks` one by one with `gap` between them (the attack itself trickles), and
/// returns once the server has closed the connection, with what it sent; panics if all
/// chunks went out (many times the configured limit) with the connection still open.
fn trickle(addr: &str, chunks: impl IntoIterator<Item = Vec<u8>>, gap: Duration) -> Vec<u8> {
    let mut s = connect(addr);
    let mut seen = Vec::new();
    for chunk in chunks {
        if closed_by_server(&mut s, &mut seen) || s.write_all(&chunk).is_err() {
            // Anything the server wrote before closing is still to be read.
            let _ = closed_by_server(&mut s, &mut seen);
            return seen;
        }
        std::thread::sleep(gap);
    }
    panic!("the connection was still open after the whole trickle");
}

/// Waits until the server closes `s`; what it sent.
fn wait_closed(mut s: TcpStream) -> Vec<u8> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < PATIENCE {
        if closed_by_server(&mut s, &mut seen) {
            return seen;
        }
    }
    panic!("the server kept the connection open");
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The audit record of `call_id`, once written.
async fn audit_record(gw: &Cloakroomd, call_id: &str) -> serde_json::Value {
    let c = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        let r =
            c.get(gw.admin_url(&format!("/v1/audit/{call_id}"))).bearer_auth(common::ADMIN_KEY).send().await.unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no audit record for {call_id}");
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_cut() {
    let (gw, up) = gateway("").await;
    let addr = gw.addr.clone();
    // One header line every 200 ms: each read makes progress, the head never ends.
    let lines = std::iter::once(b"GET /fn/echo/x HTTP/1.1\r\nhost: a\r\n".to_vec())
        .chain((0..150).map(|i| format!("x-slow-{i}: a\r\n").into_bytes()));
    let _ = blocking(move || trickle(&addr, lines, Duration::from_millis(200))).await;
    assert!(up.requests().is_empty());
    eventually_served(&gw).await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    // hyper's HTTP/1.1 header timer starts only once the protocol is known; a client
    // that never sends a byte must be cut all the same.
    let (gw, _up) = gateway("").await;
    let s = connect(&gw.addr);
    let seen = blocking(move || wait_closed(s)).await;
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
}

#[tokio::test]
async fn an_http2_preface_and_then_nothing_is_closed() {
    let (gw, _up) = gateway("").await;
    let mut s = connect(&gw.addr);
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let _ = blocking(move || wait_closed(s)).await;
}

#[tokio::test]
async fn a_body_trickled_slower_than_allowed_is_refused_and_audited() {
    let (gw, up) = gateway("").await;
    let addr = gw.addr.clone();
    let head = format!(
        "POST /fn/echo/x HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {AGENT_KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    );
    let chunks = std::iter::once(head.into_bytes()).chain((0..150).map(|_| b" ".to_vec()));
    let seen = blocking(move || trickle(&addr, chunks, Duration::from_millis(200))).await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(seen.starts_with("HTTP/1.1 400"), "{seen}");
    assert!(seen.contains("\"bad_request\""), "{seen}");
    assert!(up.requests().is_empty(), "nothing is forwarded");
    let call_id = seen
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("cloakroom-call-id"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .expect("a call id");
    let record = audit_record(&gw, &call_id).await;
    assert!(record.to_string().contains("bad_request"), "the refusal is in the audit record: {record}");
    eventually_served(&gw).await;
}

#[tokio::test]
async fn an_admin_body_trickled_slower_than_allowed_is_refused() {
    let (gw, _up) = gateway("").await;
    let admin = gw.admin.clone();
    let head = format!(
        "POST /v1/secrets HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n",
        common::ADMIN_KEY
    );
    let chunks = std::iter::once(head.into_bytes()).chain((0..150).map(|_| b" ".to_vec()));
    let seen = blocking(move || trickle(&admin, chunks, Duration::from_millis(200))).await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(seen.starts_with("HTTP/1.1 400"), "{seen}");
    assert!(seen.contains("\"bad_request\""), "{seen}");
}

#[tokio::test]
async fn a_body_at_a_steady_rate_gets_its_allowance_extended() {
    // body_min_rate: every 64 bytes earn a second, so a body sent at 320 B/s over 2.5 s
    // (beyond the 1 s timeout) is read in full.
    let (gw, up) = gateway("body_min_rate = 64\n").await;
    let addr = gw.addr.clone();
    let body = vec![b'a'; 800];
    let head = format!(
        "POST /fn/echo/x HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {AGENT_KEY}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let seen = blocking(move || {
        let mut s = connect(&addr);
        s.write_all(head.as_bytes()).unwrap();
        for chunk in body.chunks(32) {
            s.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        wait_closed(s)
    })
    .await;
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert_eq!(up.requests().len(), 1);
    assert_eq!(up.requests()[0].body.len(), 800);
}

#[tokio::test]
async fn too_many_header_fields_get_431() {
    let (gw, up) = gateway("").await;
    let mut req = format!("GET /fn/echo/x HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {AGENT_KEY}\r\n");
    for i in 0..200 {
        req.push_str(&format!("x-flood-{i}: 1\r\n"));
    }
    req.push_str("\r\n");
    let res = gw.raw(req.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_head_larger_than_max_header_bytes_gets_431() {
    let (gw, up) = gateway("").await;
    let big = "b".repeat(64 * 1024);
    let req =
        format!("GET /fn/echo/x HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {AGENT_KEY}\r\nx-big: {big}\r\n\r\n");
    let res = gw.raw(req.as_bytes()).await;
    assert!(res.starts_with("HTTP/1.1 431"), "{res}");
    assert!(up.requests().is_empty());
}

/// Opens `n` idle connections to `addr`, then one more, until that one is refused (the
/// idle ones are cut by `header_read_timeout`, so on a loaded machine a round can miss);
/// what the refused one was sent. The idle ones of the last round are returned too.
fn fill_until_refused(addr: &str, n: usize) -> (Vec<u8>, Vec<TcpStream>) {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        let idle: Vec<TcpStream> = (0..n).map(|_| connect(addr)).collect();
        let mut one = connect(addr);
        let mut seen = Vec::new();
        // Refused at once, or admitted (then it is cut later, like the others).
        let begun = Instant::now();
        while begun.elapsed() < Duration::from_millis(500) {
            if closed_by_server(&mut one, &mut seen) {
                break;
            }
        }
        if seen.starts_with(b"HTTP/1.1 503") {
            return (seen, idle);
        }
    }
    panic!("no connection was refused");
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused_and_a_caller_is_still_served() {
    let (gw, _up) = gateway("").await;
    // Fill the listener with idle connections (16 = max_connections): one more is
    // refused at once.
    let addr = gw.addr.clone();
    let (refused, idle) = blocking(move || fill_until_refused(&addr, 16)).await;
    assert!(String::from_utf8_lossy(&refused).contains("retry-after"), "{}", String::from_utf8_lossy(&refused));
    // The admin listener counts its own connections and still answers.
    let health = reqwest::get(gw.admin_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    // The idle ones are cut by header_read_timeout, and a well-behaved caller gets in.
    eventually_served(&gw).await;
    drop(idle);
}

#[tokio::test]
async fn one_address_cannot_take_more_than_max_connections_per_ip() {
    let (gw, _up) = gateway("max_connections_per_ip = 4").await;
    let addr = gw.addr.clone();
    let (_, idle) = blocking(move || fill_until_refused(&addr, 4)).await;
    // Far below max_connections (16): it is this address's share that is full. Once its
    // idle connections are cut, it is served again.
    eventually_served(&gw).await;
    drop(idle);
}

#[tokio::test]
async fn the_admin_listener_has_the_same_connection_limit() {
    let (gw, _up) = gateway("").await;
    let admin = gw.admin.clone();
    let (_, idle) = blocking(move || fill_until_refused(&admin, 16)).await;
    // The gateway listener is unaffected.
    assert_eq!(good_call(&gw).await, Some(200));
    drop(idle);
}

#[tokio::test]
async fn idle_connection_floods_and_churn_keep_fds_and_memory_bounded() {
    let (gw, _up) = gateway("").await;
    let pid = gw.pid();
    eventually_served(&gw).await;
    let (fds_before, rss_before) = (fd_count(pid), rss_kib(pid));
    let addr = gw.addr.clone();
    let fds_peak = blocking(move || {
        let mut peak = 0;
        // 3 waves of 300 idle connections (far beyond max_connections = 16), and 2000
        // connect/close cycles in between.
        for _ in 0..3 {
            let held: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
            peak = peak.max(fd_count(pid));
            for _ in 0..2000 / 3 {
                drop(TcpStream::connect(&addr));
            }
            peak = peak.max(fd_count(pid));
            drop(held);
        }
        peak
    })
    .await;
    // Open files: the listeners' accepted connections never exceed max_connections.
    assert!(fds_peak <= fds_before + 16 + 8, "fds went from {fds_before} to {fds_peak}");
    eventually_served(&gw).await;
    let rss_after = rss_kib(pid);
    assert!(rss_after < rss_before + 64 * 1024, "RSS went from {rss_before} KiB to {rss_after} KiB");
    // Everything the flood opened is closed again.
    let start = Instant::now();
    while fd_count(pid) > fds_before + 2 {
        assert!(start.elapsed() < PATIENCE, "fds stayed at {} (from {fds_before})", fd_count(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn calls_beyond_max_concurrent_calls_are_shed_with_503() {
    let up = RecordingUpstream::start(|r: &RecordedRequest| Reply { delay: Duration::from_secs(10), ..Reply::echo(r) })
        .await;
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
        allow("agents", &["echo"], &["agents"])
    );
    let gw = Cloakroomd::start(&limits("max_concurrent_calls = 2"), &rest).await;
    let c = reqwest::Client::new();
    let slow: Vec<_> =
        (0..2).map(|_| tokio::spawn(c.get(gw.url("/fn/echo/slow")).bearer_auth(AGENT_KEY).send())).collect();
    // Both are in flight once the upstream holds them.
    let start = Instant::now();
    while up.requests().len() < 2 {
        assert!(start.elapsed() < PATIENCE, "the slow calls never reached the upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = c.get(gw.url("/fn/echo/third")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let v: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded", "{v}");
    assert_eq!(up.requests().len(), 2, "a shed call is not forwarded");
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status(), 200);
    }
    eventually_served(&gw).await;
}

/// An h2c (prior knowledge) client connection to the gateway.
async fn h2_client(
    addr: &str,
) -> (h2::client::SendRequest<bytes::Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    (send, tokio::spawn(conn))
}

fn h2_request(addr: &str) -> http::Request<()> {
    http::Request::post(format!("http://{addr}/fn/echo/x"))
        .header("authorization", format!("Bearer {AGENT_KEY}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn http2_rapid_reset_is_bounded_and_others_are_served() {
    let (gw, up) = gateway("").await;
    let pid = gw.pid();
    eventually_served(&gw).await;
    let rss_before = rss_kib(pid);
    let (send, conn) = h2_client(&gw.addr).await;
    // CVE-2023-44487: open a stream and reset it at once, as fast as possible.
    let mut sent = 0;
    let mut goaway = false;
    let mut next = Some(send);
    for _ in 0..20_000 {
        let Some(ready) = next.take() else { break };
        let mut send = match ready.ready().await {
            Ok(s) => s,
            Err(_) => {
                goaway = true;
                break;
            }
        };
        match send.send_request(h2_request(&gw.addr), false) {
            Ok((_, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                sent += 1;
            }
            Err(_) => {
                goaway = true;
                break;
            }
        }
        next = Some(send);
    }
    // Whether h2 sent GOAWAY (resets pending accept beyond the limit) or the server
    // kept up, the damage is bounded: memory, and other callers still served.
    drop(next);
    let _ = conn.await;
    eventually_served(&gw).await;
    let rss_after = rss_kib(pid);
    assert!(rss_after < rss_before + 128 * 1024, "RSS went from {rss_before} KiB to {rss_after} KiB");
    assert!(up.requests().len() <= sent + 1);
    eprintln!("rapid reset: {sent} streams reset, goaway = {goaway}");
}

#[tokio::test]
async fn http2_streams_are_limited_per_connection_and_unfinished_ones_are_cut() {
    let (gw, up) = gateway("").await;
    let (mut send, _conn) = h2_client(&gw.addr).await;
    send = send.ready().await.unwrap();
    // The server's SETTINGS arrive with the first exchange.
    let (first, mut body) = send.send_request(h2_request(&gw.addr), false).unwrap();
    body.send_data(bytes::Bytes::new(), true).unwrap();
    let _ = first.await;
    assert_eq!(send.current_max_send_streams(), 8, "SETTINGS_MAX_CONCURRENT_STREAMS");
    // A stream flood: open as many streams as allowed, each with a body never finished.
    let mut held = Vec::new();
    for _ in 0..8 {
        send = send.ready().await.unwrap();
        let (res, body) = send.send_request(h2_request(&gw.addr), false).unwrap();
        held.push((res, body));
    }
    // Each is refused by body_read_timeout (400) rather than held forever.
    for (res, _body) in held {
        let res = tokio::time::timeout(PATIENCE, res).await.expect("a stream held forever");
        if let Ok(res) = res {
            assert_eq!(res.status(), 400);
        }
    }
    assert!(up.requests().len() <= 1, "nothing unfinished is forwarded");
    eventually_served(&gw).await;
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn http2_rapid_reset_in_batches_gets_goaway() {
    // The attack as it was seen in the wild: HEADERS and RST_STREAM pairs written back
    // to back, so the streams are reset before the server has accepted them.
    let (gw, up) = gateway("http2_max_concurrent_streams = 100").await;
    let addr = gw.addr.clone();
    let authority = addr.clone().into_bytes();
    let (goaway, pairs) = blocking(move || {
        let mut s = connect(&addr);
        // HPACK: :method GET, :scheme http (static), :path and :authority as literals.
        let mut block = vec![0x82, 0x86, 0x04, 10];
        block.extend_from_slice(b"/fn/echo/x");
        block.extend_from_slice(&[0x01, authority.len() as u8]);
        block.extend_from_slice(&authority);
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(h2_frame(0x4, 0, 0, &[]));
        s.write_all(&out).unwrap();
        let (mut stream, mut pairs, mut seen) = (1u32, 0, Vec::new());
        for _ in 0..500 {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.extend(h2_frame(0x1, 0x5, stream, &block));
                batch.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes()));
                stream += 2;
            }
            if s.write_all(&batch).is_err() || closed_by_server(&mut s, &mut seen) {
                break;
            }
            pairs += 100;
        }
        let _ = wait_closed(s.try_clone().unwrap());
        let _ = closed_by_server(&mut s, &mut seen);
        // Walk the frames the server sent, looking for GOAWAY (type 7).
        let (mut i, mut goaway) = (0, None);
        while i + 9 <= seen.len() {
            let len = u32::from_be_bytes([0, seen[i], seen[i + 1], seen[i + 2]]) as usize;
            if seen[i + 3] == 0x7 && i + 9 + 8 <= seen.len() {
                goaway = Some(u32::from_be_bytes(seen[i + 13..i + 17].try_into().unwrap()));
            }
            i += 9 + len;
        }
        (goaway, pairs)
    })
    .await;
    // ENHANCE_YOUR_CALM (0xb): h2's answer to too many resets pending accept.
    assert_eq!(goaway, Some(0xb), "after {pairs} HEADERS+RST_STREAM pairs");
    assert!(pairs < 50_000, "the connection was cut before the whole flood");
    assert!(up.requests().len() < 1000, "{} calls reached the upstream", up.requests().len());
    eventually_served(&gw).await;
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

#[tokio::test]
async fn an_http2_header_list_over_max_header_bytes_is_refused() {
    let (gw, up) = gateway("").await;
    let addr = gw.addr.clone();
    let seen = blocking(move || {
        // 40 KB in one header (max_header_bytes = 16384), over HEADERS + CONTINUATION.
        let mut block = vec![0x82, 0x86, 0x04, 10];
        block.extend_from_slice(b"/fn/echo/x");
        block.extend_from_slice(&[0x01, addr.len() as u8]);
        block.extend_from_slice(addr.as_bytes());
        block.push(0x00);
        hpack_int(&mut block, 0, 7, 5);
        block.extend_from_slice(b"x-big");
        hpack_int(&mut block, 0, 7, 40_000);
        block.extend(std::iter::repeat_n(b'b', 40_000));
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(h2_frame(0x4, 0, 0, &[]));
        let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let kind = if i == 0 { 0x1 } else { 0x9 };
            let mut flags = if i == 0 { 0x1 } else { 0 };
            if i == chunks.len() - 1 {
                flags |= 0x4;
            }
            out.extend(h2_frame(kind, flags, 1, chunk));
        }
        let mut s = connect(&addr);
        let _ = s.write_all(&out);
        let mut seen = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if closed_by_server(&mut s, &mut seen) {
                break;
            }
        }
        seen
    })
    .await;
    // The stream is refused (a 431 answer, RST_STREAM on stream 1, or GOAWAY).
    let (mut i, mut refused) = (0, false);
    while i + 9 <= seen.len() {
        let len = u32::from_be_bytes([0, seen[i], seen[i + 1], seen[i + 2]]) as usize;
        let (kind, stream) = (seen[i + 3], u32::from_be_bytes(seen[i + 5..i + 9].try_into().unwrap()) & 0x7fff_ffff);
        let payload = &seen[i + 9..(i + 9 + len).min(seen.len())];
        // h2 answers 431 itself, as a literal `:status` (0x48) whose value "431" is
        // Huffman coded (`83 69 90 ff`); a 200 would be the static entry 0x88.
        let status_431 = kind == 0x1 && stream == 1 && payload.starts_with(&[0x48, 0x83, 0x69, 0x90, 0xff]);
        refused |= (kind == 0x3 && stream == 1) || kind == 0x7 || status_431;
        i += 9 + len;
    }
    assert!(refused, "frames: {seen:?}");
    assert!(up.requests().is_empty());
    eventually_served(&gw).await;
}
