//! The verifier on its own: request headers and peer address in, [`Identity`] out.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime},
};

use biscuit_auth::Biscuit;
use cloakroom_core::{AuthMethod, Identity};
use http::HeaderMap;

use crate::{
    api_key::ApiKeys,
    biscuit::{self as biscuit_token, BiscuitVerifier},
    cache::{token_hash, TokenCache},
    credential::{kind_of, Credential, CredentialKind, MAX_CREDENTIAL_LEN},
    error::ConfigError,
    oidc::{OidcLogin, OidcVerifier, PendingLogin, SignInError},
    AuthError, AuthzError, IdentityConfig, Operation, SignIn, SourceAddress,
};

/// How long a verified Biscuit is remembered. A Biscuit's signatures never stop being
/// valid; its checks (time included) run on every request: [`Authenticator::authorize`]
/// on the admin API, the policy layer on the data path.
const BISCUIT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Turns credentials into verified identities (OIDC JWTs, Biscuits, API keys).
///
/// The [`crate::IdentityLayer`] uses one; the admin API can use the same one directly.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use cloakroom_identity::{Authenticator, IdentityConfig, ApiKeyConfig, AuthError};
/// use http::HeaderMap;
/// use sha2::{Digest, Sha256};
///
/// let config = IdentityConfig {
///     api_keys: vec![ApiKeyConfig {
///         subject: "ci-bot".into(),
///         groups: vec!["ci".into()],
///         sha256: hex::encode(Sha256::digest(b"ck_live_example")),
///     }],
///     ..Default::default()
/// };
/// let auth = Authenticator::new(&config).unwrap();
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", "Bearer ck_live_example".parse().unwrap());
/// let id = auth.authenticate(&headers, Some("127.0.0.1:5000".parse().unwrap())).await.unwrap();
/// assert_eq!(id.subject, "ci-bot");
/// assert_eq!(id.source_ip, Some("127.0.0.1".parse().unwrap()));
/// assert_eq!(auth.authenticate(&HeaderMap::new(), None).await, Err(AuthError::Missing));
/// # }
/// ```
#[derive(Debug)]
pub struct Authenticator {
    oidc: OidcVerifier,
    biscuit: Option<BiscuitVerifier>,
    api_keys: ApiKeys,
    admin_groups: Vec<String>,
    source: SourceAddress,
    cache: TokenCache,
}

