//! Who is calling: a verified identity.

use std::{any::Any, net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// An OIDC JWT verified against an issuer's JWKS.
    Oidc,
    /// A Biscuit token verified against the configured root key.
    Biscuit,
    /// An API key whose SHA-256 is in the configuration.
    ApiKey,
    /// A person's session after a SAML sign-in (a session token the gateway minted).
    Saml,
    /// A Slack user deciding an approval, mapped by `approvals.slack.users` (only ever an
    /// approver: Slack users do not call functions).
    Slack,
}

impl AuthMethod {
    /// The method's name as in audit records (`oidc`, `biscuit`, `api_key`, `saml`, `slack`).
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Oidc => "oidc",
            AuthMethod::Biscuit => "biscuit",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Saml => "saml",
            AuthMethod::Slack => "slack",
        }
    }
}

/// A caller's Biscuit token: its serialized bytes and, when the identity layer verified
/// it, the verified token itself (opaque here: `biscuit_auth::Biscuit` in practice).
///
/// The identity layer verifies a token's signatures once per request (or takes it from
/// its cache) and keeps the verified token here, so that the layers that run the token's
/// own checks — the policy layer on the data path, the admin API for each operation —
/// reuse it instead of verifying it again. A token built with [`BiscuitToken::from_bytes`]
/// carries no verified form; a consumer must verify the bytes itself.
///
/// Equality compares the bytes.
#[derive(Clone)]
pub struct BiscuitToken {
    bytes: Arc<[u8]>,
    verified: Option<Arc<dyn Any + Send + Sync>>,
}

impl BiscuitToken {
    /// A token the caller's verifier has checked: its bytes and the verified value.
    pub fn verified<T: Any + Send + Sync>(bytes: impl Into<Arc<[u8]>>, verified: T) -> Self {
        Self { bytes: bytes.into(), verified: Some(Arc::new(verified)) }
    }

    /// Only the bytes: whoever uses the token must verify them.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self { bytes: bytes.into(), verified: None }
    }

    /// The serialized token.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The verified token, if the verifier kept one of type `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.verified.as_deref().and_then(|v| v.downcast_ref::<T>())
    }
}

impl PartialEq for BiscuitToken {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for BiscuitToken {}

impl std::fmt::Debug for BiscuitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token is a credential: never print it.
        write!(
            f,
            "BiscuitToken([REDACTED; {} bytes]{})",
            self.bytes.len(),
            if self.verified.is_some() { ", verified" } else { "" }
        )
    }
}

/// A verified caller, put in the request extensions by the `IdentityLayer`.
///
/// Nothing downstream trusts anything about the caller that is not in here.
///
/// Built with [`Identity::new`] and the `with_*` methods, so that adding a field is not a
/// breaking change for embedders:
///
/// ```
/// use cloakroom_core::{AuthMethod, Identity};
///
/// let who = Identity::new("ci-bot".into(), "api_key".into(), AuthMethod::ApiKey)
///     .with_groups(vec!["ci".into()]);
/// assert!(who.in_group("ci"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Identity {
    /// The subject (`sub` claim, Biscuit `user` fact, or API key subject).
    pub subject: String,
    /// The issuer: the OIDC issuer URL, `biscuit`, or `api_key`.
    pub issuer: String,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The caller's address (from the connection, or `X-Forwarded-For` of a trusted proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// The verified Biscuit token, when `method` is [`AuthMethod::Biscuit`].
    #[serde(skip)]
    pub biscuit: Option<BiscuitToken>,
}

impl Identity {
    /// A caller with no groups, no source address and no token.
    pub fn new(subject: String, issuer: String, method: AuthMethod) -> Self {
        Self { subject, issuer, method, groups: Vec::new(), source_ip: None, biscuit: None }
    }

    /// With these groups.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// With this source address.
    pub fn with_source_ip(mut self, source_ip: Option<IpAddr>) -> Self {
        self.source_ip = source_ip;
        self
    }

    /// With the caller's (verified) Biscuit token.
    pub fn with_biscuit(mut self, biscuit: Option<BiscuitToken>) -> Self {
        self.biscuit = biscuit;
        self
    }

    /// Whether the caller is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Whether the caller is in any of `groups`.
    pub fn in_any_group<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        groups.iter().any(|g| self.in_group(g.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_membership() {
        let id = Identity {
            subject: "alice".into(),
            issuer: "api_key".into(),
            method: AuthMethod::ApiKey,
            groups: vec!["ops".into(), "payments-ops".into()],
            source_ip: None,
            biscuit: Some(BiscuitToken::verified(&b"token-bytes"[..], 7u32)),
        };
        assert!(id.in_group("ops"));
        assert!(!id.in_group("op"));
        assert!(id.in_any_group(&["x", "payments-ops"]));
        assert!(!id.in_any_group::<&str>(&[]));
        assert!(!format!("{id:?}").contains("token-bytes"));
        let token = id.biscuit.as_ref().unwrap();
        assert_eq!(token.get::<u32>(), Some(&7));
        assert_eq!(token.get::<u64>(), None);
        assert_eq!(*token, BiscuitToken::from_bytes(&b"token-bytes"[..]));
        assert_eq!(BiscuitToken::from_bytes(&b"x"[..]).get::<u32>(), None);
    }
}
