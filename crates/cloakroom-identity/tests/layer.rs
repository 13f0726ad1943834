//! The IdentityLayer as a tower middleware: what reaches the inner service, and what a
//! refused caller is told.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, AuthMethod, CallId, ClientAddr, Error, ErrorCode, Identity};
use cloakroom_identity::{ApiKeyConfig, Authenticator, IdentityConfig, IdentityLayer, ResourceMetadata, ResponseBody};
use common::{TestIssuer, TestKey};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tower::{service_fn, util::BoxCloneService, Layer, ServiceExt};

const KEY: &str = "ck_live_7f3a9b2c1d";

#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    identity: Option<Identity>,
}

type Recorder = Arc<Mutex<Vec<Seen>>>;

fn config() -> IdentityConfig {
    IdentityConfig {
        api_keys: vec![ApiKeyConfig {
            subject: "ci-bot".into(),
            groups: vec!["ci".into(), "cloakroom-admins".into()],
            sha256: hex::encode(Sha256::digest(KEY.as_bytes())),
        }],
        admin_groups: vec!["cloakroom-admins".into()],
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    }
}

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

fn service(auth: Authenticator, layer: impl FnOnce(IdentityLayer) -> IdentityLayer) -> (Svc, Recorder) {
    let seen: Recorder = Arc::default();
    let rec = seen.clone();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let rec = rec.clone();
        async move {
            rec.lock()
                .unwrap()
                .push(Seen { headers: req.headers().clone(), identity: req.extensions().get::<Identity>().cloned() });
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"from upstream"))))
        }
    });
    (BoxCloneService::new(layer(IdentityLayer::new(Arc::new(auth))).layer(inner)), seen)
}

fn request(headers: &[(&str, &str)], peer: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().uri("/fn/echo");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Full::default()).unwrap();
    req.extensions_mut().insert(ClientAddr(peer.parse::<SocketAddr>().unwrap()));
    req
}

async fn body_of(res: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_valid_key_reaches_the_function_with_an_identity_and_without_the_credential() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let mut req = request(&[("authorization", &format!("Bearer {KEY}")), ("x-other", "kept")], "192.0.2.10:5555");
    let note = AuditNote::new(CallId::new());
    req.extensions_mut().insert(note.clone());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap()[0].clone();
    assert!(seen.headers.get(header::AUTHORIZATION).is_none(), "the credential is not forwarded");
    assert_eq!(seen.headers["x-other"], "kept");
    let id = seen.identity.unwrap();
    assert_eq!((id.subject.as_str(), id.method, id.issuer.as_str()), ("ci-bot", AuthMethod::ApiKey, "api_key"));
    assert_eq!(id.source_ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(note.snapshot().identity, Some(id));
}

#[tokio::test]
async fn proxy_authorization_is_used_and_removed_while_authorization_goes_to_the_function() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let placeholder = "Bearer cloak_abcdefghijklmnopqrstuvwxyz";
    let req =
        request(&[("proxy-authorization", &format!("Bearer {KEY}")), ("authorization", placeholder)], "192.0.2.1:1");
    assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
    let seen = seen.lock().unwrap()[0].clone();
    assert!(seen.headers.get(header::PROXY_AUTHORIZATION).is_none());
    assert_eq!(seen.headers[header::AUTHORIZATION], placeholder);
    assert_eq!(seen.identity.unwrap().subject, "ci-bot");
}

#[tokio::test]
async fn no_credential_gets_401_with_a_bare_bearer_challenge() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let mut req = request(&[], "192.0.2.1:1");
    let call_id = CallId::new();
    let note = AuditNote::new(call_id);
    req.extensions_mut().insert(call_id);
    req.extensions_mut().insert(note.clone());
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(res.extensions().get::<Error>().unwrap().code, ErrorCode::Unauthenticated);
    let body = body_of(res).await;
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(body["error"]["call_id"], call_id.to_string());
    assert!(seen.lock().unwrap().is_empty(), "the function is never called");
    assert_eq!(note.snapshot().error.unwrap().code, ErrorCode::Unauthenticated);
    assert!(note.snapshot().identity.is_none());
}

