//! Replay for the audit call view: the gateway's policy of today, as the audit crate's
//! [`replay`](cloakroom_audit::replay) asks for it.

use async_trait::async_trait;
use cloakroom_audit::{AuditRecord, ReplayError, ReplayPolicy, ReplayReport};
use cloakroom_core::{Call, Decision, Identity};
use cloakroom_policy::PolicyInput;

use crate::Gateway;

/// Today's policy set (rules, Datalog, custom policies and secrets' approvers), with the
/// secrets the recorded call used, so a binding that now names approvers shows up.
struct TodaysPolicy<'a> {
    gateway: &'a Gateway,
    secrets: Vec<String>,
}

#[async_trait]
impl ReplayPolicy for TodaysPolicy<'_> {
    async fn decide(&self, identity: &Identity, call: &Call) -> Decision {
        let input = PolicyInput::new(identity, call).with_secrets(&self.secrets);
        self.gateway.shared.policies.evaluate(&input).await
    }
}

/// What today's policy decides about the call `record` recorded.
pub(super) async fn replay(gateway: &Gateway, record: &AuditRecord) -> Result<ReplayReport, ReplayError> {
    let secrets = record.secrets_used.iter().map(|s| s.name.clone()).collect();
    cloakroom_audit::replay(record, &TodaysPolicy { gateway, secrets }).await
}
