//! `POST /v1/oidc/session`: `cloakroom login` collects the session of a person's sign-in.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The body of `POST /v1/oidc/session`: the one-time hand-off code the browser brought
/// back and the verifier whose S256 challenge started the sign-in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionRequest {
    /// The hand-off code.
    pub code: String,
    /// The PKCE verifier (worthless to anyone who saw only the code, but kept out of logs).
    pub code_verifier: String,
}

impl SessionRequest {
    /// Collect the session of `code` with `code_verifier`.
    pub fn new(code: impl Into<String>, code_verifier: impl Into<String>) -> Self {
        Self { code: code.into(), code_verifier: code_verifier.into() }
    }
}

impl std::fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRequest").field("code", &"[REDACTED]").field("code_verifier", &"[REDACTED]").finish()
    }
}

/// The answer to `POST /v1/oidc/session`: a person's session. The token is a credential:
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// The session token, sent as `Authorization: Bearer …`.
    pub token: String,
    /// Until when it is valid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Who signed in.
    pub subject: String,
    /// Their groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Session {
    /// `subject`'s session `token`, in `groups`, valid until `expires_at`.
    pub fn new(
        token: impl Into<String>,
        expires_at: OffsetDateTime,
        subject: impl Into<String>,
        groups: Vec<String>,
    ) -> Self {
        Self { token: token.into(), expires_at, subject: subject.into(), groups }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("subject", &self.subject)
            .field("groups", &self.groups)
            .finish()
    }
}
