//! A small OIDC issuer on 127.0.0.1: discovery document and JWKS (which a test may
//! change mid-run, e.g. to rotate keys), with a count of JWKS fetches, and test keys
//! that sign tokens with `jsonwebtoken`.

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The audience [`OidcIssuer::claims`] puts in tokens.
pub const OIDC_TEST_AUDIENCE: &str = "cloakroom";

const RSA1: &[u8] = include_bytes!("../fixtures/oidc/rsa1.pem");
const RSA2: &[u8] = include_bytes!("../fixtures/oidc/rsa2.pem");
const RSA1_PUBLIC: &[u8] = include_bytes!("../fixtures/oidc/rsa1.pub.pem");
const EC256: &[u8] = include_bytes!("../fixtures/oidc/ec256.pem");
const ED25519: &[u8] = include_bytes!("../fixtures/oidc/ed25519.pem");
const ED25519_PUBLIC: &[u8] = include_bytes!("../fixtures/oidc/ed25519.pub.pem");

/// The current time as a JWT `NumericDate`.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A test signing key (from fixtures/oidc; test use only) and its public JWK.
#[derive(Clone)]
pub struct OidcTestKey {
    /// The `kid` it is published under and names in tokens.
    pub kid: String,
    /// The JWS algorithm name (`RS256`, `PS384`, `ES256`, `EdDSA`…).
    pub alg: String,
    /// The public JWK as published in the JWKS.
    pub jwk: Value,
    algorithm: Algorithm,
    encoding: EncodingKey,
}

impl std::fmt::Debug for OidcTestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcTestKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

fn jwk_with_kid(jwk: Jwk, kid: &str) -> Value {
    let mut v = serde_json::to_value(jwk).expect("JWK serializes");
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

impl OidcTestKey {
    /// RSA key `n` (1 or 2: two different keys) used with `alg` (`RS256`…`PS512`).
    pub fn rsa(n: u8, kid: &str, alg: &str) -> Self {
        let pem = match n {
            1 => RSA1,
            2 => RSA2,
            _ => panic!("RSA test keys are 1 and 2"),
        };
        let algorithm: Algorithm = alg.parse().expect("JWS algorithm name");
        let encoding = EncodingKey::from_rsa_pem(pem).expect("RSA fixture");
        let jwk = jwk_with_kid(Jwk::from_encoding_key(&encoding, algorithm).expect("RSA JWK"), kid);
        Self { kid: kid.into(), alg: alg.into(), jwk, algorithm, encoding }
    }

    /// The P-256 key, for ES256.
    pub fn es256(kid: &str) -> Self {
        let encoding = EncodingKey::from_ec_pem(EC256).expect("EC fixture");
        let jwk = jwk_with_kid(Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("EC JWK"), kid);
        Self { kid: kid.into(), alg: "ES256".into(), jwk, algorithm: Algorithm::ES256, encoding }
    }

    /// The Ed25519 key, for EdDSA.
    pub fn ed25519(kid: &str) -> Self {
        let encoding = EncodingKey::from_ed_pem(ED25519).expect("Ed25519 fixture");
        // The raw public key is the last 32 bytes of the SubjectPublicKeyInfo.
        let b64: String = String::from_utf8_lossy(ED25519_PUBLIC).lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).expect("PEM body");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
        Self { kid: kid.into(), alg: "EdDSA".into(), jwk, algorithm: Algorithm::EdDSA, encoding }
    }

    /// The PEM of RSA key 1's public key (what an attacker would use as an HMAC secret).
    pub fn rsa1_public_pem() -> &'static [u8] {
        RSA1_PUBLIC
    }

    /// Signs `claims`, naming this key's kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs `claims` with this key but names `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign test token")
    }
}

struct State {
    issuer: String,
    jwks: Mutex<Value>,
    discovery_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
    token_response: Mutex<(u16, Value)>,
    token_requests: Mutex<Vec<String>>,
}

/// A running issuer at `http://127.0.0.1:<port>`, serving `/.well-known/openid-configuration`
/// and `/jwks`. It runs on the Tokio runtime it was started on.
pub struct OidcIssuer {
    /// The issuer URL (also the `iss` of [`OidcIssuer::claims`]).
    pub issuer: String,
    state: Arc<State>,
}

impl std::fmt::Debug for OidcIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl OidcIssuer {
    /// Starts serving `keys` in the JWKS.
    pub async fn start(keys: &[&OidcTestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let issuer = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(State {
            issuer: issuer.clone(),
            jwks: Mutex::new(Value::Null),
            discovery_issuer: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
            token_response: Mutex::new((400, json!({"error": "invalid_grant"}))),
            token_requests: Mutex::new(Vec::new()),
        });
        let this = Self { issuer, state: state.clone() };
        this.set_keys(keys);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(state.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        this
    }

    /// Replaces the published keys.
    pub fn set_keys(&self, keys: &[&OidcTestKey]) {
        self.set_jwks(json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}));
    }

    /// Replaces the JWKS document as it is.
    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap_or_else(|p| p.into_inner()) = jwks;
    }

    /// Makes discovery name another issuer than the one it is served for.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().unwrap_or_else(|p| p.into_inner()) = Some(issuer.into());
    }

    /// What `POST /token` answers from now on (status and JSON body). Until set: 400
    /// `invalid_grant`.
    pub fn set_token_response(&self, status: u16, body: Value) {
        *self.state.token_response.lock().unwrap_or_else(|p| p.into_inner()) = (status, body);
    }

    /// The form bodies `POST /token` received, in order (with the `Authorization`
    /// header, if any, as a first line `authorization: …`).
    pub fn token_requests(&self) -> Vec<String> {
        self.state.token_requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for `sub`: this issuer, audience [`OIDC_TEST_AUDIENCE`],
    /// valid for five minutes, groups `payments-ops` and `ci`.
    pub fn claims(&self, sub: &str) -> Value {
        json!({
            "iss": self.issuer,
            "aud": OIDC_TEST_AUDIENCE,
            "sub": sub,
            "iat": unix_now(),
            "exp": unix_now() + 300,
            "groups": ["payments-ops", "ci"],
        })
    }
}

async fn serve(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    use http_body_util::BodyExt as _;
    if req.uri().path() == "/token" {
        let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let form = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let mut seen = String::new();
        if let Some(a) = auth {
            seen.push_str(&format!("authorization: {a}\n"));
        }
        seen.push_str(&String::from_utf8_lossy(&form));
        state.token_requests.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
        let (status, body) = state.token_response.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        return Ok(res);
    }
    let body = match req.uri().path() {
        "/.well-known/openid-configuration" => {
            let issuer = state
                .discovery_issuer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| state.issuer.clone());
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{}/jwks", state.issuer),
                "authorization_endpoint": format!("{}/authorize", state.issuer),
                "token_endpoint": format!("{}/token", state.issuer),
            })
        }
        "/jwks" => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            state.jwks.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
        _ => {
            let mut res = Response::new(Full::default());
            *res.status_mut() = http::StatusCode::NOT_FOUND;
            return Ok(res);
        }
    };
    let mut res = Response::new(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default())));
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(res)
}
