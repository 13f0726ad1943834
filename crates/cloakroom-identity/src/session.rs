//! Sessions for people: a short-lived Biscuit the gateway mints after a sign-in (SAML,
//! OIDC authorization code) and accepts like any other bearer credential.
//!
//! A session token is an ordinary Biscuit whose authority block says who signed in and
//! carries its own expiry check, signed by the gateway's session key and marked with
//! [`SESSION_ROOT_KEY_ID`]. The [`crate::Authenticator`] verifies it with the session
//! public key (never the configured `[identity.biscuit]` root: an operator's admin token
//! cannot claim to be a SAML session and a session cannot pass for an operator token), and
//! then it behaves like any Biscuit: its expiry is one of its checks, run by the admin
//! API for every operation and by the policy layer for every call, and its holder can
//! attenuate it further (`cloakroom biscuit attenuate`).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use cloakroom_core::AuthMethod;
//! use cloakroom_identity::{SessionKeys, SignIn};
//!
//! let keys = SessionKeys::generate();
//! let who = SignIn::new("alice@example.com", "https://idp.example.com/saml", AuthMethod::Saml)
//!     .with_groups(["finance-leads"]);
//! let session = keys.mint(&who, Duration::from_secs(3600), SystemTime::now()).unwrap();
//! assert!(session.expires_at > SystemTime::now());
//! assert!(!session.token.contains('.'), "a Biscuit, not a JWT");
//! ```

use std::{
    fmt,
    path::Path,
    time::{Duration, SystemTime},
};

use biscuit_auth::{builder::Term, Algorithm, Biscuit, KeyPair, PrivateKey, PublicKey};
use cloakroom_core::AuthMethod;

use crate::error::ConfigError;

/// The `root_key_id` of every session token: the verifier picks the session key for
/// tokens that carry it, and the `[identity.biscuit]` root key for every other token.
pub const SESSION_ROOT_KEY_ID: u32 = 0x5e55_1011;

/// Who signed in, as the sign-in flow verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignIn {
    /// The person's subject (SAML NameID, OIDC `sub`).
    pub subject: String,
    /// Who vouched for them (the SAML IdP's entity id, the OIDC issuer URL).
    pub issuer: String,
    /// How they signed in ([`AuthMethod::Saml`] or [`AuthMethod::Oidc`]).
    pub method: AuthMethod,
    /// Their groups, from the configured attribute or claim.
    pub groups: Vec<String>,
}

impl SignIn {
    /// A sign-in with no groups.
    pub fn new(subject: impl Into<String>, issuer: impl Into<String>, method: AuthMethod) -> Self {
        Self { subject: subject.into(), issuer: issuer.into(), method, groups: Vec::new() }
    }

    /// With these groups.
    pub fn with_groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }
}

/// A minted session: the bearer token and when it stops being accepted.
#[derive(Clone)]
#[non_exhaustive]
pub struct Session {
    /// The token (base64url Biscuit), for `Authorization: Bearer` or a session cookie.
    pub token: String,
    /// The expiry its authority block checks.
    pub expires_at: SystemTime,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never in a log line.
        f.debug_struct("Session").field("token", &"[REDACTED]").field("expires_at", &self.expires_at).finish()
    }
}

/// The gateway's session signing key.
pub struct SessionKeys {
    keypair: KeyPair,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys").field("public", &self.keypair.public().to_string()).finish()
    }
}

impl SessionKeys {
    /// A fresh random key (one replica, or dev mode).
    pub fn generate() -> Self {
        Self { keypair: KeyPair::new() }
    }

    /// From a private key in the form `biscuit-auth` prints (`ed25519-private/<hex>`) or
    /// as 64 bare hex characters.
    pub fn from_private(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let parsed = if text.contains('/') {
            text.parse::<PrivateKey>().map_err(|e| e.to_string())
        } else {
            PrivateKey::from_bytes_hex(text, Algorithm::Ed25519).map_err(|e| e.to_string())
        };
        // The parser's message never quotes the key, but say only what is wrong.
        let key = parsed.map_err(|_| ConfigError::SessionKey("not an Ed25519 private key".into()))?;
        Ok(Self { keypair: KeyPair::from(&key) })
    }

    /// Reads the key at `path`, or creates it there (mode 0600) when there is none: what
    /// a single replica uses, so sessions survive a restart. Blocking file I/O: call it at
    /// start-up or from `spawn_blocking`.
    pub fn load_or_create(path: &Path) -> Result<Self, ConfigError> {
        let err = |e: std::io::Error| ConfigError::SessionKey(format!("{}: {e}", path.display()));
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_private(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
                let keys = Self::generate();
                let mut file =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
                file.write_all(keys.keypair.private().to_prefixed_string().as_bytes()).map_err(err)?;
                file.sync_all().map_err(err)?;
                Ok(keys)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// The public key session tokens are verified with.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    /// A session for `who`, valid for `ttl` from `now`.
    pub fn mint(&self, who: &SignIn, ttl: Duration, now: SystemTime) -> Result<Session, ConfigError> {
        use biscuit_auth::builder_ext::BuilderExt as _;
        let expires_at = now + ttl;
        let err = |e: biscuit_auth::error::Token| ConfigError::SessionKey(format!("minting a session: {e}"));
        // Values go in as terms, never spliced into Datalog source: a subject or group
        // with quotes in it cannot add a fact.
        let string = |s: &str| Term::Str(s.to_owned());
        let mut builder = Biscuit::builder()
            .fact(biscuit_auth::builder::fact("user", &[string(&who.subject)]))
            .map_err(err)?
            .fact(biscuit_auth::builder::fact("session_issuer", &[string(&who.issuer)]))
            .map_err(err)?
            .fact(biscuit_auth::builder::fact("session_method", &[string(who.method.as_str())]))
            .map_err(err)?;
        for g in &who.groups {
            builder = builder.fact(biscuit_auth::builder::fact("group", &[string(g)])).map_err(err)?;
        }
        let token = builder
            .check_expiration_date(expires_at)
            .root_key_id(SESSION_ROOT_KEY_ID)
            .build(&self.keypair)
            .map_err(err)?
            .to_base64()
            .map_err(err)?;
        Ok(Session { token, expires_at })
    }
}

/// The method a session's `session_method` fact names.
pub(crate) fn method_named(name: &str) -> Option<AuthMethod> {
    [AuthMethod::Saml, AuthMethod::Oidc].into_iter().find(|m| m.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file() {
        let dir = tempfile_dir();
        let path = dir.join("session.key");
        let first = SessionKeys::load_or_create(&path).unwrap();
        let again = SessionKeys::load_or_create(&path).unwrap();
        assert_eq!(first.public(), again.public());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_malformed_key_is_refused_without_quoting_it() {
        let err = SessionKeys::from_private("ed25519-private/zz-secret-zz").unwrap_err();
        assert!(!err.to_string().contains("zz-secret-zz"), "{err}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cloakroom-session-{}", cloakroom_core::CallId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
