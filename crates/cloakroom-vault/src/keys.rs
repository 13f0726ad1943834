//! The two keys of the vault: the placeholder key and the embedded store's encryption key.
//!
//! Both are 32 random bytes written as 64 hexadecimal characters. They come from the
//! environment (`CLOAKROOM_PLACEHOLDER_KEY`, `CLOAKROOM_VAULT_KEY`) or from the key file
//! named by `vault.keys_file`, never from `cloakroom.toml` in clear. The environment wins
//! over the file. The key file has the same `NAME=hex` lines a shell could source:
//!
//! ```text
//! # cloakroom keys (mode 0600)
//! CLOAKROOM_PLACEHOLDER_KEY=3f…64 hex characters…
//! CLOAKROOM_VAULT_KEY=9a…64 hex characters…
//! ```
//!
//! ```
//! use cloakroom_vault::Keys;
//! let keys = Keys::generate();
//! let p = keys.placeholder_key().placeholder_for("stripe_key");
//! assert_eq!(p, keys.placeholder_key().placeholder_for("stripe_key"));
//! assert!(p.as_str().starts_with("cloak_"));
//! assert!(!format!("{keys:?}").contains(&keys.to_keys_file()[30..50]));
//! ```

use std::{fmt, path::Path};

use cloakroom_core::Placeholder;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Environment variable holding the placeholder key.
pub const PLACEHOLDER_KEY_ENV: &str = "CLOAKROOM_PLACEHOLDER_KEY";
/// Environment variable holding the embedded vault's encryption key.
pub const VAULT_KEY_ENV: &str = "CLOAKROOM_VAULT_KEY";

/// Why the keys could not be loaded. Messages name the variable or file, never a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key is neither in the environment nor in the key file.
    #[error("{var} is not set: give 32 random bytes as 64 hex characters in the environment or in vault.keys_file (`cloakroom keygen` prints a pair)")]
    Missing {
        /// The variable name.
        var: &'static str,
    },
    /// The key is not 64 hexadecimal characters.
    #[error("{var} must be 64 hexadecimal characters (32 bytes), from {source_name}")]
    Malformed {
        /// The variable name.
        var: &'static str,
        /// Where it came from (`the environment` or the file path).
        source_name: String,
    },
    /// The key file could not be read.
    #[error("cannot read key file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The key file is readable by others than its owner.
    #[error("key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line of the key file is not `NAME=hex`, or names an unknown key.
    #[error("key file {path}, line {line}: expected CLOAKROOM_PLACEHOLDER_KEY=<hex> or CLOAKROOM_VAULT_KEY=<hex>")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
}

/// A 32-byte key: redacted when printed, zeroized when dropped.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// Wraps 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut k[..]);
        Self(k)
    }

    fn from_hex(s: &str) -> Option<Self> {
        let s = s.trim();
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s, &mut k[..]).ok()?;
        Some(Self(k))
    }

    /// The key's bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// Derives the placeholder of secret `name`: HMAC-SHA256(this key, name), first 130
    /// bits, base32 (docs/reference.md, placeholders). Deterministic across restarts and replicas.
    pub fn placeholder_for(&self, name: &str) -> Placeholder {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        let digest = mac.finalize().into_bytes();
        Placeholder::from_digest(&digest).expect("a SHA-256 digest is 32 bytes")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// The vault's keys.
#[derive(Clone, Debug)]
pub struct Keys {
    placeholder: Key,
    vault: Option<Key>,
}

impl Keys {
    /// Keys from their parts. `vault` may be `None` for the OpenBao backend, which does
    /// its own encryption.
    pub fn new(placeholder: Key, vault: Option<Key>) -> Self {
        Self { placeholder, vault }
    }

    /// A fresh random pair (for `--dev` and `cloakroom keygen`).
    pub fn generate() -> Self {
        Self { placeholder: Key::generate(), vault: Some(Key::generate()) }
    }

    /// Loads the keys from the process environment, then from `keys_file` when given.
    /// The vault key is required only when `need_vault_key` (the embedded backend).
    pub fn load(keys_file: Option<&Path>, need_vault_key: bool) -> Result<Self, KeyError> {
        Self::load_with(|var| std::env::var(var).ok(), keys_file, need_vault_key)
    }

    /// Like [`Keys::load`] with a custom environment lookup (for tests and embedding).
    pub fn load_with(
        env: impl Fn(&str) -> Option<String>,
        keys_file: Option<&Path>,
        need_vault_key: bool,
    ) -> Result<Self, KeyError> {
        let file = match keys_file {
            Some(path) => Some(read_keys_file(path)?),
            None => None,
        };
        let lookup = |var: &'static str| -> Result<Option<Key>, KeyError> {
            if let Some(v) = env(var).map(Zeroizing::new) {
                return Key::from_hex(&v)
                    .map(Some)
                    .ok_or(KeyError::Malformed { var, source_name: "the environment".into() });
            }
            Ok(file.as_ref().and_then(|f| f.get(var)))
        };
        let placeholder = lookup(PLACEHOLDER_KEY_ENV)?.ok_or(KeyError::Missing { var: PLACEHOLDER_KEY_ENV })?;
        let vault = lookup(VAULT_KEY_ENV)?;
        if need_vault_key && vault.is_none() {
            return Err(KeyError::Missing { var: VAULT_KEY_ENV });
        }
        Ok(Self { placeholder, vault })
    }

    /// The placeholder key.
    pub fn placeholder_key(&self) -> &Key {
        &self.placeholder
    }

    /// The embedded vault's encryption key, if loaded.
    pub fn vault_key(&self) -> Option<&Key> {
        self.vault.as_ref()
    }

    /// The keys as the contents of a key file (what `cloakroom keygen` prints).
    /// Handle the result like the keys themselves.
    pub fn to_keys_file(&self) -> String {
        let mut out = format!("{PLACEHOLDER_KEY_ENV}={}\n", self.placeholder.to_hex().as_str());
        if let Some(v) = &self.vault {
            out.push_str(&format!("{VAULT_KEY_ENV}={}\n", v.to_hex().as_str()));
        }
        out
    }
}

struct KeysFile {
    placeholder: Option<Key>,
    vault: Option<Key>,
}

impl KeysFile {
    fn get(&self, var: &str) -> Option<Key> {
        match var {
            PLACEHOLDER_KEY_ENV => self.placeholder.clone(),
            VAULT_KEY_ENV => self.vault.clone(),
            _ => None,
        }
    }
}

fn read_keys_file(path: &Path) -> Result<KeysFile, KeyError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|error| KeyError::Read { path: shown.clone(), error })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|error| KeyError::Read { path: shown.clone(), error })?);
    let mut file = KeysFile { placeholder: None, vault: None };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let syntax = || KeyError::Syntax { path: shown.clone(), line: i + 1 };
        let (name, value) = line.split_once('=').ok_or_else(syntax)?;
        let (name, value) = (name.trim().trim_start_matches("export ").trim(), value.trim().trim_matches('"'));
        let var = match name {
            PLACEHOLDER_KEY_ENV => PLACEHOLDER_KEY_ENV,
            VAULT_KEY_ENV => VAULT_KEY_ENV,
            _ => return Err(syntax()),
        };
        let key = Key::from_hex(value).ok_or_else(|| KeyError::Malformed { var, source_name: shown.clone() })?;
        match var {
            PLACEHOLDER_KEY_ENV => file.placeholder = Some(key),
            _ => file.vault = Some(key),
        }
    }
    Ok(file)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
