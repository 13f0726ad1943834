//! Approvals on both stores: the full flow, separation of duties, one use, exact call
//! (every field of the scope), composed requirements met by distinct people, expiry,
//! concurrent approvers and consumers, and two PostgreSQL handles sharing approvals as
//! two replicas would.

mod common;

use std::{sync::Arc, time::Duration};

use cloakroom_core::{CallId, CallScope, Decision, ErrorCode, Identity, PlaceholderUse};
use cloakroom_policy::{
    Approval, ApprovalError, ApprovalState, ApprovalStore, Approvals, ApprovalsConfig, MemoryApprovalStore,
    PostgresApprovalStore, Requester, SledApprovalStore,
};
use cloakroom_testkit::PgDatabase;
use common::*;
use serde_json::json;
use time::OffsetDateTime;

fn decision() -> Decision {
    Decision::approve("refunds need finance", "approval required", vec!["finance".into()])
}

/// The scope of a POST of `body` to `function` by `id`.
fn scope(id: &Identity, function: &str, body: serde_json::Value) -> CallScope {
    CallScope {
        issuer: id.issuer.clone(),
        subject: id.subject.clone(),
        function: function.into(),
        method: "POST".into(),
        path: format!("/fn/{function}"),
        query: String::new(),
        content_type: Some("application/json".into()),
        placeholders: vec![],
        body_sha256: CallScope::body_digest(body.to_string().as_bytes()),
    }
}

async fn ask(approvals: &Approvals, id: &Identity, s: &CallScope, d: &Decision) -> Approval {
    approvals.request(id, s, &json!({}), d, None).await.unwrap()
}

fn service(store: Arc<dyn ApprovalStore>) -> Approvals {
    Approvals::new(store, ApprovalsConfig::default())
}

struct Sled {
    _dir: tempfile::TempDir,
    store: Arc<dyn ApprovalStore>,
}

fn sled() -> Sled {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
    Sled { _dir: dir, store }
}

async fn postgres() -> (PgDatabase, Arc<dyn ApprovalStore>) {
    let db = PgDatabase::create();
    let store = Arc::new(PostgresApprovalStore::connect(&db.url).await.unwrap());
    (db, store)
}

// === the behaviours, each run on every store ===

async fn full_flow(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let carol = who("carol", &["finance"]);
    let mut c = scope(&alice, "payments/refund", json!({"amount": 900, "card": "cloak_abcdefghijklmnopqrstuvwxyz"}));
    c.placeholders.push(PlaceholderUse::new("cloak_abcdefghijklmnopqrstuvwxyz", Some("card"), "body"));

    let a = approvals.request(&alice, &c, &json!({"amount": 900}), &decision(), None).await.unwrap();
    assert_eq!(a.state, ApprovalState::Pending);
    assert_eq!(
        a.requester,
        Requester { subject: "alice".into(), issuer: "api_key".into(), groups: vec!["ops".into()] }
    );
    assert_eq!((a.function.as_str(), a.digest.as_str()), ("payments/refund", c.digest().as_str()));
    assert_eq!(a.scope.as_ref(), Some(&c));
    assert_eq!(a.arguments, json!({"amount": 900}));
    assert_eq!(a.approvers, vec!["finance".to_string()]);
    assert_eq!(a.requirements.len(), 1);
    assert!(!a.requirements[0].met);
    assert_eq!(a.rule.as_deref(), Some("refunds need finance"));
    assert_eq!(a.expires_at - a.created_at, time::Duration::minutes(15));
    assert_eq!(approvals.get(&a.id).await.unwrap(), a);
    let pending = approvals.list(Some(ApprovalState::Pending)).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec![a.id.as_str()]);

    // Not usable before it is approved.
    let err = approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);
    assert!(err.to_string().contains("finance"), "{err}");

    let approved = approvals.approve(&a.id, &carol, Some("ok for this customer".into())).await.unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("carol"));
    assert_eq!(approved.grants[0].reason.as_deref(), Some("ok for this customer"));
    assert_eq!(approved.requirements[0].met_by.as_deref(), Some("carol"));
    assert!(approved.decided_at.is_some());
    assert!(approvals.list(Some(ApprovalState::Pending)).await.unwrap().is_empty());
    // A decided approval cannot be decided again.
    let err = approvals.deny(&a.id, &who("dave", &["finance"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { state: ApprovalState::Approved, .. }), "{err}");
    assert_eq!(err.to_error().code, ErrorCode::Conflict);

    let call_id = CallId::new();
    let used = approvals.redeem(&a.id, &alice, &c, call_id).await.unwrap();
    assert_eq!(used.state, ApprovalState::Used);
    assert!(used.used_at.is_some());
    assert_eq!(used.used_by_call, Some(call_id.to_string()));
    let r = used.to_ref();
    assert_eq!((r.requested_by.as_str(), r.decided_by.as_deref()), ("alice", Some("carol")));
    assert!(r.decided_at.is_some());
}

