//! Signing people in with an OIDC issuer: the authorization code flow with PKCE (S256).
//!
//! [`crate::Authenticator::start_oidc_login`] picks the issuer, makes a fresh `state`,
//! `nonce` and PKCE verifier and gives back the issuer's authorization URL with a
//! [`PendingLogin`] that the caller keeps server-side under the `state` and uses once.
//! [`crate::Authenticator::finish_oidc_login`] exchanges the code at the issuer's token
//! endpoint with that verifier (and the client secret, when configured), then verifies
//! the ID token with the same keys and checks as bearer JWTs — signature, `iss`, `exp`,
//! `nbf` — except that `aud` must name the client id, and the `nonce` must be the one
//! this login sent. Only then does the person's `sub` and groups become a [`SignIn`].
//!
//! ```no_run
//! # async fn f(auth: cloakroom_identity::Authenticator) -> Result<(), cloakroom_identity::SignInError> {
//! let login = auth.start_oidc_login(None, "http://127.0.0.1:8081/v1/oidc/callback").await?;
//! // Redirect the browser to login.authorize_url; keep login.pending under login.state.
//! // At the callback, with the `code` the issuer sent back:
//! let who = auth.finish_oidc_login(&login.pending, "the-code").await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use base64::Engine as _;
use cloakroom_core::AuthMethod;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::{identity_from, jwks::Issuer, OidcVerifier};
use crate::{AuthError, SignIn};

/// The largest token endpoint answer read, in bytes.
const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// Why a sign-in could not start or finish. Messages never carry a code, token or secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignInError {
    /// No issuer matches, or the matching issuer has no `client_id` (bad request).
    #[error("{0}")]
    NotConfigured(String),
    /// The issuer's discovery document or token endpoint could not be used.
    #[error("the identity provider could not be reached: {0}")]
    IssuerUnavailable(String),
    /// The issuer refused the code (wrong PKCE verifier, used or foreign code, bad client).
    #[error("the identity provider refused the authorization code: {0}")]
    Refused(String),
    /// The ID token failed a check.
    #[error("the ID token was refused: {0}")]
    InvalidIdToken(String),
}

/// A sign-in in progress: what the callback needs to finish it. Keep it server-side,
/// under [`OidcLogin::state`], and use it once.
#[derive(Clone)]
pub struct PendingLogin {
    issuer_index: usize,
    /// The issuer URL the person signs in with.
    pub issuer: String,
    redirect_uri: String,
    nonce: String,
    verifier: String,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The nonce and the PKCE verifier are what make the code usable: never logged.
        f.debug_struct("PendingLogin").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

/// A started sign-in: where to send the browser, and what to keep until it comes back.
#[derive(Debug)]
pub struct OidcLogin {
    /// The issuer's authorization endpoint with `response_type=code`, `client_id`,
    /// `redirect_uri`, `scope`, `state`, `nonce` and the S256 `code_challenge`.
    pub authorize_url: String,
    /// The `state` sent (32 random bytes, base64url): the key to keep `pending` under.
    pub state: String,
    /// What [`crate::Authenticator::finish_oidc_login`] needs.
    pub pending: PendingLogin,
    /// Whether the redirect URI is `https` (so cookies set at the callback are `Secure`).
    pub secure: bool,
}

/// 32 random bytes, base64url without padding (43 characters): a state, nonce or verifier.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 PKCE challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl OidcVerifier {
    /// The sign-in issuer `selector` names: its index in `[[identity.oidc]]` or its URL;
    /// `None` picks the only issuer with a `client_id`.
    fn sign_in_issuer(&self, selector: Option<&str>) -> Result<(usize, &Arc<Issuer>), SignInError> {
        let found = match selector.filter(|s| !s.is_empty()) {
            Some(s) => match s.parse::<usize>() {
                Ok(i) => self.issuer(i).map(|x| (i, x)),
                Err(_) => self.issuers().iter().enumerate().find(|(_, x)| x.config.issuer == s),
            },
            None => {
                let mut with_client = self.issuers().iter().enumerate().filter(|(_, x)| x.config.client_id.is_some());
                match (with_client.next(), with_client.next()) {
                    (Some(one), None) => Some(one),
                    (Some(_), Some(_)) => {
                        return Err(SignInError::NotConfigured(
                            "several OIDC issuers allow sign-in: name one with ?issuer=<index or URL>".into(),
                        ))
                    }
                    _ => None,
                }
            }
        };
        match found {
            Some((i, issuer)) if issuer.config.client_id.is_some() => Ok((i, issuer)),
            Some(_) => Err(SignInError::NotConfigured("this OIDC issuer has no client_id: sign-in is off".into())),
            None => Err(SignInError::NotConfigured("no OIDC issuer with a client_id matches".into())),
        }
    }

