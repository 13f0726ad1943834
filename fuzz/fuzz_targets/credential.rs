//! Feeds fuzzer-chosen credentials through `cloakroom_identity::Authenticator::authenticate`
//! on an authenticator with all three methods configured: one API key, a Biscuit root key
//! and one OIDC issuer. It must never panic; a refusal's message (its `Display`, the wire
//! error and the `WWW-Authenticate` challenge) must never contain the token when the token
//! is at least 8 bytes long; and only the configured API key or a Biscuit signed by the
//! root key may be accepted.
//!
//! The OIDC issuer is `http://issuer.invalid` and the authenticator's HTTP client is
//! `https_only`, so reqwest refuses every discovery/JWKS request before resolving or
//! connecting: the OIDC path runs up to the key fetch (header, `alg`, `iss` lookup,
//! fetch debounce) and nothing leaves the process.
//!
//! Input layout: byte 0 = mode, the rest = the credential material.
//! - bit 0: the credential goes in `Proxy-Authorization` (1) or `Authorization` (0);
//! - bit 1: the value is `Bearer <token>` (1) or the raw bytes (0);
//! - bits 2-3: how the token is made from the rest:
//!   - 0: the bytes themselves;
//!   - 1: a JWT: byte 1 is the header length, then the header JSON, then the payload
//!     JSON (each base64url-encoded by the target), then a fixed signature;
//!   - 2: a valid two-block Biscuit (made at start-up with the root key) with edits: the
//!     rest is (u16 LE index, byte) triples, each overwriting one base64url character
//!     (`index % len`), then a final byte that may truncate the token;
//!   - 3: the configured API key followed by the bytes;
//! - bits 4-5: 1 = the same header again (repeated credential), 2 = the other credential
//!   header as well, carrying a placeholder.
//!
//! `CREDENTIAL_FUZZ_DEBUG=1` prints each input's outcome (the refusal, or the subject
//! accepted) when reproducing: `cargo fuzz run credential <file>`.
#![no_main]

use std::{net::SocketAddr, sync::OnceLock};

use base64::Engine as _;
use biscuit_auth::{builder::Algorithm, datalog::SymbolTable, Biscuit, BlockBuilder, KeyPair, PrivateKey};
use cloakroom_identity::{ApiKeyConfig, AuthError, Authenticator, BiscuitConfig, IdentityConfig, OidcIssuerConfig};
use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const API_KEY: &str = "ck_fuzz_0123456789abcdef";
const API_KEY_SUBJECT: &str = "fuzz-api-key";
const BISCUIT_USER: &str = "fuzz-agent";
const ISSUER: &str = "http://issuer.invalid";

/// Every message an `AuthError` can carry. A message that contains the token is only
/// allowed when it is one of these fixed texts (a short token such as `malformed` is a
/// substring of one by chance); any message built from the input would not be here.
const FIXED: [AuthError; 16] = [
    AuthError::Missing,
    AuthError::MalformedHeader,
    AuthError::TooLong,
    AuthError::Malformed,
    AuthError::AlgorithmRefused,
    AuthError::BadSignature,
    AuthError::UnknownKey,
    AuthError::UntrustedIssuer,
    AuthError::WrongAudience,
    AuthError::Expired,
    AuthError::NotYetValid,
    AuthError::MissingClaim,
    AuthError::InvalidBiscuit,
    AuthError::UnknownApiKey,
    AuthError::MethodNotConfigured,
    AuthError::IssuerUnavailable,
];

