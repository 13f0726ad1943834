//! OIDC JWTs: signature checked against the issuer's published keys (JWKS), then
//! `iss`, `aud`, `exp` and `nbf`.
//!
//! Only asymmetric algorithms are accepted — RS256/384/512, PS256/384/512, ES256/384
//! and EdDSA — and only with a key of the matching type (and `alg`, when the JWK names
//! one). `none` and the HMAC algorithms are refused before any key is looked at, which
//! defeats the RS256 → HS256 key-confusion attack (signing with the issuer's public key
//! as an HMAC secret). Signature checks are done by `jsonwebtoken`.

mod claims;
mod jwks;
mod login;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use cloakroom_core::{AuthMethod, Identity};
use jsonwebtoken::{errors::ErrorKind, Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{config::OidcIssuerConfig, error::ConfigError, AuthError};

pub(crate) use jwks::Issuer;
pub use login::{pkce_challenge, random_token, OidcLogin, PendingLogin, SignInError};

/// The algorithms a JWKS issuer's tokens may use.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A token verified by an issuer, and how long it stays valid.
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    pub(crate) valid_for: Duration,
}

/// The configured OIDC issuers.
#[derive(Debug, Default)]
pub(crate) struct OidcVerifier {
    issuers: Vec<Arc<Issuer>>,
}

#[derive(Deserialize)]
struct PeekHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct PeekClaims {
    #[serde(default)]
    iss: Option<Value>,
}

fn b64_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, AuthError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

impl OidcVerifier {
    pub(crate) fn new(configs: &[OidcIssuerConfig], client: reqwest::Client) -> Result<Self, ConfigError> {
        let mut issuers = Vec::new();
        for (index, c) in configs.iter().enumerate() {
            if !(c.issuer.starts_with("https://") || c.issuer.starts_with("http://")) {
                return Err(ConfigError::Oidc {
                    index,
                    reason: format!("issuer {:?} is not an http(s) URL", c.issuer),
                });
            }
            if configs[..index].iter().any(|o| o.issuer == c.issuer) {
                return Err(ConfigError::Oidc { index, reason: format!("issuer {:?} is configured twice", c.issuer) });
            }
            if c.audiences.is_empty() {
                return Err(ConfigError::Oidc {
                    index,
                    reason: "audiences is empty: every token would be refused".into(),
                });
            }
            if c.client_id.as_deref().is_some_and(str::is_empty) {
                return Err(ConfigError::Oidc { index, reason: "client_id is empty".into() });
            }
            if c.client_id.is_none() && (c.client_secret_env.is_some() || c.redirect_uri.is_some()) {
                return Err(ConfigError::Oidc {
                    index,
                    reason: "client_secret_env and redirect_uri are sign-in settings: set client_id too".into(),
                });
            }
            if let Some(r) = &c.redirect_uri {
                if !(r.starts_with("https://") || r.starts_with("http://")) {
                    return Err(ConfigError::Oidc {
                        index,
                        reason: format!("redirect_uri {r:?} is not an http(s) URL"),
                    });
                }
            }
            issuers.push(Arc::new(Issuer::new(c.clone(), client.clone())));
        }
        Ok(Self { issuers })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Fetches every issuer's keys now; returns the first failure (the others are still tried).
    pub(crate) async fn warm_up(&self) -> Result<(), AuthError> {
        let mut result = Ok(());
        for issuer in &self.issuers {
            if let Err(e) = issuer.refresh().await {
                result = result.and(Err(e));
            }
        }
        result
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let (issuer, claims) = self.decode(token, None).await?;
        identity_from(&issuer.config, claims)
    }

    /// The issuer at `index` of the configuration.
    pub(crate) fn issuer(&self, index: usize) -> Option<&Arc<Issuer>> {
        self.issuers.get(index)
    }

    /// The configured issuers, in order.
    pub(crate) fn issuers(&self) -> &[Arc<Issuer>] {
        &self.issuers
    }

    /// Checks `token`'s signature, `iss`, `exp`, `nbf` and `aud` — against `audience`
    /// when given (an ID token's client id), else the issuer's configured audiences —
    /// and returns the issuer and the signed claims.
    pub(crate) async fn decode(
        &self,
        token: &str,
        audience: Option<&str>,
    ) -> Result<(Arc<Issuer>, Map<String, Value>), AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::Malformed);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(AuthError::Malformed);
        }
        let header: PeekHeader = b64_json(h)?;
        let alg: Algorithm = header.alg.parse().map_err(|_| AuthError::AlgorithmRefused)?;
        if !ACCEPTED_ALGORITHMS.contains(&alg) {
            return Err(AuthError::AlgorithmRefused);
        }
        // The issuer is read before the signature is checked only to choose whose keys
        // to check it with; it is checked again, signed, below.
        let peek: PeekClaims = b64_json(p)?;
        let iss = match peek.iss {
            Some(Value::String(s)) => s,
            Some(_) => return Err(AuthError::Malformed),
            None => return Err(AuthError::MissingClaim),
        };
        let issuer = self.issuers.iter().find(|i| i.config.issuer == iss).ok_or(AuthError::UntrustedIssuer)?;
        let keys = issuer.candidates(header.kid.as_deref(), alg).await?;
        let mut validation = validation(&issuer.config, alg);
        if let Some(aud) = audience {
            validation.set_audience(&[aud]);
        }
        let mut last = AuthError::BadSignature;
        for key in keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation) {
                Ok(data) => return Ok((issuer.clone(), data.claims)),
                Err(e) => {
                    last = map_error(e.kind());
                    if last != AuthError::BadSignature {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

fn validation(config: &OidcIssuerConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_issuer(&[&config.issuer]);
    v.set_audience(&config.audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::UntrustedIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidSubject => AuthError::MissingClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmRefused
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::Malformed
        }
        _ => AuthError::BadSignature,
    }
}

pub(crate) fn identity_from(config: &OidcIssuerConfig, claims: Map<String, Value>) -> Result<Verified, AuthError> {
    let subject = claims.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(AuthError::MissingClaim)?;
    let exp = claims.get("exp").and_then(Value::as_f64).ok_or(AuthError::MissingClaim)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    // Cached only until the real expiry, without the leeway.
    let valid_for = Duration::try_from_secs_f64((exp - now).max(0.0)).unwrap_or_default();
    let mut groups = claims::groups_at(&claims, &config.groups_claim);
    groups.sort();
    groups.dedup();
    Ok(Verified {
        identity: Identity::new(subject.to_owned(), config.issuer.clone(), AuthMethod::Oidc).with_groups(groups),
        valid_for,
    })
}
