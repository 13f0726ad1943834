//! `GET /v1/approvals`, `GET /v1/approvals/{id}` and `POST /v1/approvals/{id}/approve|deny`.
//!
//! An [`Approval`] is bound to the whole call it is for ([`CallScope`]), carries every
//! requirement the call has ([`Requirement`]) and who met it ([`Grant`]).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

wire_enum! {
    /// Where an approval is in its life.
    pub enum ApprovalState {
        /// Waiting for approvers: not every requirement is met yet.
        Pending = "pending",
        /// Every requirement met; usable once until it expires.
        Approved = "approved",
        /// Refused by an approver.
        Denied = "denied",
        /// Not decided (pending) or not used (approved) in time.
        Expired = "expired",
        /// Granted and used by the call it was for.
        Used = "used",
    }
}

/// Who asked for an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Requester {
    /// The caller's subject.
    pub subject: String,
    /// The caller's issuer.
    pub issuer: String,
    /// The caller's groups when they asked.
    pub groups: Vec<String>,
}

impl Requester {
    /// `subject` of `issuer`, a member of `groups`.
    pub fn new(subject: impl Into<String>, issuer: impl Into<String>, groups: Vec<String>) -> Self {
        Self { subject: subject.into(), issuer: issuer.into(), groups }
    }
}

/// A placeholder the approved call carries, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlaceholderUse {
    /// The placeholder as the caller sent it.
    pub placeholder: String,
    /// The name of the secret it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where it was found: `header:NAME`, `query:NAME` or `body`.
    pub location: String,
}

impl PlaceholderUse {
    /// `placeholder` (standing for `secret`) at `location`.
    pub fn new(placeholder: impl Into<String>, secret: Option<String>, location: impl Into<String>) -> Self {
        Self { placeholder: placeholder.into(), secret, location: location.into() }
    }
}

/// The call an approval is bound to, as it will be forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallScope {
    /// The caller's issuer.
    pub issuer: String,
    /// The caller's subject.
    pub subject: String,
    /// The function (`name`, or `name/tool` for an MCP `tools/call`).
    pub function: String,
    /// The HTTP method.
    pub method: String,
    /// The normalized path.
    pub path: String,
    /// The query string, masked (empty when there is none).
    pub query: String,
    /// The request's `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Every placeholder with its location.
    pub placeholders: Vec<PlaceholderUse>,
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: String,
}

impl CallScope {
    /// The scope of a call by `subject` of `issuer` to `function`; set the other fields.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>, function: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), subject: subject.into(), function: function.into(), ..Self::default() }
    }
}

/// One approver group a call needs, and who met it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Requirement {
    /// The group whose member must approve.
    pub group: String,
    /// Whether a distinct approver meets it.
    pub met: bool,
    /// The subject of the approver who meets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met_by: Option<String>,
}

impl Requirement {
    /// A requirement for `group`, met by `met_by` when there is one.
    pub fn new(group: impl Into<String>, met_by: Option<String>) -> Self {
        Self { group: group.into(), met: met_by.is_some(), met_by }
    }
}

/// One person's approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grant {
    /// The approver's subject.
    pub subject: String,
    /// The approver's issuer.
    pub issuer: String,
    /// The approver's groups, as far as they are requirement groups.
    pub groups: Vec<String>,
    /// When they approved.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The reason they gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Grant {
    /// An approval by `subject` of `issuer`, a member of `groups`, at `at`.
    pub fn new(subject: impl Into<String>, issuer: impl Into<String>, groups: Vec<String>, at: OffsetDateTime) -> Self {
        Self { subject: subject.into(), issuer: issuer.into(), groups, at, reason: None }
    }
}

