//! The DetokenizeLayer in front of a real upstream: what reaches the function, and what
//! never does.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cloakroom_core::{
    ApprovalLookup, ApprovalRef, CallId, CallScope, ConsumedApproval, Effect, ErrorCode, LookupFuture, Placeholder,
    PlaceholderUse, Secret,
};
use cloakroom_testkit::RecordingUpstream;
use cloakroom_vault::{BindingSpec, Catalog, DetokenizeLayer, EmbeddedVault, InFlight, Keys};
use common::{gateway, send, with_context};
use http::Request;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    upstream: RecordingUpstream,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
    let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await.unwrap();
    Fixture { _dir: dir, catalog, upstream: RecordingUpstream::echo().await }
}

fn spec(functions: &[&str], locations: &[&str], groups: &[&str]) -> BindingSpec {
    BindingSpec {
        functions: functions.iter().map(|s| s.to_string()).collect(),
        locations: locations.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

impl Fixture {
    async fn put(&self, name: &str, value: &str, b: BindingSpec) -> Placeholder {
        self.catalog.put(name, Secret::from(value), Some(b)).await.unwrap()
    }
    fn layer(&self) -> DetokenizeLayer {
        DetokenizeLayer::new(self.catalog.clone())
    }
}

fn post(uri: &str, content_type: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let body = body.into();
    Request::post(uri)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Full::new(body))
        .unwrap()
}

#[tokio::test]
async fn a_placeholder_in_a_header_is_substituted_and_recorded() {
    let f = fixture().await;
    let p =
        f.put("stripe_key", "sk_live_header_0123", spec(&["payments/*"], &["header:Authorization"], &["ops"])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let mut req = post("/charge", "text/plain", "hello");
    req.headers_mut().insert("authorization", format!("Bearer {p}").parse().unwrap());
    let (req, note, _) = with_context(req, "payments/charge", &["ops"]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    let got = &f.upstream.requests()[0];
    assert_eq!(got.header("authorization").unwrap(), "Bearer sk_live_header_0123");
    let used = note.snapshot().secrets_used;
    assert_eq!(used.len(), 1);
    assert_eq!((used[0].name.as_str(), used[0].location.as_str()), ("stripe_key", "header:authorization"));
    assert_eq!(used[0].placeholder, p);
}

#[tokio::test]
async fn a_placeholder_in_a_query_value_is_substituted_percent_encoded() {
    let f = fixture().await;
    let p = f.put("q_key", "a&b=c d/é", spec(&["search"], &["query:key"], &[])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let req = Request::get(format!("/find?x=1&key={p}&y=2")).body(Full::new(Bytes::new())).unwrap();
    let (req, note, _) = with_context(req, "search", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    let got = &f.upstream.requests()[0];
    assert_eq!(got.uri, "/find?x=1&key=a%26b%3Dc%20d%2F%C3%A9&y=2");
    assert_eq!(note.snapshot().secrets_used[0].location, "query:key");
}

#[tokio::test]
async fn a_placeholder_in_a_json_field_is_substituted_escaped_and_content_length_fixed() {
    let f = fixture().await;
    let p = f.put("card", "tok_\"quoted\"\\x", spec(&["payments"], &["json:/card/token"], &[])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let body = format!(r#"{{"amount": 10, "card": {{"token": "{p}"}}, "note": "keep cloak_unknown"}}"#);
    let (req, note, _) = with_context(post("/", "application/json", body), "payments", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    let got = &f.upstream.requests()[0];
    let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(json["card"]["token"], "tok_\"quoted\"\\x");
    assert_eq!(json["note"], "keep cloak_unknown");
    assert_eq!(got.header("content-length").unwrap(), got.body.len().to_string());
    assert_eq!(note.snapshot().secrets_used[0].location, "json:/card/token");
}

#[tokio::test]
async fn a_placeholder_in_a_non_json_body_is_substituted_raw() {
    let f = fixture().await;
    let p = f.put("db", "pa$$ word\n", spec(&["sql"], &["body"], &[])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let (req, note, _) = with_context(post("/", "text/plain", format!("password={p};")), "sql", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    assert_eq!(f.upstream.requests()[0].body_text(), "password=pa$$ word\n;");
    assert_eq!(note.snapshot().secrets_used[0].location, "body");
}

#[tokio::test]
async fn a_placeholder_split_across_body_chunks_is_substituted() {
    let f = fixture().await;
    let p = f.put("chunky", "CHUNKED-SECRET-VALUE", spec(&["f"], &["body"], &[])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let text = format!("before {p} after");
    let split = 7 + 13; // inside the placeholder
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::copy_from_slice(&text.as_bytes()[..split]))),
        Ok(Frame::data(Bytes::copy_from_slice(&text.as_bytes()[split..split + 5]))),
        Ok(Frame::data(Bytes::copy_from_slice(&text.as_bytes()[split + 5..]))),
    ];
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let req = Request::post("/").header("content-type", "text/plain").body(body).unwrap();
    let (req, _, _) = with_context(req, "f", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    assert_eq!(f.upstream.requests()[0].body_text(), "before CHUNKED-SECRET-VALUE after");
}

async fn assert_denied(f: &Fixture, req: Request<Full<Bytes>>, function: &str, groups: &[&str]) {
    let svc = gateway(&f.layer(), f.upstream.url());
    let (req, note, id) = with_context(req, function, groups);
    let (status, body) = send(&svc, req).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "secret_not_bound");
    assert_eq!(body["error"]["call_id"], id.to_string());
    assert!(f.upstream.requests().is_empty(), "nothing may reach the upstream on denial");
    let snap = note.snapshot();
    assert_eq!(snap.error.unwrap().code, ErrorCode::SecretNotBound);
    let decision = snap.decision.unwrap();
    assert_eq!((decision.effect, decision.reason.as_str()), (Effect::Deny, "secret_not_bound"));
    assert!(snap.secrets_used.is_empty());
}

#[tokio::test]
async fn a_placeholder_sent_to_a_function_outside_its_binding_is_denied_and_nothing_is_forwarded() {
    let f = fixture().await;
    let p = f.put("stripe_key", "sk_live_never_leaves", spec(&["payments/*"], &["body"], &[])).await;
    assert_denied(&f, post("/", "text/plain", format!("key={p}")), "exfiltrate/post", &[]).await;
}

#[tokio::test]
async fn a_placeholder_at_a_location_outside_its_binding_is_denied() {
    let f = fixture().await;
    let p = f.put("k", "value-location-test", spec(&["f"], &["header:authorization", "json:/ok"], &[])).await;
    assert_denied(&f, post("/", "application/json", format!(r#"{{"other": "{p}"}}"#)), "f", &[]).await;
    let mut req = post("/", "text/plain", "x");
    req.headers_mut().insert("x-api-key", p.as_str().parse().unwrap());
    assert_denied(&f, req, "f", &[]).await;
    // Not valid JSON though labelled so: refused as malformed (it was opaque bytes).
    assert_shape_refused(&f, post("/", "application/json", format!(r#"{{"ok": "{p}""#)), "f", "value-location-test")
        .await;
}

#[tokio::test]
async fn a_caller_outside_the_groups_is_denied() {
    let f = fixture().await;
    let p = f.put("k", "value-group-test", spec(&["f"], &["body"], &["payments-ops"])).await;
    assert_denied(&f, post("/", "text/plain", p.to_string()), "f", &["ops"]).await;
}

#[tokio::test]
async fn an_expired_binding_is_denied() {
    let f = fixture().await;
    let mut b = spec(&["f"], &["body"], &[]);
    b.expires = Some(time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
    let p = f.put("k", "value-expired-test", b).await;
    assert_denied(&f, post("/", "text/plain", p.to_string()), "f", &[]).await;
}

#[tokio::test]
async fn a_secret_without_binding_is_never_substituted() {
    let f = fixture().await;
    let p = f.catalog.put("unbound", Secret::from("value-unbound-x"), None).await.unwrap();
    assert_denied(&f, post("/", "text/plain", p.to_string()), "f", &[]).await;
}

#[tokio::test]
async fn one_bad_placeholder_denies_the_whole_call_even_with_a_good_one() {
    let f = fixture().await;
    let good = f.put("good", "value-good-1234", spec(&["f"], &["body"], &[])).await;
    let bad = f.put("bad", "value-bad-12345", spec(&["g"], &["body"], &[])).await;
    assert_denied(&f, post("/", "text/plain", format!("{good} {bad}")), "f", &[]).await;
}

#[tokio::test]
async fn an_unknown_placeholder_passes_untouched() {
    let f = fixture().await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let unknown = "cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut req = post(&format!("/?k={unknown}"), "text/plain", format!("x {unknown} y"));
    req.headers_mut().insert("authorization", format!("Bearer {unknown}").parse().unwrap());
    let (req, note, _) = with_context(req, "f", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    let got = &f.upstream.requests()[0];
    assert_eq!(got.body_text(), format!("x {unknown} y"));
    assert_eq!(got.uri, format!("/?k={unknown}"));
    assert_eq!(got.header("authorization").unwrap(), format!("Bearer {unknown}"));
    assert!(note.snapshot().secrets_used.is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_forwarding() {
    let f = fixture().await;
    let svc = gateway(&f.layer().max_body_bytes(16), f.upstream.url());
    let (req, _, _) = with_context(post("/", "text/plain", vec![b'x'; 17]), "f", &[]);
    let (status, body) = send(&svc, req).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    assert!(f.upstream.requests().is_empty());
}

/// An approval store stand-in: the records it holds, as the detokenizer reads them.
struct Records(Vec<ConsumedApproval>);

impl ApprovalLookup for Records {
    fn consumed_by(&self, id: &str, call_id: CallId) -> LookupFuture<'_> {
        let found = self.0.iter().find(|a| a.id == id && a.call_id == call_id).cloned();
        Box::pin(async move { Ok(found) })
    }
}

fn scope_with(placeholder: &Placeholder) -> CallScope {
    CallScope {
        issuer: "api_key".into(),
        subject: "alice".into(),
        function: "wire".into(),
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        content_type: Some("text/plain".into()),
        placeholders: vec![PlaceholderUse::new(placeholder.as_str(), Some("wire_key"), "body")],
        body_sha256: CallScope::body_digest(placeholder.as_str().as_bytes()),
    }
}

#[tokio::test]
async fn a_binding_with_approvers_needs_the_approval_record_to_cover_this_exact_use() {
    let f = fixture().await;
    let mut b = spec(&["wire"], &["body"], &[]);
    b.approvers = vec!["finance-leads".into()];
    let p = f.put("wire_key", "value-approval-123", b).await;
    let other = f.put("other_key", "value-other-123", spec(&["wire"], &["body"], &[])).await;
    assert_denied(&f, post("/", "text/plain", p.to_string()), "wire", &[]).await;

    let reference = ApprovalRef {
        id: "ap-1".into(),
        requested_by: "alice".into(),
        decided_by: Some("bob".into()),
        decided_at: Some("2026-11-25T00:00:00Z".into()),
    };
    // A request claiming an approval, with no approval records to check it: refused.
    let svc = gateway(&f.layer(), f.upstream.url());
    let (mut req, _, _) = with_context(post("/", "text/plain", p.to_string()), "wire", &[]);
    req.extensions_mut().insert(reference.clone());
    req.extensions_mut().insert(scope_with(&p));
    assert_eq!(send(&svc, req).await.0, 403);

    // The record decides. Each way it can fail to cover the use is a refusal.
    let good = |call_id: CallId| ConsumedApproval {
        id: "ap-1".into(),
        call_id,
        scope_digest: scope_with(&p).digest(),
        placeholders: scope_with(&p).placeholders,
        groups_met: vec!["finance-leads".into()],
    };
    type Change<'a> = Box<dyn Fn(&mut ConsumedApproval, &mut CallScope) + 'a>;
    let cases: Vec<(&str, Change<'_>, u16)> = vec![
        ("used by another call", Box::new(|c, _| c.call_id = CallId::new()), 403),
        ("for another scope", Box::new(|c, _| c.scope_digest = "0".repeat(64)), 403),
        ("the request's scope differs", Box::new(|_, s| s.method = "PUT".into()), 403),
        ("the placeholder was not approved", Box::new(|c, _| c.placeholders.clear()), 403),
        (
            "approved for the placeholder elsewhere",
            Box::new(|c, _| c.placeholders[0].location = "header:x-key".into()),
            403,
        ),
        ("another placeholder was approved", Box::new(|c, _| c.placeholders[0].placeholder = other.to_string()), 403),
        ("the binding's group was not met", Box::new(|c, _| c.groups_met = vec!["leads".into()]), 403),
        ("everything holds", Box::new(|_, _| {}), 200),
    ];
    for (what, change, want) in cases {
        let (mut req, _, call_id) = with_context(post("/", "text/plain", p.to_string()), "wire", &[]);
        let mut consumed = good(call_id);
        let mut scope = scope_with(&p);
        change(&mut consumed, &mut scope);
        let svc = gateway(&f.layer().approvals(Arc::new(Records(vec![consumed]))), f.upstream.url());
        req.extensions_mut().insert(reference.clone());
        req.extensions_mut().insert(scope);
        assert_eq!(send(&svc, req).await.0, want, "{what}");
    }
    let got = f.upstream.requests();
    assert_eq!(got.len(), 1, "only the covered use was forwarded");
    assert_eq!(got[0].body_text(), "value-approval-123");
}

#[tokio::test]
async fn a_call_is_redeemable_only_while_in_flight_and_by_its_function() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let f = fixture().await;
    let p = f.put("redeem_me", "value-redeem-4567", spec(&["billing"], &["header:x-never"], &["ops"])).await;
    let other = f.put("not_for_billing", "value-other-4567", spec(&["payroll"], &["body"], &["ops"])).await;
    let inflight = InFlight::new(f.catalog.clone());
    let layer = f.layer().inflight(inflight.clone());
    // The "function": redeems during the call, like a function calling POST /v1/redeem.
    let reg = inflight.clone();
    let (p2, o2) = (p.clone(), other.clone());
    let inner = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let (reg, p, other) = (reg.clone(), p2.clone(), o2.clone());
        async move {
            let id = *req.extensions().get::<cloakroom_core::CallId>().unwrap();
            // The call's redemption credential, as the forwarder would send it upstream.
            let token = req.extensions().get::<cloakroom_vault::RedeemToken>().unwrap().expose().to_owned();
            let ok = reg.redeem(&id, p.as_str(), &token).await.map(|s| s.expose().to_vec());
            let wrong_fn = reg.redeem(&id, p.as_str(), "not-the-token").await.is_err();
            let not_bound = reg.redeem(&id, other.as_str(), &token).await.map_err(|e| e.code());
            let body = format!("{}|{wrong_fn}|{:?}", String::from_utf8(ok.unwrap()).unwrap(), not_bound.unwrap_err());
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
        }
    });
    let svc = tower::Layer::layer(&layer, inner);
    let (req, _, id) = with_context(post("/", "text/plain", "no placeholders"), "billing", &["ops"]);
    let res = svc.oneshot(req).await.unwrap();
    assert!(inflight.get(&id).is_some(), "in flight while the response body is alive");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "value-redeem-4567|true|SecretNotBound");
    assert!(inflight.get(&id).is_none(), "removed when the response body ended");
    assert!(inflight.redeem(&id, p.as_str(), "any-token").await.is_err());
}

#[tokio::test]
async fn an_mcp_tool_argument_is_substituted_at_its_pointer_for_that_tool_only() {
    let f = fixture().await;
    let p = f
        .put("gh_token", "ghp_mcp_value_0123", spec(&["github/create_issue"], &["json:/params/arguments/token"], &[]))
        .await;
    let body = |p: &Placeholder| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"create_issue","arguments":{{"token":"{p}"}}}}}}"#
        )
    };
    let svc = gateway(&f.layer(), f.upstream.url());
    let (req, _, _) = with_context(post("/mcp", "application/json", body(&p)), "github/create_issue", &[]);
    assert_eq!(send(&svc, req).await.0, 200);
    let got: serde_json::Value = serde_json::from_slice(&f.upstream.requests()[0].body).unwrap();
    assert_eq!(got["params"]["arguments"]["token"], "ghp_mcp_value_0123");
    // The same placeholder sent to another tool of the same server is refused.
    let (req, _, _) = with_context(post("/mcp", "application/json", body(&p)), "github/delete_repo", &[]);
    assert_eq!(send(&svc, req).await.0, 403);
    assert_eq!(f.upstream.requests().len(), 1);
}

#[tokio::test]
async fn values_never_show_in_debug_output_or_errors() {
    let f = fixture().await;
    let p = f.put("k", "VALUE-THAT-MUST-NOT-PRINT", spec(&["f"], &["body"], &[])).await;
    let snap = f.catalog.snapshot();
    let entry = snap.by_placeholder(p.as_bytes()).unwrap();
    let stored = f.catalog.vault().get("k").await.unwrap().unwrap();
    for text in [
        format!("{:?}", f.catalog),
        format!("{entry:?}"),
        format!("{stored:?}"),
        format!("{snap:?}"),
        format!("{:?}", f.catalog.list()),
        format!("{:?}", snap.value_patterns()),
    ] {
        assert!(!text.contains("VALUE-THAT-MUST-NOT-PRINT"), "{text}");
    }
    // A refusal names the placeholder and place, never the value.
    let svc = gateway(&f.layer(), f.upstream.url());
    let (req, _, _) = with_context(post("/", "text/plain", p.to_string()), "g", &[]);
    let (status, body) = send(&svc, req).await;
    assert_eq!(status, 403);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(p.as_str()) && msg.contains("body") && !msg.contains("VALUE-THAT"), "{msg}");
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use tower::{Layer, ServiceExt};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the text around them and however the body is chunked, every known
        /// placeholder becomes its value and everything else is unchanged.
        #[test]
        fn substitution_matches_a_plain_string_replace(
            pieces in proptest::collection::vec(("[a-z _{}\":,]{0,12}", 0usize..3), 1..8),
            cuts in proptest::collection::vec(0usize..400, 0..5),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let keys = Keys::generate();
                let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
                let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await.unwrap();
                let mut ph = Vec::new();
                for (i, v) in ["first-value-111", "second \"value\" 222", "third/value&333"].iter().enumerate() {
                    ph.push(catalog.put(&format!("s{i}"), Secret::from(*v), Some(spec(&["f"], &["body"], &[]))).await.unwrap());
                }
                let values = ["first-value-111", "second \"value\" 222", "third/value&333"];
                let mut text = String::new();
                let mut expected = String::new();
                for (filler, which) in &pieces {
                    text.push_str(filler);
                    expected.push_str(filler);
                    text.push_str(ph[*which].as_str());
                    expected.push_str(values[*which]);
                }
                let bytes = text.clone().into_bytes();
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
                cuts.sort();
                cuts.dedup();
                let mut chunks = Vec::new();
                let mut at = 0;
                for c in cuts.into_iter().chain([bytes.len()]) {
                    chunks.push(Ok::<_, std::convert::Infallible>(Frame::data(Bytes::copy_from_slice(&bytes[at..c]))));
                    at = c;
                }
                let req = Request::post("/").header("content-type", "text/plain")
                    .body(StreamBody::new(futures_util::stream::iter(chunks))).unwrap();
                let (req, _, _) = with_context(req, "f", &[]);
                let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
                    let body = http_body_util::BodyExt::collect(req.into_body()).await.unwrap().to_bytes();
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(body)))
                });
                let svc = DetokenizeLayer::new(catalog).layer(inner);
                let res = svc.oneshot(req).await.unwrap();
                let out = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
                assert_eq!(String::from_utf8_lossy(&out), expected);
            });
        }
    }
}

