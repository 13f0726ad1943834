use std::{path::Path, sync::Arc};

use cloakroom_core::Secret;
use cloakroom_mask::{Encoding, MaskHandle, MaskingConfig, Replacement};

use super::*;
use crate::{keys::Keys, store::EmbeddedVault};

fn declared(name: &str) -> SecretConfig {
    toml::from_str(&format!(
        "name = '{name}'\nfunctions = ['payments/*']\nlocations = ['header:Authorization']\ngroups = ['payments-ops']"
    ))
    .unwrap()
}

fn api_binding() -> BindingSpec {
    BindingSpec { functions: vec!["echo".into()], locations: vec!["body".into()], ..Default::default() }
}

async fn open(dir: &Path, keys: &Keys, secrets: &[SecretConfig]) -> Result<Arc<Catalog>, CatalogError> {
    let store = EmbeddedVault::open(dir, keys.vault_key().unwrap())?;
    Catalog::new(Arc::new(store), keys.placeholder_key().clone(), secrets, None).await
}

fn files_under(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(std::fs::read(&p).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn value_and_api_binding_survive_a_restart_and_the_placeholder_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let p1 = {
        let c = open(dir.path(), &keys, &[]).await.unwrap();
        c.put("api_token", Secret::from("value-one-abcdef"), Some(api_binding())).await.unwrap()
    };
    let c = open(dir.path(), &keys, &[]).await.unwrap();
    let snap = c.snapshot();
    let e = snap.by_placeholder(p1.as_bytes()).expect("known after restart");
    assert_eq!(e.name(), "api_token");
    assert_eq!(e.binding().unwrap().spec(), &api_binding());
    assert_eq!(e.origin(), Origin::Api);
    assert_eq!(c.value_of(e).await.unwrap().expose(), b"value-one-abcdef");
    // Rotating the value keeps the placeholder and, when no binding is restated, the binding.
    let p2 = c.put("api_token", Secret::from("value-two-abcdef"), None).await.unwrap();
    assert_eq!(p1, p2);
    let snap = c.snapshot();
    let e = snap.by_name("api_token").unwrap();
    assert_eq!(e.binding().unwrap().spec(), &api_binding());
    assert_eq!(c.value_of(e).await.unwrap().expose(), b"value-two-abcdef");
}

#[tokio::test]
async fn values_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let value = "sk_live_PLAINTEXT_MARKER_0123456789";
    {
        let c = open(dir.path(), &keys, &[]).await.unwrap();
        c.put("stripe_key", Secret::from(value), Some(api_binding())).await.unwrap();
    }
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    let needle = value.as_bytes();
    for f in &files {
        assert!(!f.windows(needle.len()).any(|w| w == needle), "value found in a raw sled file");
        // Nor the binding, which is sealed with the value.
        assert!(!f.windows(4).any(|w| w == b"echo"), "binding found in a raw sled file");
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let c = open(dir.path(), &keys, &[]).await.unwrap();
        c.put("stripe_key", Secret::from("sk_live_abcdefgh"), None).await.unwrap();
    }
    let other = Keys::new(keys.placeholder_key().clone(), Some(Key::generate()));
    let err = open(dir.path(), &other, &[]).await.unwrap_err();
    assert!(matches!(err, CatalogError::Vault(VaultError::WrongKey)), "{err}");
    assert!(err.to_string().contains("CLOAKROOM_VAULT_KEY"), "{err}");
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_name_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    {
        let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
        store.put("a", &Secret::from("value-of-a-123"), None, None).await.unwrap();
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let t = db.open_tree("secrets").unwrap();
        let rec = t.get("a").unwrap().unwrap();
        t.insert("b", rec).unwrap();
        db.flush().unwrap();
    }
    let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().value.expose(), b"value-of-a-123");
    assert!(matches!(store.get("b").await, Err(VaultError::WrongKey)));
}