struct World {
    runtime: tokio::runtime::Runtime,
    auth: Authenticator,
    biscuit: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // Fixed keys, so that a crash input reproduces: the same token every run.
        let root = KeyPair::from(&PrivateKey::from_bytes(&[7; 32], Algorithm::Ed25519).unwrap());
        let next = KeyPair::from(&PrivateKey::from_bytes(&[8; 32], Algorithm::Ed25519).unwrap());
        let third = KeyPair::from(&PrivateKey::from_bytes(&[9; 32], Algorithm::Ed25519).unwrap());
        let biscuit = Biscuit::builder()
            .code(format!(r#"user("{BISCUIT_USER}"); group("payments-ops");"#))
            .unwrap()
            .build_with_key_pair(&root, SymbolTable::new(), &next)
            .unwrap()
            .append_with_keypair(&third, BlockBuilder::new().code(r#"check if function("payments/refund");"#).unwrap())
            .unwrap()
            .to_base64()
            .unwrap();
        let config = IdentityConfig {
            oidc: vec![OidcIssuerConfig::new(ISSUER, vec!["cloakroom".into()])],
            biscuit: Some(BiscuitConfig { root_public_key: root.public().to_string() }),
            api_keys: vec![ApiKeyConfig {
                subject: API_KEY_SUBJECT.into(),
                groups: vec!["ci".into()],
                sha256: hex::encode(Sha256::digest(API_KEY.as_bytes())),
            }],
            // Small, so that eviction runs too.
            token_cache_capacity: 64,
            ..Default::default()
        };
        let client = reqwest::Client::builder().https_only(true).build().unwrap();
        let auth = Authenticator::with_http_client(&config, client).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        World { runtime, auth, biscuit }
    })
}

fn b64(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).into_bytes()
}

/// The token the mode asks for, from `rest`.
fn token(mode: u8, rest: &[u8], world: &World) -> Vec<u8> {
    match (mode >> 2) & 3 {
        0 => rest.to_vec(),
        1 => {
            let Some((&h_len, rest)) = rest.split_first() else { return Vec::new() };
            let (h, p) = rest.split_at(usize::from(h_len).min(rest.len()));
            let mut t = b64(h);
            t.push(b'.');
            t.extend(b64(p));
            t.extend_from_slice(b".c2ln");
            t
        }
        2 => {
            let mut t = world.biscuit.clone().into_bytes();
            let mut edits = rest.chunks_exact(3);
            for e in &mut edits {
                let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % t.len();
                t[at] = e[2];
            }
            if let Some(&cut) = edits.remainder().first() {
                // 0 keeps the token whole; otherwise drop up to 255 bytes from the end.
                t.truncate(t.len().saturating_sub(usize::from(cut)));
            }
            t
        }
        _ => {
            let mut t = API_KEY.as_bytes().to_vec();
            t.extend_from_slice(rest);
            t
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn check_no_echo(err: &AuthError, token: &[u8]) {
    if token.len() < 8 {
        return;
    }
    let texts = [err.to_string(), err.to_error().message, err.www_authenticate(None)];
    for text in texts {
        if contains(text.as_bytes(), token) {
            let fixed = FIXED
                .iter()
                .any(|f| text == f.to_string() || text == f.to_error().message || text == f.www_authenticate(None));
            assert!(fixed, "{err:?}: the refusal echoes the token: {text}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let world = world();
    let token = token(mode, rest, world);
    let (name, other) = if mode & 1 != 0 {
        (header::PROXY_AUTHORIZATION, header::AUTHORIZATION)
    } else {
        (header::AUTHORIZATION, header::PROXY_AUTHORIZATION)
    };
    let mut value = if mode & 2 != 0 { b"Bearer ".to_vec() } else { Vec::new() };
    value.extend_from_slice(&token);
    let Ok(value) = HeaderValue::from_bytes(&value) else { return };
    let mut headers = HeaderMap::new();
    headers.append(name.clone(), value.clone());
    match (mode >> 4) & 3 {
        1 => {
            headers.append(name, value);
        }
        2 => {
            headers.append(other, HeaderValue::from_static("Bearer cloak_placeholder_for_the_function"));
        }
        _ => {}
    }
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let result = world.runtime.block_on(world.auth.authenticate(&headers, Some(peer)));
    if std::env::var_os("CREDENTIAL_FUZZ_DEBUG").is_some() {
        // For reading a reproduced input: the outcome, never the token.
        let built_biscuit = token == world.biscuit.as_bytes();
        eprintln!(
            "outcome: {:?} (the unedited Biscuit: {built_biscuit})",
            result.as_ref().map(|id| (&id.subject, id.method))
        );
    }
    match result {
        Ok(id) => {
            assert!(
                id.subject == API_KEY_SUBJECT || id.subject == BISCUIT_USER,
                "accepted an identity nobody issued: {:?}",
                id.subject
            );
            assert_eq!(id.source_ip, Some(peer.ip()));
        }
        Err(e) => check_no_echo(&e, &token),
    }
});