/// An approval request and its outcome: the answer of `GET /v1/approvals/{id}` and of a
/// decision, and each item of [`ApprovalList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Approval {
    /// The approval id, the value of `Cloakroom-Approval`.
    pub id: String,
    /// Who asked.
    pub requester: Requester,
    /// The function called.
    pub function: String,
    /// The digest of the call scope the approval is for.
    #[serde(default)]
    pub digest: String,
    /// The call as approvers see it; `None` only for approvals stored before scopes.
    #[serde(default)]
    pub scope: Option<CallScope>,
    /// The arguments as shown to approvers, after the gateway's redaction.
    #[serde(default)]
    pub arguments: serde_json::Value,
    /// The id of the call that asked.
    #[serde(default)]
    pub call_id: Option<String>,
    /// The first rule that required approval.
    #[serde(default)]
    pub rule: Option<String>,
    /// Every rule and secret that asked for approval, in words.
    #[serde(default)]
    pub why: Option<String>,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when it may be decided (pending) or used (approved).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The approver groups the call needs, one requirement each.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Each requirement and whether a distinct approver meets it.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Everyone who approved, in order.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Where it is in its life.
    pub state: ApprovalState,
    /// Who decided: the approvers who met the requirements (comma-separated), or the
    /// approver who denied.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When it was decided.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The denying approver's reason, if they gave one.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the approved call used it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
    /// The call that used it.
    #[serde(default)]
    pub used_by_call: Option<String>,
    /// Bumped by every change of the stored approval.
    #[serde(default)]
    pub revision: i64,
}

impl Approval {
    /// Approval `id` for a call by `requester` to `function`, asked for at `created_at`,
    /// in `state` until `expires_at`; set the other fields.
    pub fn new(
        id: impl Into<String>,
        requester: Requester,
        function: impl Into<String>,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
        state: ApprovalState,
    ) -> Self {
        Self {
            id: id.into(),
            requester,
            function: function.into(),
            digest: String::new(),
            scope: None,
            arguments: serde_json::Value::Null,
            call_id: None,
            rule: None,
            why: None,
            created_at,
            expires_at,
            approvers: Vec::new(),
            requirements: Vec::new(),
            grants: Vec::new(),
            state,
            decided_by: None,
            decided_at: None,
            reason: None,
            used_at: None,
            used_by_call: None,
            revision: 0,
        }
    }
}

/// The answer to `GET /v1/approvals`: the approvals the caller may see.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApprovalList {
    /// The approvals, oldest first.
    pub approvals: Vec<Approval>,
}

impl ApprovalList {
    /// The list of `approvals`.
    pub fn new(approvals: Vec<Approval>) -> Self {
        Self { approvals }
    }
}

/// The body of `POST /v1/approvals/{id}/approve` and `…/deny` (an empty body is the same
/// as `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DecideApproval {
    /// Why, in the approver's words (shown to the requester and recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl DecideApproval {
    /// A decision with `reason`, if any.
    pub fn new(reason: Option<String>) -> Self {
        Self { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_reads_what_the_gateway_writes() {
        let json = r#"{"id":"ap-1","requester":{"subject":"agent-7","issuer":"biscuit","groups":["agents"]},
            "function":"refunds","digest":"d","scope":{"issuer":"biscuit","subject":"agent-7","function":"refunds",
            "method":"POST","path":"/fn/refunds","query":"","placeholders":[{"placeholder":"cloak_x","location":"body"}],
            "body_sha256":"ab"},"arguments":{"amount":5000},"call_id":"c1","rule":"refunds need a lead","why":null,
            "created_at":"2026-11-25T21:00:00Z","expires_at":"2026-11-25T21:15:00.5Z","approvers":["leads"],
            "requirements":[{"group":"leads","met":false}],"grants":[],"state":"pending","decided_by":null,
            "decided_at":null,"reason":null,"used_at":null,"used_by_call":null,"revision":1,"new_field":true}"#;
        let a: Approval = serde_json::from_str(json).unwrap();
        assert_eq!(a.state, ApprovalState::Pending);
        assert_eq!(a.scope.as_ref().unwrap().placeholders[0].location, "body");
        assert_eq!(a.requirements, [Requirement::new("leads", None)]);
        assert_eq!(a.arguments["amount"], 5000);
        let again: Approval = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(again, a);
    }

    #[test]
    fn a_state_from_a_newer_gateway_is_kept() {
        let s: ApprovalState = serde_json::from_str("\"escalated\"").unwrap();
        assert_eq!(s.as_str(), "escalated");
        assert_eq!(ApprovalState::from("denied"), ApprovalState::Denied);
    }

    #[test]
    fn a_decision_without_reason_is_an_empty_object() {
        assert_eq!(serde_json::to_string(&DecideApproval::default()).unwrap(), "{}");
        assert_eq!(
            serde_json::to_string(&DecideApproval::new(Some("too large".into()))).unwrap(),
            r#"{"reason":"too large"}"#
        );
    }
}
