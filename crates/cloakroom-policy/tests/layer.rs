//! `PolicyLayer` end to end in a tower stack: deny, allow, approve (202 and then the
//! approved retry), approval header checks, holding the call with `approvals.wait`,
//! failing closed.

mod common;

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use cloakroom_core::{
    ApprovalRef, AuditNote, Call, CallId, ClientAddr, Decision, Effect, Error, ErrorCode, Identity, ShadowVerdict,
};
use cloakroom_policy::{
    ApprovalState, Approvals, ApprovalsConfig, PendingApproval, Policies, PolicyLayer, PolicySet, SecretsInCall,
    SledApprovalStore,
};
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{service_fn, util::BoxCloneService, ServiceBuilder, ServiceExt};

const RULES: &str = r#"
[[rules]]
name = "ops may call payments"
effect = "allow"
functions = ["payments/*"]
groups = ["ops"]

[[rules]]
name = "refunds need finance"
effect = "approve"
functions = ["payments/refund"]
approvers = ["finance"]

[[rules]]
name = "no wipes"
effect = "deny"
functions = ["admin/wipe"]

[[rules]]
name = "local callers"
effect = "allow"
functions = ["local/*"]
source_cidrs = ["127.0.0.0/8"]

[[rules]]
name = "would hold listing"
effect = "approve"
functions = ["payments/list"]
approvers = ["finance"]
mode = "shadow"
"#;

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<cloakroom_policy::ResponseBody<Full<Bytes>>>, Infallible>;

struct Harness {
    _dir: tempfile::TempDir,
    approvals: Approvals,
    forwarded: Arc<AtomicUsize>,
    svc: Svc,
}

fn harness(wait: Duration) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
    let approvals = Approvals::new(store, ApprovalsConfig { wait, ..Default::default() });
    let policies = Policies::new(set(RULES));
    let forwarded = Arc::new(AtomicUsize::new(0));
    let count = forwarded.clone();
    let svc = ServiceBuilder::new().layer(PolicyLayer::new(policies, approvals.clone())).service(service_fn(
        move |req: Request<Full<Bytes>>| {
            count.fetch_add(1, Ordering::SeqCst);
            // The inner service sees the decision (and the approval) in the extensions.
            let d = req.extensions().get::<Decision>().cloned().expect("decision in extensions");
            let approval = req.extensions().get::<ApprovalRef>().map(|a| a.id.clone());
            async move {
                let body = json!({"effect": d.effect, "rule": d.rule, "approval": approval});
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
            }
        },
    ));
    Harness { _dir: dir, approvals, forwarded, svc: BoxCloneService::new(svc) }
}

fn request(id: Option<&Identity>, c: Option<&Call>, note: &AuditNote, call_id: CallId) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    if let Some(id) = id {
        req.extensions_mut().insert(id.clone());
    }
    if let Some(c) = c {
        req.extensions_mut().insert(c.clone());
    }
    if let (Some(id), Some(c)) = (id, c) {
        req.extensions_mut().insert(scope_for(id, c));
    }
    req.extensions_mut().insert(note.clone());
    req.extensions_mut().insert(call_id);
    req
}

async fn send(h: &Harness, req: Request<Full<Bytes>>) -> (StatusCode, serde_json::Value, http::Extensions) {
    let res = h.svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, serde_json::from_slice(&bytes).unwrap(), parts.extensions)
}

#[tokio::test]
async fn an_allowed_call_goes_ahead_with_the_decision_recorded() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("payments/list", json!(null)));
    let note = AuditNote::new(CallId::new());
    let (status, body, _) = send(&h, request(Some(&id), Some(&c), &note, CallId::new())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rule"], "ops may call payments");
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 1);
    let snap = note.snapshot();
    assert_eq!(snap.decision.unwrap().effect, Effect::Allow);
    assert!(snap.error.is_none());
}

#[tokio::test]
async fn a_shadow_approve_holds_nothing_and_is_noted_for_the_audit_record() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("payments/list", json!(null)));
    let note = AuditNote::new(CallId::new());
    let (status, body, _) = send(&h, request(Some(&id), Some(&c), &note, CallId::new())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&body["rule"], &body["approval"]), (&json!("ops may call payments"), &json!(null)));
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 1);
    assert!(h.approvals.list(Some(ApprovalState::Pending)).await.unwrap().is_empty(), "no approval was requested");
    let snap = note.snapshot();
    assert_eq!(snap.shadow, vec![ShadowVerdict { rule: "would hold listing".into(), effect: Effect::Approve }]);
    assert!(snap.approval.is_none());
}

