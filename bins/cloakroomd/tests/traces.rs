//! End-to-end: OpenTelemetry traces (`[telemetry]`) from the real `cloakroomd` to a real
//! OTLP receiver (cloakroom-testkit's, on the collector's protobuf messages), over
//! HTTP/protobuf and gRPC: the span tree of a call continuing the caller's trace, the
//! trace context sent upstream, decisions on denied and approval-held calls, sampling,
//! an exporter that is down, and no secret in any byte that was exported.

mod common;

use std::{process::Command, time::Duration};

use bytes::Bytes;
use cloakroom_testkit::{OtlpProtocol, OtlpReceiver, ReceivedSpan, RecordedRequest, RecordingUpstream, Reply};
use common::*;
use serde_json::{json, Value};

/// A secret with characters that every encoding treats differently.
const SECRET: &str = "sk_live_51Hx\"Q/9z+abc=&k\\end";
/// How long spans may take to arrive (they are exported every 500 ms).
const ARRIVAL: Duration = Duration::from_secs(30);
/// The layers' spans under `call`.
const CHILDREN: [&str; 6] = ["identity", "policy", "detokenize", "upstream", "mask", "audit seal"];

/// The upstream answers with the secret it received (the masker's work) and echoes
/// the trace headers it got.
fn leaky(req: &RecordedRequest) -> Reply {
    let got = req.header("x-api-key").unwrap_or_default();
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        chunks: vec![
            Bytes::from(format!("{{\"echo\": {}", serde_json::to_string(&got).unwrap())),
            Bytes::from(format!(", \"raw\": \"{}\"}}", got.replace('\\', "\\\\").replace('"', "\\\""))),
        ],
        delay: Duration::from_millis(10),
    }
}

struct Setup {
    gw: Cloakroomd,
    up: RecordingUpstream,
    placeholder: String,
}

/// A gateway exporting to `endpoint` with `protocol` and `extra` `[telemetry]` keys:
/// `leaky` is allowed to agents and gets `stripe_key`, `blocked` is denied, `refund`
/// needs a lead's approval.
async fn setup(endpoint: &str, protocol: OtlpProtocol, extra: &str) -> Setup {
    let up = RecordingUpstream::start(leaky).await;
    let rest = format!(
        "{}{}{}{}{}{}\n[[policy.rules]]\nname = \"nobody calls blocked\"\neffect = \"deny\"\nfunctions = [\"blocked\"]\n\
         \n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"refund\"]\n\
         groups = [\"agents\"]\napprovers = [\"leads\"]\n\
         \n[telemetry]\notlp_endpoint = \"{endpoint}\"\nprotocol = \"{}\"\n{extra}\n",
        identity_section(),
        function("leaky", "http", &up.url(), "/fn/leaky"),
        function("blocked", "http", &up.url(), "/fn/blocked"),
        function("refund", "http", &up.url(), "/fn/refund"),
        // Nothing listens there.
        function("gone", "http", &format!("http://127.0.0.1:{}", cloakroom_testkit::free_port()), "/fn/gone"),
        allow("agents call leaky", &["leaky", "gone"], &["agents"]),
        protocol.as_str(),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let placeholder = gw
        .put_secret(
            "stripe_key",
            SECRET,
            json!({"functions": ["leaky"], "locations": ["header:x-api-key"], "groups": ["agents"]}),
        )
        .await;
    Setup { gw, up, placeholder }
}

/// A W3C trace id / span id pair for a caller's `traceparent`.
fn caller_ids(seed: u8) -> (String, String) {
    (
        format!("{:032x}", 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4700_u128 + seed as u128),
        format!("{:016x}", 0x00f0_67aa_0ba9_02b7_u64 + seed as u64),
    )
}

struct Answer {
    status: u16,
    call_id: String,
    body: String,
}

async fn call(s: &Setup, path: &str, traceparent: Option<&str>) -> Answer {
    send(s, path, Some(AGENT_KEY), Some(&s.placeholder), traceparent).await
}

/// A call as `key` (none: unauthenticated) sending `placeholder` in `x-api-key`.
async fn send(
    s: &Setup,
    path: &str,
    key: Option<&str>,
    placeholder: Option<&str>,
    traceparent: Option<&str>,
) -> Answer {
    let mut req =
        reqwest::Client::new().post(s.gw.url(path)).header("content-type", "application/json").body(r#"{"amount": 5}"#);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(placeholder) = placeholder {
        req = req.header("x-api-key", placeholder);
    }
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp).header("tracestate", "vendor=opaque,other=1");
    }
    let res = req.send().await.expect("call");
    let status = res.status().as_u16();
    let call_id = res.headers().get("cloakroom-call-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Answer { status, call_id, body: res.text().await.unwrap() }
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id() == trace_id).collect()
}

