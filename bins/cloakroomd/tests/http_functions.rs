//! End-to-end: `cloakroomd` as a subprocess in front of real HTTP upstreams.

mod common;

use std::time::Duration;

use cloakroom_testkit::{RecordingUpstream, Reply};
use common::*;
use serde_json::{json, Value};

async fn gateway_for(upstream: &str, server_extra: &str) -> Cloakroomd {
    let rest = format!(
        "{}{}{}{}",
        identity_section(),
        function("echo", "http", upstream, "/fn/echo"),
        function("other", "http", upstream, "/fn/other"),
        allow("agents may call echo", &["echo"], &["agents"]),
    );
    Cloakroomd::start(server_extra, &rest).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn a_call_reaches_the_upstream_with_the_route_stripped_and_gateway_headers_set() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let res = client()
        .post(gw.url("/fn/echo/v1/charge?amount=5"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .header("connection", "x-hop")
        .header("x-hop", "must not pass")
        .header("x-kept", "yes")
        .body(r#"{"amount": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call_id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["uri"], "/v1/charge?amount=5");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.header("cloakroom-call-id").as_deref(), Some(call_id.as_str()));
    assert_eq!(r.header("cloakroom-subject").as_deref(), Some("agent"));
    assert_eq!(r.header("x-kept").as_deref(), Some("yes"));
    assert!(r.header("x-hop").is_none(), "hop-by-hop header named in Connection was forwarded");
    assert!(r.header("authorization").is_none(), "the caller's credential reached the function");
    assert_eq!(r.header("host"), Some(up.addr.to_string()));
    assert_eq!(r.body_text(), r#"{"amount": 5}"#);
}

#[tokio::test]
async fn an_unknown_route_is_404_and_a_call_without_credential_401() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let res = client().get(gw.url("/fn/nothing-here")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let res = client().get(gw.url("/fn/echo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    // "/fn/echoes" is not below "/fn/echo".
    let res = client().get(gw.url("/fn/echoes")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_call_policy_denies_is_403_and_nothing_reaches_the_upstream() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let res = client().post(gw.url("/fn/other/x")).bearer_auth(AGENT_KEY).body("hi").send().await.unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden");
    let res = client().post(gw.url("/fn/echo/x")).bearer_auth(OUTSIDER_KEY).body("hi").send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_before_anything_is_forwarded() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "max_body_bytes = 1024").await;
    let res = client().post(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).body(vec![b'a'; 2048]).send().await.unwrap();
    assert_eq!(res.status(), 413);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
    // Chunked, no Content-Length: found while reading.
    let mut raw = format!(
        "POST /fn/echo/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {AGENT_KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..8 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'b'; 512]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = gw.raw(&raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(up.requests().is_empty());
    // Still serving.
    let res = client().post(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).body("small").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_100_megabyte_json_body_is_413() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let mut big = Vec::with_capacity(100 * 1024 * 1024);
    big.extend_from_slice(b"{\"a\":\"");
    big.resize(100 * 1024 * 1024 - 2, b'x');
    big.extend_from_slice(b"\"}");
    let res = client()
        .post(gw.url("/fn/echo/x"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    // The gateway answers 413 as soon as it sees the length; the client may still be
    // writing when the connection closes, which reqwest can report as an error.
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    assert!(up.requests().is_empty());
    let res = client().post(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).body("small").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_slow_upstream_is_504_upstream_timeout() {
    let up = RecordingUpstream::start(|_| Reply { delay: Duration::from_secs(3), ..Reply::json(json!({})) }).await;
    let gw = gateway_for(&up.url(), "upstream_timeout = \"500ms\"").await;
    let res = client().get(gw.url("/fn/echo/slow")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 504);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn a_closed_upstream_port_is_502_upstream_unavailable() {
    let closed = format!("http://127.0.0.1:{}", cloakroom_testkit::free_port());
    let gw = gateway_for(&closed, "").await;
    let res = client().get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable");
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let up = RecordingUpstream::start(|_| Reply {
        status: 302,
        headers: vec![("location".into(), "http://example.invalid/elsewhere".into())],
        chunks: vec![],
        delay: Duration::ZERO,
    })
    .await;
    let gw = gateway_for(&up.url(), "").await;
    let res = client().get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "http://example.invalid/elsewhere");
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn smuggling_and_control_characters_are_refused_and_the_gateway_keeps_serving() {
    let up = RecordingUpstream::echo().await;
    let mut gw = gateway_for(&up.url(), "").await;
    let auth = format!("Authorization: Bearer {AGENT_KEY}\r\n");
    let both = format!(
        "POST /fn/echo/x HTTP/1.1\r\nHost: a\r\n{auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /fn/other HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3), the connection is
    // closed after the answer, and the request smuggled behind it is never read.
    let answer = gw.raw(both.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].uri, "/x");
    assert!(reqs[0].body.is_empty());
    let ctl = format!("GET /fn/echo/x HTTP/1.1\r\nHost: a\r\n{auth}X-Bad: a\x01b\r\n\r\n");
    let answer = gw.raw(ctl.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let bad_name = format!("GET /fn/echo/x HTTP/1.1\r\nHost: a\r\n{auth}X-B\x7fad: 1\r\n\r\n");
    let answer = gw.raw(bad_name.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(up.requests().len(), 1, "a malformed request reached the upstream");
    assert!(gw.is_running());
    let res = client().get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn every_call_is_audited_and_the_chain_verifies() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let c = client();
    let ok = c.post(gw.url("/fn/echo/a")).bearer_auth(AGENT_KEY).body("one").send().await.unwrap();
    let ok_id = ok.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    ok.bytes().await.unwrap();
    let denied = c.post(gw.url("/fn/other/b")).bearer_auth(AGENT_KEY).body("two").send().await.unwrap();
    let denied_id = denied.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    denied.bytes().await.unwrap();
    c.get(gw.url("/fn/echo/c")).send().await.unwrap().bytes().await.unwrap();
    let records = gw.admin_get("/v1/audit?limit=10").await;
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    let ok_rec = gw.admin_get(&format!("/v1/audit/{ok_id}")).await;
    assert_eq!(ok_rec["decision"]["effect"], "allow");
    assert_eq!(ok_rec["response"]["status"], 200);
    assert!(ok_rec["error"].is_null(), "a complete call is recorded without error: {ok_rec}");
    let denied_rec = gw.admin_get(&format!("/v1/audit/{denied_id}")).await;
    assert_eq!(denied_rec["decision"]["effect"], "deny");
    assert_eq!(denied_rec["function"], "other");
    let verify = gw.admin_get("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn the_admin_api_needs_an_admin() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway_for(&up.url(), "").await;
    let c = client();
    assert_eq!(c.get(gw.admin_url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.admin_url("/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.admin_url("/v1/audit")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(gw.admin_url("/v1/audit")).bearer_auth(AGENT_KEY).send().await.unwrap().status(), 403);
    assert_eq!(c.get(gw.admin_url("/v1/nothing")).bearer_auth(ADMIN_KEY).send().await.unwrap().status(), 404);
    c.post(gw.url("/fn/echo/a")).bearer_auth(AGENT_KEY).body("one").send().await.unwrap().bytes().await.unwrap();
    let metrics = c.get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("cloakroom_calls_total{function=\"echo\",decision=\"allow\"} 1"), "{metrics}");
    assert!(metrics.contains("cloakroom_call_duration_seconds_count{function=\"echo\"} 1"), "{metrics}");
    assert!(metrics.contains("cloakroom_audit_records_total"), "{metrics}");
    assert!(metrics.contains("cloakroom_approvals{state=\"pending\"} 0"), "{metrics}");
}

#[tokio::test]
async fn a_call_needing_approval_goes_ahead_once_an_approver_approves() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}\n[[policy.rules]]\nname = \"echo needs a lead\"\neffect = \"approve\"\nfunctions = [\"echo\"]\ngroups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = client();
    let body = r#"{"amount": 500}"#;
    let call = || {
        c.post(gw.url("/fn/echo/refund")).bearer_auth(AGENT_KEY).header("content-type", "application/json").body(body)
    };
    let res = call().send().await.unwrap();
    assert_eq!(res.status(), 202);
    let pending: Value = res.json().await.unwrap();
    assert_eq!(pending["status"], "pending_approval");
    let id = pending["approval_id"].as_str().unwrap().to_owned();
    assert!(up.requests().is_empty());

    // The requester cannot approve themself; an outsider cannot either.
    let approve =
        |key: &'static str| c.post(gw.admin_url(&format!("/v1/approvals/{id}/approve"))).bearer_auth(key).send();
    assert_eq!(approve(AGENT_KEY).await.unwrap().status(), 403);
    assert_eq!(approve(OUTSIDER_KEY).await.unwrap().status(), 403);
    let listed: Value = c
        .get(gw.admin_url("/v1/approvals?state=pending"))
        .bearer_auth(APPROVER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["approvals"][0]["id"], id.as_str());
    let res = approve(APPROVER_KEY).await.unwrap();
    assert_eq!(res.status(), 200);
    let a: Value = res.json().await.unwrap();
    assert_eq!(a["state"], "approved");

    // Other arguments are not what was approved.
    let other = c
        .post(gw.url("/fn/echo/refund"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "application/json")
        .header("cloakroom-approval", &id)
        .body(r#"{"amount": 50000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let res = call().header("cloakroom-approval", &id).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.requests().len(), 1);
    assert!(up.requests()[0].header("cloakroom-approval").is_none());
    // Used once.
    let again = call().header("cloakroom-approval", &id).send().await.unwrap();
    assert_eq!(again.status(), 403);
}

/// An upstream whose handler never finishes on its own and reports when hyper drops it.
async fn hanging_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    struct Dropped(tokio::sync::mpsc::UnboundedSender<&'static str>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send("dropped");
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send("started");
                        let _guard = Dropped(tx);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_upstream_request() {
    let (url, mut events) = hanging_upstream().await;
    let gw = gateway_for(&url, "upstream_timeout = \"1h\"").await;
    let request = client().get(gw.url("/fn/echo/wait")).bearer_auth(AGENT_KEY).send();
    let caller = tokio::spawn(request);
    assert_eq!(events.recv().await, Some("started"));
    caller.abort();
    let dropped = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
    assert_eq!(dropped.expect("the upstream request was not cancelled"), Some("dropped"));
    // The call is audited as aborted.
    let mut aborted = false;
    for _ in 0..100 {
        let records = gw.admin_get("/v1/audit?limit=10").await;
        if records["records"].as_array().unwrap().iter().any(|r| r["error"]["code"] == "aborted") {
            aborted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(aborted, "the aborted call has no audit record saying so");
}
