//! Why a credential was refused, and how that reaches the wire.

use cloakroom_core::{Error, ErrorCode};

/// Why a request was not authenticated.
///
/// Messages describe the failure, never the credential: they are safe to send to the
/// caller and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Bearer` credential in `Proxy-Authorization` or `Authorization`.
    #[error("no bearer credential in Proxy-Authorization or Authorization")]
    Missing,
    /// The credential header is repeated, not visible ASCII, or uses another scheme.
    #[error("the credential header is malformed")]
    MalformedHeader,
    /// The credential is longer than any credential this gateway accepts.
    #[error("the credential is too long")]
    TooLong,
    /// The token is not well-formed (bad base64, bad JSON, bad protobuf, truncated).
    #[error("the token is malformed")]
    Malformed,
    /// The token's algorithm is not accepted (`none`, HMAC, or one the key does not use).
    #[error("the token's algorithm is not accepted")]
    AlgorithmRefused,
    /// The token's signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The token names a key its issuer does not publish.
    #[error("the token's signing key is unknown to its issuer")]
    UnknownKey,
    /// The token's issuer is not configured.
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    /// The token's audience does not include a configured audience.
    #[error("the token's audience is not accepted")]
    WrongAudience,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A claim the gateway needs (`sub`, `exp`, `iss`, `aud`) is missing or mistyped.
    #[error("the token lacks a required claim")]
    MissingClaim,
    /// A Biscuit token that did not verify, or whose authority block names no `user`.
    #[error("the biscuit token is invalid")]
    InvalidBiscuit,
    /// The credential matches no configured API key.
    #[error("the API key is unknown")]
    UnknownApiKey,
    /// The credential has a shape whose method is not configured (e.g. a JWT and no issuer).
    #[error("this kind of credential is not accepted here")]
    MethodNotConfigured,
    /// The issuer's discovery document or JWKS could not be fetched.
    #[error("the token's issuer could not be reached to verify it")]
    IssuerUnavailable,
}

impl AuthError {
    /// Whether the caller presented a token (and so gets `error="invalid_token"`).
    pub fn token_given(&self) -> bool {
        !matches!(self, AuthError::Missing)
    }

    /// The wire error: always `unauthenticated` (401).
    pub fn to_error(&self) -> Error {
        Error::new(ErrorCode::Unauthenticated, self.to_string())
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3) for this refusal, with the
    /// RFC 9728 `resource_metadata` parameter when one is given.
    pub fn www_authenticate(&self, resource_metadata: Option<&str>) -> String {
        let mut params = Vec::new();
        if let Some(url) = resource_metadata {
            params.push(format!("resource_metadata=\"{}\"", quote_safe(url)));
        }
        if self.token_given() && *self != AuthError::IssuerUnavailable {
            params.push("error=\"invalid_token\"".to_owned());
            params.push(format!("error_description=\"{}\"", quote_safe(&self.to_string())));
        }
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    }
}

/// Why a verified caller may not do an operation: its token's own checks refuse it.
///
/// Messages name the operation and the failed checks (the token holder's own Datalog),
/// never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// A check of the token does not hold for this operation (an expired TTL, a check
    /// narrowing the token to other operations or resources).
    #[error("the token's checks do not allow {operation}: {checks}")]
    CheckFailed {
        /// The operation and its resource.
        operation: String,
        /// The checks that failed.
        checks: String,
    },
    /// The checks could not be run to the end (limits, a token that cannot be read):
    /// refused, as a failed check would be.
    #[error("the token's checks could not be evaluated for {operation}: {reason}")]
    Unevaluated {
        /// The operation and its resource.
        operation: String,
        /// What stopped the evaluation.
        reason: String,
    },
}

impl AuthzError {
    /// The wire error: always `forbidden` (403).
    pub fn to_error(&self) -> Error {
        Error::new(ErrorCode::Forbidden, self.to_string())
    }
}

/// Drops characters that cannot appear in a quoted-string header parameter.
fn quote_safe(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c)).collect()
}

/// Why an [`crate::IdentityConfig`] could not be turned into an [`crate::Authenticator`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `identity.biscuit.root_public_key` is not a key `biscuit-auth` can read.
    #[error("identity.biscuit.root_public_key is not a valid public key (expected ed25519/<hex>): {0}")]
    BiscuitRootKey(String),
    /// An API key's `sha256` is not 64 hex characters.
    #[error("identity.api_keys[{index}].sha256 is not 64 hex characters")]
    ApiKeyHash {
        /// Position of the entry in `identity.api_keys`.
        index: usize,
    },
    /// An OIDC issuer is not an absolute http(s) URL, or has no audience.
    #[error("identity.oidc[{index}]: {reason}")]
    Oidc {
        /// Position of the entry in `identity.oidc`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client for discovery and JWKS could not be built.
    #[error("cannot build the HTTP client for OIDC discovery: {0}")]
    HttpClient(String),
    /// The session signing key could not be read, created or used.
    #[error("session key: {0}")]
    SessionKey(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names_invalid_token_only_when_a_token_was_given() {
        assert_eq!(AuthError::Missing.www_authenticate(None), "Bearer");
        assert_eq!(
            AuthError::Missing.www_authenticate(Some("https://gw/.well-known/oauth-protected-resource/fn/x")),
            "Bearer resource_metadata=\"https://gw/.well-known/oauth-protected-resource/fn/x\""
        );
        let c = AuthError::Expired.www_authenticate(None);
        assert!(c.starts_with("Bearer error=\"invalid_token\""), "{c}");
        assert_eq!(AuthError::Expired.to_error().code, ErrorCode::Unauthenticated);
        // The token may be fine when its issuer is down: no invalid_token.
        assert_eq!(AuthError::IssuerUnavailable.www_authenticate(None), "Bearer");
    }
}
