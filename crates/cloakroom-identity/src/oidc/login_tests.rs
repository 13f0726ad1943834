//! The sign-in checks against a local issuer whose token endpoint answers what each test
//! sets: the ID token must be signed by the issuer, for this client, unexpired and carry
//! this login's nonce. (bins/cloakroomd/tests/oidc_login.rs runs the whole flow against
//! OpenBao.)

use cloakroom_testkit::{unix_now, OidcIssuer, OidcTestKey};
use serde_json::json;

use super::*;
use crate::config::OidcIssuerConfig;

const CLIENT: &str = "cloakroom-console";

struct Setup {
    issuer: OidcIssuer,
    key: OidcTestKey,
    verifier: OidcVerifier,
}

async fn setup(secret_env: Option<&str>) -> Setup {
    let key = OidcTestKey::rsa(1, "k1", "RS256");
    let issuer = OidcIssuer::start(&[&key]).await;
    let mut config = OidcIssuerConfig::new(issuer.issuer.clone(), vec!["cloakroom".into()]);
    config.client_id = Some(CLIENT.into());
    config.client_secret_env = secret_env.map(str::to_owned);
    config.scopes = vec!["groups".into()];
    let verifier = OidcVerifier::new(&[config], reqwest::Client::new()).unwrap();
    Setup { issuer, key, verifier }
}

fn query(url: &str, name: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Starts a login and makes the token endpoint answer an ID token with `claims`
/// (`nonce` filled in with the login's unless the claims set one).
async fn finish_with(s: &Setup, mut claims: Value) -> Result<SignIn, SignInError> {
    let login = s.verifier.start_login(None, "http://127.0.0.1:1/v1/oidc/callback").await.unwrap();
    if claims.get("nonce").is_none() {
        claims["nonce"] = json!(query(&login.authorize_url, "nonce"));
    }
    s.issuer.set_token_response(200, json!({"id_token": s.key.sign(&claims), "token_type": "Bearer"}));
    s.verifier.finish_login(&login.pending, "the-code").await
}

fn id_claims(s: &Setup) -> Value {
    let mut c = s.issuer.claims("alice");
    c["aud"] = json!(CLIENT);
    c
}

#[tokio::test]
async fn authorize_url_carries_pkce_s256_state_nonce_and_scopes() {
    let s = setup(None).await;
    let login = s.verifier.start_login(Some("0"), "http://127.0.0.1:1/v1/oidc/callback").await.unwrap();
    assert!(login.authorize_url.starts_with(&format!("{}/authorize?", s.issuer.issuer)));
    assert_eq!(query(&login.authorize_url, "response_type"), "code");
    assert_eq!(query(&login.authorize_url, "client_id"), CLIENT);
    assert_eq!(query(&login.authorize_url, "scope"), "openid groups");
    assert_eq!(query(&login.authorize_url, "state"), login.state);
    assert_eq!(query(&login.authorize_url, "code_challenge_method"), "S256");
    assert_eq!(query(&login.authorize_url, "code_challenge"), pkce_challenge(&login.pending.verifier));
    assert_eq!(query(&login.authorize_url, "redirect_uri"), "http://127.0.0.1:1/v1/oidc/callback");
    assert_eq!(login.state.len(), 43);
    assert_ne!(login.pending.nonce, login.state);
    assert!(!format!("{:?}", login.pending).contains(&login.pending.verifier), "the verifier is never in Debug");
}

#[tokio::test]
async fn a_valid_id_token_gives_the_subject_and_groups() {
    let s = setup(None).await;
    let who = finish_with(&s, id_claims(&s)).await.unwrap();
    assert_eq!(who.subject, "alice");
    assert_eq!(who.issuer, s.issuer.issuer);
    assert_eq!(who.method, AuthMethod::Oidc);
    assert_eq!(who.groups, vec!["ci", "payments-ops"]);
    // The code went with the verifier, redirect URI and client id, and no secret.
    let sent = s.issuer.token_requests().pop().unwrap();
    assert!(sent.contains("grant_type=authorization_code") && sent.contains("code=the-code"), "{sent}");
    assert!(sent.contains("code_verifier=") && sent.contains("client_id=cloakroom-console"), "{sent}");
    assert!(!sent.contains("authorization:"), "a public client sends no Basic credentials: {sent}");
}

#[tokio::test]
async fn a_confidential_client_authenticates_with_basic() {
    std::env::set_var("LOGIN_TEST_CLIENT_SECRET", "s3cr:et");
    let s = setup(Some("LOGIN_TEST_CLIENT_SECRET")).await;
    finish_with(&s, id_claims(&s)).await.unwrap();
    let sent = s.issuer.token_requests().pop().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("cloakroom-console:s3cr%3Aet");
    assert!(sent.starts_with(&format!("authorization: Basic {basic}\n")), "{sent}");
}

#[tokio::test]
async fn an_id_token_for_another_client_is_refused() {
    let s = setup(None).await;
    let mut c = id_claims(&s);
    // "cloakroom" is an accepted bearer audience, but not this sign-in client.
    c["aud"] = json!("cloakroom");
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))));
    let mut c = id_claims(&s);
    c["aud"] = json!([CLIENT, "other-client"]);
    c["azp"] = json!("other-client");
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))));
    let mut c = id_claims(&s);
    c["aud"] = json!([CLIENT, "other-client"]);
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))), "several audiences need azp");
}

