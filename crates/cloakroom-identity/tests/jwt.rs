//! OIDC JWTs against a local issuer: what verifies, and every attack that must not.

mod common;

use std::time::Duration;

use base64::Engine as _;
use cloakroom_core::AuthMethod;
use cloakroom_identity::{AuthError, Authenticator, IdentityConfig, OidcIssuerConfig};
use common::{authenticator, now, TestIssuer, TestKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

#[tokio::test]
async fn every_accepted_algorithm_verifies_and_gives_subject_issuer_and_groups() {
    let keys = [
        TestKey::rsa(1, "rs256", "RS256"),
        TestKey::rsa(1, "rs384", "RS384"),
        TestKey::rsa(1, "rs512", "RS512"),
        TestKey::rsa(1, "ps256", "PS256"),
        TestKey::rsa(1, "ps384", "PS384"),
        TestKey::rsa(1, "ps512", "PS512"),
        TestKey::es256("es256"),
        TestKey::ed25519("eddsa"),
    ];
    let issuer = TestIssuer::start(&keys.iter().collect::<Vec<_>>()).await;
    let auth = authenticator(&issuer, |_| {});
    for key in &keys {
        let id =
            auth.verify_token(&key.sign(&issuer.claims("alice"))).await.unwrap_or_else(|e| panic!("{}: {e}", key.kid));
        assert_eq!(id.subject, "alice");
        assert_eq!(id.issuer, issuer.issuer);
        assert_eq!(id.method, AuthMethod::Oidc);
        assert_eq!(id.groups, vec!["ci".to_owned(), "payments-ops".to_owned()]);
    }
    assert_eq!(issuer.jwks_fetches(), 1, "one JWKS fetch serves every key");
}

#[tokio::test]
async fn groups_come_from_a_dotted_claim_path_or_a_single_string() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |c| c.groups_claim = "realm_access.roles".into());
    let mut claims = issuer.claims("bob");
    claims["realm_access"] = json!({"roles": ["admin", "ops"]});
    assert_eq!(auth.verify_token(&key.sign(&claims)).await.unwrap().groups, vec!["admin", "ops"]);
    claims["realm_access"] = json!({"roles": "ops"});
    assert_eq!(auth.verify_token(&key.sign(&claims)).await.unwrap().groups, vec!["ops"]);
    claims["realm_access"] = json!({});
    assert!(auth.verify_token(&key.sign(&claims)).await.unwrap().groups.is_empty());
}

#[tokio::test]
async fn audience_may_be_an_array_containing_a_configured_one() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("alice");
    claims["aud"] = json!(["someone-else", "other-audience"]);
    assert!(auth.verify_token(&key.sign(&claims)).await.is_ok());
}

#[tokio::test]
async fn expired_tokens_are_refused_beyond_the_leeway() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |c| c.leeway = Duration::from_secs(30));
    let mut claims = issuer.claims("alice");
    claims["exp"] = json!(now() - 120);
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::Expired));
    claims["exp"] = json!(now() - 5);
    assert!(auth.verify_token(&key.sign(&claims)).await.is_ok(), "within the 30 s leeway");
}

#[tokio::test]
async fn tokens_not_yet_valid_are_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("alice");
    claims["nbf"] = json!(now() + 120);
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::NotYetValid));
}

#[tokio::test]
async fn wrong_issuer_is_refused_even_with_a_good_signature() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("alice");
    claims["iss"] = json!(format!("{}/", issuer.issuer));
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::UntrustedIssuer));
    claims["iss"] = json!("https://evil.example");
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::UntrustedIssuer));
    claims.as_object_mut().unwrap().remove("iss");
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::MissingClaim));
}

#[tokio::test]
async fn wrong_or_missing_audience_is_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("alice");
    claims["aud"] = json!("another-service");
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::WrongAudience));
    claims.as_object_mut().unwrap().remove("aud");
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::MissingClaim));
}

