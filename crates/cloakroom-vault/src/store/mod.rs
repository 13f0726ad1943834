//! Where secret values live: the [`Vault`] trait and its backends.
//!
//! - `EmbeddedVault` (cargo feature `sled`): sled in the data directory, every value
//!   (and its binding) encrypted with XChaCha20-Poly1305 under `CLOAKROOM_VAULT_KEY`,
//!   the secret's name bound as associated data.
//! - `OpenBaoVault` (cargo feature `openbao`): an OpenBao / HashiCorp Vault KV v2 engine
//!   over HTTP.
//! - [`MemoryVault`] (always there): nothing persists (tests, benches, `--dev` and builds
//!   without `sled`).
//!
//! The first two store the binding given with a value next to it, so a binding set
//! through the admin API survives a restart and (with OpenBao) is seen by every replica.

#[cfg(feature = "sled")]
mod embedded;
mod memory;
#[cfg(feature = "openbao")]
mod openbao;

use async_trait::async_trait;
use cloakroom_core::{ErrorCode, Secret};

#[cfg(feature = "sled")]
pub use embedded::EmbeddedVault;
pub use memory::MemoryVault;
#[cfg(feature = "openbao")]
pub use openbao::OpenBaoVault;

use crate::{binding::BindingSpec, BackendKind};

/// A secret as a backend holds it.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The value.
    pub value: Secret,
    /// The binding stored with it (set through the API), if any.
    pub binding: Option<BindingSpec>,
    /// The backend's version number of this value (starts at 1, grows on every put).
    pub version: u64,
}

/// A backend failure. Messages never contain a value or a token.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The backend cannot be reached or refused to answer: calls that need it fail closed.
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
    /// A check-and-set write lost against another writer.
    #[error("secret {name:?} changed concurrently (check-and-set failed)")]
    Conflict {
        /// The secret's name.
        name: String,
    },
    /// The stored data does not decrypt under this key: a wrong `CLOAKROOM_VAULT_KEY`, or tampering.
    #[error("the embedded vault cannot be decrypted with this CLOAKROOM_VAULT_KEY (wrong key or tampered data)")]
    WrongKey,
    /// Stored data is not in the expected shape.
    #[error("stored secret {name:?} is malformed: {reason}")]
    Malformed {
        /// The secret's name.
        name: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// The backend is misconfigured (missing token variable, bad address…).
    #[error("vault configuration: {0}")]
    Config(String),
}

impl VaultError {
    /// The wire error code this failure maps to.
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::Conflict { .. } => ErrorCode::Conflict,
            _ => ErrorCode::VaultUnavailable,
        }
    }
}

/// A secret store. Object-safe: the catalog holds an `Arc<dyn Vault>`.
#[async_trait]
pub trait Vault: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The current value of `name`, `None` if there is none.
    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, VaultError>;

    /// Stores a new value (and the binding given with it). With `cas = Some(v)` the write
    /// succeeds only if the current version is `v` (`0`: only if there is none).
    /// Returns the new version.
    async fn put(
        &self,
        name: &str,
        value: &Secret,
        binding: Option<&BindingSpec>,
        cas: Option<u64>,
    ) -> Result<u64, VaultError>;

    /// Deletes every version of `name`; `false` if there was none.
    async fn delete(&self, name: &str) -> Result<bool, VaultError>;

    /// The names of every stored secret.
    async fn list(&self) -> Result<Vec<String>, VaultError>;
}

/// Splits value and binding out of the plaintext layout of the backends that store bytes
/// (the embedded one): `u32 BE value length | value | binding JSON (may be empty)`.
#[cfg(feature = "sled")]
pub(crate) fn decode_plain(name: &str, plain: &[u8]) -> Result<(Secret, Option<BindingSpec>), VaultError> {
    let malformed = |reason: &str| VaultError::Malformed { name: name.to_owned(), reason: reason.to_owned() };
    if plain.len() < 4 {
        return Err(malformed("record too short"));
    }
    let len = u32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize;
    let rest = &plain[4..];
    if rest.len() < len {
        return Err(malformed("value length beyond record"));
    }
    let value = Secret::new(rest[..len].to_vec());
    let binding = &rest[len..];
    let binding = if binding.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(binding).map_err(|_| malformed("binding is not valid JSON"))?)
    };
    Ok((value, binding))
}

#[cfg(feature = "sled")]
pub(crate) fn encode_plain(value: &Secret, binding: Option<&BindingSpec>) -> zeroize::Zeroizing<Vec<u8>> {
    let binding = binding.map(|b| serde_json::to_vec(b).expect("binding serializes")).unwrap_or_default();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(4 + value.len() + binding.len()));
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value.expose());
    out.extend_from_slice(&binding);
    out
}
