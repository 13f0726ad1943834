//! One issuer's signing keys: discovery, JWKS fetch, cache, refetch and refresh.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, Weak},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey,
};
use serde::Deserialize;

use crate::{config::OidcIssuerConfig, AuthError};

/// The largest discovery document or JWKS read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A public key from a JWKS, ready to verify with.
pub(crate) struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    params: KeyParams,
    pub(crate) decoding: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyParams {
    Rsa,
    Ec(Curve),
    Ed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Key {
    /// A verification key from a JWK, or `None` for keys we never verify with:
    /// symmetric (`oct`) keys, encryption keys, and keys we cannot read.
    fn from_jwk(jwk: &Jwk) -> Option<Key> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let params = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyParams::Rsa,
            AlgorithmParameters::EllipticCurve(p) => KeyParams::Ec(match p.curve {
                EllipticCurve::P256 => Curve::P256,
                EllipticCurve::P384 => Curve::P384,
                // P-521 (ES512) is not supported by jsonwebtoken.
                _ => return None,
            }),
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyParams::Ed,
            // Symmetric keys in a JWKS would let anyone who reads the JWKS sign tokens.
            _ => return None,
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => Some(signing_algorithm(ka)?),
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        Some(Key { kid: jwk.common.key_id.clone(), alg, params, decoding })
    }

    /// Whether this key may verify a token signed with `alg`.
    fn accepts(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        use Algorithm::*;
        matches!(
            (self.params, alg),
            (KeyParams::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyParams::Ec(Curve::P256), ES256)
                | (KeyParams::Ec(Curve::P384), ES384)
                | (KeyParams::Ed, EdDSA)
        )
    }
}

fn signing_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    use KeyAlgorithm as K;
    Some(match ka {
        K::RS256 => Algorithm::RS256,
        K::RS384 => Algorithm::RS384,
        K::RS512 => Algorithm::RS512,
        K::PS256 => Algorithm::PS256,
        K::PS384 => Algorithm::PS384,
        K::PS512 => Algorithm::PS512,
        K::ES256 => Algorithm::ES256,
        K::ES384 => Algorithm::ES384,
        K::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The keys fetched in one JWKS fetch.
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    without_kid: Vec<Arc<Key>>,
    generation: u64,
}

impl KeySet {
    fn parse(body: &[u8], generation: u64) -> Result<KeySet, AuthError> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body).map_err(|_| AuthError::IssuerUnavailable)?;
        let mut set = KeySet { by_kid: HashMap::new(), without_kid: Vec::new(), generation };
        // One key we cannot read (an algorithm we do not support) must not hide the others.
        for key in
            raw.keys.into_iter().filter_map(|v| serde_json::from_value::<Jwk>(v).ok()).filter_map(|j| Key::from_jwk(&j))
        {
            match key.kid.clone() {
                Some(kid) => {
                    set.by_kid.insert(kid, Arc::new(key));
                }
                None => set.without_kid.push(Arc::new(key)),
            }
        }
        Ok(set)
    }

    /// The keys that may verify a token with `kid` and `alg`. A token without `kid` is
    /// tried against every key that accepts its algorithm.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<Key>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(|k| k.accepts(alg)).cloned().into_iter().collect(),
            None => self.without_kid.iter().chain(self.by_kid.values()).filter(|k| k.accepts(alg)).cloned().collect(),
        }
    }

    fn knows(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }
}

/// Where an issuer signs people in, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignInEndpoints {
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
}

#[derive(Debug, Default)]
struct FetchState {
    jwks_uri: Option<String>,
    sign_in: Option<SignInEndpoints>,
    last_attempt: Option<Instant>,
    last_unknown_kid_refetch: Option<Instant>,
    generation: u64,
}

/// One configured issuer and its cached keys.
pub(crate) struct Issuer {
    pub(crate) config: OidcIssuerConfig,
    client: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    fetch: tokio::sync::Mutex<FetchState>,
    refresher: std::sync::Once,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("issuer", &self.config.issuer).finish_non_exhaustive()
    }
}

