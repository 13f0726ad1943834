//! A tiny OIDC issuer on 127.0.0.1 for the attack tests: it serves a discovery document
//! and a JWKS that a test can change mid-run, counting JWKS fetches, and signs tokens
//! with test keys from tests/fixtures (via jsonwebtoken).
#![allow(dead_code, unreachable_pub)]

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
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const AUDIENCE: &str = "cloakroom";

/// A key the test issuer signs with.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn jwk_with_kid(jwk: Jwk, kid: &str) -> Value {
    let mut v = serde_json::to_value(jwk).unwrap();
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

impl TestKey {
    /// RSA key 1 or 2, used with `alg` (RS* or PS*).
    pub fn rsa(n: u8, kid: &str, alg: Algorithm) -> Self {
        let encoding = EncodingKey::from_rsa_pem(&fixture(&format!("rsa{n}.pem"))).unwrap();
        let jwk = jwk_with_kid(Jwk::from_encoding_key(&encoding, alg).unwrap(), kid);
        Self { kid: kid.into(), alg, encoding, jwk }
    }

    pub fn es256(kid: &str) -> Self {
        let encoding = EncodingKey::from_ec_pem(&fixture("ec256.pem")).unwrap();
        let jwk = jwk_with_kid(Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap(), kid);
        Self { kid: kid.into(), alg: Algorithm::ES256, encoding, jwk }
    }

    pub fn ed25519(kid: &str) -> Self {
        let encoding = EncodingKey::from_ed_pem(&fixture("ed25519.pem")).unwrap();
        // The raw public key is the last 32 bytes of the SubjectPublicKeyInfo.
        let pem = String::from_utf8(fixture("ed25519.pub.pem")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
        Self { kid: kid.into(), alg: Algorithm::EdDSA, encoding, jwk }
    }

    /// Signs `claims` with this key, naming its kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// Signs `claims` with this key but names another kid.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

struct State {
    issuer: String,
    jwks: Mutex<Value>,
    discovery_issuer: Mutex<Option<String>>,
    jwks_fetches: AtomicUsize,
}

/// The running issuer; stops with the test's runtime.
pub struct TestIssuer {
    pub issuer: String,
    state: Arc<State>,
}

impl TestIssuer {
    /// Starts serving `keys` in its JWKS.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            issuer: issuer.clone(),
            jwks: Mutex::new(Value::Null),
            discovery_issuer: Mutex::new(None),
            jwks_fetches: AtomicUsize::new(0),
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
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.set_jwks(json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}));
    }

    /// Replaces the JWKS document as it is.
    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    /// Makes discovery name another issuer than the one it is served for.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *self.state.discovery_issuer.lock().unwrap() = Some(issuer.into());
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for `sub`.
    pub fn claims(&self, sub: &str) -> Value {
        json!({
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now(),
            "exp": now() + 300,
            "groups": ["payments-ops", "ci"],
        })
    }

    /// A `[[identity.oidc]]` entry for this issuer.
    pub fn config(&self) -> cloakroom_identity::OidcIssuerConfig {
        cloakroom_identity::OidcIssuerConfig::new(
            self.issuer.clone(),
            vec![AUDIENCE.to_owned(), "other-audience".to_owned()],
        )
    }
}

async fn serve(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path() {
        "/.well-known/openid-configuration" => {
            let issuer = state.discovery_issuer.lock().unwrap().clone().unwrap_or_else(|| state.issuer.clone());
            json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", state.issuer)})
        }
        "/jwks" => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            state.jwks.lock().unwrap().clone()
        }
        _ => return Ok(Response::builder().status(404).body(Full::default()).unwrap()),
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap())
}

/// An authenticator trusting only `issuer` (with `edit` applied to its entry).
pub fn authenticator(
    issuer: &TestIssuer,
    edit: impl FnOnce(&mut cloakroom_identity::OidcIssuerConfig),
) -> cloakroom_identity::Authenticator {
    let mut c = issuer.config();
    edit(&mut c);
    let config = cloakroom_identity::IdentityConfig { oidc: vec![c], ..Default::default() };
    cloakroom_identity::Authenticator::new(&config).unwrap()
}
