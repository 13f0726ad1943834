//! The AuditLayer: what it records, when it seals, and how it fails closed.
mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use cloakroom_audit::{AuditConfig, AuditLayer, AuditLog, AuditRecord, Durability, NoRedaction, OnFailure, Redactor};
use cloakroom_core::{
    ApprovalRef, AuditNote, AuthMethod, Call, CallId, ClientAddr, Decision, Error, ErrorCode, Identity, Placeholder,
    Protocol, SecretUse,
};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};

type Req = Request<cloakroom_audit::layer::RequestBody<Full<Bytes>>>;

async fn open(dir: &std::path::Path, config: &AuditConfig, redactor: Arc<dyn Redactor>) -> AuditLog {
    AuditLog::open(config, dir, redactor).await.expect("open log")
}

fn sync_config() -> AuditConfig {
    AuditConfig { chain_id: Some("replica-a".into()), ..AuditConfig::default() }
}

/// Waits (generously) for the record of `id` to be written.
async fn record_of(log: &AuditLog, id: &CallId) -> AuditRecord {
    for _ in 0..500 {
        log.flush().await;
        if let Some(r) = log.record(id).await.unwrap() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no record for {id}");
}

fn identity() -> Identity {
    Identity::new("alice".into(), "api_key".into(), AuthMethod::ApiKey)
        .with_groups(vec!["payments-ops".into()])
        .with_source_ip(Some("10.1.2.3".parse().unwrap()))
}

#[tokio::test]
async fn records_everything_the_inner_layers_noted() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let placeholder = Placeholder::from_digest(&[9; 32]).unwrap();
    let p2 = placeholder.clone();
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(move |req: Req| {
        let p = p2.clone();
        async move {
            let note = req.extensions().get::<AuditNote>().cloned().expect("note in extensions");
            assert!(req.extensions().get::<CallId>().is_some());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("{{\"key\":\"{p}\"}}"));
            note.set_identity(&identity());
            note.set_call(
                &Call::new("payments".into(), Protocol::Http)
                    .with_arguments(serde_json::json!({"key": p.as_str()}))
                    .with_method("POST".into())
                    .with_digest("00".into()),
            );
            note.set_decision(&Decision::allow("ops may pay", "rule matched"));
            note.set_approval(ApprovalRef {
                id: "ap-1".into(),
                requested_by: "alice".into(),
                decided_by: Some("bob".into()),
                decided_at: Some("2026-11-25T21:00:00Z".into()),
            });
            note.add_secret_used(SecretUse { name: "stripe_key".into(), placeholder: p, location: "json:/key".into() });
            note.set_upstream(201, 7);
            note.add_masked(2);
            let res = Response::builder()
                .status(201)
                .header("set-cookie", "session=abcdef")
                .header("x-request-cost", "3")
                .body(Full::new(Bytes::from("{\"ok\":true}")))
                .unwrap();
            Ok::<_, Infallible>(res)
        }
    }));
    let mut req = Request::post("/fn/payments/charge?x=1")
        .header("authorization", "Bearer cloakroom-api-key-123")
        .header("proxy-authorization", "Bearer other-cred")
        .header("cookie", "sid=42")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"key\":\"{placeholder}\"}}"))))
        .unwrap();
    req.extensions_mut().insert(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 4000))));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 201);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "{\"ok\":true}");

    let records = log.records(&cloakroom_audit::RecordQuery::from_start(10)).await.unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    let id = r.identity.as_ref().unwrap();
    assert_eq!((id.subject.as_str(), id.issuer.as_str(), id.method.as_str()), ("alice", "api_key", "api_key"));
    assert_eq!(id.groups, ["payments-ops"]);
    assert_eq!(r.source_ip.as_deref(), Some("10.1.2.3"), "identity's source ip wins over the peer");
    assert_eq!(r.function.as_deref(), Some("payments"));
    assert_eq!(r.protocol, Some(Protocol::Http));
    let d = r.decision.as_ref().unwrap();
    assert_eq!(
        (d.effect.as_str(), d.rule.as_deref(), d.reason.as_str()),
        ("allow", Some("ops may pay"), "rule matched")
    );
    assert_eq!(r.approval.as_ref().unwrap().decided_by.as_deref(), Some("bob"));
    assert_eq!(r.secrets_used[0].name, "stripe_key");
    assert_eq!(r.secrets_used[0].location, "json:/key");
    assert_eq!(r.request.method, "POST");
    assert_eq!(r.request.path, "/fn/payments/charge?x=1");
    assert_eq!(r.request.headers["authorization"], ["[REDACTED]"]);
    assert_eq!(r.request.headers["proxy-authorization"], ["[REDACTED]"]);
    assert_eq!(r.request.headers["cookie"], ["[REDACTED]"]);
    assert_eq!(r.request.headers["content-type"], ["application/json"]);
    assert_eq!(r.request.body.as_ref().unwrap().data, format!("{{\"key\":\"{placeholder}\"}}"));
    assert_eq!(r.response.status, Some(201));
    assert_eq!(r.response.headers["set-cookie"], ["[REDACTED]"]);
    assert_eq!(r.response.headers["x-request-cost"], ["3"]);
    assert_eq!(r.response.body.as_ref().unwrap().data, "{\"ok\":true}");
    assert_eq!(r.response.masked, 2);
    let up = r.upstream.as_ref().unwrap();
    assert_eq!((up.status, up.duration_ms), (201, 7));
    assert!(r.error.is_none());
    let stored = serde_json::to_string(r).unwrap();
    for credential in ["cloakroom-api-key-123", "other-cred", "sid=42", "session=abcdef"] {
        assert!(!stored.contains(credential), "{credential} reached the record");
    }
    log.close().await;
}

