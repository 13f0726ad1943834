//! The `[identity]` section of `cloakroom.toml` (docs/configuration.md).
//!
//! ```
//! use cloakroom_identity::IdentityConfig;
//!
//! let config: IdentityConfig = toml::from_str(r#"
//!     admin_groups = ["cloakroom-admins"]
//!     trusted_proxies = ["10.0.0.0/8"]
//!
//!     [[oidc]]
//!     issuer = "https://idp.example.com"
//!     audiences = ["cloakroom"]
//!     groups_claim = "realm_access.roles"
//!
//!     [[api_keys]]
//!     subject = "ci-bot"
//!     groups = ["ci"]
//!     sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! "#).unwrap();
//! assert_eq!(config.oidc[0].groups_claim, "realm_access.roles");
//! assert_eq!(config.oidc[0].leeway.as_secs(), 30);
//! ```

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The `[identity]` table: who may call, and how they prove it.
///
/// A request's credential is checked against every method configured here; a method
/// left out refuses every credential of its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// OIDC issuers whose JWTs are accepted (`[[identity.oidc]]`, any number).
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
    /// The Biscuit root public key (`[identity.biscuit]`); without it Biscuit tokens are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biscuit: Option<BiscuitConfig>,
    /// API keys (`[[identity.api_keys]]`), each given by the SHA-256 of the key.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Groups whose members are administrators of the admin API.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Networks (CIDRs) of proxies whose `X-Forwarded-For` is believed. Empty: the
    /// connection's peer address is always the source address.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    /// How many verified tokens (OIDC and Biscuit) are remembered, by SHA-256 of the
    /// token, so that a repeated token costs a lookup instead of a signature check.
    /// `0` turns the cache off. Default 10000.
    #[serde(default = "default_cache_capacity")]
    pub token_cache_capacity: usize,
    /// Sessions for people who sign in (`[identity.sessions]`).
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// SAML 2.0 sign-in for people (`[identity.saml]`, docs/identity.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<crate::saml::SamlConfig>,
}

/// `[identity.sessions]`: the session tokens the gateway mints for people who sign in
/// (SAML, OIDC authorization code, the console).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// An environment variable holding the session signing key (an Ed25519 private key,
    /// `ed25519-private/<hex>` as `cloakroom biscuit keygen` prints it). Replicas behind
    /// one load balancer share it so a session minted by one is accepted by all. Unset:
    /// a key kept in `server.data_dir/session.key`, created on first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key_env: Option<String>,
    /// How long a session lasts unless the sign-in method says otherwise
    /// (`identity.saml.session_ttl`). Default `8h`.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub ttl: Duration,
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { signing_key_env: None, ttl: default_session_ttl() }
    }
}

fn default_cache_capacity() -> usize {
    10_000
}

impl Default for IdentityConfig {
    /// Nothing accepted yet; the token cache at its default size.
    fn default() -> Self {
        Self {
            oidc: Vec::new(),
            biscuit: None,
            api_keys: Vec::new(),
            admin_groups: Vec::new(),
            trusted_proxies: Vec::new(),
            token_cache_capacity: default_cache_capacity(),
            sessions: SessionsConfig::default(),
            saml: None,
        }
    }
}

/// One `[[identity.oidc]]` issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuerConfig {
    /// The issuer URL. A token's `iss` must equal it exactly; discovery is fetched from
    /// `{issuer}/.well-known/openid-configuration` and must name the same issuer.
    pub issuer: String,
    /// Accepted audiences: a token's `aud` (a string or an array) must contain one of them.
    pub audiences: Vec<String>,
    /// The claim holding the caller's groups: a name, or a dotted path into nested
    /// objects (`realm_access.roles`). Its value may be a string or an array of strings;
    /// a missing claim means no groups. Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock skew tolerated when checking `exp` and `nbf`. Default `30s`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How often the issuer's JWKS is fetched again in the background. Default `5m`.
    #[serde(default = "default_jwks_refresh", with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// The least time between two JWKS refetches caused by tokens naming an unknown `kid`
    /// (so a flood of forged `kid`s cannot hammer the issuer), and between two attempts
    /// to fetch the keys of an issuer that could not be reached. Default `10s`; at least `1s`.
    #[serde(default = "default_jwks_min_refetch", with = "humantime_serde")]
    pub jwks_min_refetch: Duration,
    /// The client id Cloakroom signs people in with (authorization code flow with PKCE,
    /// `GET /v1/oidc/login`). Unset: this issuer only verifies bearer JWTs. An ID token
    /// from sign-in must name it in `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The environment variable holding the client secret, sent to the token endpoint
    /// with HTTP Basic (`client_secret_basic`). Unset: a public client (PKCE only). The
    /// secret itself is never in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The scopes asked for at sign-in; `openid` is always asked for. Add the scope that
    /// puts groups into the ID token (often `groups`). Default `["openid"]`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The redirect URI registered with the issuer. Default
    /// `http://{server.admin_listen}/v1/oidc/callback`; set it when people reach the
    /// admin listener through a proxy (`https://cloakroom.example.com/v1/oidc/callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".to_owned()]
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_min_refetch() -> Duration {
    Duration::from_secs(10)
}