async fn self_approval_refused(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    // Alice is in the approver group herself, and still may not approve her own call.
    let alice = who("alice", &["ops", "finance"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 1}));
    let a = ask(&approvals, &alice, &c, &decision()).await;
    let err = approvals.approve(&a.id, &alice, None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Forbidden(_)), "{err}");
    assert_eq!(err.to_error().code, ErrorCode::Forbidden);
    assert!(err.to_string().contains("separation of duties"));
    // Nor through another identity provider with the same subject.
    let mut alice_oidc = who("alice", &["finance"]);
    alice_oidc.issuer = "https://idp.example.com".into();
    assert!(approvals.approve(&a.id, &alice_oidc, None).await.is_err());
    assert_eq!(approvals.get(&a.id).await.unwrap().state, ApprovalState::Pending);
}

async fn approver_outside_group_refused(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let a = ask(&approvals, &alice, &scope(&alice, "payments/refund", json!({"amount": 1})), &decision()).await;
    let err = approvals.approve(&a.id, &who("bob", &["ops", "dev"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Forbidden(_)), "{err}");
    let err = approvals.deny(&a.id, &who("bob", &["ops"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::Forbidden(_)), "{err}");
    assert_eq!(approvals.get(&a.id).await.unwrap().state, ApprovalState::Pending);
    let err = approvals.approve("no-such-id", &who("carol", &["finance"]), None).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::NotFound);
}

async fn reuse_and_other_calls_refused(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));
    let a = ask(&approvals, &alice, &c, &decision()).await;
    approvals.approve(&a.id, &who("carol", &["finance"]), None).await.unwrap();

    // Every field of the scope, changed on its own, is another call.
    type Change = Box<dyn Fn(&mut CallScope)>;
    let changes: Vec<(&str, Change)> = vec![
        ("body", Box::new(|s| s.body_sha256 = CallScope::body_digest(br#"{"amount": 90000}"#))),
        ("function", Box::new(|s| s.function = "payments/payout".into())),
        ("method", Box::new(|s| s.method = "DELETE".into())),
        ("path", Box::new(|s| s.path = "/fn/payments/refund/accounts/1".into())),
        ("query", Box::new(|s| s.query = "all=true".into())),
        ("content type", Box::new(|s| s.content_type = Some("text/plain".into()))),
        ("placeholders", Box::new(|s| s.placeholders.push(PlaceholderUse::new("cloak_x", None, "header:x-key")))),
    ];
    for (field, change) in &changes {
        let mut other = c.clone();
        change(&mut other);
        let err = approvals.redeem(&a.id, &alice, &other, CallId::new()).await.unwrap_err();
        assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid, "{field}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let mallory = who("mallory", &["ops"]);
    let theirs = scope(&mallory, "payments/refund", json!({"amount": 900}));
    let err = approvals.redeem(&a.id, &mallory, &theirs, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("another caller"), "{err}");
    // The same subject from another issuer is another caller.
    let mut alice_oidc = alice.clone();
    alice_oidc.issuer = "https://idp.example.com".into();
    let theirs = scope(&alice_oidc, "payments/refund", json!({"amount": 900}));
    let err = approvals.redeem(&a.id, &alice_oidc, &theirs, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("another caller"), "{err}");
    let err = approvals.redeem("unknown", &alice, &c, CallId::new()).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);

    // The refused attempts did not use it up; the right call does, once.
    approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap();
    let err = approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("used"), "{err}");
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);
}