#[tokio::test]
async fn an_existing_call_id_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let id = CallId::new();
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(move |req: Req| async move {
        assert_eq!(req.extensions().get::<CallId>(), Some(&id));
        assert_eq!(req.extensions().get::<AuditNote>().unwrap().snapshot().call_id, Some(id));
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(id);
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(log.record(&id).await.unwrap().unwrap().id, id.to_string());
    log.close().await;
}

#[tokio::test]
async fn bodies_are_truncated_at_the_limit_with_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { max_body_record_bytes: 16, ..sync_config() };
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|req: Req| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 100, "the inner service gets the whole body");
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(vec![0xffu8; 40]))))
    }));
    let res = svc.oneshot(Request::new(Full::new(Bytes::from("a".repeat(100))))).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes().len(), 40);
    let r = &log.records(&cloakroom_audit::RecordQuery::from_start(1)).await.unwrap()[0];
    let req = r.request.body.as_ref().unwrap();
    assert_eq!(
        (req.data.as_str(), req.bytes, req.truncated, req.encoding.as_str()),
        ("a".repeat(16).as_str(), 100, true, "utf8")
    );
    let resp = r.response.body.as_ref().unwrap();
    assert_eq!((resp.encoding.as_str(), resp.bytes, resp.truncated), ("base64", 40, true));
    assert_eq!(resp.decoded().unwrap(), vec![0xff; 16]);
    log.close().await;
}

#[tokio::test]
async fn bodies_are_not_recorded_when_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { record_bodies: false, ..sync_config() };
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|req: Req| async move {
        req.into_body().collect().await.unwrap();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("secret-ish output"))))
    }));
    let res = svc.oneshot(Request::new(Full::new(Bytes::from("input")))).await.unwrap();
    res.into_body().collect().await.unwrap();
    let r = &log.records(&cloakroom_audit::RecordQuery::from_start(1)).await.unwrap()[0];
    assert!(r.request.body.is_none() && r.response.body.is_none());
    assert_eq!(r.response.status, Some(200));
    log.close().await;
}

