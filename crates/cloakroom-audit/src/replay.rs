//! Replay: would today's policy still allow a recorded call?
//!
//! [`replay`] rebuilds the caller ([`Identity`]) and the call ([`Call`]) from a record
//! and asks a [`ReplayPolicy`] (the gateway adapts its policy engine to it) for a
//! decision, then reports what changed since the call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cloakroom_audit::{replay, AuditRecord, RecordIdentity, ReplayPolicy};
//! use cloakroom_core::{Call, Decision, Identity, Protocol};
//!
//! struct DenyAll;
//! #[async_trait::async_trait]
//! impl ReplayPolicy for DenyAll {
//!     async fn decide(&self, _: &Identity, _: &Call) -> Decision { Decision::default_deny() }
//! }
//!
//! let mut record = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::now_utc());
//! record.identity = Some(RecordIdentity { subject: "alice".into(), issuer: "api_key".into(),
//!                                         method: "api_key".into(), groups: vec!["ops".into()] });
//! record.function = Some("echo".into());
//! record.protocol = Some(Protocol::Http);
//! record.decision = Some((&Decision::allow("ops may echo", "rule matched")).into());
//! let report = replay(&record, &DenyAll).await.unwrap();
//! assert!(!report.still_allowed);
//! assert!(report.changes.iter().any(|c| c.contains("allow -> deny")));
//! # }
//! ```

use async_trait::async_trait;
use cloakroom_core::{AuthMethod, Call, Decision, Effect, Identity, Protocol};
use sha2::{Digest, Sha256};

use cloakroom_core::canonical::canonical_json_with_floats;

use crate::{AuditRecord, RecordDecision};

/// Today's policy, as replay needs it.
#[async_trait]
pub trait ReplayPolicy: Send + Sync {
    /// The decision policy makes now for `identity` calling `call`.
    async fn decide(&self, identity: &Identity, call: &Call) -> Decision;
}

/// Why a record cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The call was refused before the caller was authenticated.
    #[error("the record has no identity (the call was refused before authentication)")]
    NoIdentity,
    /// The call was refused before the function was known.
    #[error("the record names no function (the call was refused before it was parsed)")]
    NoFunction,
    /// The recorded identity method is not one this version knows.
    #[error("unknown authentication method {0:?}")]
    UnknownMethod(String),
}

/// What replaying a record found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// The record's call id.
    pub id: String,
    /// What was decided at the time (`None` if the call never reached policy).
    pub recorded: Option<RecordDecision>,
    /// What policy decides now.
    pub now: RecordDecision,
    /// Whether policy would allow the call now (`effect = "allow"`).
    pub still_allowed: bool,
    /// Whether the call would need approval now.
    pub needs_approval: bool,
    /// What changed, in words: effect, rule, reason.
    pub changes: Vec<String>,
    /// What replay could not reproduce (a Biscuit token's own checks, arguments of a
    /// truncated or unrecorded body), so an auditor knows how far to trust the answer.
    pub caveats: Vec<String>,
}

/// Re-runs today's policy on a recorded call.
pub async fn replay(record: &AuditRecord, policy: &dyn ReplayPolicy) -> Result<ReplayReport, ReplayError> {
    let rid = record.identity.as_ref().ok_or(ReplayError::NoIdentity)?;
    let function = record.function.clone().ok_or(ReplayError::NoFunction)?;
    let protocol = record.protocol.unwrap_or(Protocol::Http);
    let method = match rid.method.as_str() {
        "oidc" => AuthMethod::Oidc,
        "biscuit" => AuthMethod::Biscuit,
        "api_key" => AuthMethod::ApiKey,
        "saml" => AuthMethod::Saml,
        "slack" => AuthMethod::Slack,
        other => return Err(ReplayError::UnknownMethod(other.to_owned())),
    };
    let mut caveats = Vec::new();
    if matches!(method, AuthMethod::Biscuit | AuthMethod::Saml) {
        caveats.push("the caller's Biscuit token is not recorded: its own checks (attenuation) are not re-run".into());
    }
    let identity = Identity::new(rid.subject.clone(), rid.issuer.clone(), method)
        .with_groups(rid.groups.clone())
        .with_source_ip(record.source_ip.as_deref().and_then(|ip| ip.parse().ok()));
    let (arguments, raw) = recorded_arguments(record, protocol, &mut caveats);
    let digest = match &arguments {
        serde_json::Value::Null => hex::encode(Sha256::digest(&raw)),
        // The gateway's argument digest (floats included), from the one canonical writer.
        v => hex::encode(Sha256::digest(canonical_json_with_floats(v).as_bytes())),
    };
    let call = Call::new(function, protocol)
        .with_arguments(arguments)
        .with_method(record.request.method.clone())
        .with_digest(digest);
    let now: RecordDecision = (&policy.decide(&identity, &call).await).into();
    let mut changes = Vec::new();
    match &record.decision {
        None => changes.push(format!("no decision was recorded; now {}", now.effect)),
        Some(then) => {
            if then.effect != now.effect {
                changes.push(format!("effect: {} -> {}", then.effect, now.effect));
            }
            if then.rule != now.rule {
                changes.push(format!(
                    "rule: {} -> {}",
                    then.rule.as_deref().unwrap_or("(default deny)"),
                    now.rule.as_deref().unwrap_or("(default deny)")
                ));
            }
            if then.reason != now.reason {
                changes.push(format!("reason: {:?} -> {:?}", then.reason, now.reason));
            }
        }
    }
    Ok(ReplayReport {
        id: record.id.clone(),
        recorded: record.decision.clone(),
        still_allowed: now.effect == Effect::Allow,
        needs_approval: now.effect == Effect::Approve,
        now,
        changes,
        caveats,
    })
}

/// The call's arguments as the call layer would have parsed them from the recorded
/// request body, and the raw body.
fn recorded_arguments(
    record: &AuditRecord,
    protocol: Protocol,
    caveats: &mut Vec<String>,
) -> (serde_json::Value, Vec<u8>) {
    let Some(body) = &record.request.body else {
        caveats.push("request bodies were not recorded: argument rules see no arguments".into());
        return (serde_json::Value::Null, Vec::new());
    };
    if body.truncated {
        caveats.push("the recorded request body is truncated: argument rules see no arguments".into());
        return (serde_json::Value::Null, Vec::new());
    }
    let raw = body.decoded().unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&raw).ok();
    let args = match (protocol, parsed) {
        (Protocol::Http, Some(v)) => v,
        (Protocol::Mcp, Some(v)) => v.pointer("/params/arguments").cloned().unwrap_or(serde_json::Value::Null),
        (_, None) => serde_json::Value::Null,
    };
    (args, raw)
}
