//! Approvals on both stores: the full flow, separation of duties, one use, exact call,
//! expiry, and two PostgreSQL handles sharing approvals as two replicas would.

mod common;

use std::{sync::Arc, time::Duration};

use cloakroom_core::{Decision, ErrorCode};
use cloakroom_policy::{
    Approval, ApprovalError, ApprovalState, ApprovalStore, Approvals, ApprovalsConfig, Claim, PostgresApprovalStore,
    Requester, SledApprovalStore, Verdict,
};
use cloakroom_testkit::PgDatabase;
use common::*;
use serde_json::json;
use time::OffsetDateTime;

fn decision() -> Decision {
    Decision::approve("refunds need finance", "approval required", vec!["finance".into()])
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

// === the behaviours, each run on both stores ===

async fn full_flow(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let carol = who("carol", &["finance"]);
    let c = call("payments/refund", json!({"amount": 900, "card": "cloak_abcdefghijklmnopqrstuvwxyz"}));

    let a = approvals.request(&alice, &c, &decision(), None).await.unwrap();
    assert_eq!(a.state, ApprovalState::Pending);
    assert_eq!(
        a.requester,
        Requester { subject: "alice".into(), issuer: "api_key".into(), groups: vec!["ops".into()] }
    );
    assert_eq!((a.function.as_str(), a.digest.as_str()), ("payments/refund", c.digest.as_str()));
    assert_eq!(a.approvers, vec!["finance".to_string()]);
    assert_eq!(a.rule.as_deref(), Some("refunds need finance"));
    assert_eq!(a.expires_at - a.created_at, time::Duration::minutes(15));
    assert_eq!(approvals.get(&a.id).await.unwrap(), a);
    let pending = approvals.list(Some(ApprovalState::Pending)).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec![a.id.as_str()]);

    // Not usable before it is approved.
    let err = approvals.redeem(&a.id, &alice, &c).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);

    let approved = approvals.approve(&a.id, &carol, Some("ok for this customer".into())).await.unwrap();
    assert_eq!(approved.state, ApprovalState::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("carol"));
    assert_eq!(approved.reason.as_deref(), Some("ok for this customer"));
    assert!(approved.decided_at.is_some());
    assert!(approvals.list(Some(ApprovalState::Pending)).await.unwrap().is_empty());
    // A decided approval cannot be decided again.
    let err = approvals.deny(&a.id, &who("dave", &["finance"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { state: ApprovalState::Approved, .. }), "{err}");
    assert_eq!(err.to_error().code, ErrorCode::Conflict);

    let used = approvals.redeem(&a.id, &alice, &c).await.unwrap();
    assert_eq!(used.state, ApprovalState::Used);
    assert!(used.used_at.is_some());
    let r = used.to_ref();
    assert_eq!((r.requested_by.as_str(), r.decided_by.as_deref()), ("alice", Some("carol")));
    assert!(r.decided_at.is_some());
}

async fn self_approval_refused(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    // Alice is in the approver group herself, and still may not approve her own call.
    let alice = who("alice", &["ops", "finance"]);
    let c = call("payments/refund", json!({"amount": 1}));
    let a = approvals.request(&alice, &c, &decision(), None).await.unwrap();
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
    let c = call("payments/refund", json!({"amount": 1}));
    let a = approvals.request(&who("alice", &["ops"]), &c, &decision(), None).await.unwrap();
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
    let c = call("payments/refund", json!({"amount": 900}));
    let a = approvals.request(&alice, &c, &decision(), None).await.unwrap();
    approvals.approve(&a.id, &who("carol", &["finance"]), None).await.unwrap();

    let changed = call("payments/refund", json!({"amount": 90000}));
    let err = approvals.redeem(&a.id, &alice, &changed).await.unwrap_err();
    assert!(err.to_string().contains("other arguments"), "{err}");
    let mut other_fn = c.clone();
    other_fn.function = "payments/payout".into();
    let err = approvals.redeem(&a.id, &alice, &other_fn).await.unwrap_err();
    assert!(err.to_string().contains("another function"), "{err}");
    let err = approvals.redeem(&a.id, &who("mallory", &["ops"]), &c).await.unwrap_err();
    assert!(err.to_string().contains("another caller"), "{err}");
    let err = approvals.redeem("unknown", &alice, &c).await.unwrap_err();
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);

    // The refused attempts did not use it up; the right call does, once.
    approvals.redeem(&a.id, &alice, &c).await.unwrap();
    let err = approvals.redeem(&a.id, &alice, &c).await.unwrap_err();
    assert!(err.to_string().contains("used"), "{err}");
    assert_eq!(err.to_error().code, ErrorCode::ApprovalInvalid);
}

async fn denied_cannot_be_used(store: Arc<dyn ApprovalStore>) {
    let approvals = service(store);
    let alice = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 900}));
    let a = approvals.request(&alice, &c, &decision(), None).await.unwrap();
    let d = approvals.deny(&a.id, &who("carol", &["finance"]), Some("no".into())).await.unwrap();
    assert_eq!(d.state, ApprovalState::Denied);
    let err = approvals.redeem(&a.id, &alice, &c).await.unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
}