#[tokio::test]
async fn short_circuit_errors_of_inner_layers_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|req: Req| async move {
        let note = req.extensions().get::<AuditNote>().cloned().unwrap();
        note.set_identity(&identity());
        note.set_decision(&Decision::default_deny());
        let id = req.extensions().get::<CallId>().copied();
        // The policy layer refuses without touching the note's error: the layer reads
        // the error from the response extensions.
        Ok::<_, Infallible>(Error::new(ErrorCode::Forbidden, "no rule allows this call").to_response(id.as_ref()))
    }));
    let res = svc.oneshot(Request::new(Full::new(Bytes::new()))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    res.into_body().collect().await.unwrap();
    let r = &log.records(&cloakroom_audit::RecordQuery::from_start(1)).await.unwrap()[0];
    assert_eq!(r.error.as_ref().unwrap().code, "forbidden");
    assert_eq!(r.decision.as_ref().unwrap().effect.as_str(), "deny");
    assert_eq!(r.decision.as_ref().unwrap().rule, None);
    assert_eq!(r.response.status, Some(403));
    assert!(r.response.body.as_ref().unwrap().data.contains("forbidden"));
    log.close().await;
}

/// A redactor standing in for the gateway's masker: it knows one secret.
struct KnowsOneSecret;
impl Redactor for KnowsOneSecret {
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        const SECRET: &[u8] = b"sk_live_PLANTED_4242";
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(SECRET) {
                out.extend_from_slice(b"[REDACTED:stripe_key]");
                i += SECRET.len();
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }
}

#[tokio::test]
async fn a_secret_an_inner_layer_missed_never_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig { export_jsonl: Some(dir.path().join("audit.jsonl")), ..sync_config() };
    let log = open(dir.path(), &config, Arc::new(KnowsOneSecret)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|req: Req| async move {
        // The call layer reads the body.
        req.into_body().collect().await.unwrap();
        // The masker "failed": the secret is in the body, a header and an error message.
        let res = Response::builder()
            .header("x-debug", "key=sk_live_PLANTED_4242")
            .body(Full::new(Bytes::from("{\"echo\":\"sk_live_PLANTED_4242\"}")))
            .unwrap();
        Ok::<_, Infallible>(res)
    }));
    let res = svc.oneshot(Request::new(Full::new(Bytes::from("sk_live_PLANTED_4242")))).await.unwrap();
    // The caller's response is not the audit layer's business (the masker's is).
    res.into_body().collect().await.unwrap();
    let r = &log.records(&cloakroom_audit::RecordQuery::from_start(1)).await.unwrap()[0];
    assert_eq!(r.response.body.as_ref().unwrap().data, "{\"echo\":\"[REDACTED:stripe_key]\"}");
    assert_eq!(r.response.headers["x-debug"], ["key=[REDACTED:stripe_key]"]);
    assert_eq!(r.request.body.as_ref().unwrap().data, "[REDACTED:stripe_key]");
    log.close().await;
    drop(log);
    // Every stored byte: the embedded store's files (log, idx, calls) and the export file.
    let chain_dir = dir.path().join("audit/chains/replica-a");
    let mut files = 0;
    for entry in std::fs::read_dir(&chain_dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("sk_live_PLANTED"));
        files += 1;
    }
    assert_eq!(files, 3, "record and indexes were stored");
    let stored = std::fs::read_to_string(chain_dir.join("00000000000000000001.log")).unwrap();
    assert!(stored.contains("[REDACTED:stripe_key]"), "the record itself was read");
    let export = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(export.lines().count(), 1);
    assert!(!export.contains("sk_live_PLANTED"));
}

#[tokio::test]
async fn with_sync_durability_the_record_is_stored_when_the_body_ends() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config)
        .layer(service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("x")))) }));
    let id = CallId::new();
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(id);
    let res = svc.oneshot(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    // No flush, no waiting: the end of the body was held until the record was durable.
    assert!(log.record(&id).await.unwrap().is_some());
    assert_eq!(log.metrics().snapshot().records_written, 1);
    log.close().await;
}