fn named<'a>(spans: &[&'a ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name() == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one {name:?} span expected, got {:?}",
        spans.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    found[0]
}

/// Waits for every span of a call in `trace_id`: `call` and `names` below it.
async fn call_spans(rx: &OtlpReceiver, trace_id: &str, names: &[&str]) -> Vec<ReceivedSpan> {
    rx.wait_for(ARRIVAL, |spans| {
        let here: Vec<_> = in_trace(spans, trace_id);
        std::iter::once("call").chain(names.iter().copied()).all(|n| here.iter().any(|s| s.name() == n))
    })
    .await
}

/// Panics if any byte the receiver got holds the secret in any encoding, the
/// caller's API key, or a placeholder.
fn assert_nothing_secret(rx: &OtlpReceiver, placeholder: &str) {
    let raw = rx.raw();
    assert!(!raw.is_empty(), "nothing was exported");
    let contains = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (enc, form) in encodings(SECRET) {
        assert!(!contains(&form), "an export holds the secret ({enc} encoded)");
    }
    assert!(!contains(AGENT_KEY), "an export holds the caller's API key");
    assert!(!contains(placeholder), "an export holds the placeholder");
    assert!(!contains("amount"), "an export holds the call's arguments");
}

/// Stops the gateway with SIGTERM (it flushes queued spans) and waits for it to exit.
async fn stop(gw: &mut Cloakroomd) {
    let ok = Command::new("kill").arg("-TERM").arg(gw.pid().to_string()).status().expect("kill -TERM");
    assert!(ok.success());
    for _ in 0..600 {
        if !gw.is_running() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cloakroomd did not stop on SIGTERM: {}", gw.stderr());
}

async fn span_tree(protocol: OtlpProtocol) {
    let rx = OtlpReceiver::start(protocol).await;
    let s = setup(&rx.endpoint(), protocol, "").await;
    let (trace_id, parent_id) = caller_ids(1);
    let answer = call(&s, "/fn/leaky/charge", Some(&format!("00-{trace_id}-{parent_id}-01"))).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains("sk_live"), "the answer is masked: {}", answer.body);

    // The upstream got the secret and the trace context of the gateway's upstream span.
    let got = s.up.requests().pop().expect("the call was forwarded");
    assert_eq!(got.header("x-api-key").as_deref(), Some(SECRET));
    let upstream_tp = got.header("traceparent").expect("a traceparent upstream");
    let parts: Vec<&str> = upstream_tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{upstream_tp}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", trace_id.as_str(), "01"), "{upstream_tp}");
    assert_ne!(parts[2], parent_id, "the upstream's parent is the gateway's span, not the caller's");
    assert_eq!(got.header("tracestate").as_deref(), Some("vendor=opaque,other=1"));

    let spans = call_spans(&rx, &trace_id, &CHILDREN).await;
    let here = in_trace(&spans, &trace_id);
    let root = named(&here, "call");
    assert_eq!(root.parent_span_id(), parent_id, "the call continues the caller's span");
    assert_eq!(root.service_name.as_deref(), Some("cloakroomd"));
    assert_eq!(root.attr("cloakroom.call_id").as_deref(), Some(answer.call_id.as_str()));
    assert_eq!(root.attr("cloakroom.function").as_deref(), Some("leaky"));
    assert_eq!(root.attr("cloakroom.decision").as_deref(), Some("allow"));
    assert_eq!(root.attr("cloakroom.rule").as_deref(), Some("agents call leaky"));
    assert_eq!(root.attr("cloakroom.secrets").as_deref(), Some("stripe_key"));
    assert_eq!(root.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(root.attr("cloakroom.upstream.status_code").as_deref(), Some("200"));
    assert_eq!(root.attr("http.request.method").as_deref(), Some("POST"));
    assert!(root.attr("cloakroom.masked").is_some_and(|m| m != "0"), "{:?}", root.attr("cloakroom.masked"));
    assert_eq!(root.attr("error.type"), None);
    for name in CHILDREN {
        assert_eq!(named(&here, name).parent_span_id(), root.span_id(), "{name} is a child of the call span");
    }
    let upstream = named(&here, "upstream");
    assert_eq!(upstream.span_id(), parts[2], "the upstream's traceparent names the upstream span");
    assert_eq!(upstream.attr("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(upstream.attr("cloakroom.function").as_deref(), Some("leaky"));
    let policy = named(&here, "policy");
    assert_eq!(policy.attr("cloakroom.decision").as_deref(), Some("allow"));
    assert_eq!(policy.attr("cloakroom.rule").as_deref(), Some("agents call leaky"));
    assert_eq!(named(&here, "detokenize").attr("cloakroom.secrets").as_deref(), Some("stripe_key"));
    assert_nothing_secret(&rx, &s.placeholder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_exports_its_span_tree_in_the_callers_trace_over_http() {
    span_tree(OtlpProtocol::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_exports_its_span_tree_in_the_callers_trace_over_grpc() {
    span_tree(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_approval_held_calls_carry_their_decision_and_an_invalid_traceparent_starts_a_trace() {
    let rx = OtlpReceiver::start(OtlpProtocol::Http).await;
    let s = setup(&rx.endpoint(), OtlpProtocol::Http, "").await;

    let (denied_trace, denied_parent) = caller_ids(2);
    let denied = call(&s, "/fn/blocked/x", Some(&format!("00-{denied_trace}-{denied_parent}-01"))).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let (held_trace, held_parent) = caller_ids(3);
    let held = call(&s, "/fn/refund/x", Some(&format!("00-{held_trace}-{held_parent}-01"))).await;
    assert_eq!(held.status, 202, "{}", held.body);
    let approval_id = serde_json::from_str::<Value>(&held.body).unwrap()["approval_id"].as_str().unwrap().to_owned();
    let forwarded = s.up.requests().len();
    // Not a traceparent: ignored, the call starts a trace of its own and still succeeds.
    let bad = call(&s, "/fn/leaky/x", Some("00-not-a-trace-01")).await;
    assert_eq!(bad.status, 200, "{}", bad.body);

    let spans = rx
        .wait_for(ARRIVAL, |spans| {
            let sealed = |t: &str| in_trace(spans, t).iter().filter(|s| s.name() == "call").count();
            sealed(&denied_trace) == 1
                && sealed(&held_trace) == 1
                && spans
                    .iter()
                    .any(|s| s.name() == "call" && s.attr("cloakroom.call_id").as_deref() == Some(&bad.call_id))
        })
        .await;

    let here = in_trace(&spans, &denied_trace);
    let root = named(&here, "call");
    assert_eq!(root.attr("cloakroom.decision").as_deref(), Some("deny"));
    assert_eq!(root.attr("cloakroom.rule").as_deref(), Some("nobody calls blocked"));
    assert_eq!(root.attr("cloakroom.function").as_deref(), Some("blocked"));
    assert_eq!(root.attr("error.type").as_deref(), Some("forbidden"));
    assert_eq!(root.attr("http.response.status_code").as_deref(), Some("403"));
    let policy = named(&here, "policy");
    assert_eq!(policy.attr("cloakroom.decision").as_deref(), Some("deny"));
    assert_eq!(policy.attr("error.type").as_deref(), Some("forbidden"));
    assert!(
        here.iter().all(|s| !["upstream", "detokenize", "approvals"].contains(&s.name())),
        "a denied call goes no further"
    );

    let here = in_trace(&spans, &held_trace);
    let root = named(&here, "call");
    assert_eq!(root.attr("cloakroom.decision").as_deref(), Some("approve"));
    assert_eq!(root.attr("cloakroom.rule").as_deref(), Some("refunds need a lead"));
    assert_eq!(root.attr("cloakroom.approval_id").as_deref(), Some(approval_id.as_str()));
    assert_eq!(root.attr("http.response.status_code").as_deref(), Some("202"));
    assert_eq!(named(&here, "policy").attr("cloakroom.approval_id").as_deref(), Some(approval_id.as_str()));
    let approvals = named(&here, "approvals");
    assert_eq!(approvals.attr("cloakroom.approval_id").as_deref(), Some(approval_id.as_str()));
    assert_eq!(approvals.parent_span_id(), root.span_id());
    assert!(here.iter().all(|s| s.name() != "upstream"), "a held call is not forwarded");
    assert_eq!(forwarded, 0, "neither the denied nor the held call was forwarded");

    let root = spans
        .iter()
        .find(|s| s.name() == "call" && s.attr("cloakroom.call_id").as_deref() == Some(&bad.call_id))
        .unwrap();
    assert_eq!(root.parent_span_id(), "", "an invalid traceparent is ignored: a new trace");
    let got = s.up.requests().pop().unwrap();
    let tp = got.header("traceparent").expect("a traceparent upstream");
    assert!(tp.starts_with(&format!("00-{}-", root.trace_id())), "{tp}");
    assert_nothing_secret(&rx, &s.placeholder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_ratio_zero_exports_only_what_a_sampled_caller_asks_for() {
    let rx = OtlpReceiver::start(OtlpProtocol::Grpc).await;
    let mut s = setup(&rx.endpoint(), OtlpProtocol::Grpc, "sample_ratio = 0.0").await;
    for _ in 0..3 {
        assert_eq!(call(&s, "/fn/leaky/x", None).await.status, 200);
    }
    // A caller that sampled its trace is followed (parent-based sampling).
    let (trace_id, parent_id) = caller_ids(4);
    assert_eq!(call(&s, "/fn/leaky/x", Some(&format!("00-{trace_id}-{parent_id}-01"))).await.status, 200);
    // The upstream still gets a trace context: the unsampled flag for the others.
    let flags: Vec<String> =
        s.up.requests().iter().map(|r| r.header("traceparent").unwrap()[53..].to_owned()).collect();
    assert_eq!(flags, ["00", "00", "00", "01"]);
    // Shutting down flushes what is queued: after it, everything that will arrive has.
    stop(&mut s.gw).await;
    let spans = rx.spans();
    assert!(spans.iter().all(|s| s.trace_id() == trace_id), "only the sampled caller's trace is exported");
    let here = in_trace(&spans, &trace_id);
    for name in std::iter::once("call").chain(CHILDREN) {
        named(&here, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_while_the_trace_receiver_is_down() {
    for protocol in [OtlpProtocol::Http, OtlpProtocol::Grpc] {
        // Nothing listens there.
        let endpoint = format!("http://127.0.0.1:{}", cloakroom_testkit::free_port());
        let mut s = setup(&endpoint, protocol, "").await;
        for i in 0..20u8 {
            let (t, p) = caller_ids(10 + i);
            let answer = call(&s, "/fn/leaky/x", Some(&format!("00-{t}-{p}-01"))).await;
            assert_eq!(answer.status, 200, "{protocol:?}: {}", answer.body);
            assert!(!answer.body.contains("sk_live"));
        }
        let health = reqwest::get(s.gw.admin_url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(!s.gw.stderr().contains(SECRET));
        // The failed exports are logged (by the OpenTelemetry SDK, under its targets).
        s.gw.wait_for_log("opentelemetry", 1).await;
        stop(&mut s.gw).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_telemetry_the_callers_trace_headers_pass_through_untouched() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
        allow("agents", &["echo"], &["agents"])
    );
    let gw = Cloakroomd::start("", &rest).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let res = reqwest::Client::new()
        .get(gw.url("/fn/echo/x"))
        .bearer_auth(AGENT_KEY)
        .header("traceparent", tp)
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = up.requests().pop().unwrap();
    assert_eq!(got.header("traceparent").as_deref(), Some(tp));
    assert_eq!(got.header("tracestate").as_deref(), Some("vendor=opaque"));
}

#[test]
fn telemetry_keys_are_checked_at_load() {
    let check = |telemetry: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloakroom.toml");
        std::fs::write(&path, format!("[telemetry]\n{telemetry}\n")).unwrap();
        let out = Command::new(binary()).arg("--config").arg(&path).arg("--check").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(check("otlp_endpoint = \"http://127.0.0.1:4318\"").0);
    assert!(check("otlp_endpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"\nsample_ratio = 0.25\nservice_name = \"edge\"").0);
    for (bad, key) in [
        ("otlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 1.5", "telemetry.sample_ratio"),
        ("otlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = -0.1", "telemetry.sample_ratio"),
        ("otlp_endpoint = \"127.0.0.1:4318\"", "telemetry.otlp_endpoint"),
        ("otlp_endpoint = \"http://127.0.0.1:4318\"\nprotocol = \"thrift\"", "telemetry.protocol"),
        ("otlp_endpoint = \"http://127.0.0.1:4318\"\nendpoint = \"x\"", "telemetry"),
        ("protocol = \"http\"", "telemetry"),
    ] {
        let (ok, err) = check(bad);
        assert!(!ok, "{bad:?} must be refused");
        assert!(err.contains(key), "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_ends_the_tree_at_the_layer_that_refused_with_its_error_code() {
    let rx = OtlpReceiver::start(OtlpProtocol::Http).await;
    let s = setup(&rx.endpoint(), OtlpProtocol::Http, "").await;
    let tp = |seed: u8| {
        let (t, p) = caller_ids(seed);
        (t.clone(), format!("00-{t}-{p}-01"))
    };
    let (anonymous, anonymous_tp) = tp(20);
    let (unbound, unbound_tp) = tp(21);
    let (down, down_tp) = tp(22);
    let answer = send(&s, "/fn/leaky/x", None, Some(&s.placeholder), Some(&anonymous_tp)).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    // stripe_key is bound to leaky only.
    let answer = send(&s, "/fn/gone/x", Some(AGENT_KEY), Some(&s.placeholder), Some(&unbound_tp)).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = send(&s, "/fn/gone/x", Some(AGENT_KEY), None, Some(&down_tp)).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    let spans = rx
        .wait_for(ARRIVAL, |spans| {
            [&anonymous, &unbound, &down].iter().all(|t| in_trace(spans, t).iter().any(|s| s.name() == "call"))
        })
        .await;
    let error = |span: &ReceivedSpan| span.attr("error.type");
    let names = |here: &[&ReceivedSpan]| {
        let mut n: Vec<String> = here.iter().map(|s| s.name().to_owned()).collect();
        n.sort();
        n
    };

    let here = in_trace(&spans, &anonymous);
    assert_eq!(names(&here), ["audit seal", "call", "identity"]);
    assert_eq!(error(named(&here, "identity")).as_deref(), Some("unauthenticated"));
    assert_eq!(error(named(&here, "call")).as_deref(), Some("unauthenticated"));

    let here = in_trace(&spans, &unbound);
    assert_eq!(names(&here), ["audit seal", "call", "detokenize", "identity", "policy"]);
    assert_eq!(error(named(&here, "detokenize")).as_deref(), Some("secret_not_bound"));
    assert_eq!(error(named(&here, "call")).as_deref(), Some("secret_not_bound"));
    assert_eq!(named(&here, "policy").attr("cloakroom.decision").as_deref(), Some("allow"));

    let here = in_trace(&spans, &down);
    assert_eq!(names(&here), ["audit seal", "call", "detokenize", "identity", "mask", "policy", "upstream"]);
    let upstream = named(&here, "upstream");
    assert_eq!(error(upstream).as_deref(), Some("upstream_unavailable"));
    assert_eq!(upstream.attr("http.response.status_code"), None, "no answer from the function");
    assert_eq!(error(named(&here, "call")).as_deref(), Some("upstream_unavailable"));
    assert_eq!(named(&here, "call").attr("http.response.status_code").as_deref(), Some("502"));
    assert_nothing_secret(&rx, &s.placeholder);
}