#[tokio::test]
async fn an_id_token_with_another_or_no_nonce_is_refused() {
    let s = setup(None).await;
    let mut c = id_claims(&s);
    c["nonce"] = json!("an-old-nonce");
    assert_eq!(
        finish_with(&s, c).await,
        Err(SignInError::InvalidIdToken("its nonce is not the one this sign-in sent".into()))
    );
    let mut c = id_claims(&s);
    c["nonce"] = json!("");
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))));
}

#[tokio::test]
async fn an_expired_or_foreign_id_token_is_refused() {
    let s = setup(None).await;
    let mut c = id_claims(&s);
    c["exp"] = json!(unix_now() - 3600);
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))));
    let mut c = id_claims(&s);
    c["iss"] = json!("https://evil.example");
    assert!(matches!(finish_with(&s, c).await, Err(SignInError::InvalidIdToken(_))));
    // Signed by a key the issuer does not publish.
    let login = s.verifier.start_login(None, "http://127.0.0.1:1/cb").await.unwrap();
    let mut c = id_claims(&s);
    c["nonce"] = json!(query(&login.authorize_url, "nonce"));
    let forged = OidcTestKey::rsa(2, "k1", "RS256").sign(&c);
    s.issuer.set_token_response(200, json!({"id_token": forged}));
    assert!(matches!(s.verifier.finish_login(&login.pending, "c").await, Err(SignInError::InvalidIdToken(_))));
}

#[tokio::test]
async fn a_refused_code_says_the_oauth_error_only() {
    let s = setup(None).await;
    let login = s.verifier.start_login(None, "http://127.0.0.1:1/cb").await.unwrap();
    s.issuer.set_token_response(400, json!({"error": "invalid_grant", "error_description": "code the-code is bad"}));
    let err = s.verifier.finish_login(&login.pending, "the-code").await.unwrap_err();
    assert_eq!(err, SignInError::Refused("invalid_grant".into()));
    assert!(!err.to_string().contains("the-code"));
}

#[tokio::test]
async fn sign_in_needs_a_client_id_and_a_known_issuer() {
    let key = OidcTestKey::rsa(1, "k1", "RS256");
    let issuer = OidcIssuer::start(&[&key]).await;
    let bearer_only = OidcIssuerConfig::new(issuer.issuer.clone(), vec!["cloakroom".into()]);
    let v = OidcVerifier::new(std::slice::from_ref(&bearer_only), reqwest::Client::new()).unwrap();
    assert!(matches!(v.start_login(None, "http://x/cb").await, Err(SignInError::NotConfigured(_))));
    assert!(matches!(v.start_login(Some("0"), "http://x/cb").await, Err(SignInError::NotConfigured(_))));
    assert!(matches!(
        v.start_login(Some("https://nope.example"), "http://x/cb").await,
        Err(SignInError::NotConfigured(_))
    ));
    let mut half = bearer_only;
    half.client_secret_env = Some("X".into());
    assert!(OidcVerifier::new(&[half], reqwest::Client::new()).is_err(), "a secret without a client id");
}