/// A response body fed chunk by chunk from a channel, like a streamed MCP response.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);
impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn a_stream_dropped_by_the_caller_is_sealed_with_the_bytes_sent() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let rx = std::sync::Mutex::new(Some(rx));
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(move |_req: Req| {
        let rx = rx.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(ChannelBody(rx))) }
    }));
    let id = CallId::new();
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(id);
    let res = svc.oneshot(req).await.unwrap();
    let mut body = res.into_body();
    tx.send(Bytes::from("event: 1\n\n")).await.unwrap();
    tx.send(Bytes::from("event: 2\n\n")).await.unwrap();
    for _ in 0..2 {
        body.frame().await.unwrap().unwrap();
    }
    drop(body); // the caller went away mid-stream
    let r = record_of(&log, &id).await;
    let b = r.response.body.as_ref().unwrap();
    assert_eq!(b.data, "event: 1\n\nevent: 2\n\n");
    assert_eq!(b.bytes, 20);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, "aborted");
    assert!(e.message.contains("20"), "{}", e.message);
    assert_eq!(r.response.status, Some(200));
    // Sealed exactly once.
    log.flush().await;
    assert_eq!(log.records(&cloakroom_audit::RecordQuery::from_start(10)).await.unwrap().len(), 1);
    log.close().await;
}

#[tokio::test]
async fn a_call_dropped_before_the_response_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(|_req: Req| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let id = CallId::new();
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(id);
    let fut = svc.oneshot(req);
    // The caller gives up while the function is still working.
    assert!(tokio::time::timeout(Duration::from_millis(20), fut).await.is_err());
    let r = record_of(&log, &id).await;
    assert_eq!(r.response.status, None);
    assert_eq!(r.error.unwrap().code, "aborted");
    log.close().await;
}

#[tokio::test]
async fn a_stream_dropped_over_real_http_is_sealed() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let rx = Arc::new(std::sync::Mutex::new(Some(rx)));
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(
        move |req: Request<cloakroom_audit::layer::RequestBody<hyper::body::Incoming>>| {
            let rx = rx.lock().unwrap().take().unwrap();
            async move {
                req.into_body().collect().await.unwrap();
                Ok::<_, Infallible>(Response::new(ChannelBody(rx)))
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| svc.clone().oneshot(req));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    let res = sender.send_request(Request::post("/mcp").body(Full::new(Bytes::from("{}"))).unwrap()).await.unwrap();
    let mut body = res.into_body();
    tx.send(Bytes::from("data: partial\n\n")).await.unwrap();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "data: partial\n\n");
    // The client goes away: its connection is closed mid-stream.
    drop(body);
    drop(sender);
    conn.abort();
    // The server notices when it next writes.
    let _ = tx.send(Bytes::from("data: more\n\n")).await;
    let records = loop {
        log.flush().await;
        let r = log.records(&cloakroom_audit::RecordQuery::from_start(10)).await.unwrap();
        if !r.is_empty() {
            break r;
        }
        let _ = tx.try_send(Bytes::from("data: more\n\n"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let r = &records[0];
    assert_eq!(r.request.path, "/mcp");
    assert_eq!(r.request.body.as_ref().unwrap().data, "{}");
    assert!(r.response.body.as_ref().unwrap().data.starts_with("data: partial\n\n"));
    assert!(matches!(r.error.as_ref().unwrap().code.as_str(), "aborted" | "body_error"), "{:?}", r.error);
    log.close().await;
}

#[tokio::test]
async fn a_sink_that_cannot_write_makes_the_layer_refuse_calls() {
    let dir = tempfile::tempdir().unwrap();
    // Writes to /dev/full fail with ENOSPC: a real disk-full sink.
    let config = AuditConfig { export_jsonl: Some("/dev/full".into()), ..sync_config() };
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let reached = Arc::new(AtomicUsize::new(0));
    let r2 = reached.clone();
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(move |_req: Req| {
        r2.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("done")))) }
    }));
    // The first call runs, but its end is not clean: its record could not be written.
    let res = svc.clone().oneshot(Request::new(Full::new(Bytes::new()))).await.unwrap();
    assert!(res.into_body().collect().await.is_err(), "an unrecorded call does not end cleanly");
    assert!(!log.is_available());
    // Later calls are refused before they reach the function.
    let res = svc.clone().oneshot(Request::new(Full::new(Bytes::new()))).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "audit_unavailable");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    let m = log.metrics().snapshot();
    assert_eq!(m.calls_refused, 1);
    assert!(m.write_failures >= 1);
    assert!(!m.available);
}

