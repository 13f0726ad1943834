//! The embedded backend: sled, values encrypted at rest.
//!
//! Record layout (tree `secrets`, key = the secret's name):
//! `b'1' | version (u64 BE) | nonce (24 bytes) | XChaCha20-Poly1305 ciphertext`, the
//! associated data being `cloakroom-vault/v1/` + name, so a ciphertext moved to another
//! name does not decrypt. The plaintext is `u32 BE length | value | binding JSON`.
//! A key-check record (`meta/keycheck`) written on first open makes a wrong key a clear
//! start-up error instead of garbage later.
//!
//! sled's reads, compare-and-swaps and scans can block on disk I/O: the trait's methods
//! run them on tokio's blocking pool, never on a serving thread.

use std::path::Path;

use async_trait::async_trait;
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use cloakroom_core::Secret;
use rand::RngCore;

use super::{decode_plain, encode_plain, StoredSecret, Vault, VaultError};
use crate::{binding::BindingSpec, keys::Key, BackendKind};

const FORMAT: u8 = b'1';
const KEYCHECK: &[u8] = b"cloakroom keycheck v1";

/// sled-backed, encrypted secret store.
pub struct EmbeddedVault {
    db: sled::Db,
    secrets: sled::Tree,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for EmbeddedVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedVault").field("secrets", &self.secrets.len()).finish_non_exhaustive()
    }
}

fn storage(e: sled::Error) -> VaultError {
    VaultError::Unavailable(format!("embedded store: {e}"))
}

/// `sled::open`, waiting out a held directory lock (see [`cloakroom_core::sled_open`]).
fn open_sled(dir: &Path) -> Result<sled::Db, VaultError> {
    cloakroom_core::sled_open::open(&sled::Config::new().path(dir)).map_err(storage)
}

/// Runs `f` on the blocking pool; a task that panicked or was cancelled (the runtime
/// shutting down) makes the store unavailable for this call.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, VaultError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(VaultError::Unavailable("embedded store: a blocking task did not finish".into())))
}

fn aad(name: &str) -> Vec<u8> {
    let mut a = b"cloakroom-vault/v1/".to_vec();
    a.extend_from_slice(name.as_bytes());
    a
}