/// A refusal of the request's shape: 400 `bad_request`, nothing forwarded, the error
/// in the audit note, no secret in the answer.
async fn assert_shape_refused(f: &Fixture, req: Request<Full<Bytes>>, function: &str, secret: &str) -> String {
    let svc = gateway(&f.layer(), f.upstream.url());
    let (req, note, _) = with_context(req, function, &[]);
    let (status, body) = send(&svc, req).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(!body.to_string().contains(secret), "the secret is in the refusal");
    assert!(f.upstream.requests().is_empty(), "nothing may reach the upstream on refusal");
    assert_eq!(note.snapshot().error.unwrap().code, ErrorCode::BadRequest);
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_json_body_is_located_as_json_whatever_its_content_type() {
    let f = fixture().await;
    let p = f.put("card", "tok_\"q\"", spec(&["payments"], &["json:/card/token"], &[])).await;
    let svc = gateway(&f.layer(), f.upstream.url());
    let body = format!(r#"{{"card": {{"token": "{p}"}}}}"#);
    let (req, note, _) = with_context(post("/", "text/plain", body), "payments", &[]);
    let (status, _) = send(&svc, req).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&f.upstream.requests()[0].body).unwrap();
    assert_eq!(json["card"]["token"], "tok_\"q\"", "JSON-escaped, so the document stays one document");
    assert_eq!(note.snapshot().secrets_used[0].location, "json:/card/token");
}

#[tokio::test]
async fn a_body_that_claims_json_and_is_not_is_refused_not_treated_as_bytes() {
    let f = fixture().await;
    let p = f.put("k", "sk_live_claims_json_0123", spec(&["f"], &["body"], &[])).await;
    let req = post("/", "application/json", format!(r#"{{"a": "{p}", "n": NaN}}"#));
    assert_shape_refused(&f, req, "f", "sk_live_claims_json_0123").await;
}

#[tokio::test]
async fn nesting_deeper_than_the_limit_is_refused() {
    let f = fixture().await;
    let p = f.put("k", "sk_live_deep_json_0123", spec(&["f"], &["body"], &[])).await;
    let mut body = "[".repeat(900_000);
    for _ in 0..1000 {
        body.push_str(&format!("\"{p}\","));
    }
    let message = assert_shape_refused(&f, post("/", "text/plain", body), "f", "sk_live_deep_json_0123").await;
    assert!(message.contains("deeper than 64"), "{message}");
}

#[tokio::test]
async fn more_placeholders_than_the_limit_are_refused() {
    let f = fixture().await;
    let p = f.put("k", "sk_live_many_0123", spec(&["f"], &["body"], &[])).await;
    let body = vec![p.to_string(); cloakroom_core::limits::MAX_PLACEHOLDERS + 1].join(" ");
    let message = assert_shape_refused(&f, post("/", "text/plain", body), "f", "sk_live_many_0123").await;
    assert!(message.contains("more than 1024 placeholders"), "{message}");
}

#[tokio::test]
async fn a_placeholder_under_a_pointer_longer_than_the_limit_is_refused() {
    let f = fixture().await;
    let p = f.put("k", "sk_live_long_ptr_0123", spec(&["f"], &["body"], &[])).await;
    let body = format!(r#"{{"{}": "{p}"}}"#, "k".repeat(cloakroom_core::limits::MAX_POINTER_BYTES + 1));
    assert_shape_refused(&f, post("/", "application/json", body), "f", "sk_live_long_ptr_0123").await;
}