#[tokio::test]
async fn config_binding_wins_and_a_different_api_binding_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let c = open(dir.path(), &keys, &[declared("stripe_key")]).await.unwrap();
    let err = c.put("stripe_key", Secret::from("sk_live_abcdefgh"), Some(api_binding())).await.unwrap_err();
    assert!(matches!(err, CatalogError::Conflict(_)));
    assert_eq!(err.code(), cloakroom_core::ErrorCode::Conflict);
    // Same binding as the config, or none: fine.
    c.put("stripe_key", Secret::from("sk_live_abcdefgh"), Some(declared("stripe_key").binding_spec())).await.unwrap();
    c.put("stripe_key", Secret::from("sk_live_abcdefgh"), None).await.unwrap();
    let info = c.list();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].origin, Origin::Config);
    assert_eq!(info[0].binding.as_ref().unwrap().functions, vec!["payments/*".to_string()]);
}

#[tokio::test]
async fn a_declared_secret_without_value_is_listed_and_delete_keeps_its_binding() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let c = open(dir.path(), &keys, &[declared("stripe_key")]).await.unwrap();
    assert!(!c.list()[0].has_value);
    c.put("stripe_key", Secret::from("sk_live_abcdefgh"), None).await.unwrap();
    assert!(c.list()[0].has_value);
    assert!(c.delete("stripe_key").await.unwrap());
    let info = c.list();
    assert_eq!((info.len(), info[0].has_value), (1, false));
    let snap = c.snapshot();
    assert!(matches!(c.value_of(snap.by_name("stripe_key").unwrap()).await, Err(CatalogError::NoValue(_))));
    assert!(!c.delete("stripe_key").await.unwrap());
}

#[tokio::test]
async fn invalid_names_and_bindings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    for bad in ["", "../x", "a/b", "-x", "has space"] {
        assert!(
            matches!(c.put(bad, Secret::from("v-123456789"), None).await, Err(CatalogError::InvalidName(_))),
            "{bad}"
        );
    }
    let bad = BindingSpec { functions: vec!["x".into()], locations: vec!["cookie:x".into()], ..Default::default() };
    let err = c.put("ok", Secret::from("v-123456789"), Some(bad)).await.unwrap_err();
    assert_eq!(err.code(), cloakroom_core::ErrorCode::BadRequest);
    assert!(matches!(c.put("ok", Secret::from(""), None).await, Err(CatalogError::EmptyValue(_))));
}

#[tokio::test]
async fn every_change_rebuilds_the_response_masker_before_it_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    let handle = MaskHandle::empty();
    c.attach_masker(handle.clone(), MaskingConfig::default());
    let masked = |s: &str| String::from_utf8(handle.load().replace(s.as_bytes()).output).unwrap();
    // When put returns (and so before any request can substitute it), the value is masked.
    let p = c.put("api_token", Secret::from("tok-0123456789abcdef"), None).await.unwrap();
    assert_eq!(masked("got tok-0123456789abcdef"), format!("got {p}"));
    // In the configured encodings too (base64 here).
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "tok-0123456789abcdef");
    assert!(!masked(&b64).contains(&b64), "{}", masked(&b64));
    // Rotation: the new value is masked as soon as it can be used.
    c.put("api_token", Secret::from("tok-rotated-fedcba98"), None).await.unwrap();
    assert_eq!(masked("got tok-rotated-fedcba98"), format!("got {p}"));
    c.delete("api_token").await.unwrap();
    assert_eq!(masked("got tok-rotated-fedcba98"), "got tok-rotated-fedcba98");
}

#[tokio::test]
async fn approvers_are_visible_for_placeholders_in_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    let mut spec = api_binding();
    spec.approvers = vec!["finance-leads".into()];
    let p = c.put("wire_key", Secret::from("wire-0123456789"), Some(spec)).await.unwrap();
    let q = c.put("plain_key", Secret::from("plain-0123456789"), Some(api_binding())).await.unwrap();
    let body = format!("{{\"a\":\"{p}\",\"b\":\"{q}\",\"c\":\"{p}\"}}");
    let needs = c.approvers_for([body.as_bytes(), b"no placeholder".as_slice()]);
    assert_eq!(needs.len(), 1);
    assert_eq!(needs[0].name, "wire_key");
    assert_eq!(needs[0].approvers, vec!["finance-leads".to_string()]);
}