#[tokio::test]
async fn a_denied_call_gets_403_forbidden_naming_the_rule() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("admin/wipe", json!(null)));
    let note = AuditNote::new(CallId::new());
    let call_id = CallId::new();
    let (status, body, ext) = send(&h, request(Some(&id), Some(&c), &note, call_id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"].as_str().unwrap().contains("no wipes"), "{body}");
    assert_eq!(body["error"]["call_id"], call_id.to_string());
    assert_eq!(ext.get::<Error>().unwrap().code, ErrorCode::Forbidden);
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
    let snap = note.snapshot();
    assert_eq!(snap.decision.unwrap().rule.as_deref(), Some("no wipes"));
    assert_eq!(snap.error.unwrap().code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_call_no_rule_allows_is_denied_by_default() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("bob", &["dev"]), call("payments/list", json!(null)));
    let (status, body, _) = send(&h, request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("no policy rule allows"), "{body}");
}

#[tokio::test]
async fn the_client_address_feeds_source_cidr_rules() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("bob", &[]), call("local/x", json!(null)));
    let mut req = request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    req.extensions_mut().insert(ClientAddr("127.0.0.1:5555".parse().unwrap()));
    assert_eq!(send(&h, req).await.0, StatusCode::OK);
    let mut req = request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    req.extensions_mut().insert(ClientAddr("192.0.2.1:5555".parse().unwrap()));
    assert_eq!(send(&h, req).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn missing_identity_or_call_fails_closed() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("payments/list", json!(null)));
    let note = AuditNote::new(CallId::new());
    let (status, body, _) = send(&h, request(None, Some(&c), &note, CallId::new())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _, _) = send(&h, request(Some(&id), None, &note, CallId::new())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_call_needing_approval_without_a_call_scope_is_refused_and_asks_nothing() {
    // Without the scope there is nothing to bind an approval to: refuse, do not ask.
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("payments/refund", json!({"amount": 900})));
    let mut req = request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    req.extensions_mut().remove::<cloakroom_core::CallScope>();
    let (status, body, _) = send(&h, req).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert!(body["error"]["message"].as_str().unwrap().contains("scope"), "{body}");
    assert!(h.approvals.list(None).await.unwrap().is_empty());
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn works_without_an_audit_note() {
    let h = harness(Duration::ZERO);
    let (id, c) = (who("alice", &["ops"]), call("payments/list", json!(null)));
    let mut req = Request::new(Full::new(Bytes::new()));
    req.extensions_mut().insert(id);
    req.extensions_mut().insert(c);
    assert_eq!(h.svc.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn approval_flow_202_then_approved_retry_goes_ahead_once() {
    let h = harness(Duration::ZERO);
    let alice = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 900}));
    let note = AuditNote::new(CallId::new());
    let call_id = CallId::new();
    let (status, body, ext) = send(&h, request(Some(&alice), Some(&c), &note, call_id)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "pending_approval");
    assert_eq!(body["call_id"], call_id.to_string());
    let approval_id = body["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(ext.get::<PendingApproval>().unwrap().approval_id, approval_id);
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
    let snap = note.snapshot();
    assert_eq!(snap.decision.unwrap().effect, Effect::Approve);
    assert_eq!(snap.approval.unwrap().id, approval_id);
    let stored = h.approvals.get(&approval_id).await.unwrap();
    assert_eq!(stored.call_id, Some(call_id.to_string()));
    assert_eq!(stored.arguments, json!({"amount": 900}));

    // Retrying with the header before approval: refused.
    let with_header = |note: &AuditNote| {
        let mut req = request(Some(&alice), Some(&c), note, CallId::new());
        req.headers_mut().insert("Cloakroom-Approval", approval_id.parse().unwrap());
        req
    };
    let (status, body, _) = send(&h, with_header(&AuditNote::new(CallId::new()))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("approval_invalid")));

    h.approvals.approve(&approval_id, &who("carol", &["finance"]), None).await.unwrap();
    let note = AuditNote::new(CallId::new());
    let (status, body, _) = send(&h, with_header(&note)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approval"], approval_id);
    assert_eq!(body["effect"], "allow");
    assert_eq!(body["rule"], "refunds need finance");
    let snap = note.snapshot();
    let approval = snap.approval.unwrap();
    assert_eq!((approval.id.as_str(), approval.decided_by.as_deref()), (approval_id.as_str(), Some("carol")));
    assert!(snap.decision.unwrap().reason.contains("approved by carol"));
    assert_eq!(h.approvals.get(&approval_id).await.unwrap().state, ApprovalState::Used);

    // Used once: a second retry is refused.
    let (status, body, _) = send(&h, with_header(&AuditNote::new(CallId::new()))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("approval_invalid")));
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_approval_for_other_arguments_or_an_unknown_id_is_refused() {
    let h = harness(Duration::ZERO);
    let alice = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 900}));
    let (_, body, _) = send(&h, request(Some(&alice), Some(&c), &AuditNote::new(CallId::new()), CallId::new())).await;
    let approval_id = body["approval_id"].as_str().unwrap().to_owned();
    h.approvals.approve(&approval_id, &who("carol", &["finance"]), None).await.unwrap();

    let changed = call("payments/refund", json!({"amount": 90000}));
    let mut req = request(Some(&alice), Some(&changed), &AuditNote::new(CallId::new()), CallId::new());
    req.headers_mut().insert("Cloakroom-Approval", approval_id.parse().unwrap());
    let (status, body, _) = send(&h, req).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("approval_invalid")));
    let mut req = request(Some(&alice), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    req.headers_mut().insert("Cloakroom-Approval", "not-an-approval".parse().unwrap());
    let (status, _, _) = send(&h, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_secrets_extension_reaches_datalog() {
    let dir = tempfile::tempdir().unwrap();
    let approvals = Approvals::new(Arc::new(SledApprovalStore::open(dir.path()).unwrap()), ApprovalsConfig::default());
    let set = PolicySet::builder().datalog_source("s.datalog", "allow if secret(\"stripe_key\");").build().unwrap();
    let svc = ServiceBuilder::new().layer(PolicyLayer::new(Policies::new(set), approvals)).service(service_fn(
        |_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) },
    ));
    let (id, c) = (who("a", &[]), call("f", json!(null)));
    let req = request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
    let mut req = request(Some(&id), Some(&c), &AuditNote::new(CallId::new()), CallId::new());
    req.extensions_mut().insert(SecretsInCall(vec!["stripe_key".into()]));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
}