async fn requirements_compose_and_need_distinct_people(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops", "leads"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));
    // A rule needs leads; the secret used needs finance and security.
    let d = Decision::approve(
        "refunds need a lead",
        "approval required",
        vec!["leads".into(), "finance".into(), "security".into()],
    );
    let a = ask(&approvals, &alice, &c, &d).await;
    assert_eq!(a.requirements.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), ["leads", "finance", "security"]);

    // Bob is in finance and security: he meets one requirement, not two.
    let bob = who("bob", &["finance", "security"]);
    let after_bob = approvals.approve(&a.id, &bob, None).await.unwrap();
    assert_eq!(after_bob.state, ApprovalState::Pending);
    assert_eq!(after_bob.requirements.iter().filter(|r| r.met).count(), 1);
    let err = approvals.approve(&a.id, &bob, None).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::Conflict, "{err}");
    // Not usable while any requirement is unmet.
    let err = approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("pending"), "{err}");
    // Alice is a lead but the requester: she cannot meet the leads requirement.
    assert!(matches!(approvals.approve(&a.id, &alice, None).await, Err(ApprovalError::Forbidden(_))));
    // Another finance member: bob moves to security, carol meets finance.
    let carol = who("carol", &["finance"]);
    let after_carol = approvals.approve(&a.id, &carol, None).await.unwrap();
    assert_eq!(after_carol.state, ApprovalState::Pending);
    assert_eq!(after_carol.requirements.iter().filter(|r| r.met).count(), 2);
    // A second finance member adds nothing.
    let err = approvals.approve(&a.id, &who("dan", &["finance"]), None).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::Conflict, "{err}");
    let done = approvals.approve(&a.id, &who("erin", &["leads"]), None).await.unwrap();
    assert_eq!(done.state, ApprovalState::Approved);
    let met: Vec<_> = done.requirements.iter().map(|r| r.met_by.clone().unwrap()).collect();
    assert_eq!(met, ["erin", "carol", "bob"]);
    assert_eq!(done.decided_by.as_deref(), Some("erin,carol,bob"));
    approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap();
}

async fn denied_cannot_be_used(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));
    let a = ask(&approvals, &alice, &c, &decision()).await;
    let d = approvals.deny(&a.id, &who("carol", &["finance"]), Some("no".into())).await.unwrap();
    assert_eq!(d.state, ApprovalState::Denied);
    assert_eq!(d.reason.as_deref(), Some("no"));
    let err = approvals.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
}