impl Authenticator {
    /// An authenticator for `config`, with its own HTTP client for discovery and JWKS
    /// (rustls, 10 s timeout). Keys are fetched on first use, or by [`Authenticator::warm_up`].
    pub fn new(config: &IdentityConfig) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Self::with_http_client(config, client)
    }

    /// Like [`Authenticator::new`] with a given HTTP client (custom roots, proxies).
    pub fn with_http_client(config: &IdentityConfig, client: reqwest::Client) -> Result<Self, ConfigError> {
        Ok(Self {
            oidc: OidcVerifier::new(&config.oidc, client)?,
            biscuit: config.biscuit.as_ref().map(|b| BiscuitVerifier::new(&b.root_public_key)).transpose()?,
            api_keys: ApiKeys::new(&config.api_keys)?,
            admin_groups: config.admin_groups.clone(),
            source: SourceAddress::new(config.trusted_proxies.clone()),
            cache: TokenCache::new(config.token_cache_capacity),
        })
    }

    /// Also accepts the sessions the gateway mints with `session` ([`crate::SessionKeys`]):
    /// people signed in through SAML or OIDC, whose session token is a Biscuit signed by
    /// the gateway's session key.
    pub fn with_session_key(mut self, session: biscuit_auth::PublicKey) -> Self {
        self.biscuit = Some(match self.biscuit.take() {
            Some(v) => v.with_session_key(session),
            None => BiscuitVerifier::sessions_only(session),
        });
        self
    }

    /// Fetches every OIDC issuer's discovery document and JWKS now, so the first request
    /// does not wait for them and a misconfigured issuer shows up at start-up. A failure
    /// is not fatal: the keys are fetched again on first use.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        self.oidc.warm_up().await
    }

    /// Starts signing a person in with the OIDC issuer `selector` names (its index in
    /// `[[identity.oidc]]` or its URL; `None`: the only one with a `client_id`), with
    /// `default_redirect_uri` unless the issuer sets `redirect_uri` (see [`OidcLogin`]).
    pub async fn start_oidc_login(
        &self,
        selector: Option<&str>,
        default_redirect_uri: &str,
    ) -> Result<OidcLogin, SignInError> {
        self.oidc.start_login(selector, default_redirect_uri).await
    }

    /// Finishes a sign-in: exchanges `code` with the pending login's PKCE verifier and
    /// verifies the ID token (signature, `iss`, `aud` = client id, `exp`, `nonce`).
    pub async fn finish_oidc_login(&self, pending: &PendingLogin, code: &str) -> Result<SignIn, SignInError> {
        self.oidc.finish_login(pending, code).await
    }

    /// The identity proved by the request's credential (docs/reference.md: `Proxy-Authorization`
    /// when present, else `Authorization`), with its source address from `peer` and,
    /// for trusted proxies, `X-Forwarded-For`.
    pub async fn authenticate(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<Identity, AuthError> {
        let credential = Credential::from_headers(headers)?.ok_or(AuthError::Missing)?;
        let mut identity = self.verify_token(&credential.token).await?;
        identity.source_ip = self.source_ip(headers, peer);
        Ok(identity)
    }

    /// The identity a bare token proves (no source address).
    ///
    /// The token's shape picks the verifier: three base64url segments joined by dots is
    /// a JWT; a dot-free base64url string that starts like a Biscuit protobuf is a
    /// Biscuit (unless it is a configured API key); anything else is an API key.
    pub async fn verify_token(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_CREDENTIAL_LEN {
            return Err(AuthError::TooLong);
        }
        // One digest serves the cache (JWTs and Biscuits) and the API-key compare, and a
        // repeated token is answered before its shape is even looked at.
        let hash = token_hash(token);
        if let Some(id) = self.cache.get(&hash) {
            return Ok(id);
        }
        match kind_of(token) {
            CredentialKind::Jwt => {
                if self.oidc.is_empty() {
                    return Err(AuthError::MethodNotConfigured);
                }
                let verified = self.oidc.verify(token).await.inspect_err(|e| {
                    tracing::debug!(error = %e, "JWT refused");
                })?;
                self.cache.insert(hash, &verified.identity, verified.valid_for);
                Ok(verified.identity)
            }
            CredentialKind::Biscuit => {
                if let Ok(id) = self.api_keys.verify_digest(&hash) {
                    return Ok(id);
                }
                let verifier = self.biscuit.as_ref().ok_or(if self.api_keys.is_empty() {
                    AuthError::MethodNotConfigured
                } else {
                    AuthError::UnknownApiKey
                })?;
                let id = verifier.verify(token).map_err(|e| {
                    if !verifier.has_root() && !self.api_keys.is_empty() {
                        // Only sessions are accepted as Biscuits: to the operator this is
                        // most likely an API key they do not know.
                        AuthError::UnknownApiKey
                    } else {
                        e
                    }
                })?;
                self.cache.insert(hash, &id, BISCUIT_CACHE_TTL);
                Ok(id)
            }
            CredentialKind::ApiKey => {
                if self.api_keys.is_empty() {
                    return Err(if self.biscuit.as_ref().is_some_and(BiscuitVerifier::has_root) {
                        AuthError::Malformed
                    } else {
                        AuthError::MethodNotConfigured
                    });
                }
                self.api_keys.verify_digest(&hash)
            }
        }
    }

    /// The source address of a request from `peer` (see [`SourceAddress`]).
    pub fn source_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        self.source.resolve(headers, peer)
    }

    /// Whether `identity` may do `operation` as far as its credential is concerned: the
    /// checks of its Biscuit token (authority and attenuation blocks: a TTL, `check if
    /// operation("approvals:approve")`, …) must all hold with the operation's facts at the
    /// current time. OIDC and API-key identities carry no checks. Group membership (admin,
    /// approver) is the caller's business, on top of this.
    ///
    /// The token verified by [`Authenticator::authenticate`] is reused (kept in
    /// `Identity::biscuit`); a token given as bare bytes is verified here first.
    pub fn authorize(&self, identity: &Identity, operation: &Operation) -> Result<(), AuthzError> {
        self.authorize_at(identity, operation, SystemTime::now())
    }

    /// [`Authenticator::authorize`] at time `now`.
    pub fn authorize_at(&self, identity: &Identity, operation: &Operation, now: SystemTime) -> Result<(), AuthzError> {
        let unevaluated =
            |reason: &str| AuthzError::Unevaluated { operation: operation.to_string(), reason: reason.into() };
        let Some(token) = &identity.biscuit else {
            return if matches!(identity.method, AuthMethod::Biscuit | AuthMethod::Saml) {
                // A Biscuit or session identity without its token cannot have its checks run.
                Err(unevaluated("the identity carries no token"))
            } else {
                Ok(())
            };
        };
        if let Some(verified) = token.get::<Biscuit>() {
            return biscuit_token::authorize(verified, operation, now);
        }
        let verifier = self.biscuit.as_ref().ok_or_else(|| unevaluated("no Biscuit root key is configured"))?;
        let reverified = verifier.verify_bytes(token.bytes()).map_err(|e| unevaluated(&e.to_string()))?;
        let verified = reverified.biscuit.as_ref().and_then(|t| t.get::<Biscuit>());
        biscuit_token::authorize(verified.ok_or_else(|| unevaluated("the token did not verify"))?, operation, now)
    }

    /// Whether `identity` is an administrator (member of one of `admin_groups`).
    pub fn is_admin(&self, identity: &Identity) -> bool {
        identity.in_any_group(&self.admin_groups)
    }
}
