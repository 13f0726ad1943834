//! Replay: today's policy on a recorded call.
mod common;

use std::sync::Mutex;

use async_trait::async_trait;
use cloakroom_audit::{replay, RecordBody, ReplayError, ReplayPolicy};
use cloakroom_core::{Call, Decision, Identity, Protocol};
use common::sample_record;

/// A policy that allows `payments-ops` unless the amount is over a limit, and
/// remembers what it was asked.
struct AmountLimit {
    limit: i64,
    seen: Mutex<Vec<(Identity, Call)>>,
}

#[async_trait]
impl ReplayPolicy for AmountLimit {
    async fn decide(&self, identity: &Identity, call: &Call) -> Decision {
        self.seen.lock().unwrap().push((identity.clone(), call.clone()));
        let amount = call.argument("/amount").and_then(|v| v.as_i64()).unwrap_or(0);
        if amount > self.limit {
            Decision::deny("amount limit", format!("amount over {}", self.limit))
        } else if identity.in_group("payments-ops") {
            Decision::allow("ops", "rule matched")
        } else {
            Decision::default_deny()
        }
    }
}

fn policy(limit: i64) -> AmountLimit {
    AmountLimit { limit, seen: Mutex::new(Vec::new()) }
}

#[tokio::test]
async fn an_unchanged_policy_still_allows_the_call() {
    let record = sample_record(5); // {"amount":5}
    let p = policy(100);
    let report = replay(&record, &p).await.unwrap();
    assert!(report.still_allowed);
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    let seen = p.seen.lock().unwrap();
    let (identity, call) = &seen[0];
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.source_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(call.function, "payments");
    assert_eq!(call.arguments, serde_json::json!({"amount": 5}));
    assert_eq!(call.method, "POST");
}

#[tokio::test]
async fn a_tightened_policy_reports_what_changed() {
    let record = sample_record(5);
    let report = replay(&record, &policy(1)).await.unwrap();
    assert!(!report.still_allowed);
    assert_eq!(report.now.effect.as_str(), "deny");
    assert!(report.changes.contains(&"effect: allow -> deny".to_owned()), "{:?}", report.changes);
    assert!(report.changes.iter().any(|c| c == "rule: ops -> amount limit"), "{:?}", report.changes);
}

#[tokio::test]
async fn mcp_arguments_come_from_the_recorded_json_rpc_body() {
    let mut record = sample_record(0);
    record.protocol = Some(Protocol::Mcp);
    record.function = Some("tools/transfer".into());
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":500}}}"#;
    record.request.body = Some(RecordBody::capture(body.as_bytes(), body.len() as u64, 65536));
    let p = policy(100);
    let report = replay(&record, &p).await.unwrap();
    assert!(!report.still_allowed);
    assert_eq!(p.seen.lock().unwrap()[0].1.arguments, serde_json::json!({"amount": 500}));
}

#[tokio::test]
async fn a_truncated_body_is_a_caveat() {
    let mut record = sample_record(0);
    record.request.body = Some(RecordBody::capture(b"{\"amount\":", 5000, 10));
    let report = replay(&record, &policy(100)).await.unwrap();
    assert!(report.caveats.iter().any(|c| c.contains("truncated")), "{:?}", report.caveats);
}

#[tokio::test]
async fn a_call_refused_before_authentication_cannot_be_replayed() {
    let mut record = sample_record(0);
    record.identity = None;
    assert_eq!(replay(&record, &policy(1)).await.unwrap_err(), ReplayError::NoIdentity);
}
