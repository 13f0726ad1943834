//! What policy decided about a call.

use serde::{Deserialize, Serialize};

/// The effect of a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The call goes ahead.
    Allow,
    /// The call is refused.
    Deny,
    /// The call needs a person's approval first.
    Approve,
}

impl Effect {
    /// The effect's name as in configuration and audit records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Approve => "approve",
        }
    }
}

/// What a `mode = "shadow"` rule would have decided about a call: recorded and
/// counted, never enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowVerdict {
    /// The shadow rule's configured name.
    pub rule: String,
    /// The effect it would have given the call.
    pub effect: Effect,
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision with the rule that made it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Decision {
    /// Allow, deny or approve.
    pub effect: Effect,
    /// The name of the rule or policy that decided; `None` for the default deny.
    #[serde(default)]
    pub rule: Option<String>,
    /// A short human-readable reason (never containing a secret).
    pub reason: String,
    /// With [`Effect::Approve`]: the groups whose members may approve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

impl Decision {
    /// An allow decision by `rule`.
    pub fn allow(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { effect: Effect::Allow, rule: Some(rule.into()), reason: reason.into(), approvers: Vec::new() }
    }

    /// A deny decision by `rule`.
    pub fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { effect: Effect::Deny, rule: Some(rule.into()), reason: reason.into(), approvers: Vec::new() }
    }

    /// A deny that no rule made (a refusal by the data path itself, such as a
    /// placeholder outside its binding), with `reason`.
    pub fn refused(reason: impl Into<String>) -> Self {
        Self { effect: Effect::Deny, rule: None, reason: reason.into(), approvers: Vec::new() }
    }

    /// The deny that applies when no rule matched.
    pub fn default_deny() -> Self {
        Self { effect: Effect::Deny, rule: None, reason: "no rule allows this call".into(), approvers: Vec::new() }
    }

    /// An approval-required decision by `rule`, approvable by `approvers`.
    pub fn approve(rule: impl Into<String>, reason: impl Into<String>, approvers: Vec<String>) -> Self {
        Self { effect: Effect::Approve, rule: Some(rule.into()), reason: reason.into(), approvers }
    }
}