impl OidcIssuerConfig {
    /// An issuer with the default groups claim, leeway and refresh intervals.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            groups_claim: default_groups_claim(),
            leeway: default_leeway(),
            jwks_refresh: default_jwks_refresh(),
            jwks_min_refetch: default_jwks_min_refetch(),
            client_id: None,
            client_secret_env: None,
            scopes: default_scopes(),
            redirect_uri: None,
        }
    }
}

/// `[identity.biscuit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiscuitConfig {
    /// The root public key in the form `biscuit-auth` prints it: `ed25519/<64 hex>`
    /// (or `secp256r1/<hex>`). Tokens not signed by its private key are refused.
    pub root_public_key: String,
}

/// One `[[identity.api_keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The subject a caller with this key is known as.
    pub subject: String,
    /// The caller's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The SHA-256 of the key, as 64 hex characters (`printf %s "$KEY" | sha256sum`).
    /// The key itself is never in the configuration.
    pub sha256: String,
}

impl IdentityConfig {
    /// Whether any credential can authenticate: an OIDC issuer, a Biscuit root key or an
    /// API key is configured.
    pub fn accepts_any_credential(&self) -> bool {
        !self.oidc.is_empty() || self.biscuit.is_some() || !self.api_keys.is_empty()
    }

    /// Whether `identity` belongs to one of [`IdentityConfig::admin_groups`].
    pub fn is_admin(&self, identity: &cloakroom_core::Identity) -> bool {
        identity.in_any_group(&self.admin_groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_one_kind_of_credential_is_enough_to_accept_credentials() {
        assert!(!IdentityConfig::default().accepts_any_credential());
        assert!(!toml::from_str::<IdentityConfig>("admin_groups = [\"ops\"]").unwrap().accepts_any_credential());
        for one in [
            "[[oidc]]\nissuer = \"https://idp.example.com\"\naudiences = [\"c\"]",
            "[biscuit]\nroot_public_key = \"ed25519/00\"",
            "[[api_keys]]\nsubject = \"a\"\nsha256 = \"00\"",
        ] {
            let c: IdentityConfig = toml::from_str(one).unwrap_or_else(|e| panic!("{one}: {e}"));
            assert!(c.accepts_any_credential(), "{one}");
        }
    }

    #[test]
    fn spec_example_parses_with_defaults() {
        let c: IdentityConfig = toml::from_str(
            r#"
            admin_groups = ["cloakroom-admins"]
            trusted_proxies = []
            [[oidc]]
            issuer = "https://idp.example.com"
            audiences = ["cloakroom"]
            groups_claim = "groups"
            [biscuit]
            root_public_key = "ed25519/0000000000000000000000000000000000000000000000000000000000000000"
            [[api_keys]]
            subject = "ci-bot"
            groups = ["ci"]
            sha256 = "00"
            "#,
        )
        .unwrap();
        assert_eq!(c.oidc[0].leeway, Duration::from_secs(30));
        assert_eq!(c.oidc[0].jwks_refresh, Duration::from_secs(300));
        assert_eq!(c.oidc[0].jwks_min_refetch, Duration::from_secs(10));
        assert_eq!(c.token_cache_capacity, 10_000);
        assert_eq!(IdentityConfig::default().token_cache_capacity, 10_000);
        assert_eq!(c.api_keys[0].subject, "ci-bot");
    }

    #[test]
    fn durations_are_humantime_and_unknown_fields_are_refused() {
        let c: OidcIssuerConfig =
            toml::from_str("issuer = \"i\"\naudiences = []\nleeway = \"5s\"\njwks_refresh = \"1h\"").unwrap();
        assert_eq!(c.leeway, Duration::from_secs(5));
        assert_eq!(c.jwks_refresh, Duration::from_secs(3600));
        let err = toml::from_str::<OidcIssuerConfig>("issuer = \"i\"\naudiences = []\nlee_way = \"5s\"").unwrap_err();
        assert!(err.to_string().contains("lee_way"), "{err}");
        assert!(toml::from_str::<IdentityConfig>("admins = []").is_err());
    }
}