#[tokio::test]
async fn open_from_config_uses_data_dir_vault_and_needs_the_vault_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let config = VaultConfig::default();
    let secrets = [declared("stripe_key")];
    let p = {
        let c = Catalog::open_with_keys(&config, &secrets, dir.path(), &keys).await.unwrap();
        c.put("stripe_key", Secret::from("sk_live_from_config"), None).await.unwrap()
    };
    assert!(dir.path().join("vault").is_dir());
    let c = Catalog::open_with_keys(&config, &secrets, dir.path(), &keys).await.unwrap();
    let snap = c.snapshot();
    assert_eq!(c.value_of(snap.by_placeholder(p.as_bytes()).unwrap()).await.unwrap().expose(), b"sk_live_from_config");

    let no_vault_key = Keys::new(keys.placeholder_key().clone(), None);
    let err = Catalog::open_with_keys(&config, &secrets, dir.path(), &no_vault_key).await.unwrap_err();
    assert!(err.to_string().contains("CLOAKROOM_VAULT_KEY"), "{err}");

    let openbao = VaultConfig { backend: BackendKind::Openbao, ..Default::default() };
    let err = Catalog::open_with_keys(&openbao, &secrets, dir.path(), &keys).await.unwrap_err();
    assert!(err.to_string().contains("[vault.openbao]"), "{err}");
}

#[tokio::test]
async fn a_bad_declared_binding_is_a_start_up_error_naming_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = declared("stripe_key");
    bad.locations = vec!["cookie:session".into()];
    let err = open(dir.path(), &Keys::generate(), &[bad]).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stripe_key") && msg.contains("cookie:session"), "{msg}");
}

#[tokio::test]
async fn apply_config_rebinds_a_secret_put_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    c.put("stripe_key", Secret::from("sk_live_rebinding"), Some(api_binding())).await.unwrap();
    assert_eq!(c.list()[0].origin, Origin::Api);
    c.apply_config(&[declared("stripe_key")]).await.unwrap();
    let info = c.list();
    assert_eq!(info[0].origin, Origin::Config);
    assert_eq!(info[0].binding.as_ref().unwrap().locations, vec!["header:Authorization".to_string()]);
    assert!(info[0].has_value);
}

#[tokio::test]
async fn attach_masker_masks_the_stored_secrets_before_it_returns() {
    // The restart case: values come from the store, nothing changes afterwards, and the
    // first response must already be masked.
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let p = {
        let c = open(dir.path(), &keys, &[]).await.unwrap();
        c.put("api_token", Secret::from("tok-restart-0123456789"), None).await.unwrap()
    };
    let c = open(dir.path(), &keys, &[]).await.unwrap();
    let handle = MaskHandle::empty();
    assert_eq!(handle.load().replace(b"got tok-restart-0123456789").output, b"got tok-restart-0123456789");
    c.attach_masker(handle.clone(), MaskingConfig::default());
    assert_eq!(handle.load().replace(b"got tok-restart-0123456789").output, format!("got {p}").into_bytes());
}

#[tokio::test]
async fn put_and_delete_return_with_the_new_masker_in_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[declared("stripe_key")]).await.unwrap();
    let handle = MaskHandle::empty();
    c.attach_masker(handle.clone(), MaskingConfig::default());
    let masked = |s: &str| handle.load().replace(s.as_bytes()).output;
    for round in 0..20 {
        let value = format!("sk_live_round_{round:04}_abcdef");
        let p = c.put("stripe_key", Secret::from(value.as_str()), None).await.unwrap();
        assert_eq!(masked(&value), p.as_str().as_bytes(), "round {round}: put returned before the masker knew");
        assert!(c.delete("stripe_key").await.unwrap());
        assert_eq!(masked(&value), value.as_bytes(), "round {round}: delete returned with the value still masked");
    }
}