    pub(crate) async fn start_login(
        &self,
        selector: Option<&str>,
        default_redirect_uri: &str,
    ) -> Result<OidcLogin, SignInError> {
        let (index, issuer) = self.sign_in_issuer(selector)?;
        let config = &issuer.config;
        let endpoints = issuer.sign_in_endpoints().await.map_err(|_| {
            SignInError::IssuerUnavailable("discovery gave no authorization_endpoint and token_endpoint".into())
        })?;
        let redirect_uri = config.redirect_uri.clone().unwrap_or_else(|| default_redirect_uri.to_owned());
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let mut scopes = vec!["openid"];
        scopes.extend(config.scopes.iter().map(String::as_str).filter(|s| *s != "openid"));
        let mut url = reqwest::Url::parse(&endpoints.authorization_endpoint)
            .map_err(|_| SignInError::IssuerUnavailable("the authorization_endpoint is not a URL".into()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", config.client_id.as_deref().unwrap_or_default())
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(OidcLogin {
            authorize_url: url.into(),
            state,
            secure: redirect_uri.starts_with("https://"),
            pending: PendingLogin { issuer_index: index, issuer: config.issuer.clone(), redirect_uri, nonce, verifier },
        })
    }

    pub(crate) async fn finish_login(&self, pending: &PendingLogin, code: &str) -> Result<SignIn, SignInError> {
        let issuer = self
            .issuer(pending.issuer_index)
            .filter(|i| i.config.issuer == pending.issuer)
            .ok_or_else(|| SignInError::NotConfigured("the issuer of this sign-in is no longer configured".into()))?;
        let config = &issuer.config;
        let client_id = config
            .client_id
            .as_deref()
            .ok_or_else(|| SignInError::NotConfigured("the issuer of this sign-in no longer has a client_id".into()))?;
        let endpoints =
            issuer.sign_in_endpoints().await.map_err(|_| SignInError::IssuerUnavailable("discovery failed".into()))?;
        let id_token = exchange(issuer, &endpoints.token_endpoint, client_id, pending, code).await?;
        let (_, claims) = self.decode(&id_token, Some(client_id)).await.map_err(|e| match e {
            AuthError::IssuerUnavailable => SignInError::IssuerUnavailable("its keys could not be fetched".into()),
            other => SignInError::InvalidIdToken(other.to_string()),
        })?;
        if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
            return Err(SignInError::InvalidIdToken("it was issued by another issuer".into()));
        }
        // OIDC Core §3.1.3.7: with several audiences, the authorized party must be us.
        let several_audiences = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
        let azp = claims.get("azp").and_then(Value::as_str);
        if (several_audiences || azp.is_some()) && azp != Some(client_id) {
            return Err(SignInError::InvalidIdToken("its authorized party (azp) is another client".into()));
        }
        let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if !bool::from(nonce.as_bytes().ct_eq(pending.nonce.as_bytes())) {
            return Err(SignInError::InvalidIdToken("its nonce is not the one this sign-in sent".into()));
        }
        let verified = identity_from(config, claims).map_err(|e| SignInError::InvalidIdToken(e.to_string()))?;
        let who = verified.identity;
        Ok(SignIn::new(who.subject, who.issuer, AuthMethod::Oidc).with_groups(who.groups))
    }
}

/// The authorization code exchanged at the token endpoint for the ID token.
async fn exchange(
    issuer: &Issuer,
    token_endpoint: &str,
    client_id: &str,
    pending: &PendingLogin,
    code: &str,
) -> Result<String, SignInError> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &pending.redirect_uri)
        .append_pair("code_verifier", &pending.verifier)
        .append_pair("client_id", client_id)
        .finish();
    let mut req = issuer
        .http()
        .post(token_endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(form);
    if let Some(var) = &issuer.config.client_secret_env {
        let secret = std::env::var(var)
            .map_err(|_| SignInError::NotConfigured(format!("client_secret_env names {var}, which is not set")))?;
        // RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(client_id), Some(enc(&secret)));
    }
    // The URL only: reqwest's errors never carry the body (code, verifier) or headers.
    let mut res = req.send().await.map_err(|e| SignInError::IssuerUnavailable(format!("{}", e.without_url())))?;
    let status = res.status();
    let mut body = Vec::new();
    while let Some(chunk) =
        res.chunk().await.map_err(|e| SignInError::IssuerUnavailable(format!("{}", e.without_url())))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TOKEN_RESPONSE {
            return Err(SignInError::IssuerUnavailable("the token endpoint's answer is too large".into()));
        }
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        id_token: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
    if status.is_client_error() {
        // The OAuth error code (`invalid_grant`…) is a fixed word from the issuer; its
        // description is left out, as it may echo what was sent.
        let code = parsed.and_then(|p| p.error).filter(|e| e.len() < 64 && e.bytes().all(|b| b.is_ascii_graphic()));
        return Err(SignInError::Refused(code.unwrap_or_else(|| format!("status {status}"))));
    }
    if !status.is_success() {
        return Err(SignInError::IssuerUnavailable(format!("the token endpoint answered {status}")));
    }
    parsed
        .and_then(|p| p.id_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SignInError::InvalidIdToken("the token endpoint gave no id_token".into()))
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