/// Approves (or denies) the first pending approval once it shows up.
async fn decide_when_pending(approvals: Approvals, approve: bool) {
    for _ in 0..400 {
        if let Some(a) = approvals.list(Some(ApprovalState::Pending)).await.unwrap().into_iter().next() {
            let carol = who("carol", &["finance"]);
            if approve {
                approvals.approve(&a.id, &carol, None).await.unwrap();
            } else {
                approvals.deny(&a.id, &carol, Some("not today".into())).await.unwrap();
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pending approval appeared");
}

#[tokio::test]
async fn with_wait_the_call_is_held_until_approved_and_then_goes_ahead() {
    let h = harness(Duration::from_secs(30));
    let approver = tokio::spawn(decide_when_pending(h.approvals.clone(), true));
    let (alice, c) = (who("alice", &["ops"]), call("payments/refund", json!({"amount": 900})));
    let note = AuditNote::new(CallId::new());
    let (status, body, _) = send(&h, request(Some(&alice), Some(&c), &note, CallId::new())).await;
    approver.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["approval"].as_str().unwrap();
    assert_eq!(h.approvals.get(id).await.unwrap().state, ApprovalState::Used);
    assert_eq!(note.snapshot().approval.unwrap().decided_by.as_deref(), Some("carol"));
}

#[tokio::test]
async fn with_wait_a_denial_answers_403() {
    let h = harness(Duration::from_secs(30));
    let approver = tokio::spawn(decide_when_pending(h.approvals.clone(), false));
    let (alice, c) = (who("alice", &["ops"]), call("payments/refund", json!({"amount": 900})));
    let (status, body, _) =
        send(&h, request(Some(&alice), Some(&c), &AuditNote::new(CallId::new()), CallId::new())).await;
    approver.await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("denied by carol"), "{body}");
    assert_eq!(h.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn with_wait_an_undecided_call_answers_202_when_the_wait_ends() {
    let h = harness(Duration::from_secs(5));
    let (alice, c) = (who("alice", &["ops"]), call("payments/refund", json!({"amount": 900})));
    let (status, body, _) =
        send(&h, request(Some(&alice), Some(&c), &AuditNote::new(CallId::new()), CallId::new())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "pending_approval");
}
