//! Who is calling: a verified identity.

use std::{net::IpAddr, sync::Arc};

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
}

impl AuthMethod {
    /// The method's name as in audit records (`oidc`, `biscuit`, `api_key`).
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Oidc => "oidc",
            AuthMethod::Biscuit => "biscuit",
            AuthMethod::ApiKey => "api_key",
        }
    }
}

/// The serialized bytes of a Biscuit token whose signatures the identity layer has
/// already verified. The policy layer runs the token's own checks (attenuation) with them.
#[derive(Clone, PartialEq, Eq)]
pub struct BiscuitToken(pub Arc<[u8]>);

impl std::fmt::Debug for BiscuitToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token is a credential: never print it.
        write!(f, "BiscuitToken([REDACTED; {} bytes])", self.0.len())
    }
}

/// A verified caller, put in the request extensions by the `IdentityLayer`.
///
/// Nothing downstream trusts anything about the caller that is not in here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
            biscuit: Some(BiscuitToken(Arc::from(&b"token-bytes"[..]))),
        };
        assert!(id.in_group("ops"));
        assert!(!id.in_group("op"));
        assert!(id.in_any_group(&["x", "payments-ops"]));
        assert!(!id.in_any_group::<&str>(&[]));
        assert!(!format!("{id:?}").contains("token-bytes"));
    }
}
