//! Why a catalog operation failed, and the secret-name rule.

use cloakroom_core::{Error, ErrorCode, MissingFeature};

use crate::{binding::BindingError, keys::KeyError, store::VaultError};

/// Why a catalog operation failed. Messages never contain a value.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The name is not 1-128 characters of `A-Z a-z 0-9 _ . -` starting with a letter or digit.
    #[error("invalid secret name {0:?}: use 1-128 characters of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit")]
    InvalidName(String),
    /// The binding does not compile.
    #[error("secret {name:?}: {source}")]
    Binding {
        /// The secret.
        name: String,
        /// Why.
        source: BindingError,
    },
    /// An API put tried to change the binding of a config-declared secret.
    #[error("secret {0:?} is declared in the configuration with a different binding; the configuration wins")]
    Conflict(String),
    /// The secret has no value in the vault.
    #[error("secret {0:?} has no value in the vault")]
    NoValue(String),
    /// A value must not be empty.
    #[error("secret {0:?}: the value is empty")]
    EmptyValue(String),
    /// The backend failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// `vault.backend` names a backend this build was compiled without.
    #[error(transparent)]
    MissingFeature(#[from] MissingFeature),
}

impl CatalogError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            CatalogError::InvalidName(_) | CatalogError::Binding { .. } | CatalogError::EmptyValue(_) => {
                ErrorCode::BadRequest
            }
            CatalogError::Conflict(_) => ErrorCode::Conflict,
            CatalogError::NoValue(_) => ErrorCode::NotFound,
            CatalogError::Vault(e) => e.code(),
            CatalogError::Keys(_) | CatalogError::MissingFeature(_) => ErrorCode::Internal,
        }
    }

    /// As a wire error.
    pub fn to_error(&self) -> Error {
        Error::new(self.code(), self.to_string())
    }
}

/// Checks a secret name (also a path segment in OpenBao, so kept simple).
pub fn validate_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::InvalidName(name.to_owned()))
    }
}