impl EmbeddedVault {
    /// Opens (or creates) the store in directory `dir` with encryption key `key`.
    /// Fails with [`VaultError::WrongKey`] when the store was created with another key.
    ///
    /// sled locks the directory; a handle of this process that was just dropped can hold
    /// the lock for a moment longer (sled's background writes finish first), so a lock
    /// conflict is retried for up to two seconds before it is an error. Another process
    /// holding the store still fails, after those two seconds, naming the lock.
    pub fn open(dir: &Path, key: &Key) -> Result<Self, VaultError> {
        let db = open_sled(dir)?;
        let secrets = db.open_tree("secrets").map_err(storage)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        let vault = Self { db, secrets, cipher };
        match meta.get("keycheck").map_err(storage)? {
            Some(sealed) => {
                let plain = vault.open_sealed(&sealed, b"cloakroom-vault/keycheck")?;
                if &plain[..] != KEYCHECK {
                    return Err(VaultError::WrongKey);
                }
            }
            None => {
                let sealed = vault.seal(KEYCHECK, b"cloakroom-vault/keycheck");
                meta.insert("keycheck", sealed).map_err(storage)?;
                vault.db.flush().map_err(storage)?;
            }
        }
        Ok(vault)
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory sizes");
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn open_sealed(&self, sealed: &[u8], aad: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < 24 {
            return Err(VaultError::WrongKey);
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher
            .decrypt(&XNonce::from(<[u8; 24]>::try_from(nonce).expect("24 bytes")), Payload { msg: ct, aad })
            .map(zeroize::Zeroizing::new)
            .map_err(|_| VaultError::WrongKey)
    }

    fn decode(&self, name: &str, record: &[u8]) -> Result<StoredSecret, VaultError> {
        if record.len() < 9 || record[0] != FORMAT {
            return Err(VaultError::Malformed { name: name.to_owned(), reason: "unknown record format".into() });
        }
        let version = u64::from_be_bytes(record[1..9].try_into().expect("8 bytes"));
        let plain = self.open_sealed(&record[9..], &aad(name))?;
        let (value, binding) = decode_plain(name, &plain)?;
        Ok(StoredSecret { value, binding, version })
    }

    /// The sled database (for tests that look at the raw files).
    pub fn flush(&self) -> Result<(), VaultError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

#[async_trait]
impl Vault for EmbeddedVault {
    fn kind(&self) -> BackendKind {
        BackendKind::Embedded
    }

    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, VaultError> {
        let (tree, key) = (self.secrets.clone(), name.to_owned());
        match blocking(move || tree.get(key).map_err(storage)).await? {
            Some(rec) => self.decode(name, &rec).map(Some),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        name: &str,
        value: &Secret,
        binding: Option<&BindingSpec>,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let plain = encode_plain(value, binding);
        let sealed = self.seal(&plain, &aad(name));
        let (tree, name) = (self.secrets.clone(), name.to_owned());
        let version = blocking(move || Self::swap_in(&tree, &name, &sealed, cas)).await?;
        self.db.flush_async().await.map_err(storage)?;
        Ok(version)
    }

    async fn delete(&self, name: &str) -> Result<bool, VaultError> {
        let (tree, key) = (self.secrets.clone(), name.to_owned());
        let old = blocking(move || tree.remove(key).map_err(storage)).await?;
        self.db.flush_async().await.map_err(storage)?;
        Ok(old.is_some())
    }

    async fn list(&self) -> Result<Vec<String>, VaultError> {
        let tree = self.secrets.clone();
        blocking(move || {
            tree.iter()
                .keys()
                .map(|k| {
                    let k = k.map_err(storage)?;
                    String::from_utf8(k.to_vec())
                        .map_err(|_| VaultError::Malformed { name: "?".into(), reason: "name is not UTF-8".into() })
                })
                .collect()
        })
        .await
    }
}

impl EmbeddedVault {
    /// Stores `sealed` as the next version of `name` (blocking: sled I/O). A
    /// compare-and-swap loop: concurrent puts get increasing versions, and an explicit
    /// `cas` fails cleanly when another writer got there first.
    fn swap_in(tree: &sled::Tree, name: &str, sealed: &[u8], cas: Option<u64>) -> Result<u64, VaultError> {
        loop {
            let current = tree.get(name).map_err(storage)?;
            let current_version = match &current {
                Some(rec) if rec.len() >= 9 => u64::from_be_bytes(rec[1..9].try_into().expect("8 bytes")),
                _ => 0,
            };
            if let Some(expected) = cas {
                if expected != current_version {
                    return Err(VaultError::Conflict { name: name.to_owned() });
                }
            }
            let version = current_version + 1;
            let mut rec = Vec::with_capacity(9 + sealed.len());
            rec.push(FORMAT);
            rec.extend_from_slice(&version.to_be_bytes());
            rec.extend_from_slice(sealed);
            match tree.compare_and_swap(name, current, Some(rec)).map_err(storage)? {
                Ok(()) => return Ok(version),
                Err(_) if cas.is_some() => return Err(VaultError::Conflict { name: name.to_owned() }),
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{EmbeddedVault, VaultError};
    use crate::keys::Key;

    #[test]
    fn a_store_held_open_elsewhere_is_refused_naming_the_lock_after_the_retry_window() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate();
        let _held = EmbeddedVault::open(dir.path(), &key).unwrap();
        let started = Instant::now();
        let Err(err) = EmbeddedVault::open(dir.path(), &key) else { panic!("a second handle opened a locked store") };
        assert!(started.elapsed() >= Duration::from_secs(2), "retried for two seconds first");
        assert!(matches!(err, VaultError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("lock"), "{err}");
    }
}
