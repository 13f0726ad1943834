//! OIDC tokens from a real issuer: OpenBao's identity tokens, fetched as a userpass user
//! (the root token has no entity, so it cannot get one).

use std::sync::Arc;

use base64::Engine as _;
use cloakroom_core::{AuthMethod, Identity};
use cloakroom_identity::{AuthError, Authenticator, IdentityConfig, IdentityLayer, OidcIssuerConfig};
use cloakroom_testkit::OpenBao;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};

const TEMPLATE: &str = r#"{"groups": {{identity.entity.groups.names}}, "username": {{identity.entity.name}}}"#;

/// An OpenBao with user `alice` (entity in group `payments-ops`) and one OIDC role per
/// signing algorithm.
struct Issuer {
    bao: OpenBao,
    user_token: String,
    entity_id: String,
    /// role name -> client_id (the `aud` of its tokens)
    roles: Vec<(String, String)>,
}

async fn ok(bao: &OpenBao, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = bao.api(method, path, body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
    v
}

impl Issuer {
    async fn start(algorithms: &[(&str, &str)]) -> Self {
        let bao = OpenBao::start();
        ok(&bao, "POST", "/v1/sys/auth/userpass", Some(json!({"type": "userpass"}))).await;
        ok(
            &bao,
            "PUT",
            "/v1/sys/policies/acl/oidc-token",
            Some(json!({"policy": "path \"identity/oidc/token/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
        ok(
            &bao,
            "POST",
            "/v1/auth/userpass/users/alice",
            Some(json!({"password": "correct-horse", "token_policies": "oidc-token"})),
        )
        .await;
        let auths = ok(&bao, "GET", "/v1/sys/auth", None).await;
        let accessor = auths["data"]["userpass/"]["accessor"].as_str().unwrap().to_owned();
        let entity = ok(&bao, "POST", "/v1/identity/entity", Some(json!({"name": "alice"}))).await;
        let entity_id = entity["data"]["id"].as_str().unwrap().to_owned();
        ok(
            &bao,
            "POST",
            "/v1/identity/entity-alias",
            Some(json!({"name": "alice", "canonical_id": entity_id, "mount_accessor": accessor})),
        )
        .await;
        ok(&bao, "POST", "/v1/identity/group", Some(json!({"name": "payments-ops", "member_entity_ids": [entity_id]})))
            .await;
        let mut roles = Vec::new();
        for (key, alg) in algorithms {
            ok(
                &bao,
                "POST",
                &format!("/v1/identity/oidc/key/{key}"),
                Some(json!({"allowed_client_ids": "*", "algorithm": alg, "verification_ttl": "1h"})),
            )
            .await;
            let role = format!("cloakroom-{key}");
            ok(
                &bao,
                "POST",
                &format!("/v1/identity/oidc/role/{role}"),
                Some(json!({"key": key, "template": TEMPLATE, "ttl": "5m"})),
            )
            .await;
            let r = ok(&bao, "GET", &format!("/v1/identity/oidc/role/{role}"), None).await;
            roles.push((role, r["data"]["client_id"].as_str().unwrap().to_owned()));
        }
        let (status, login) = bao
            .api_with_token("", "POST", "/v1/auth/userpass/login/alice", Some(json!({"password": "correct-horse"})))
            .await;
        assert_eq!(status, 200, "{login}");
        let user_token = login["auth"]["client_token"].as_str().unwrap().to_owned();
        Self { bao, user_token, entity_id, roles }
    }

    fn issuer(&self) -> String {
        format!("{}/v1/identity/oidc", self.bao.address)
    }

    async fn token(&self, role: &str) -> String {
        let (status, v) =
            self.bao.api_with_token(&self.user_token, "GET", &format!("/v1/identity/oidc/token/{role}"), None).await;
        assert_eq!(status, 200, "{v}");
        v["data"]["token"].as_str().unwrap().to_owned()
    }

    fn authenticator(&self, edit: impl FnOnce(&mut OidcIssuerConfig)) -> Authenticator {
        let mut c = OidcIssuerConfig::new(self.issuer(), self.roles.iter().map(|(_, id)| id.clone()).collect());
        edit(&mut c);
        Authenticator::new(&IdentityConfig { oidc: vec![c], ..Default::default() }).unwrap()
    }
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn openbao_identity_tokens_verify_for_every_key_algorithm() {
    let issuer = Issuer::start(&[("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA"), ("rsa384", "RS384")]).await;
    let auth = issuer.authenticator(|_| {});
    for (role, _) in &issuer.roles {
        let token = issuer.token(role).await;
        let id =
            auth.verify_token(&token).await.unwrap_or_else(|e| panic!("{role} ({}): {e}", header_of(&token)["alg"]));
        assert_eq!(id.subject, issuer.entity_id);
        assert_eq!(id.issuer, issuer.issuer());
        assert_eq!(id.method, AuthMethod::Oidc);
        assert_eq!(id.groups, vec!["payments-ops"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openbao_key_rotation_mid_run_is_followed() {
    let issuer = Issuer::start(&[("rsa", "RS256")]).await;
    let auth = issuer.authenticator(|_| {});
    let (role, _) = &issuer.roles[0];
    let before = issuer.token(role).await;
    assert!(auth.verify_token(&before).await.is_ok());
    ok(&issuer.bao, "POST", "/v1/identity/oidc/key/rsa/rotate", Some(json!({}))).await;
    let after = issuer.token(role).await;
    assert_ne!(header_of(&before)["kid"], header_of(&after)["kid"], "rotation changed the signing key");
    assert_eq!(auth.verify_token(&after).await.unwrap().subject, issuer.entity_id);
    assert!(
        auth.verify_token(&before).await.is_ok(),
        "a token verified before the rotation is still accepted until it expires"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openbao_tokens_for_another_audience_or_tampered_are_refused() {
    let issuer = Issuer::start(&[("rsa", "RS256"), ("ed", "EdDSA")]).await;
    let (rsa_role, rsa_client) = issuer.roles[0].clone();
    // Only the EdDSA role's client id is an accepted audience.
    let auth = issuer.authenticator(|c| c.audiences.retain(|a| *a != rsa_client));
    assert_eq!(auth.verify_token(&issuer.token(&rsa_role).await).await, Err(AuthError::WrongAudience));

    let token = issuer.token(&issuer.roles[1].0).await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["groups"] = json!(["cloakroom-admins"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(auth.verify_token(&forged).await, Err(AuthError::BadSignature));
    assert!(auth.verify_token(&token).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openbao_token_authenticates_a_request_through_the_layer() {
    let issuer = Issuer::start(&[("rsa", "RS256")]).await;
    let auth = Arc::new(issuer.authenticator(|_| {}));
    auth.warm_up().await.unwrap();
    let svc = IdentityLayer::new(auth).layer(service_fn(|req: Request<Full<bytes::Bytes>>| async move {
        let id = req.extensions().get::<Identity>().cloned().unwrap();
        assert!(req.headers().get(header::AUTHORIZATION).is_none());
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from(id.subject))))
    }));
    let token = issuer.token(&issuer.roles[0].0).await;
    let req =
        Request::builder().header(header::AUTHORIZATION, format!("Bearer {token}")).body(Full::default()).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    use http_body_util::BodyExt;
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), issuer.entity_id.as_bytes());
}
