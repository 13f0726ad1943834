//! What a request is about to do, for the checks of the caller's token.
//!
//! A Biscuit token carries its own checks (a TTL, `check if operation("approvals:approve")`,
//! …) that must hold wherever it is accepted. The admin API states each endpoint's
//! [`Operation`] and [`crate::Authenticator::authorize`] runs the token's checks against
//! it; the data path's policy layer runs them against the call (`operation("call")`).
//! Credentials without checks (OIDC JWTs, API keys) are authorized by group membership
//! alone.
//!
//! Facts given to a token's checks (docs/identity.md has examples):
//!
//! | fact | when |
//! |---|---|
//! | `operation($op)` | always: `secrets:list`, `secrets:put`, `secrets:delete`, `approvals:list`, `approvals:read`, `approvals:approve`, `approvals:deny`, `audit:read`, `audit:verify`, `reload` (and `call` on the data path) |
//! | `resource($r)` | what the operation acts on: the secret's name, the approval's function, the audit record's call id |
//! | `function($f)` | approvals: the approval's function |
//! | `approval($id)` | approvals: the approval's id |
//! | `secret($name)` | secrets: the secret's name |
//! | `time($t)` | always: now |
//!
//! ```
//! use cloakroom_identity::Operation;
//! let op = Operation::new(Operation::APPROVALS_APPROVE).approval("0190-…", "refund");
//! assert_eq!(op.name(), "approvals:approve");
//! assert_eq!(op.resource(), Some("refund"));
//! ```

use std::{fmt, time::SystemTime};

use biscuit_auth::builder::{self, Fact, Term};

/// One admin (or data-path) operation and what it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    name: &'static str,
    resource: Option<String>,
    function: Option<String>,
    approval: Option<String>,
    secret: Option<String>,
}

impl Operation {
    /// `GET /v1/secrets`.
    pub const SECRETS_LIST: &'static str = "secrets:list";
    /// `POST /v1/secrets`.
    pub const SECRETS_PUT: &'static str = "secrets:put";
    /// `DELETE /v1/secrets/{name}`.
    pub const SECRETS_DELETE: &'static str = "secrets:delete";
    /// `GET /v1/approvals`.
    pub const APPROVALS_LIST: &'static str = "approvals:list";
    /// `GET /v1/approvals/{id}`.
    pub const APPROVALS_READ: &'static str = "approvals:read";
    /// `POST /v1/approvals/{id}/approve`.
    pub const APPROVALS_APPROVE: &'static str = "approvals:approve";
    /// `POST /v1/approvals/{id}/deny`.
    pub const APPROVALS_DENY: &'static str = "approvals:deny";
    /// `GET /v1/audit` and `GET /v1/audit/{id}`.
    pub const AUDIT_READ: &'static str = "audit:read";
    /// `GET /v1/audit/verify`.
    pub const AUDIT_VERIFY: &'static str = "audit:verify";
    /// `POST /v1/reload`.
    pub const RELOAD: &'static str = "reload";
    /// A call on the data path (given by the policy layer, with the call's facts).
    pub const CALL: &'static str = "call";

    /// The operation `name` (one of the constants), acting on nothing in particular.
    pub fn new(name: &'static str) -> Self {
        Self { name, resource: None, function: None, approval: None, secret: None }
    }

    /// Acting on secret `name` (`resource` and `secret` facts).
    pub fn secret(mut self, name: &str) -> Self {
        self.resource = Some(name.to_owned());
        self.secret = Some(name.to_owned());
        self
    }

    /// Acting on approval `id` for a call of `function` (`resource` and `function` are
    /// the function, so "approve refunds" is a check on either; `approval` is the id).
    pub fn approval(mut self, id: &str, function: &str) -> Self {
        self.resource = Some(function.to_owned());
        self.function = Some(function.to_owned());
        self.approval = Some(id.to_owned());
        self
    }

    /// Acting on `resource` (e.g. an audit record's call id).
    pub fn on(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The operation's name (`operation` fact).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What it acts on, if anything (`resource` fact).
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The facts the token's checks see, at `now`.
    pub fn facts(&self, now: SystemTime) -> Vec<Fact> {
        let one = |name: &str, value: &str| builder::fact(name, &[builder::string(value)]);
        let mut facts = vec![one("operation", self.name)];
        if let Some(r) = &self.resource {
            facts.push(one("resource", r));
        }
        if let Some(f) = &self.function {
            facts.push(one("function", f));
        }
        if let Some(a) = &self.approval {
            facts.push(one("approval", a));
        }
        if let Some(s) = &self.secret {
            facts.push(one("secret", s));
        }
        let secs = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        facts.push(builder::fact("time", &[Term::Date(secs)]));
        facts
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(r) = &self.resource {
            write!(f, " on {r:?}")?;
        }
        Ok(())
    }
}