async fn expiry(store: Arc<dyn ApprovalStore>) {
    // A pending request past its ttl can no longer be decided.
    let zero = Approvals::new(store.clone(), ApprovalsConfig { ttl: Duration::ZERO, ..Default::default() });
    let c = call("payments/refund", json!({"amount": 900}));
    let a = zero.request(&who("alice", &["ops"]), &c, &decision(), None).await.unwrap();
    assert_eq!(zero.get(&a.id).await.unwrap().state, ApprovalState::Expired);
    let err = zero.approve(&a.id, &who("carol", &["finance"]), None).await.unwrap_err();
    assert!(matches!(err, ApprovalError::NotPending { state: ApprovalState::Expired, .. }), "{err}");

    // An approved request past its ttl can no longer be used: drive the store's clock.
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let approval = Approval {
        id: "expiring".into(),
        requester: Requester { subject: "alice".into(), issuer: "api_key".into(), groups: vec![] },
        function: "f".into(),
        digest: "d".into(),
        arguments: json!({}),
        call_id: None,
        rule: None,
        created_at: t0,
        expires_at: t0 + time::Duration::minutes(15),
        approvers: vec!["finance".into()],
        state: ApprovalState::Pending,
        decided_by: None,
        decided_at: None,
        reason: None,
        used_at: None,
    };
    store.insert(&approval).await.unwrap();
    let verdict = Verdict {
        state: ApprovalState::Approved,
        decided_by: "carol".into(),
        reason: None,
        expires_at: t0 + time::Duration::minutes(20),
    };
    let decided = store.decide("expiring", &verdict, t0 + time::Duration::minutes(5)).await.unwrap().unwrap();
    assert_eq!(decided.state_at(t0 + time::Duration::minutes(19)), ApprovalState::Approved);
    assert_eq!(decided.state_at(t0 + time::Duration::minutes(20)), ApprovalState::Expired);
    let claim = Claim { subject: "alice", issuer: "api_key", function: "f", digest: "d" };
    let at = |m: i64| t0 + time::Duration::minutes(m);
    let ids = |v: Vec<Approval>| v.into_iter().map(|a| a.id).filter(|id| id == "expiring").count();
    assert_eq!(ids(store.list(Some(ApprovalState::Approved), at(19), 100).await.unwrap()), 1);
    assert_eq!(ids(store.list(Some(ApprovalState::Expired), at(19), 100).await.unwrap()), 0);
    assert_eq!(ids(store.list(Some(ApprovalState::Expired), at(21), 100).await.unwrap()), 1);
    assert_eq!(ids(store.list(Some(ApprovalState::Approved), at(21), 100).await.unwrap()), 0);
    assert!(store.consume("expiring", &claim, t0 + time::Duration::minutes(21)).await.unwrap().is_none());
    assert!(store.consume("expiring", &claim, t0 + time::Duration::minutes(19)).await.unwrap().is_some());
}

async fn concurrent_consumers_only_one_wins(a: Arc<dyn ApprovalStore>, b: Arc<dyn ApprovalStore>) {
    let (sa, sb) = (service(a), service(b));
    let alice = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 900}));
    let req = sa.request(&alice, &c, &decision(), None).await.unwrap();
    sb.approve(&req.id, &who("carol", &["finance"]), None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let (alice, c, id) = (alice.clone(), c.clone(), req.id.clone());
        tasks.push(tokio::spawn(async move { s.redeem(&id, &alice, &c).await.is_ok() }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

// === sled ===

#[tokio::test]
async fn sled_full_flow() {
    full_flow(sled().store).await;
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
        approvals.request(&who("alice", &[]), &call("f", json!(null)), &decision(), None).await.unwrap().id
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
async fn postgres_denied_cannot_be_used() {
    let (_db, store) = postgres().await;
    denied_cannot_be_used(store).await;
}
#[tokio::test]
async fn postgres_expiry() {
    let (_db, store) = postgres().await;
    expiry(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas_see_each_others_approvals() {
    let db = PgDatabase::create();
    // Two handles opened together (each runs the migrations under the advisory lock).
    let (a, b) = tokio::join!(PostgresApprovalStore::connect(&db.url), PostgresApprovalStore::connect(&db.url));
    let (a, b): (Arc<dyn ApprovalStore>, Arc<dyn ApprovalStore>) = (Arc::new(a.unwrap()), Arc::new(b.unwrap()));
    let (replica1, replica2) = (service(a.clone()), service(b.clone()));
    let alice = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 900}));

    // Asked on replica 1, listed and approved on replica 2, used on replica 1.
    let req = replica1.request(&alice, &c, &decision(), None).await.unwrap();
    let listed = replica2.list(Some(ApprovalState::Pending)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], req);
    replica2.approve(&req.id, &who("carol", &["finance"]), None).await.unwrap();
    assert_eq!(replica1.get(&req.id).await.unwrap().state, ApprovalState::Approved);
    replica1.redeem(&req.id, &alice, &c).await.unwrap();
    // Used on one replica means used on the other.
    let err = replica2.redeem(&req.id, &alice, &c).await.unwrap_err();
    assert!(err.to_string().contains("used"), "{err}");

    concurrent_consumers_only_one_wins(a, b).await;
}
