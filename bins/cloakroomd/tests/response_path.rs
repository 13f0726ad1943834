//! End-to-end: every byte an upstream sends passes the masker or is refused
//! (docs/masking.md, "Invariant: every upstream byte"). Each test is an upstream that
//! tries one way around the masker, written byte by byte on a raw socket where a
//! library would normalize the bytes away, against the real `cloakroomd`.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const SECRET: &str = "sk_live_resp0nse_path_0123456789abcdef";
/// A secret that spans lines, as certificates and keys do.
const MULTILINE: &str = "mlk-first-line-0123456789\nmlk-second-line-abcdefghij";

/// An upstream on a raw socket: records each request head (and body) and answers with
/// the bytes `answer` gives for it, then closes the connection.
struct RawUpstream {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (requests.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&buf).into_owned();
                    log.lock().unwrap().push(request.clone());
                    let _ = socket.write_all(&answer(&request)).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A gateway with function `leak` (http) at `/fn/leak` on `up`, agents allowed, and
/// the secrets [`SECRET`] and [`MULTILINE`] known to the masker.
async fn gateway(up: &RawUpstream, protocol: &str) -> (Cloakroomd, String) {
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("leak", protocol, &up.url(), "/fn/leak"),
        allow("agents may call leak", &["leak", "leak/*"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let binding = json!({"functions": ["leak"], "locations": ["header:x-api-key"]});
    let placeholder = gw.put_secret("leak_key", SECRET, binding.clone()).await;
    gw.put_secret("multiline_key", MULTILINE, binding).await;
    (gw, placeholder)
}

/// A raw HTTP/1.1 GET of `path` as the agent, with `extra` header lines.
async fn raw_get(gw: &Cloakroomd, path: &str, extra: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {AGENT_KEY}\r\n{extra}connection: close\r\n\r\n",
        gw.addr
    );
    gw.raw(request.as_bytes()).await
}

/// Panics if `text` holds the secret in any encoding the masker knows.
fn assert_no_secret(text: &str, secret: &str) {
    for (enc, form) in encodings(secret) {
        assert!(!text.contains(&form), "the secret reached the caller ({enc}):\n{text}");
    }
}

/// The value of header `name` in a raw HTTP/1 answer (first one).
fn header_of(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The audit record of the call answered by `answer`.
async fn record_of(gw: &Cloakroomd, answer: &str) -> Value {
    let id = header_of(answer, "cloakroom-call-id").expect("a call id");
    let mut record = Value::Null;
    // The record is sealed when the body ends, just after the caller saw it.
    for _ in 0..200 {
        let r = reqwest::Client::new()
            .get(gw.admin_url(&format!("/v1/audit/{id}")))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            record = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    record
}

/// Asserts `answer` is the gateway's 502 `upstream_unavailable` refusal, recorded.
async fn assert_refused(gw: &Cloakroomd, answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
    assert!(answer.contains("upstream_unavailable"), "{answer}");
    let record = record_of(gw, answer).await;
    assert_eq!(record["error"]["code"], "upstream_unavailable", "{record}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn answer(head: &str, body: &[u8]) -> Vec<u8> {
    let mut out = head.replace('\n', "\r\n").into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

// === status line ===

#[tokio::test]
async fn a_secret_in_the_reason_phrase_never_reaches_an_http1_caller() {
    let up = RawUpstream::start(|_| format!("HTTP/1.1 200 {SECRET}\r\ncontent-length: 2\r\n\r\nok").into_bytes()).await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_no_secret(&answer, SECRET);
}

#[tokio::test]
async fn a_non_canonical_reason_phrase_becomes_the_canonical_one() {
    let up = RawUpstream::start(|_| {
        b"HTTP/1.1 404 Gone Fishing\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno".to_vec()
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
}

// === headers ===

#[tokio::test]
async fn every_value_of_a_repeated_header_is_masked() {
    let up = RawUpstream::start(|_| {
        answer(
            &format!(
                "HTTP/1.1 200 OK\nx-token: harmless\nx-token: {SECRET}\nset-cookie: a=1\nset-cookie: k={SECRET}\n\
                 link: </x?k={SECRET}>; rel=preload\ncontent-location: /doc?k={SECRET}\ncontent-length: 2\n"
            ),
            b"ok",
        )
    })
    .await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert_no_secret(&answer, SECRET);
    assert!(answer.contains(&format!("x-token: {placeholder}")), "{answer}");
    assert!(answer.contains(&format!("set-cookie: k={placeholder}")), "{answer}");
    assert!(answer.contains("x-token: harmless"), "{answer}");
    let record = record_of(&gw, &answer).await;
    assert_eq!(record["response"]["masked"], 4, "{record}");
}

#[tokio::test]
async fn a_header_named_after_the_secret_is_dropped() {
    let lower = "sk_live_header_name_0123456789abcdef";
    // Names reach the gateway lowercased: an all-caps secret must still be found.
    let upper = "AKIAHEADERNAME0123456789ABCDEF";
    let up = RawUpstream::start(move |_| {
        answer(&format!("HTTP/1.1 200 OK\n{lower}: 1\n{upper}: 2\nx-kept: 3\ncontent-length: 2\n"), b"ok")
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let binding = json!({"functions": ["leak"], "locations": ["header:x-api-key"]});
    gw.put_secret("name_key", lower, binding.clone()).await;
    gw.put_secret("upper_name_key", upper, binding).await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("x-kept: 3"), "{answer}");
    assert_no_secret(&answer, lower);
    assert_no_secret(&answer.to_ascii_uppercase(), upper);
}

#[tokio::test]
async fn a_redirect_location_is_masked_in_every_location_header() {
    let up = RawUpstream::start(|_| {
        answer(
            &format!(
                "HTTP/1.1 302 Found\nlocation: https://elsewhere.example/cb?key={SECRET}\n\
                 location: https://other.example/{SECRET}\nrefresh: 0; url=https://x.example/?k={SECRET}\ncontent-length: 0\n"
            ),
            b"",
        )
    })
    .await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 302 Found\r\n"), "{answer}");
    assert_no_secret(&answer, SECRET);
    assert!(answer.contains(&format!("https://elsewhere.example/cb?key={placeholder}")), "{answer}");
}

#[tokio::test]
async fn an_informational_response_never_reaches_the_caller() {
    let up = RawUpstream::start(|_| {
        let mut out =
            format!("HTTP/1.1 103 Early Hints\r\nlink: </x?k={SECRET}>; rel=preload\r\nx-hint: {SECRET}\r\n\r\n")
                .into_bytes();
        out.extend(answer("HTTP/1.1 200 OK\ncontent-length: 2\n", b"ok"));
        out
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(body_of(&answer), "ok", "{answer}");
    assert_no_secret(&answer, SECRET);
}

#[tokio::test]
async fn a_switching_protocols_answer_is_refused() {
    let up = RawUpstream::start(|_| {
        format!("HTTP/1.1 101 Switching Protocols\r\nupgrade: x-leak\r\nconnection: upgrade\r\n\r\n{SECRET}")
            .into_bytes()
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert_no_secret(&answer, SECRET);
    assert_refused(&gw, &answer).await;
}

// === content and transfer codings ===

#[tokio::test]
async fn a_gzip_body_behind_an_identity_content_encoding_header_is_decoded_and_masked() {
    let up = RawUpstream::start(|_| {
        let body = gzip(format!("{{\"key\":\"{SECRET}\"}}").as_bytes());
        answer(
            &format!(
                "HTTP/1.1 200 OK\ncontent-encoding: identity\ncontent-encoding: gzip\ncontent-length: {}\n",
                body.len()
            ),
            &body,
        )
    })
    .await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(header_of(&answer, "content-encoding"), None, "{answer}");
    assert!(answer.contains(&format!("{{\"key\":\"{placeholder}\"}}")), "{answer}");
}

#[tokio::test]
async fn a_decompression_bomb_from_the_upstream_is_cut_at_the_ratio() {
    // 64 MiB of zeros gzip to about 64 KiB (about 1000:1); the gateway decodes at most
    // 256 bytes per compressed byte past 16 MiB (cloakroom_core::limits) and then cuts.
    const DECODED: usize = 64 * 1024 * 1024;
    static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let bomb = BOMB.get_or_init(|| gzip(&vec![0u8; DECODED])).clone();
    let allowed =
        bomb.len() as u64 * cloakroom_core::limits::MAX_DECODE_RATIO + cloakroom_core::limits::DECODE_SLACK_BYTES;
    assert!(allowed < DECODED as u64, "the bomb must expand past the bound");
    let up = RawUpstream::start(move |_| {
        answer(&format!("HTTP/1.1 200 OK\ncontent-encoding: gzip\ncontent-length: {}\n", bomb.len()), &bomb)
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", &answer[..answer.len().min(200)]);
    // The caller gets at most the bound (plus chunk framing), never the whole bomb.
    let zeros = answer.bytes().filter(|b| *b == 0).count() as u64;
    assert!(zeros <= allowed, "{zeros} decoded bytes passed the bound of {allowed}");
    assert!(zeros < DECODED as u64);
}

#[tokio::test]
async fn stacked_content_codings_are_each_undone() {
    let up = RawUpstream::start(|_| {
        let body = gzip(&gzip(format!("{{\"key\":\"{SECRET}\"}}").as_bytes()));
        answer(&format!("HTTP/1.1 200 OK\ncontent-encoding: gzip, gzip\ncontent-length: {}\n", body.len()), &body)
    })
    .await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.contains(&format!("{{\"key\":\"{placeholder}\"}}")), "{answer}");
}

#[tokio::test]
async fn a_content_coding_the_gateway_cannot_undo_is_refused_wherever_it_is_listed() {
    for codings in [
        "content-encoding: gzip, compress",
        "content-encoding: gzip\ncontent-encoding: x-custom",
        "content-encoding: identity\ncontent-encoding: x-rot13",
    ] {
        let codings = codings.to_owned();
        let up = RawUpstream::start(move |_| {
            let body = gzip(SECRET.as_bytes());
            answer(&format!("HTTP/1.1 200 OK\n{codings}\ncontent-length: {}\n", body.len()), &body)
        })
        .await;
        let (gw, _) = gateway(&up, "http").await;
        let answer = raw_get(&gw, "/fn/leak/x", "").await;
        assert_refused(&gw, &answer).await;
    }
}

#[tokio::test]
async fn a_content_coding_named_after_the_secret_is_refused_without_quoting_it() {
    let up = RawUpstream::start(|_| {
        answer(&format!("HTTP/1.1 200 OK\ncontent-encoding: {SECRET}\ncontent-length: 2\n"), b"ok")
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert_no_secret(&answer, SECRET);
    assert_refused(&gw, &answer).await;
    assert!(!gw.stderr().contains(SECRET));
}

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_refused() {
    for codings in ["transfer-encoding: gzip, chunked", "transfer-encoding: gzip\ntransfer-encoding: chunked"] {
        let codings = codings.to_owned();
        let up = RawUpstream::start(move |_| {
            let gz = gzip(format!("{{\"key\":\"{SECRET}\"}}").as_bytes());
            let mut body = format!("{:x}\r\n", gz.len()).into_bytes();
            body.extend_from_slice(&gz);
            body.extend_from_slice(b"\r\n0\r\n\r\n");
            answer(&format!("HTTP/1.1 200 OK\n{codings}\n"), &body)
        })
        .await;
        let (gw, _) = gateway(&up, "http").await;
        let answer = raw_get(&gw, "/fn/leak/x", "").await;
        assert_refused(&gw, &answer).await;
    }
}

// === trailers ===

fn chunked_with_trailer() -> Vec<u8> {
    answer(
        "HTTP/1.1 200 OK\ncontent-type: text/plain\ntrailer: x-leak\ntransfer-encoding: chunked\n",
        format!("5\r\nhello\r\n0\r\nx-leak: {SECRET}\r\nx-{SECRET}: 1\r\n\r\n").as_bytes(),
    )
}

#[tokio::test]
async fn a_trailer_reaches_an_http2_caller_masked() {
    let up = RawUpstream::start(|_| chunked_with_trailer()).await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let stream = tokio::net::TcpStream::connect(&gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/fn/leak/x", gw.addr))
        .header("authorization", format!("Bearer {AGENT_KEY}"))
        .header("te", "trailers")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(collected.to_bytes(), "hello");
    for (name, value) in &trailers {
        assert!(!name.as_str().contains(SECRET), "{trailers:?}");
        assert_no_secret(value.to_str().unwrap(), SECRET);
    }
    assert_eq!(trailers.get("x-leak").map(|v| v.to_str().unwrap().to_owned()), Some(placeholder));
}

#[tokio::test]
async fn a_trailer_reaches_an_http1_caller_that_accepts_trailers_masked() {
    let up = RawUpstream::start(|_| chunked_with_trailer()).await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/x", "te: trailers\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_no_secret(&answer, SECRET);
    assert!(answer.ends_with(&format!("0\r\nx-leak: {placeholder}\r\n\r\n")), "{answer}");
    // Without `TE: trailers`, hyper sends none.
    let answer = raw_get(&gw, "/fn/leak/x", "").await;
    assert!(answer.ends_with("0\r\n\r\n"), "{answer}");
    assert_no_secret(&answer, SECRET);
}

// === partial views ===

/// A document holding the secret, served whole or by `Range` (206) like a file server.
fn ranged_document(request: &str) -> Vec<u8> {
    let doc = format!("{{\"document\":\"{SECRET}\"}}");
    let range = request.lines().find_map(|l| l.strip_prefix("range: bytes=")).map(|r| r.trim().to_owned());
    match range.and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let a: usize = a.parse().ok()?;
        let b: usize = if b.is_empty() { doc.len() - 1 } else { b.parse().ok()? };
        Some((a, b.min(doc.len() - 1)))
    }) {
        Some((a, b)) => answer(
            &format!(
                "HTTP/1.1 206 Partial Content\ncontent-range: bytes {a}-{b}/{}\ncontent-length: {}\n",
                doc.len(),
                b + 1 - a
            ),
            &doc.as_bytes()[a..=b],
        ),
        None => answer(&format!("HTTP/1.1 200 OK\ncontent-length: {}\n", doc.len()), doc.as_bytes()),
    }
}

#[tokio::test]
async fn two_range_requests_cannot_assemble_the_secret() {
    let up = RawUpstream::start(ranged_document).await;
    let (gw, placeholder) = gateway(&up, "http").await;
    let half = "{\"document\":\"".len() + SECRET.len() / 2;
    let first = raw_get(&gw, "/fn/leak/doc", &format!("range: bytes=0-{}\r\nif-range: \"v1\"\r\n", half - 1)).await;
    let second =
        raw_get(&gw, "/fn/leak/doc", &format!("range: bytes={half}-\r\nrequest-range: bytes={half}-\r\n")).await;
    let both = format!("{first}{second}");
    let joined: String = [&first, &second].iter().map(|a| a.split("\r\n\r\n").nth(1).unwrap_or("")).collect();
    assert_no_secret(&joined, SECRET);
    assert_no_secret(&both, SECRET);
    // The function never saw a range: each answer is the whole document, masked.
    for request in up.requests() {
        assert!(!request.contains("range:"), "{request}");
    }
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
    assert!(first.contains(&format!("{{\"document\":\"{placeholder}\"}}")), "{first}");
}

#[tokio::test]
async fn a_partial_content_answer_is_refused() {
    let up = RawUpstream::start(|_| {
        answer(
            "HTTP/1.1 206 Partial Content\ncontent-range: bytes 0-9/100\ncontent-length: 10\n",
            &SECRET.as_bytes()[..10],
        )
    })
    .await;
    let (gw, _) = gateway(&up, "http").await;
    let answer = raw_get(&gw, "/fn/leak/doc", "").await;
    assert_refused(&gw, &answer).await;
    assert!(!answer.contains(&SECRET[..10]), "{answer}");
}

// === server-sent events ===

/// The data of each event in an SSE body, as an EventSource client assembles it.
fn sse_event_data(body: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        if line.is_empty() {
            if let Some(mut d) = data.take() {
                d.pop();
                events.push(d);
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            let d = data.get_or_insert_with(String::new);
            d.push_str(value);
            d.push('\n');
        }
    }
    // An unterminated event is not dispatched by a client; kept here to look for leaks.
    events.extend(data);
    events
}

#[tokio::test]
async fn a_secret_written_across_the_data_lines_of_one_event_is_masked() {
    let (first, second) = MULTILINE.split_once('\n').unwrap();
    for eol in ["\n", "\r\n", "\r"] {
        let body =
            format!("event: message{eol}data: {first}{eol}data:{second}{eol}{eol}id: 2{eol}data: tail{eol}{eol}");
        let up =
            RawUpstream::start(move |_| answer("HTTP/1.1 200 OK\ncontent-type: text/event-stream\n", body.as_bytes()))
                .await;
        let (gw, _) = gateway(&up, "http").await;
        let answer = raw_get(&gw, "/fn/leak/events", "").await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        let body = body_of(&answer);
        let events = sse_event_data(&body);
        assert!(events.iter().all(|d| !d.contains(MULTILINE)), "{eol:?}: {events:?}");
        assert!(events.iter().any(|d| d.starts_with("cloak_")), "{eol:?}: {events:?}");
        assert!(events.iter().any(|d| d == "tail"), "{eol:?}: {events:?}");
    }
}

/// The payload of an HTTP/1 answer: de-chunked when it is sent chunked, else as it is
/// (the gateway keeps an exact `Content-Length` where the data path knows one).
fn body_of(answer: &str) -> String {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    }
}

/// The payload of a chunked HTTP/1 body.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

// === what the gateway writes itself ===

/// `s` with every character written as a JSON `\uXXXX` escape (surrogate pairs for
/// characters outside the BMP).
fn json_escape_all(s: &str) -> String {
    s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
}

fn tools_list(escaped: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"echo","description":"key {escaped}","inputSchema":{{"type":"object"}}}},{{"name":"hidden","description":"x","inputSchema":{{"type":"object"}}}}]}}}}"#
    )
}

async fn mcp_post(gw: &Cloakroomd, body: &str) -> String {
    let request = format!(
        "POST /fn/leak HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {AGENT_KEY}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        gw.addr,
        body.len()
    );
    gw.raw(request.as_bytes()).await
}

async fn mcp_gateway(up: &RawUpstream) -> Cloakroomd {
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("leak", "mcp", &up.url(), "/fn/leak"),
        allow("agents may list and echo", &["leak", "leak/echo"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    gw.put_secret("leak_key", SECRET, json!({"functions": ["leak"], "locations": ["header:x-api-key"]})).await;
    gw
}

#[tokio::test]
async fn a_tools_list_with_an_escaped_secret_is_filtered_without_unescaping_it() {
    let escapes = [
        json_escape_all(SECRET),
        SECRET
            .chars()
            .map(|c| match c {
                '_' => "\\u005f".to_owned(),
                '0' => "\\u0030".to_owned(),
                c => c.to_string(),
            })
            .collect(),
        SECRET
            .chars()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { format!("\\u{:04X}", c as u32) } else { c.to_string() })
            .collect(),
    ];
    for escaped in escapes {
        let list = tools_list(&escaped);
        let up = RawUpstream::start(move |_| {
            answer(
                &format!("HTTP/1.1 200 OK\ncontent-type: application/json\ncontent-length: {}\n", list.len()),
                list.as_bytes(),
            )
        })
        .await;
        let gw = mcp_gateway(&up).await;
        let answer = mcp_post(&gw, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert_no_secret(&answer, SECRET);
        let body = body_of(&answer);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let tools = v["result"]["tools"].as_array().unwrap();
        // Filtered: agents may call echo only.
        assert_eq!(tools.len(), 1, "{v}");
        let description = tools[0]["description"].as_str().unwrap();
        assert!(!description.contains(SECRET), "{description}");
        assert!(description.starts_with("key cloak_"), "{description}");
    }
}

#[tokio::test]
async fn an_sse_tools_list_with_an_escaped_secret_is_filtered_without_unescaping_it() {
    let list = tools_list(&json_escape_all(SECRET));
    let up = RawUpstream::start(move |_| {
        answer(
            "HTTP/1.1 200 OK\ncontent-type: text/event-stream\n",
            format!("event: message\ndata: {list}\n\n").as_bytes(),
        )
    })
    .await;
    let gw = mcp_gateway(&up).await;
    let answer = mcp_post(&gw, r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_no_secret(&answer, SECRET);
    let body = body_of(&answer);
    let data = sse_event_data(&body);
    let v: Value = serde_json::from_str(&data[0]).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["result"]["tools"][0]["description"].as_str().unwrap().starts_with("key cloak_"), "{v}");
}