async fn expiry(store: Arc<dyn ApprovalStore>) {
    // A pending request past its ttl can no longer be decided.
    let zero = Approvals::new(store.clone(), ApprovalsConfig { ttl: Duration::ZERO, ..Default::default() });
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));
    let a = ask(&zero, &alice, &c, &decision()).await;
    assert_eq!(zero.get(&a.id).await.unwrap().state, ApprovalState::Expired);
    let err = zero.approve(&a.id, &who("carol", &["finance"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { state: ApprovalState::Expired, .. }), "{err}");

    // An approved request past its ttl can no longer be used: store it as such.
    let one = Approvals::new(store.clone(), ApprovalsConfig { ttl: Duration::from_secs(60), ..Default::default() });
    let a = ask(&one, &alice, &c, &decision()).await;
    let approved = one.approve(&a.id, &who("carol", &["finance"]), None).await.unwrap();
    let mut stale = approved.clone();
    stale.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    stale.revision += 1;
    assert!(store.replace(&approved, &stale).await.unwrap());
    // A replace against an old revision loses.
    assert!(!store.replace(&approved, &stale).await.unwrap());
    assert_eq!(one.get(&a.id).await.unwrap().state, ApprovalState::Expired);
    let err = one.redeem(&a.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let now = OffsetDateTime::now_utc();
    let ids = |v: Vec<Approval>| v.into_iter().filter(|x| x.id == a.id).count();
    assert_eq!(ids(store.list(Some(ApprovalState::Expired), now, 100).await.unwrap()), 1);
    assert_eq!(ids(store.list(Some(ApprovalState::Approved), now, 100).await.unwrap()), 0);
}

/// The `/metrics` gauges: a store counts every state as of now (expiry included) as its
/// list shows them, and an approval keeps at most 16 KiB of a call's arguments.
async fn counts_and_bounded_arguments(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store.clone());
    let zero = Approvals::new(store.clone(), ApprovalsConfig { ttl: Duration::ZERO, ..Default::default() });
    let alice = who("alice", &["ops"]);
    let carol = who("carol", &["finance"]);
    let c = |n: u32| scope(&alice, "payments/refund", json!({"amount": n}));
    // 3 pending, 1 approved, 1 denied, 2 expired (asked with a ttl of zero).
    for n in 0..3 {
        ask(&approvals, &alice, &c(n), &decision()).await;
    }
    let approved = ask(&approvals, &alice, &c(10), &decision()).await;
    approvals.approve(&approved.id, &carol, None).await.unwrap();
    let denied = ask(&approvals, &alice, &c(11), &decision()).await;
    approvals.deny(&denied.id, &carol, None).await.unwrap();
    ask(&zero, &alice, &c(12), &decision()).await;
    ask(&zero, &alice, &c(13), &decision()).await;
    let counts = approvals.counts().await.unwrap();
    let listed = approvals.list(None).await.unwrap();
    for (state, n) in [
        (ApprovalState::Pending, 3),
        (ApprovalState::Approved, 1),
        (ApprovalState::Denied, 1),
        (ApprovalState::Expired, 2),
        (ApprovalState::Used, 0),
    ] {
        assert_eq!(counts.get(state), n, "{state:?}");
        assert_eq!(listed.iter().filter(|a| a.state == state).count() as u64, n, "{state:?}");
    }

    let kept = |a: &Approval| serde_json::to_string(&a.arguments).unwrap().len();
    // Arguments of 4 MiB are shortened: every key kept, long arrays and strings cut.
    let big = json!({"x": vec![0; 2 * 1024 * 1024], "amount": 999999});
    let a = approvals.request(&alice, &c(20), &big, &decision(), None).await.unwrap();
    let a = approvals.get(&a.id).await.unwrap();
    assert!(kept(&a) <= cloakroom_policy::MAX_SHOWN_ARGUMENTS_BYTES, "{}", kept(&a));
    assert_eq!(a.arguments["amount"], 999999);
    assert_eq!(a.arguments["x"].as_array().unwrap().len(), 33);
    assert_eq!(a.arguments["x"][32], format!("… [{} more items not shown]", 2 * 1024 * 1024 - 32));
    // Padding cannot push the field that decides the call out of view.
    let padded = json!({"!": "p".repeat(64 * 1024), "amount": 999999});
    let a = approvals.request(&alice, &c(22), &padded, &decision(), None).await.unwrap();
    let a = approvals.get(&a.id).await.unwrap();
    assert_eq!(a.arguments["amount"], 999999, "{}", a.arguments);
    assert!(a.arguments["!"].as_str().unwrap().ends_with("… [65280 more bytes not shown]"));
    // Thousands of keys do not fit even shortened: 16 KiB of their text, and the size.
    let keys: serde_json::Map<String, serde_json::Value> = (0..4000).map(|i| (format!("k{i:05}"), json!(i))).collect();
    let many = serde_json::Value::Object(keys);
    let text_len = many.to_string().len();
    let a = approvals.request(&alice, &c(23), &many, &decision(), None).await.unwrap();
    let marker = &approvals.get(&a.id).await.unwrap().arguments["cloakroom_truncated"];
    assert_eq!(marker["bytes"], text_len, "{marker}");
    let shown = marker["shown"].as_str().unwrap();
    assert_eq!(shown.len(), cloakroom_policy::MAX_SHOWN_ARGUMENTS_BYTES);
    assert!(many.to_string().starts_with(shown));
    // Small arguments are kept as they are.
    let small = json!({"amount": 5, "note": "é".repeat(100)});
    let a = approvals.request(&alice, &c(21), &small, &decision(), None).await.unwrap();
    assert_eq!(approvals.get(&a.id).await.unwrap().arguments, small);
}

