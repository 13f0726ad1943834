//! Biscuit tokens: root-key verification, tampering, and attenuation kept for policy.

use std::sync::Arc;

use biscuit_auth::{builder::BlockBuilder, macros::authorizer, Biscuit, KeyPair, PublicKey};
use cloakroom_core::{AuthMethod, Identity};
use cloakroom_identity::{AuthError, Authenticator, BiscuitConfig, IdentityConfig, IdentityLayer};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};

fn authenticator(root: &PublicKey) -> Authenticator {
    let config =
        IdentityConfig { biscuit: Some(BiscuitConfig { root_public_key: root.to_string() }), ..Default::default() };
    Authenticator::new(&config).unwrap()
}

fn agent_token(root: &KeyPair) -> Biscuit {
    Biscuit::builder().code(r#"user("agent-7"); group("payments-ops");"#).unwrap().build(root).unwrap()
}

/// What the policy layer will do with `identity.biscuit`: parse it with the root key and
/// run the token's own checks against the call's facts.
fn run_token_checks(identity: &Identity, root: &PublicKey, function: &str) -> bool {
    let bytes = identity.biscuit.as_ref().expect("biscuit kept").bytes();
    let token = Biscuit::from(bytes, *root).unwrap();
    let mut authorizer = authorizer!(r#"function({function}); allow if true;"#).build(&token).unwrap();
    authorizer.authorize().is_ok()
}

#[tokio::test]
async fn a_token_signed_by_the_root_key_gives_user_groups_and_keeps_its_bytes() {
    let root = KeyPair::new();
    let token = agent_token(&root);
    let id = authenticator(&root.public()).verify_token(&token.to_base64().unwrap()).await.unwrap();
    assert_eq!(id.subject, "agent-7");
    assert_eq!(id.issuer, "biscuit");
    assert_eq!(id.method, AuthMethod::Biscuit);
    assert_eq!(id.groups, vec!["payments-ops"]);
    assert_eq!(id.biscuit.as_ref().unwrap().bytes(), token.to_vec().unwrap().as_slice());
    // The verified token itself rides along, for the checks to run without verifying again.
    assert!(id.biscuit.as_ref().unwrap().get::<Biscuit>().is_some());
    assert!(!format!("{id:?}").contains(&token.to_base64().unwrap()[..40]));
}

#[tokio::test]
async fn a_token_from_another_root_key_is_refused() {
    let root = KeyPair::new();
    let attacker = KeyPair::new();
    let forged = agent_token(&attacker).to_base64().unwrap();
    assert_eq!(authenticator(&root.public()).verify_token(&forged).await, Err(AuthError::InvalidBiscuit));
}

#[tokio::test]
async fn a_tampered_block_is_refused() {
    let root = KeyPair::new();
    let token = agent_token(&root)
        .append(BlockBuilder::new().code(r#"check if function("payments/refund");"#).unwrap())
        .unwrap();
    let auth = authenticator(&root.public());
    let bytes = token.to_vec().unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE.encode(b)
    };
    // Replace the name in the authority block: same length, different signed content.
    let at = bytes.windows(7).position(|w| w == b"agent-7").expect("user name in the authority block");
    let mut renamed = bytes.clone();
    renamed[at..at + 7].copy_from_slice(b"admin-0");
    assert!(auth.verify_token(&b64(&renamed)).await.is_err());
    // Flip one byte anywhere: never accepted.
    for i in (0..bytes.len()).step_by(7) {
        let mut t = bytes.clone();
        t[i] ^= 0x55;
        let r = auth.verify_token(&b64(&t)).await;
        assert!(r.is_err(), "byte {i} flipped and still accepted");
    }
    // Drop the attenuation block by truncation: refused, not widened.
    for cut in [bytes.len() - 1, bytes.len() / 2, 40] {
        assert!(auth.verify_token(&b64(&bytes[..cut])).await.is_err(), "cut at {cut}");
    }
}

#[tokio::test]
async fn an_attenuated_token_still_authenticates_but_its_check_fails_for_another_function() {
    let root = KeyPair::new();
    let narrowed = agent_token(&root)
        .append(BlockBuilder::new().code(r#"check if function("payments/refund");"#).unwrap())
        .unwrap();
    let id = authenticator(&root.public()).verify_token(&narrowed.to_base64().unwrap()).await.unwrap();
    assert_eq!(id.subject, "agent-7");
    assert!(run_token_checks(&id, &root.public(), "payments/refund"));
    assert!(!run_token_checks(&id, &root.public(), "payments/charge"));
}

#[tokio::test]
async fn an_attenuation_block_cannot_change_who_the_caller_is() {
    let root = KeyPair::new();
    let widened = agent_token(&root)
        .append(BlockBuilder::new().code(r#"user("admin"); group("cloakroom-admins");"#).unwrap())
        .unwrap();
    let id = authenticator(&root.public()).verify_token(&widened.to_base64().unwrap()).await.unwrap();
    assert_eq!(id.subject, "agent-7");
    assert_eq!(id.groups, vec!["payments-ops"]);
}

#[tokio::test]
async fn unpadded_and_garbage_biscuits_are_handled() {
    let root = KeyPair::new();
    let auth = authenticator(&root.public());
    let b64 = agent_token(&root).to_base64().unwrap();
    let unpadded = b64.trim_end_matches('=');
    assert_eq!(auth.verify_token(unpadded).await.unwrap().subject, "agent-7");
    let garbage = format!("E{}", "x".repeat(300));
    assert!(matches!(auth.verify_token(&garbage).await, Err(AuthError::Malformed | AuthError::InvalidBiscuit)));
}

#[tokio::test]
async fn the_layer_passes_the_verified_token_to_inner_layers() {
    let root = KeyPair::new();
    let token = agent_token(&root).to_base64().unwrap();
    let svc = IdentityLayer::new(Arc::new(authenticator(&root.public()))).layer(service_fn(
        |req: Request<Full<bytes::Bytes>>| async move {
            let id = req.extensions().get::<Identity>().unwrap();
            assert!(id.biscuit.is_some());
            Ok::<_, std::convert::Infallible>(Response::new(Full::<bytes::Bytes>::default()))
        },
    ));
    let req =
        Request::builder().header(header::AUTHORIZATION, format!("Bearer {token}")).body(Full::default()).unwrap();
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        format!("Bearer {}", agent_token(&KeyPair::new()).to_base64().unwrap()).parse().unwrap(),
    );
    assert_eq!(authenticator(&root.public()).authenticate(&h, None).await, Err(AuthError::InvalidBiscuit));
}
