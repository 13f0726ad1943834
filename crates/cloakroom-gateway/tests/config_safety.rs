//! Operating mistakes the gateway guards against: a reload that would accept no credential
//! at all — what an empty or cut-off file looks like — is refused and the running
//! configuration stays in force (a real change of credentials is applied); a data
//! directory the gateway creates is private to its user.

use std::path::Path;

use cloakroom_gateway::{Config, Gateway};
use cloakroom_vault::Keys;
use sha2::{Digest, Sha256};

/// A configuration with only `[server]`, which accepts no credential.
fn bare(data_dir: &Path) -> String {
    format!("[server]\ndata_dir = {:?}\n", data_dir.display().to_string())
}

/// `bare` plus one API key for `subject`.
fn with_key(data_dir: &Path, subject: &str) -> String {
    format!(
        "{}\n[[identity.api_keys]]\nsubject = \"{subject}\"\ngroups = [\"agents\"]\nsha256 = \"{}\"\n",
        bare(data_dir),
        hex::encode(Sha256::digest(format!("ck_test_{subject}_key_0123456789").as_bytes())),
    )
}

fn subjects(gateway: &Gateway) -> Vec<String> {
    gateway.config().identity.api_keys.iter().map(|k| k.subject.clone()).collect()
}

async fn start(text: &str, dir: &Path) -> (Gateway, std::path::PathBuf) {
    let path = dir.join("cloakroom.toml");
    std::fs::write(&path, text).unwrap();
    let gateway =
        Gateway::builder(Config::load(&path).unwrap()).config_path(&path).keys(Keys::generate()).start().await;
    (gateway.unwrap(), path)
}

#[tokio::test]
async fn an_empty_or_cut_off_file_does_not_lock_everyone_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (gateway, path) = start(&with_key(&data, "alice"), dir.path()).await;

    // Rewritten in place and read while still empty, or cut off before [identity].
    for text in [String::new(), bare(&data)] {
        std::fs::write(&path, &text).unwrap();
        let err = gateway.reload().await.unwrap_err().to_string();
        assert!(err.contains("accepts no credential at all"), "{err}");
        assert_eq!(subjects(&gateway), ["alice"], "the running configuration stays in force");
    }

    // A real change of credentials applies.
    std::fs::write(&path, with_key(&data, "bob")).unwrap();
    gateway.reload().await.unwrap();
    assert_eq!(subjects(&gateway), ["bob"]);
    gateway.audit().close().await;
}

#[tokio::test]
async fn a_gateway_started_without_credentials_still_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (gateway, path) = start(&bare(&data), dir.path()).await;
    std::fs::write(&path, format!("{}\n[identity]\nadmin_groups = [\"ops\"]\n", bare(&data))).unwrap();
    gateway.reload().await.unwrap();
    assert_eq!(gateway.config().identity.admin_groups, ["ops"]);
    std::fs::write(&path, with_key(&data, "carol")).unwrap();
    gateway.reload().await.unwrap();
    assert_eq!(subjects(&gateway), ["carol"]);
    gateway.audit().close().await;
}

#[tokio::test]
async fn a_new_data_dir_is_private_to_the_gateway_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var").join("cloakroom");
    let (gateway, _) = start(&with_key(&data, "alice"), dir.path()).await;
    for created in [&data, &dir.path().join("var")] {
        let mode = std::fs::metadata(created).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", created.display());
    }
    gateway.audit().close().await;
}
