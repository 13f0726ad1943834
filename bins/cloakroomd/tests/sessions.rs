//! People's sessions against a real `cloakroomd`: a session minted with the gateway's
//! session key (`identity.sessions.signing_key_env`) is a bearer credential on the admin
//! API; a session from another key, one marked as a session but signed by the operator's
//! Biscuit root key, and an expired one are refused.

mod common;

use std::time::{Duration, SystemTime};

use biscuit_auth::{Biscuit, KeyPair};
use cloakroom_core::AuthMethod;
use cloakroom_identity::{SessionKeys, SignIn, SESSION_ROOT_KEY_ID};
use common::*;

const KEY_ENV: &str = "CLOAKROOM_TEST_SESSION_KEY";

struct Setup {
    gw: Cloakroomd,
    keys: SessionKeys,
    operator: KeyPair,
}

async fn setup() -> Setup {
    let session = KeyPair::new();
    let operator = KeyPair::new();
    let rest = format!(
        "{}\n[identity.biscuit]\nroot_public_key = \"{}\"\n\n[identity.sessions]\nsigning_key_env = \"{KEY_ENV}\"\n",
        identity_section(),
        operator.public()
    );
    let private = session.private().to_prefixed_string();
    let gw = Cloakroomd::start_with_env("", &rest, &[(KEY_ENV, private.as_str())]).await;
    Setup { gw, keys: SessionKeys::from_private(&private).unwrap(), operator }
}

fn admin() -> SignIn {
    SignIn::new("alice@example.com", "https://idp.example.com/saml", AuthMethod::Saml).with_groups(["admins"])
}

async fn list_secrets(s: &Setup, token: &str) -> u16 {
    reqwest::Client::new().get(s.gw.admin_url("/v1/secrets")).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_session_minted_with_the_gateways_key_is_a_bearer_credential() {
    let s = setup().await;
    let session = s.keys.mint(&admin(), Duration::from_secs(600), SystemTime::now()).unwrap();
    assert_eq!(list_secrets(&s, &session.token).await, 200, "{}", s.gw.stderr());
}

#[tokio::test]
async fn a_session_from_another_key_is_refused() {
    let s = setup().await;
    let other = SessionKeys::generate().mint(&admin(), Duration::from_secs(600), SystemTime::now()).unwrap();
    assert_eq!(list_secrets(&s, &other.token).await, 401);
}

#[tokio::test]
async fn a_token_marked_as_a_session_but_signed_by_the_operator_key_is_refused() {
    let s = setup().await;
    let forged = Biscuit::builder()
        .code(r#"user("alice@example.com"); group("admins"); session_issuer("https://idp"); session_method("saml");"#)
        .unwrap()
        .root_key_id(SESSION_ROOT_KEY_ID)
        .build(&s.operator)
        .unwrap();
    assert_eq!(list_secrets(&s, &forged.to_base64().unwrap()).await, 401);
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let s = setup().await;
    let minted = SystemTime::now() - Duration::from_secs(3600);
    let session = s.keys.mint(&admin(), Duration::from_secs(60), minted).unwrap();
    assert_eq!(list_secrets(&s, &session.token).await, 403);
}
