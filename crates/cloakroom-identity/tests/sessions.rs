//! People's sessions: tokens the gateway mints after a sign-in, verified with the
//! session key only, expiring by their own check.

use std::time::{Duration, SystemTime};

use biscuit_auth::{Biscuit, KeyPair};
use cloakroom_core::{AuthMethod, ErrorCode};
use cloakroom_identity::{
    ApiKeyConfig, AuthError, Authenticator, BiscuitConfig, IdentityConfig, Operation, SessionKeys, SignIn,
    SESSION_ROOT_KEY_ID,
};
use sha2::{Digest, Sha256};

fn alice() -> SignIn {
    SignIn::new("alice@example.com", "https://idp.example.com/saml", AuthMethod::Saml)
        .with_groups(["finance-leads", "cloakroom-admins"])
}

fn with_sessions(config: &IdentityConfig, keys: &SessionKeys) -> Authenticator {
    Authenticator::new(config).unwrap().with_session_key(keys.public())
}

#[tokio::test]
async fn a_session_names_the_person_their_idp_and_how_they_signed_in() {
    let keys = SessionKeys::generate();
    let session = keys.mint(&alice(), Duration::from_secs(600), SystemTime::now()).unwrap();
    let auth = with_sessions(&IdentityConfig::default(), &keys);
    let id = auth.verify_token(&session.token).await.unwrap();
    assert_eq!(id.subject, "alice@example.com");
    assert_eq!(id.issuer, "https://idp.example.com/saml");
    assert_eq!(id.method, AuthMethod::Saml);
    assert_eq!(id.groups, vec!["cloakroom-admins", "finance-leads"]);
    assert_eq!(auth.authorize(&id, &Operation::new(Operation::SECRETS_LIST)), Ok(()));
}

#[tokio::test]
async fn an_expired_session_is_refused_for_every_operation() {
    let keys = SessionKeys::generate();
    let minted = SystemTime::now() - Duration::from_secs(3600);
    let session = keys.mint(&alice(), Duration::from_secs(60), minted).unwrap();
    let auth = with_sessions(&IdentityConfig::default(), &keys);
    // The signature still verifies; the expiry is the token's own check, run for each
    // operation (admin API) and each call (policy layer).
    let id = auth.verify_token(&session.token).await.unwrap();
    for op in [Operation::SECRETS_LIST, Operation::APPROVALS_APPROVE, Operation::CALL] {
        let err = auth.authorize(&id, &Operation::new(op)).unwrap_err();
        assert_eq!(err.to_error().code, ErrorCode::Forbidden, "{op}");
    }
    assert_eq!(auth.authorize_at(&id, &Operation::new(Operation::SECRETS_LIST), minted), Ok(()));
}

#[tokio::test]
async fn a_session_minted_by_another_gateway_is_refused() {
    let session = SessionKeys::generate().mint(&alice(), Duration::from_secs(600), SystemTime::now()).unwrap();
    let auth = with_sessions(&IdentityConfig::default(), &SessionKeys::generate());
    assert_eq!(auth.verify_token(&session.token).await.unwrap_err(), AuthError::InvalidBiscuit);
}

#[tokio::test]
async fn the_operator_root_key_cannot_mint_a_session_nor_a_session_key_an_operator_token() {
    let root = KeyPair::new();
    let keys = SessionKeys::generate();
    let config = IdentityConfig {
        biscuit: Some(BiscuitConfig { root_public_key: root.public().to_string() }),
        ..Default::default()
    };
    let auth = with_sessions(&config, &keys);
    // An operator token that claims to be a SAML session: still an operator token.
    let claims = r#"user("bob"); session_issuer("https://idp.example.com/saml"); session_method("saml");"#;
    let plain = Biscuit::builder().code(claims).unwrap().build(&root).unwrap();
    let id = auth.verify_token(&plain.to_base64().unwrap()).await.unwrap();
    assert_eq!((id.issuer.as_str(), id.method), ("biscuit", AuthMethod::Biscuit));
    // Marked as a session but signed by the operator's root key: refused.
    let marked = Biscuit::builder().code(claims).unwrap().root_key_id(SESSION_ROOT_KEY_ID).build(&root).unwrap();
    assert_eq!(auth.verify_token(&marked.to_base64().unwrap()).await.unwrap_err(), AuthError::InvalidBiscuit);
}

#[tokio::test]
async fn a_subject_with_datalog_in_it_stays_one_subject() {
    let keys = SessionKeys::generate();
    let who = SignIn::new(r#"eve"); group("cloakroom-admins"); user("x"#, "https://idp", AuthMethod::Oidc);
    let session = keys.mint(&who, Duration::from_secs(600), SystemTime::now()).unwrap();
    let id = with_sessions(&IdentityConfig::default(), &keys).verify_token(&session.token).await.unwrap();
    assert_eq!(id.subject, who.subject);
    assert!(id.groups.is_empty(), "{:?}", id.groups);
    assert_eq!(id.method, AuthMethod::Oidc);
}

#[tokio::test]
async fn with_api_keys_only_a_non_session_biscuit_is_an_unknown_key() {
    let keys = SessionKeys::generate();
    let config = IdentityConfig {
        api_keys: vec![ApiKeyConfig {
            subject: "ci".into(),
            groups: vec![],
            sha256: hex::encode(Sha256::digest(b"k")),
        }],
        ..Default::default()
    };
    let auth = with_sessions(&config, &keys);
    let stranger = Biscuit::builder().code(r#"user("x");"#).unwrap().build(&KeyPair::new()).unwrap();
    assert_eq!(auth.verify_token(&stranger.to_base64().unwrap()).await.unwrap_err(), AuthError::UnknownApiKey);
    let session = keys.mint(&alice(), Duration::from_secs(600), SystemTime::now()).unwrap();
    assert_eq!(auth.verify_token(&session.token).await.unwrap().subject, "alice@example.com");
}