impl Issuer {
    pub(crate) fn new(config: OidcIssuerConfig, client: reqwest::Client) -> Self {
        Self {
            config,
            client,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            refresher: std::sync::Once::new(),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn min_refetch(&self) -> Duration {
        self.config.jwks_min_refetch.max(Duration::from_secs(1))
    }

    /// The keys that may verify a token with `kid` and `alg`, fetching the JWKS when
    /// none is cached yet, and once more (at most once per `jwks_min_refetch`) when the
    /// token names a `kid` the cached set does not have.
    pub(crate) async fn candidates(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<Key>>, AuthError> {
        let seen = match self.current() {
            Some(set) => {
                let found = set.candidates(kid, alg);
                if !found.is_empty() || kid.is_none_or(|k| set.knows(k)) {
                    return if found.is_empty() { Err(AuthError::AlgorithmRefused) } else { Ok(found) };
                }
                Some(set.generation)
            }
            None => None,
        };
        let set = self.refetch(seen).await?;
        let found = set.candidates(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        match kid {
            Some(k) if !set.knows(k) => Err(AuthError::UnknownKey),
            _ => Err(AuthError::AlgorithmRefused),
        }
    }

    /// Fetches the JWKS again unless another task already did since generation `seen`.
    ///
    /// With no keys cached yet, a fetch is tried unless the last attempt failed less
    /// than `jwks_min_refetch` ago (a down issuer is not hammered). With keys cached,
    /// the fetch is caused by a token naming an unknown `kid`: at most one such refetch
    /// per `jwks_min_refetch`, so a flood of forged `kid`s costs the issuer one request.
    /// Background refreshes do not count against it, so a rotation is picked up at once.
    async fn refetch(self: &Arc<Self>, seen: Option<u64>) -> Result<Arc<KeySet>, AuthError> {
        let mut state = self.fetch.lock().await;
        let current = self.current();
        if let Some(set) = &current {
            if Some(set.generation) != seen {
                return Ok(set.clone());
            }
        }
        let min = self.min_refetch();
        match current {
            None if state.last_attempt.is_some_and(|t| t.elapsed() < min) => Err(AuthError::IssuerUnavailable),
            Some(set) if state.last_unknown_kid_refetch.is_some_and(|t| t.elapsed() < min) => Ok(set),
            Some(set) => {
                state.last_unknown_kid_refetch = Some(Instant::now());
                // A failed refetch keeps serving the keys we have.
                Ok(self.fetch_locked(&mut state).await.unwrap_or(set))
            }
            None => self.fetch_locked(&mut state).await,
        }
    }

    /// Fetches discovery (when the JWKS address is not known yet) and the JWKS, and
    /// installs the new key set. Failures keep the old set.
    async fn fetch_locked(self: &Arc<Self>, state: &mut FetchState) -> Result<Arc<KeySet>, AuthError> {
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_uncached(state).await;
        match result {
            Ok(body) => {
                state.generation += 1;
                let set = Arc::new(KeySet::parse(&body, state.generation).inspect_err(|_| {
                    tracing::warn!(issuer = %self.config.issuer, "JWKS is not a JSON key set");
                })?);
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(set.clone());
                tracing::debug!(issuer = %self.config.issuer, keys = set.by_kid.len() + set.without_kid.len(), "JWKS fetched");
                self.start_refresher();
                Ok(set)
            }
            Err(e) => {
                // Forget the JWKS address so that the next attempt runs discovery again.
                state.jwks_uri = None;
                tracing::warn!(issuer = %self.config.issuer, error = %e, "fetching the issuer's keys failed");
                Err(AuthError::IssuerUnavailable)
            }
        }
    }

    async fn fetch_uncached(&self, state: &mut FetchState) -> Result<Vec<u8>, String> {
        let jwks_uri = match &state.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
                #[derive(Deserialize)]
                struct Discovery {
                    issuer: String,
                    jwks_uri: String,
                    #[serde(default)]
                    authorization_endpoint: Option<String>,
                    #[serde(default)]
                    token_endpoint: Option<String>,
                }
                let body = self.get(&url).await?;
                let doc: Discovery = serde_json::from_slice(&body).map_err(|e| format!("discovery document: {e}"))?;
                if doc.issuer != self.config.issuer {
                    return Err(format!(
                        "discovery names issuer {:?}, configured {:?}",
                        doc.issuer, self.config.issuer
                    ));
                }
                state.jwks_uri = Some(doc.jwks_uri.clone());
                state.sign_in = match (doc.authorization_endpoint, doc.token_endpoint) {
                    (Some(a), Some(t)) if !a.is_empty() && !t.is_empty() => {
                        Some(SignInEndpoints { authorization_endpoint: a, token_endpoint: t })
                    }
                    _ => None,
                };
                doc.jwks_uri
            }
        };
        self.get(&jwks_uri).await
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut res = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("GET {url}: status {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        Ok(body)
    }

    /// The issuer's authorization and token endpoints, running discovery (and a JWKS
    /// fetch) first when it has not succeeded yet.
    pub(crate) async fn sign_in_endpoints(self: &Arc<Self>) -> Result<SignInEndpoints, AuthError> {
        let mut state = self.fetch.lock().await;
        if state.jwks_uri.is_none() {
            let min = self.min_refetch();
            if state.last_attempt.is_some_and(|t| t.elapsed() < min) && self.current().is_none() {
                return Err(AuthError::IssuerUnavailable);
            }
            self.fetch_locked(&mut state).await?;
        }
        state.sign_in.clone().ok_or(AuthError::IssuerUnavailable)
    }

    /// The client for requests to this issuer (discovery, JWKS, token endpoint).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Fetches the keys now (start-up warm-up, background refresh).
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), AuthError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state).await.map(|_| ())
    }

    /// Starts, once, a task that fetches the keys every `jwks_refresh`, so that keys an
    /// issuer publishes ahead of a rotation are known before the first token uses them.
    /// The task ends when the authenticator is dropped.
    fn start_refresher(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        self.refresher.call_once(|| {
            let weak: Weak<Issuer> = Arc::downgrade(self);
            let every = self.config.jwks_refresh.max(Duration::from_secs(1));
            handle.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(issuer) = weak.upgrade() else { break };
                    let _ = issuer.refresh().await;
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_unreadable_keys_are_never_used() {
        let body = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"r","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"}
        ]}"#;
        let set = KeySet::parse(body, 1).unwrap();
        assert_eq!(set.by_kid.len(), 1);
        assert_eq!(set.candidates(Some("r"), Algorithm::RS256).len(), 1);
        // The key says RS256: a token claiming PS256 with it is refused.
        assert!(set.candidates(Some("r"), Algorithm::PS256).is_empty());
        assert!(set.candidates(Some("h"), Algorithm::RS256).is_empty());
        assert!(set.candidates(None, Algorithm::ES256).is_empty());
        assert!(KeySet::parse(b"not json", 1).is_err());
    }
}