#[tokio::test]
async fn set_masking_rebuilds_the_attached_masker_and_later_puts_keep_the_settings() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    let handle = MaskHandle::empty();
    c.attach_masker(handle.clone(), MaskingConfig { encodings: vec![Encoding::Raw], ..MaskingConfig::default() });
    let first = "tok-first-0123456789abcdefg"; // 27 bytes: base64 without padding
    let p = c.put("first", Secret::from(first), None).await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(first);
    let masked = |s: &str| String::from_utf8(handle.load().replace(s.as_bytes()).output).unwrap();
    assert_eq!(masked(&format!("{first} {b64}")), format!("{p} {b64}"));

    c.set_masking(MaskingConfig { replacement: Replacement::Redact, ..MaskingConfig::default() }).await;
    assert_eq!(c.masking().replacement, Replacement::Redact);
    assert_eq!(masked(&format!("{first} {b64}")), "[REDACTED:first] [REDACTED:first]", "rebuilt before returning");
    c.put("second", Secret::from("tok-second-0123456789abcdef"), None).await.unwrap();
    assert_eq!(masked("tok-second-0123456789abcdef"), "[REDACTED:second]", "a later put keeps the new settings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_masking_racing_with_puts_misses_no_secret() {
    // set_masking rebuilds from the visible snapshot: ordered with the writers, so a
    // masker built from a snapshot older than a finished put never replaces a newer one.
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    let handle = MaskHandle::empty();
    c.attach_masker(handle.clone(), MaskingConfig::default());
    let unmasked = |h: &MaskHandle, i: usize| {
        let value = format!("value-{i:03}-0123456789");
        h.load().replace(value.as_bytes()).output == value.as_bytes()
    };
    let writer = {
        let (c, h) = (c.clone(), handle.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                c.put(&format!("s{i}"), Secret::from(format!("value-{i:03}-0123456789").as_str()), None).await.unwrap();
                for j in 0..=i {
                    assert!(!unmasked(&h, j), "after put s{i} returned, s{j} was not masked");
                }
            }
        })
    };
    for round in 0..60 {
        let replacement = if round % 2 == 0 { Replacement::Redact } else { Replacement::Placeholder };
        c.set_masking(MaskingConfig { replacement, ..MaskingConfig::default() }).await;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for i in 0..30 {
        assert!(!unmasked(&handle, i), "s{i} not masked at the end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masker_attached_while_secrets_are_put_misses_none() {
    // Attaching races with writers: whichever finishes first, once both are done the
    // handle masks every value (the first build and the registration are ordered with
    // the writers' rebuilds).
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), &Keys::generate(), &[]).await.unwrap();
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                c.put(&format!("s{i}"), Secret::from(format!("value-{i:03}-0123456789").as_str()), None).await.unwrap();
            }
        })
    };
    let mut handles = Vec::new();
    for _ in 0..30 {
        let h = MaskHandle::empty();
        let c2 = c.clone();
        let h2 = h.clone();
        tokio::task::spawn_blocking(move || c2.attach_masker(h2, MaskingConfig::default())).await.unwrap();
        handles.push(h);
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for (n, h) in handles.iter().enumerate() {
        for i in 0..30 {
            let value = format!("value-{i:03}-0123456789");
            let out = h.load().replace(value.as_bytes()).output;
            assert_ne!(out, value.as_bytes(), "handle {n} misses secret s{i}");
        }
    }
}

#[tokio::test]
async fn bound_candidates_hold_every_secret_bound_to_a_function() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let catalog = open(dir.path(), &keys, &[]).await.unwrap();
    let patterns: [&[&str]; 7] =
        [&["pay"], &["pay/*"], &["pay/**", "tools"], &["*"], &["**"], &["p*/x"], &["tools/{a,b}"]];
    for (i, functions) in patterns.iter().enumerate() {
        let spec = BindingSpec {
            functions: functions.iter().map(|f| (*f).to_owned()).collect(),
            locations: vec!["body".into()],
            ..Default::default()
        };
        catalog.put(&format!("s{i}"), Secret::from(format!("value-{i}-0123456789")), Some(spec)).await.unwrap();
    }
    catalog.put("unbound", Secret::from("unbound-0123456789"), None).await.unwrap();
    let snap = catalog.snapshot();
    for function in ["pay", "pay/refund", "pay/a/b", "tools", "tools/a", "p/x", "other", "px/x"] {
        let candidates: Vec<&str> = snap.bound_candidates(function).map(|e| e.name()).collect();
        for e in snap.entries() {
            if e.binding().is_some_and(|b| b.allows_function(function)) {
                assert!(candidates.contains(&e.name()), "{} is bound to {function:?} but no candidate", e.name());
            }
        }
        assert!(!candidates.contains(&"unbound"), "a secret without a binding is never a candidate");
    }
    let pay: Vec<&str> = snap.bound_candidates("pay/refund").map(|e| e.name()).collect();
    assert!(!pay.contains(&"s6"), "tools/{{a,b}} is keyed under tools, not looked at for pay: {pay:?}");
}
