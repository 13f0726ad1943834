//! The OpenBao backend against a real `bao server -dev`.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_testkit::{OpenBao, RecordingUpstream};
use cloakroom_vault::{BindingSpec, Catalog, DetokenizeLayer, Key, OpenBaoConfig, OpenBaoVault, Vault, VaultError};
use common::{gateway, send, with_context};
use http::Request;
use http_body_util::Full;
use serde_json::json;

const POLICY: &str = r#"
path "secret/data/cloakroom/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/metadata/cloakroom/*" { capabilities = ["read", "delete", "list"] }
path "secret/metadata/cloakroom" { capabilities = ["list"] }
"#;

async fn write_policy(bao: &OpenBao) {
    let (status, body) = bao.api("PUT", "/v1/sys/policies/acl/cloakroom", Some(json!({ "policy": POLICY }))).await;
    assert!(status < 300, "{status} {body}");
}

/// A child token with the cloakroom policy and extra `opts` (ttl, period, renewable…).
async fn token(bao: &OpenBao, opts: serde_json::Value) -> String {
    let mut body = json!({ "policies": ["cloakroom"], "no_default_policy": false });
    body.as_object_mut().unwrap().extend(opts.as_object().unwrap().clone());
    let (status, res) = bao.api("POST", "/v1/auth/token/create", Some(body)).await;
    assert!(status < 300, "{status} {res}");
    res["auth"]["client_token"].as_str().unwrap().to_owned()
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn token_config(bao: &OpenBao) -> OpenBaoConfig {
    let mut c = OpenBaoConfig::new(bao.address.clone());
    c.token_env = Some("TEST_BAO_TOKEN".into());
    c.timeout = Duration::from_secs(3);
    c
}

async fn connect(bao: &OpenBao, token: &str) -> OpenBaoVault {
    OpenBaoVault::connect_with(&token_config(bao), env(&[("TEST_BAO_TOKEN", token)])).await.unwrap()
}

fn binding() -> BindingSpec {
    BindingSpec {
        functions: vec!["payments/*".into()],
        locations: vec!["header:authorization".into()],
        groups: vec!["ops".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn kv_v2_reads_versions_writes_with_cas_lists_and_deletes() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    let v = connect(&bao, &token(&bao, json!({ "ttl": "1h" })).await).await;

    assert!(v.get("stripe_key").await.unwrap().is_none());
    assert_eq!(v.put("stripe_key", &Secret::from("sk_v1_abcdefgh"), Some(&binding()), Some(0)).await.unwrap(), 1);
    // cas=0 means "only if absent": a second create loses.
    let err = v.put("stripe_key", &Secret::from("sk_v1_other"), None, Some(0)).await.unwrap_err();
    assert!(matches!(err, VaultError::Conflict { .. }), "{err}");
    assert_eq!(v.put("stripe_key", &Secret::from("sk_v2_abcdefgh"), Some(&binding()), Some(1)).await.unwrap(), 2);

    let now = v.get("stripe_key").await.unwrap().unwrap();
    assert_eq!((now.value.expose(), now.version), (&b"sk_v2_abcdefgh"[..], 2));
    assert_eq!(now.binding, Some(binding()));
    let old = v.get_version("stripe_key", 1).await.unwrap().unwrap();
    assert_eq!((old.value.expose(), old.version), (&b"sk_v1_abcdefgh"[..], 1));

    v.put("db_password", &Secret::new(vec![0xff, 0x00, 0x80, 0x7f, 0x01, 0x02, 0x03, 0x04]), None, None).await.unwrap();
    assert_eq!(v.get("db_password").await.unwrap().unwrap().value.expose(), &[0xff, 0x00, 0x80, 0x7f, 1, 2, 3, 4]);
    let mut names = v.list().await.unwrap();
    names.sort();
    assert_eq!(names, vec!["db_password".to_string(), "stripe_key".to_string()]);

    assert!(v.delete("stripe_key").await.unwrap());
    assert!(v.get("stripe_key").await.unwrap().is_none());
    assert!(!v.delete("stripe_key").await.unwrap());
    assert_eq!(v.list().await.unwrap(), vec!["db_password".to_string()]);
}

#[tokio::test]
async fn the_binding_is_stored_in_the_data_object_and_seen_by_another_replica() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    let tok = token(&bao, json!({ "ttl": "1h" })).await;
    let key = Key::generate();
    let a = Catalog::new(Arc::new(connect(&bao, &tok).await), key.clone(), &[], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let p = a.put("api_token", Secret::from("tok-replica-123456"), Some(binding())).await.unwrap();

    let (_, raw) = bao.api("GET", "/v1/secret/data/cloakroom/api_token", None).await;
    assert_eq!(raw["data"]["data"]["value"], "tok-replica-123456");
    assert_eq!(raw["data"]["data"]["cloakroom_binding"]["functions"], json!(["payments/*"]));

    // A second replica with the same placeholder key sees the same secret and binding.
    let b = Catalog::new(Arc::new(connect(&bao, &tok).await), key, &[], Some(Duration::from_secs(60))).await.unwrap();
    let snap = b.snapshot();
    let e = snap.by_placeholder(p.as_bytes()).unwrap();
    assert_eq!(e.binding().unwrap().spec(), &binding());
    assert_eq!(b.value_of(e).await.unwrap().expose(), b"tok-replica-123456");
}

#[tokio::test]
async fn approle_login_works_and_bad_credentials_are_refused() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    bao.cli(&["auth", "enable", "approle"]);
    let (s, r) = bao
        .api(
            "POST",
            "/v1/auth/approle/role/cloakroom",
            Some(json!({ "token_policies": ["cloakroom"], "token_ttl": "1h" })),
        )
        .await;
    assert!(s < 300, "{s} {r}");
    let (_, r) = bao.api("GET", "/v1/auth/approle/role/cloakroom/role-id", None).await;
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, r) = bao.api("POST", "/v1/auth/approle/role/cloakroom/secret-id", Some(json!({}))).await;
    let secret_id = r["data"]["secret_id"].as_str().unwrap().to_owned();

    let mut cfg = OpenBaoConfig::new(bao.address.clone());
    cfg.approle_role_id_env = Some("ROLE".into());
    cfg.approle_secret_id_env = Some("SECRET".into());
    let v = OpenBaoVault::connect_with(&cfg, env(&[("ROLE", &role_id), ("SECRET", &secret_id)])).await.unwrap();
    assert_eq!(v.logins(), 1);
    v.put("approle_secret", &Secret::from("via-approle-123"), None, None).await.unwrap();
    assert_eq!(v.get("approle_secret").await.unwrap().unwrap().value.expose(), b"via-approle-123");

    let err = OpenBaoVault::connect_with(&cfg, env(&[("ROLE", &role_id), ("SECRET", "wrong-secret-id")])).await;
    assert!(matches!(err, Err(VaultError::Unavailable(_))), "{err:?}");
    // A missing variable is named.
    let err = OpenBaoVault::connect_with(&cfg, env(&[("ROLE", &role_id)])).await.unwrap_err();
    assert!(err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn token_renewal_keeps_a_short_lived_token_working_and_an_expired_one_fails_closed() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    bao.api("POST", "/v1/secret/data/cloakroom/k", Some(json!({ "data": { "value": "renewed-value-1" } }))).await;
    // A periodic token lives 6 s unless renewed (at two thirds of that, so a renewal has
    // 2 s to land on a busy machine); a non-renewable one dies after 6 s.
    let renewable = connect(&bao, &token(&bao, json!({ "period": "6s" })).await).await;
    let mortal = connect(&bao, &token(&bao, json!({ "ttl": "6s", "renewable": false })).await).await;
    assert!(mortal.get("k").await.unwrap().is_some());

    tokio::time::sleep(Duration::from_secs(13)).await;

    assert!(renewable.renewals() >= 2, "renewed {} times", renewable.renewals());
    assert_eq!(renewable.get("k").await.unwrap().unwrap().value.expose(), b"renewed-value-1");
    let err = mortal.get("k").await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn a_revoked_token_fails_closed() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    let tok = token(&bao, json!({ "ttl": "1h" })).await;
    let v = connect(&bao, &tok).await;
    v.put("k", &Secret::from("value-before-revoke"), None, None).await.unwrap();
    let (s, _) = bao.api("POST", "/v1/auth/token/revoke", Some(json!({ "token": tok }))).await;
    assert!(s < 300);
    assert!(matches!(v.get("k").await, Err(VaultError::Unavailable(_))));
}

#[tokio::test]
async fn openbao_down_mid_run_fails_calls_closed_and_forwards_nothing() {
    let mut bao = OpenBao::start();
    write_policy(&bao).await;
    let tok = token(&bao, json!({ "ttl": "1h" })).await;
    let store = connect(&bao, &tok).await;
    // cache_ttl 0: every use reads OpenBao.
    let catalog = Catalog::new(Arc::new(store), Key::generate(), &[], Some(Duration::ZERO)).await.unwrap();
    let spec = BindingSpec { functions: vec!["f".into()], locations: vec!["body".into()], ..Default::default() };
    let p = catalog.put("k", Secret::from("value-from-openbao"), Some(spec)).await.unwrap();

    let upstream = RecordingUpstream::echo().await;
    let svc = gateway(&DetokenizeLayer::new(catalog.clone()), upstream.url());
    let req = || Request::post("/").body(Full::new(Bytes::from(format!("key={p}")))).unwrap();

    let (r, _, _) = with_context(req(), "f", &[]);
    assert_eq!(send(&svc, r).await.0, 200);
    assert_eq!(upstream.requests()[0].body_text(), "key=value-from-openbao");

    bao.stop();
    let (r, note, _) = with_context(req(), "f", &[]);
    let (status, body) = send(&svc, r).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "vault_unavailable");
    assert_eq!(upstream.requests().len(), 1, "nothing forwarded while the vault is down");
    assert_eq!(note.snapshot().error.unwrap().code, cloakroom_core::ErrorCode::VaultUnavailable);
    let text = body.to_string();
    assert!(!text.contains("value-from-openbao") && !text.contains(&tok));
}

#[tokio::test]
async fn a_value_rotated_by_another_replica_reaches_this_replicas_masker_on_refresh() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    let tok = token(&bao, json!({ "ttl": "1h" })).await;
    let key = Key::generate();
    let ttl = Some(Duration::from_secs(3600));
    let a = Catalog::new(Arc::new(connect(&bao, &tok).await), key.clone(), &[], ttl).await.unwrap();
    let b = Catalog::new(Arc::new(connect(&bao, &tok).await), key, &[], ttl).await.unwrap();
    let handle = cloakroom_mask::MaskHandle::empty();
    b.attach_masker(handle.clone(), cloakroom_mask::MaskingConfig::default());

    let p = a.put("rotating", Secret::from("first-rotation-value"), Some(binding())).await.unwrap();
    b.refresh().await.unwrap();
    let masked =
        |h: &cloakroom_mask::MaskHandle, s: &str| String::from_utf8(h.load().replace(s.as_bytes()).output).unwrap();
    assert_eq!(masked(&handle, "x first-rotation-value"), format!("x {p}"));

    a.put("rotating", Secret::from("second-rotation-value"), None).await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(masked(&handle, "x second-rotation-value"), format!("x {p}"));
    // The API binding stayed with the rotated value.
    assert_eq!(b.snapshot().by_name("rotating").unwrap().binding().unwrap().spec(), &binding());
}

#[tokio::test]
async fn a_value_read_after_an_outside_rotation_is_masked_before_it_is_returned() {
    let bao = OpenBao::start();
    write_policy(&bao).await;
    let tok = token(&bao, json!({ "ttl": "1h" })).await;
    let c =
        Catalog::new(Arc::new(connect(&bao, &tok).await), Key::generate(), &[], Some(Duration::ZERO)).await.unwrap();
    let handle = cloakroom_mask::MaskHandle::empty();
    c.attach_masker(handle.clone(), cloakroom_mask::MaskingConfig::default());
    let p = c.put("k", Secret::from("before-outside-rotation"), Some(binding())).await.unwrap();
    // An operator rotates the value with the bao CLI, behind the gateway's back.
    bao.cli(&["kv", "patch", "-mount=secret", "cloakroom/k", "value=after-outside-rotation"]);
    let snap = c.snapshot();
    let got = c.value_of(snap.by_name("k").unwrap()).await.unwrap();
    assert_eq!(got.expose(), b"after-outside-rotation");
    let masked = handle.load().replace(b"x after-outside-rotation").output;
    assert_eq!(masked, format!("x {p}").into_bytes());
}