async fn concurrent_consumers_only_one_wins(a: Arc<dyn ApprovalStore>, b: Arc<dyn ApprovalStore>) {
    let (sa, sb) = (service(a), service(b));
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));
    let req = ask(&sa, &alice, &c, &decision()).await;
    sb.approve(&req.id, &who("carol", &["finance"]), None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let (alice, c, id) = (alice.clone(), c.clone(), req.id.clone());
        tasks.push(tokio::spawn(async move { s.redeem(&id, &alice, &c, CallId::new()).await.is_ok() }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn concurrent_approvers_lose_no_grant(a: Arc<dyn ApprovalStore>, b: Arc<dyn ApprovalStore>) {
    let (sa, sb) = (service(a), service(b));
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 1}));
    let groups: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
    let req = ask(&sa, &alice, &c, &Decision::approve("many", "approval required", groups.clone())).await;
    let mut tasks = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let (id, approver) = (req.id.clone(), who(&format!("p{i}"), &[g.as_str()]));
        tasks.push(tokio::spawn(async move { s.approve(&id, &approver, None).await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let done = sa.get(&req.id).await.unwrap();
    assert_eq!(done.grants.len(), 6);
    assert_eq!(done.state, ApprovalState::Approved);
}

// === memory (the store of a build without sled or postgres) ===

fn memory() -> Arc<dyn ApprovalStore> {
    Arc::new(MemoryApprovalStore::new())
}

#[tokio::test]
async fn memory_full_flow() {
    full_flow(memory()).await;
}
#[tokio::test]
async fn memory_self_approval_refused() {
    self_approval_refused(memory()).await;
}
#[tokio::test]
async fn memory_approver_outside_group_refused() {
    approver_outside_group_refused(memory()).await;
}
#[tokio::test]
async fn memory_reuse_and_other_calls_refused() {
    reuse_and_other_calls_refused(memory()).await;
}
#[tokio::test]
async fn memory_requirements_compose_and_need_distinct_people() {
    requirements_compose_and_need_distinct_people(memory()).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_approvers_lose_no_grant() {
    let store = memory();
    concurrent_approvers_lose_no_grant(store.clone(), store).await;
}
#[tokio::test]
async fn memory_denied_cannot_be_used() {
    denied_cannot_be_used(memory()).await;
}
#[tokio::test]
async fn memory_expiry() {
    expiry(memory()).await;
}
#[tokio::test]
async fn memory_counts_and_bounded_arguments() {
    counts_and_bounded_arguments(memory()).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrent_consumers_only_one_wins() {
    let store = memory();
    concurrent_consumers_only_one_wins(store.clone(), store).await;
}

// === sled ===

#[tokio::test]
async fn sled_full_flow() {
    full_flow(sled().store).await;
}
#[tokio::test]
async fn sled_counts_and_bounded_arguments() {
    counts_and_bounded_arguments(sled().store).await;
}
#[tokio::test]
async fn sled_self_approval_refused() {
    self_approval_refused(sled().store).await;
}
#[tokio::test]
async fn sled_approver_outside_group_refused() {
    approver_outside_group_refused(sled().store).await;
}
#[tokio::test]
async fn sled_reuse_and_other_calls_refused() {
    reuse_and_other_calls_refused(sled().store).await;
}
#[tokio::test]
async fn sled_requirements_compose_and_need_distinct_people() {
    requirements_compose_and_need_distinct_people(sled().store).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_concurrent_approvers_lose_no_grant() {
    let s = sled();
    concurrent_approvers_lose_no_grant(s.store.clone(), s.store.clone()).await;
}
#[tokio::test]
async fn sled_denied_cannot_be_used() {
    denied_cannot_be_used(sled().store).await;
}
#[tokio::test]
async fn sled_expiry() {
    expiry(sled().store).await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_concurrent_consumers_only_one_wins() {
    let s = sled();
    concurrent_consumers_only_one_wins(s.store.clone(), s.store.clone()).await;
}

#[tokio::test]
async fn sled_approvals_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let approvals = service(Arc::new(SledApprovalStore::open(dir.path()).unwrap()));
        let alice = who("alice", &[]);
        ask(&approvals, &alice, &scope(&alice, "f", json!(null)), &decision()).await.id
    };
    // Right after the last handle is dropped: `open` waits out the lock that sled's
    // background flusher can still hold.
    let approvals = service(Arc::new(SledApprovalStore::open(dir.path()).unwrap()));
    assert_eq!(approvals.get(&id).await.unwrap().state, ApprovalState::Pending);
}

// === PostgreSQL ===

#[tokio::test]
async fn postgres_full_flow() {
    let (_db, store) = postgres().await;
    full_flow(store).await;
}
#[tokio::test]
async fn postgres_self_approval_refused() {
    let (_db, store) = postgres().await;
    self_approval_refused(store).await;
}
#[tokio::test]
async fn postgres_approver_outside_group_refused() {
    let (_db, store) = postgres().await;
    approver_outside_group_refused(store).await;
}
#[tokio::test]
async fn postgres_reuse_and_other_calls_refused() {
    let (_db, store) = postgres().await;
    reuse_and_other_calls_refused(store).await;
}
#[tokio::test]
async fn postgres_requirements_compose_and_need_distinct_people() {
    let (_db, store) = postgres().await;
    requirements_compose_and_need_distinct_people(store).await;
}
#[tokio::test]
async fn postgres_denied_cannot_be_used() {
    let (_db, store) = postgres().await;
    denied_cannot_be_used(store).await;
}
#[tokio::test]
async fn postgres_expiry() {
    let (_db, store) = postgres().await;
    expiry(store).await;
}
#[tokio::test]
async fn postgres_counts_and_bounded_arguments() {
    let (_db, store) = postgres().await;
    counts_and_bounded_arguments(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas_see_each_others_approvals() {
    let db = PgDatabase::create();
    // Two handles opened together (each runs the migrations under the advisory lock).
    let (a, b) = tokio::join!(PostgresApprovalStore::connect(&db.url), PostgresApprovalStore::connect(&db.url));
    let (a, b): (Arc<dyn ApprovalStore>, Arc<dyn ApprovalStore>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let (replica1, replica2) = (service(a.clone()), service(b.clone()));
    let alice = who("alice", &["ops"]);
    let c = scope(&alice, "payments/refund", json!({"amount": 900}));

    // Asked on replica 1, listed and approved on replica 2, used on replica 1, with the
    // same binding: another call is refused on replica 1 too.
    let req = ask(&replica1, &alice, &c, &decision()).await;
    let listed = replica2.list(Some(ApprovalState::Pending)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], req);
    replica2.approve(&req.id, &who("carol", &["finance"]), None).await.unwrap();
    assert_eq!(replica1.get(&req.id).await.unwrap().state, ApprovalState::Approved);
    let mut other = c.clone();
    other.method = "DELETE".into();
    let err = replica1.redeem(&req.id, &alice, &other, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("method"), "{err}");
    replica1.redeem(&req.id, &alice, &c, CallId::new()).await.unwrap();
    // Used on one replica means used on the other.
    let err = replica2.redeem(&req.id, &alice, &c, CallId::new()).await.unwrap_err();
    assert!(err.to_string().contains("used"), "{err}");

    concurrent_consumers_only_one_wins(a.clone(), b.clone()).await;
    concurrent_approvers_lose_no_grant(a, b).await;
}
