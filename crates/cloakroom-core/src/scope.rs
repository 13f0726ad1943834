//! What an approval binds: the whole call as it will be forwarded.
//!
//! An approval granted for one call must not carry another one. A [`CallScope`] names
//! every part of a call that decides what the function does and which secrets move: the
//! caller (issuer and subject), the function, the method, the path and query, the
//! content type, every placeholder with the place it was found, and the SHA-256 of the
//! body. The call layer builds it once per call and puts it in the request extensions;
//! the policy layer binds an approval to its [`digest`](CallScope::digest) when it asks
//! and refuses a presented approval whose digest differs, and the detokenizer checks the
//! approval record it loads itself ([`ApprovalLookup`]) before a secret whose binding
//! names approvers is substituted.
//!
//! ```
//! use cloakroom_core::{CallScope, PlaceholderUse};
//!
//! let mut scope = CallScope {
//!     issuer: "api_key".into(),
//!     subject: "agent".into(),
//!     function: "refund".into(),
//!     method: "GET".into(),
//!     path: "/balance".into(),
//!     query: String::new(),
//!     content_type: None,
//!     placeholders: vec![PlaceholderUse::new("cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa", Some("stripe"), "header:x-api-key")],
//!     body_sha256: CallScope::body_digest(b""),
//! };
//! let approved = scope.digest();
//! scope.method = "DELETE".into();
//! assert_ne!(scope.digest(), approved); // any difference is another call
//! ```

use std::{future::Future, pin::Pin};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{CallId, Error};

/// A placeholder a call carries, and where: `header:NAME` (lowercase), `query:NAME`, or
/// `body`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlaceholderUse {
    /// The placeholder as the caller sent it.
    pub placeholder: String,
    /// The name of the secret it stands for (for people reading the approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where it was found: `header:NAME`, `query:NAME` or `body`.
    pub location: String,
}

impl PlaceholderUse {
    /// A use of `placeholder` (standing for `secret`) at `location`.
    pub fn new(placeholder: impl Into<String>, secret: Option<&str>, location: impl Into<String>) -> Self {
        Self { placeholder: placeholder.into(), secret: secret.map(str::to_owned), location: location.into() }
    }

    /// The location class a detokenizer location maps to in a scope: `json:/pointer`
    /// and `body` are both `body` (the body digest binds their exact position).
    pub fn scope_location(location: &str) -> &str {
        if location == "body" || location.starts_with("json:") {
            "body"
        } else {
            location
        }
    }
}

/// Everything an approval binds (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallScope {
    /// The caller's issuer (OIDC issuer URL, `biscuit`, `api_key`, …).
    pub issuer: String,
    /// The caller's subject.
    pub subject: String,
    /// The function (`name`, or `name/tool` for an MCP `tools/call`).
    pub function: String,
    /// The HTTP method.
    pub method: String,
    /// The request path as it will be forwarded (after normalization).
    pub path: String,
    /// The query string as it will be forwarded (empty when there is none).
    pub query: String,
    /// The request's `Content-Type`, which decides how the function reads the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Every known placeholder in the call with its location, sorted, without repeats.
    pub placeholders: Vec<PlaceholderUse>,
    /// Lowercase hex SHA-256 of the body: the raw bytes for `http` functions; for MCP
    /// the canonical JSON of the message without its JSON-RPC `id` (a client gives the
    /// repeated call a new id).
    pub body_sha256: String,
}

impl CallScope {
    /// Lowercase hex SHA-256 of `body`.
    pub fn body_digest(body: &[u8]) -> String {
        hex_lower(&Sha256::digest(body))
    }

    /// Sorts the placeholders and drops repeats, so the digest does not depend on the
    /// order they were found in.
    pub fn normalize(&mut self) {
        self.placeholders.sort();
        self.placeholders.dedup();
    }