#[tokio::test]
async fn a_token_without_subject_is_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("alice");
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::MissingClaim));
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let other = TestKey::rsa(2, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    // Signed by a key the issuer does not have, naming the issuer's kid.
    assert_eq!(auth.verify_token(&other.sign(&issuer.claims("alice"))).await, Err(AuthError::BadSignature));
    // A good token whose claims were edited after signing.
    let good = key.sign(&issuer.claims("alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(issuer.claims("admin").to_string().as_bytes()), parts[2]);
    assert_eq!(auth.verify_token(&forged).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let payload = b64(issuer.claims("admin").to_string().as_bytes());
    for header in [json!({"alg": "none", "typ": "JWT"}), json!({"alg": "none", "kid": "k"}), json!({"alg": "None"})] {
        let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        assert_eq!(auth.verify_token(&token).await, Err(AuthError::Malformed), "empty signature");
        let token = format!("{}.{payload}.c2ln", b64(header.to_string().as_bytes()));
        assert_eq!(auth.verify_token(&token).await, Err(AuthError::AlgorithmRefused));
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    assert!(auth.verify_token(&key.sign(&issuer.claims("alice"))).await.is_ok());
    let public_pem = TestKey::rsa1_public_pem().to_vec();
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key.jwk["n"].as_str().unwrap()).unwrap();
    for secret in [public_pem.clone(), modulus, serde_json::to_vec(&key.jwk).unwrap()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("k".into());
            let token =
                jsonwebtoken::encode(&header, &issuer.claims("admin"), &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(auth.verify_token(&token).await, Err(AuthError::AlgorithmRefused), "{alg:?}");
        }
    }
}

#[tokio::test]
async fn symmetric_keys_published_in_a_jwks_are_never_used() {
    let issuer = TestIssuer::start(&[]).await;
    issuer.set_jwks(json!({"keys": [{"kty": "oct", "kid": "shared", "k": b64(b"0123456789abcdef0123456789abcdef"), "alg": "HS256"}]}));
    let auth = authenticator(&issuer, |_| {});
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("shared".into());
    let token = jsonwebtoken::encode(
        &header,
        &issuer.claims("admin"),
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    assert_eq!(auth.verify_token(&token).await, Err(AuthError::AlgorithmRefused));
}

#[tokio::test]
async fn a_key_of_another_type_than_the_algorithm_is_refused() {
    let rsa = TestKey::rsa(1, "rsa", "RS256");
    let ec = TestKey::es256("ec");
    let issuer = TestIssuer::start(&[&rsa, &ec]).await;
    let auth = authenticator(&issuer, |_| {});
    // An ES256 token naming the RSA key's kid.
    let token = ec.sign_as("rsa", &issuer.claims("alice"));
    assert_eq!(auth.verify_token(&token).await, Err(AuthError::AlgorithmRefused));
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_is_refused_and_refetches_are_debounced() {
    let key = TestKey::rsa(1, "k1", "RS256");
    let stranger = TestKey::rsa(2, "unknown", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    // The default interval (10 s) between refetches caused by unknown kids.
    let auth = authenticator(&issuer, |_| {});
    let flood: Vec<String> =
        (0..20).map(|i| stranger.sign_as(&format!("unknown-{i}"), &issuer.claims("mallory"))).collect();
    auth.verify_token(&key.sign(&issuer.claims("alice"))).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);
    let forged = stranger.sign(&issuer.claims("mallory"));
    assert_eq!(auth.verify_token(&forged).await, Err(AuthError::UnknownKey));
    assert_eq!(issuer.jwks_fetches(), 2, "the unknown kid caused one refetch");
    for forged in &flood {
        assert_eq!(auth.verify_token(forged).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(issuer.jwks_fetches(), 2, "a flood of unknown kids within the interval fetches nothing");
}

#[tokio::test]
async fn an_unknown_kid_refetches_again_after_the_interval() {
    let key = TestKey::rsa(1, "k1", "RS256");
    let stranger = TestKey::rsa(2, "unknown", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |c| c.jwks_min_refetch = Duration::from_secs(1));
    auth.verify_token(&key.sign(&issuer.claims("alice"))).await.unwrap();
    let forged = stranger.sign(&issuer.claims("mallory"));
    assert_eq!(auth.verify_token(&forged).await, Err(AuthError::UnknownKey));
    assert_eq!(issuer.jwks_fetches(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    issuer.set_keys(&[&key, &stranger]);
    assert_eq!(auth.verify_token(&forged).await.unwrap().subject, "mallory");
    assert_eq!(issuer.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_jwks_that_rotates_keys_mid_run_is_followed() {
    let old = TestKey::rsa(1, "2026-01", "RS256");
    let new = TestKey::rsa(2, "2026-02", "RS256");
    let issuer = TestIssuer::start(&[&old]).await;
    let auth = authenticator(&issuer, |_| {});
    let before = old.sign(&issuer.claims("alice"));
    assert!(auth.verify_token(&before).await.is_ok());
    issuer.set_keys(&[&new]);
    let after = new.sign(&issuer.claims("alice"));
    assert_eq!(auth.verify_token(&after).await.unwrap().subject, "alice");
    assert_eq!(issuer.jwks_fetches(), 2);
    // A new token from the retired key is refused; the one verified before the rotation
    // stays cached until it expires (documented).
    let mut claims = issuer.claims("alice");
    claims["jti"] = json!("fresh");
    assert_eq!(auth.verify_token(&old.sign(&claims)).await, Err(AuthError::UnknownKey));
    assert_eq!(auth.verify_token(&before).await.map(|i| i.subject), Ok("alice".to_owned()));
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background() {
    let old = TestKey::rsa(1, "old", "RS256");
    let new = TestKey::es256("new");
    let issuer = TestIssuer::start(&[&old]).await;
    let auth = authenticator(&issuer, |c| c.jwks_refresh = Duration::from_secs(1));
    auth.warm_up().await.unwrap();
    issuer.set_keys(&[&old, &new]);
    // No token is verified while we wait: only the background refresh fetches.
    let mut waited = 0;
    while issuer.jwks_fetches() < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(waited < 100, "no background refresh within 10 s");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(auth.verify_token(&new.sign(&issuer.claims("alice"))).await.is_ok());
}

#[tokio::test]
async fn a_verified_token_is_answered_from_the_cache() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let token = key.sign(&issuer.claims("alice"));
    auth.verify_token(&token).await.unwrap();
    // Take the key away, and make the authenticator learn that (an unknown kid makes it
    // refetch): only the token cache can still vouch for the token.
    issuer.set_keys(&[]);
    let stranger = TestKey::rsa(2, "stranger", "RS256").sign(&issuer.claims("x"));
    assert_eq!(auth.verify_token(&stranger).await, Err(AuthError::UnknownKey));
    assert_eq!(issuer.jwks_fetches(), 2);
    assert_eq!(auth.verify_token(&token).await.unwrap().subject, "alice");
    let fresh = key.sign(&issuer.claims("alice-again"));
    assert_eq!(auth.verify_token(&fresh).await, Err(AuthError::UnknownKey), "the key really is gone");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_expired() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |c| c.leeway = Duration::ZERO);
    let mut claims = issuer.claims("alice");
    // Long enough for discovery, the JWKS fetch and the first check on a busy machine.
    claims["exp"] = json!(now() + 5);
    let token = key.sign(&claims);
    assert!(auth.verify_token(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(6100)).await;
    assert_eq!(auth.verify_token(&token).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn truncated_and_non_base64_tokens_are_refused_cleanly() {
    let key = TestKey::rsa(1, "k", "RS256");
    let issuer = TestIssuer::start(&[&key]).await;
    let auth = authenticator(&issuer, |_| {});
    let good = key.sign(&issuer.claims("alice"));
    let cuts = [good.len() - 1, good.len() - 10, good.rfind('.').unwrap() + 1, good.len() / 2, 10];
    for cut in cuts {
        let r = auth.verify_token(&good[..cut]).await;
        assert!(r.is_err(), "cut at {cut}");
    }
    for bad in ["a.b.c", "!!!.???.***", "eyJ.eyJ.eyJ", "..", "e30.e30.e30", "bnVsbA.bnVsbA.c2ln", "W10.W10.c2ln"] {
        let r = auth.verify_token(bad).await;
        // `!!!.???.***` is not JWT-shaped, so it is an API key, and none are configured.
        assert!(
            matches!(r, Err(AuthError::Malformed | AuthError::AlgorithmRefused | AuthError::MethodNotConfigured)),
            "{bad}: {r:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_issuer_or_a_lying_discovery_document_fails_closed() {
    let key = TestKey::rsa(1, "k", "RS256");
    let port = cloakroom_testkit::free_port();
    let config = IdentityConfig {
        oidc: vec![OidcIssuerConfig::new(format!("http://127.0.0.1:{port}"), vec!["cloakroom".into()])],
        ..Default::default()
    };
    let auth = Authenticator::new(&config).unwrap();
    let mut claims =
        json!({"iss": format!("http://127.0.0.1:{port}"), "aud": "cloakroom", "sub": "a", "exp": now() + 60});
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::IssuerUnavailable));
    assert!(auth.warm_up().await.is_err());

    let issuer = TestIssuer::start(&[&key]).await;
    issuer.set_discovery_issuer("https://evil.example");
    let auth = authenticator(&issuer, |_| {});
    claims["iss"] = json!(issuer.issuer);
    assert_eq!(auth.verify_token(&key.sign(&claims)).await, Err(AuthError::IssuerUnavailable));
    assert_eq!(issuer.jwks_fetches(), 0, "keys named by a discovery document for another issuer are never fetched");
}

#[test]
fn issuers_without_audience_twice_or_not_http_are_configuration_errors() {
    let ok = OidcIssuerConfig::new("https://idp.example", vec!["a".into()]);
    let build = |oidc: Vec<OidcIssuerConfig>| Authenticator::new(&IdentityConfig { oidc, ..Default::default() });
    assert!(build(vec![ok.clone()]).is_ok());
    assert!(build(vec![ok.clone(), ok.clone()]).is_err());
    assert!(build(vec![OidcIssuerConfig::new("https://idp.example", vec![])]).is_err());
    assert!(build(vec![OidcIssuerConfig::new("idp.example", vec!["a".into()])]).is_err());
}

#[tokio::test]
async fn jwts_are_refused_when_no_issuer_is_configured() {
    let key = TestKey::rsa(1, "k", "RS256");
    let auth = Authenticator::new(&IdentityConfig::default()).unwrap();
    let token = key.sign(&json!({"iss": "x", "aud": "y", "sub": "z", "exp": now() + 60}));
    assert_eq!(auth.verify_token(&token).await, Err(AuthError::MethodNotConfigured));
}

#[tokio::test]
async fn a_token_for_another_configured_issuer_uses_that_issuers_keys() {
    let k1 = TestKey::rsa(1, "same-kid", "RS256");
    let k2 = TestKey::rsa(2, "same-kid", "RS256");
    let a = TestIssuer::start(&[&k1]).await;
    let b = TestIssuer::start(&[&k2]).await;
    let config = IdentityConfig { oidc: vec![common::config(&a), common::config(&b)], ..Default::default() };
    let auth = Authenticator::new(&config).unwrap();
    assert_eq!(auth.verify_token(&k2.sign(&b.claims("bob"))).await.unwrap().issuer, b.issuer);
    assert_eq!(auth.verify_token(&k1.sign(&a.claims("amy"))).await.unwrap().issuer, a.issuer);
    // Issuer b's key cannot speak for issuer a, even under the same kid.
    assert_eq!(auth.verify_token(&k2.sign(&a.claims("amy-forged"))).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn a_token_without_kid_is_tried_against_every_key_of_its_type() {
    let a = TestKey::rsa(1, "a", "RS256");
    let b = TestKey::rsa(2, "b", "RS256");
    let issuer = TestIssuer::start(&[&a, &b]).await;
    let auth = authenticator(&issuer, |_| {});
    let pem = |n: u8| {
        std::fs::read(format!("{}/../cloakroom-testkit/fixtures/oidc/rsa{n}.pem", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let no_kid = Header::new(Algorithm::RS256);
    let token =
        jsonwebtoken::encode(&no_kid, &issuer.claims("kidless"), &EncodingKey::from_rsa_pem(&pem(2)).unwrap()).unwrap();
    assert_eq!(auth.verify_token(&token).await.unwrap().subject, "kidless");
    issuer.set_keys(&[&a]);
    let auth = authenticator(&issuer, |_| {});
    let mut claims = issuer.claims("kidless");
    claims["jti"] = json!("2");
    let token = jsonwebtoken::encode(&no_kid, &claims, &EncodingKey::from_rsa_pem(&pem(2)).unwrap()).unwrap();
    assert_eq!(auth.verify_token(&token).await, Err(AuthError::BadSignature));
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        #[test]
        fn arbitrary_dotted_tokens_never_panic(h in "[A-Za-z0-9_-]{0,40}", p in "[A-Za-z0-9_-]{0,80}", s in "[A-Za-z0-9_-]{0,40}") {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let config = IdentityConfig {
                oidc: vec![OidcIssuerConfig::new("http://127.0.0.1:9", vec!["a".into()])],
                ..Default::default()
            };
            let auth = Authenticator::new(&config).unwrap();
            let r = rt.block_on(auth.verify_token(&format!("{h}.{p}.{s}")));
            prop_assert!(r.is_err());
        }
    }
}