#[tokio::test]
async fn a_bad_token_gets_invalid_token_and_the_body_never_echoes_it() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let token = "ck_live_wrong_but_secretish_value";
    let res = svc.oneshot(request(&[("authorization", &format!("Bearer {token}"))], "192.0.2.1:1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer error=\"invalid_token\""), "{challenge}");
    assert!(!challenge.contains(token));
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains(token));
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_one_mib_header_is_refused_cleanly() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let huge = format!("Bearer {}", "A".repeat(1024 * 1024));
    let res = svc.clone().oneshot(request(&[("authorization", &huge)], "192.0.2.1:1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
    let huge_jwt = format!("Bearer eyJ{}.eyJ{}.c2ln", "A".repeat(512 * 1024), "B".repeat(512 * 1024));
    let res = svc.oneshot(request(&[("proxy-authorization", &huge_jwt)], "192.0.2.1:1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_of(res).await["error"]["message"], "the credential is too long");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn malformed_headers_get_401_not_500() {
    let (svc, _) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let cases: Vec<Request<Full<Bytes>>> = vec![
        request(&[("authorization", "Basic dXNlcjpwYXNz")], "192.0.2.1:1"),
        request(&[("authorization", "Bearer")], "192.0.2.1:1"),
        request(&[("authorization", "Bearer a b")], "192.0.2.1:1"),
        request(&[("authorization", "Bearer x"), ("authorization", "Bearer y")], "192.0.2.1:1"),
        {
            let mut r = request(&[], "192.0.2.1:1");
            r.headers_mut().insert(header::AUTHORIZATION, http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap());
            r
        },
        request(&[("authorization", "Bearer e30.e30.")], "192.0.2.1:1"),
        request(&[("authorization", &format!("Bearer E{}", "A".repeat(300)))], "192.0.2.1:1"),
    ];
    for req in cases {
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("error=\"invalid_token\""));
    }
}

#[tokio::test]
async fn resource_metadata_is_named_in_the_challenge_per_layer_or_per_request() {
    let (svc, _) = service(Authenticator::new(&config()).unwrap(), |l| {
        l.resource_metadata("https://gw.example/.well-known/oauth-protected-resource")
    });
    let res = svc.clone().oneshot(request(&[], "192.0.2.1:1")).await.unwrap();
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource\""
    );
    let mut req = request(&[("authorization", "Bearer nope")], "192.0.2.1:1");
    req.extensions_mut()
        .insert(ResourceMetadata("https://gw.example/.well-known/oauth-protected-resource/fn/tools".into()));
    let res = svc.oneshot(req).await.unwrap();
    let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with(
            "Bearer resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/fn/tools\", error=\"invalid_token\""
        ),
        "{challenge}"
    );
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let auth = format!("Bearer {KEY}");
    let xff = "6.6.6.6, 203.0.113.7";
    svc.clone()
        .oneshot(request(&[("authorization", &auth), ("x-forwarded-for", xff)], "127.0.0.1:9000"))
        .await
        .unwrap();
    svc.oneshot(request(&[("authorization", &auth), ("x-forwarded-for", xff)], "198.51.100.3:9000")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].identity.as_ref().unwrap().source_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(seen[1].identity.as_ref().unwrap().source_ip, Some("198.51.100.3".parse().unwrap()));
}

#[tokio::test]
async fn a_caller_cannot_smuggle_an_identity_in_through_extensions() {
    // An Identity already in the extensions (e.g. inserted by a buggy outer layer) is
    // replaced by the verified one.
    let (svc, seen) = service(Authenticator::new(&config()).unwrap(), |l| l);
    let mut req = request(&[("authorization", &format!("Bearer {KEY}"))], "192.0.2.1:1");
    req.extensions_mut().insert(
        Identity::new("root".into(), "forged".into(), AuthMethod::Oidc).with_groups(vec!["cloakroom-admins".into()]),
    );
    svc.oneshot(req).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0].identity.as_ref().unwrap().subject, "ci-bot");
}

#[tokio::test]
async fn a_jwt_passes_through_the_layer() {
    let key = TestKey::es256("k");
    let issuer = TestIssuer::start(&[&key]).await;
    let (svc, seen) = service(common::authenticator(&issuer, |_| {}), |l| l);
    let token = key.sign(&issuer.claims("alice"));
    let res = svc.oneshot(request(&[("authorization", &format!("Bearer {token}"))], "192.0.2.1:1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    let id = seen[0].identity.as_ref().unwrap();
    assert_eq!((id.subject.as_str(), id.method), ("alice", AuthMethod::Oidc));
}

#[tokio::test]
async fn admins_are_the_members_of_admin_groups() {
    let auth = Authenticator::new(&config()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, format!("Bearer {KEY}").parse().unwrap());
    let id = auth.authenticate(&headers, None).await.unwrap();
    assert!(auth.is_admin(&id));
    assert!(config().is_admin(&id));
    assert!(cloakroom_identity::is_admin(&id, &config().admin_groups));
    let mut other = id.clone();
    other.groups = vec!["ci".into()];
    assert!(!auth.is_admin(&other));
}

mod arbitrary_credentials {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
        /// Whatever random bytes the caller puts in a credential header, the answer is a
        /// 401 with a challenge: never a 500, never a panic.
        #[test]
        fn any_header_value_gets_a_401(
            value in proptest::collection::vec(any::<u8>(), 0..300),
            bearer in any::<bool>(),
            proxy in any::<bool>(),
        ) {
            let Ok(value) = http::HeaderValue::from_bytes(&if bearer { [b"Bearer ".as_slice(), &value].concat() } else { value.clone() }) else {
                return Ok(());
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (svc, _) = service(Authenticator::new(&config()).unwrap(), |l| l);
            let mut req = request(&[], "192.0.2.1:1");
            req.headers_mut().insert(if proxy { header::PROXY_AUTHORIZATION } else { header::AUTHORIZATION }, value);
            let res = rt.block_on(svc.oneshot(req)).unwrap();
            prop_assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            prop_assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }
}