    /// Lowercase hex SHA-256 over every field, each length-prefixed, so no two different
    /// scopes share a digest by shifting bytes from one field to the next.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |tag: &[u8], v: &[u8]| {
            h.update(tag);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        };
        field(b"issuer", self.issuer.as_bytes());
        field(b"subject", self.subject.as_bytes());
        field(b"function", self.function.as_bytes());
        field(b"method", self.method.as_bytes());
        field(b"path", self.path.as_bytes());
        field(b"query", self.query.as_bytes());
        match &self.content_type {
            Some(ct) => field(b"content_type", ct.as_bytes()),
            None => field(b"no_content_type", b""),
        }
        let mut uses: Vec<(&str, &str)> =
            self.placeholders.iter().map(|u| (u.placeholder.as_str(), u.location.as_str())).collect();
        uses.sort_unstable();
        uses.dedup();
        field(b"placeholders", &(uses.len() as u64).to_be_bytes());
        for (p, loc) in uses {
            field(b"placeholder", p.as_bytes());
            field(b"location", loc.as_bytes());
        }
        field(b"body", self.body_sha256.as_bytes());
        hex_lower(&h.finalize())
    }

    /// Whether `placeholder` is used at `location` (a detokenizer location, see
    /// [`PlaceholderUse::scope_location`]) in this scope.
    pub fn has_use(&self, placeholder: &str, location: &str) -> bool {
        let loc = PlaceholderUse::scope_location(location);
        self.placeholders.iter().any(|u| u.placeholder == placeholder && u.location.eq_ignore_ascii_case(loc))
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// An approval as the detokenizer needs it: granted in full and used by exactly one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedApproval {
    /// The approval id.
    pub id: String,
    /// The call that used it.
    pub call_id: CallId,
    /// The [`CallScope::digest`] it was granted for.
    pub scope_digest: String,
    /// The placeholders of the call it was granted for.
    pub placeholders: Vec<PlaceholderUse>,
    /// The approver groups whose requirement a distinct approver met.
    pub groups_met: Vec<String>,
}

/// A boxed future, as [`ApprovalLookup`] returns.
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<ConsumedApproval>, Error>> + Send + 'a>>;

/// Reads approval records for the detokenizer, which decides from the record it loads
/// itself and never from what an outer layer noted. Implemented by the policy crate's
/// approvals service.
pub trait ApprovalLookup: Send + Sync {
    /// The approval `id` if it was granted in full and used by call `call_id`; `None`
    /// when it is unknown, not granted, not used, or used by another call.
    fn consumed_by(&self, id: &str, call_id: CallId) -> LookupFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> CallScope {
        CallScope {
            issuer: "api_key".into(),
            subject: "agent".into(),
            function: "refund".into(),
            method: "GET".into(),
            path: "/balance".into(),
            query: "a=1".into(),
            content_type: Some("application/json".into()),
            placeholders: vec![PlaceholderUse::new("cloak_a", Some("s"), "header:x-key")],
            body_sha256: CallScope::body_digest(b"{}"),
        }
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = scope().digest();
        type Change = Box<dyn Fn(&mut CallScope)>;
        let changes: Vec<Change> = vec![
            Box::new(|s| s.issuer = "https://idp".into()),
            Box::new(|s| s.subject = "agent2".into()),
            Box::new(|s| s.function = "refund/x".into()),
            Box::new(|s| s.method = "DELETE".into()),
            Box::new(|s| s.path = "/accounts/1".into()),
            Box::new(|s| s.query = "a=2".into()),
            Box::new(|s| s.content_type = None),
            Box::new(|s| s.content_type = Some("text/plain".into())),
            Box::new(|s| s.placeholders[0].placeholder = "cloak_b".into()),
            Box::new(|s| s.placeholders[0].location = "header:y-key".into()),
            Box::new(|s| s.placeholders.push(PlaceholderUse::new("cloak_b", None, "body"))),
            Box::new(|s| s.placeholders.clear()),
            Box::new(|s| s.body_sha256 = CallScope::body_digest(b"{ }")),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut s = scope();
            change(&mut s);
            assert_ne!(s.digest(), base, "change {i} kept the digest");
        }
    }

    #[test]
    fn shifting_bytes_between_fields_changes_the_digest() {
        let mut a = scope();
        a.path = "/ab".into();
        a.query = "c".into();
        let mut b = scope();
        b.path = "/a".into();
        b.query = "bc".into();
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn placeholder_order_and_repeats_do_not_matter_but_the_secret_name_label_does_not_count() {
        let mut a = scope();
        a.placeholders.push(PlaceholderUse::new("cloak_b", None, "body"));
        let mut b = scope();
        b.placeholders.insert(0, PlaceholderUse::new("cloak_b", Some("other"), "body"));
        b.placeholders.push(PlaceholderUse::new("cloak_b", None, "body"));
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn json_locations_are_body_uses() {
        let mut s = scope();
        s.placeholders.push(PlaceholderUse::new("cloak_b", None, "body"));
        assert!(s.has_use("cloak_b", "json:/auth/token"));
        assert!(s.has_use("cloak_a", "header:X-Key"));
        assert!(!s.has_use("cloak_a", "query:x-key"));
    }
}