#[tokio::test]
async fn with_on_failure_continue_calls_go_through_and_losses_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        export_jsonl: Some("/dev/full".into()),
        on_failure: OnFailure::Continue,
        durability: Durability::Batched,
        ..sync_config()
    };
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config)
        .layer(service_fn(|_req: Req| async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("done")))) }));
    for _ in 0..2 {
        let res = svc.clone().oneshot(Request::new(Full::new(Bytes::new()))).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "done");
        log.flush().await;
    }
    let m = log.metrics().snapshot();
    assert_eq!(m.records_lost, 2, "{m:?}");
    assert!(m.write_failures >= 2);
    assert_eq!(m.calls_refused, 0);
    // The primary store still has them.
    assert_eq!(log.records(&cloakroom_audit::RecordQuery::from_start(10)).await.unwrap().len(), 2);
    log.close().await;
}

#[tokio::test]
async fn a_secret_in_a_binary_body_is_redacted_before_base64() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), &sync_config(), Arc::new(KnowsOneSecret)).await;
    let mut raw = vec![0xff, 0xfe];
    raw.extend_from_slice(b"sk_live_PLANTED_4242");
    let mut r = AuditRecord::now(CallId::new());
    r.response.body = Some(cloakroom_audit::RecordBody::capture(&raw, raw.len() as u64, 1024));
    assert_eq!(r.response.body.as_ref().unwrap().encoding, "base64");
    log.append(r).await.unwrap();
    let stored = &log.records(&cloakroom_audit::RecordQuery::from_start(1)).await.unwrap()[0];
    let body = stored.response.body.as_ref().unwrap();
    assert_eq!(body.encoding, "base64");
    let decoded = body.decoded().unwrap();
    assert!(decoded.ends_with(b"[REDACTED:stripe_key]"));
    assert_eq!(body.bytes, 22, "the original size is kept");
    log.close().await;
}

/// Serves `svc` on one loopback connection per request; returns the address.
async fn serve<S>(svc: S) -> SocketAddr
where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = Response<cloakroom_audit::layer::ResponseBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = svc.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| svc.clone().oneshot(req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn get(addr: SocketAddr) -> (StatusCode, http::HeaderMap, Bytes) {
    use hyper_util::rt::TokioIo;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(Request::get("/x").body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn over_http_a_content_length_response_is_recorded_complete_before_the_caller_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(
        |req: Request<cloakroom_audit::layer::RequestBody<hyper::body::Incoming>>| async move {
            let id = req.extensions().get::<CallId>().unwrap().to_string();
            let res = Response::builder()
                .header("cloakroom-call-id", id)
                .header("content-length", "5")
                .body(Full::new(Bytes::from("hello")))
                .unwrap();
            Ok::<_, Infallible>(res)
        },
    ));
    let addr = serve(svc).await;
    let (status, headers, body) = get(addr).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
    let id: CallId = headers["cloakroom-call-id"].to_str().unwrap().parse().unwrap();
    // `sync`: the last bytes were held back until the record was durable.
    let r = log.record(&id).await.unwrap().expect("recorded before the caller had the whole body");
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.response.body.unwrap().data, "hello");
    log.close().await;
}

#[tokio::test]
async fn over_http_an_empty_response_is_recorded_complete() {
    let dir = tempfile::tempdir().unwrap();
    let config = sync_config();
    let log = open(dir.path(), &config, Arc::new(NoRedaction)).await;
    let svc = AuditLayer::new(log.clone(), &config).layer(service_fn(
        |req: Request<cloakroom_audit::layer::RequestBody<hyper::body::Incoming>>| async move {
            let id = req.extensions().get::<CallId>().unwrap().to_string();
            let res =
                Response::builder().status(204).header("cloakroom-call-id", id).body(Full::new(Bytes::new())).unwrap();
            Ok::<_, Infallible>(res)
        },
    ));
    let addr = serve(svc).await;
    let (status, headers, _) = get(addr).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let id: CallId = headers["cloakroom-call-id"].to_str().unwrap().parse().unwrap();
    let r = record_of(&log, &id).await;
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.response.status, Some(204));
    log.close().await;
}
