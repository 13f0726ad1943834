//! Placeholders, secret bindings, the embedded and OpenBao secret stores, and the
//! detokenizer.
//!
//! A caller never holds a secret, only its placeholder (`cloak_` + 26 base32 characters,
//! HMAC-SHA256 of the secret's name under the placeholder key). The [`Catalog`] knows
//! every secret's placeholder, binding and value (kept in a [`Vault`]: `EmbeddedVault`
//! with the cargo feature `sled`, `OpenBaoVault` with `openbao`, or the [`MemoryVault`]
//! that is always there and keeps nothing past the process); the [`DetokenizeLayer`]
//! turns placeholders in a request back into secrets only where the binding allows, and
//! refuses the whole call otherwise; the [`InFlight`] registry answers function-side
//! redemption (`POST /v1/redeem`).
//!
//! No backend but [`MemoryVault`] is compiled by default: ask for `sled` and `openbao`
//! (docs/configuration.md, "Cargo features"). The example below needs `sled`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cloakroom_vault::{BindingSpec, Catalog, EmbeddedVault, Keys};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keys = Keys::generate();
//! let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
//! let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await.unwrap();
//! let binding = BindingSpec {
//!     functions: vec!["echo".into()],
//!     locations: vec!["header:Authorization".into()],
//!     ..Default::default()
//! };
//! let placeholder = catalog.put("api_token", "s3cr3t-value".into(), Some(binding)).await.unwrap();
//! assert!(placeholder.as_str().starts_with("cloak_"));
//! assert_eq!(catalog.list()[0].name, "api_token");
//! # });
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod binding;
pub mod budget;
mod catalog;
mod config;
pub mod detokenize;
mod inflight;
mod keys;
mod scan;
mod store;

pub use binding::{Binding, BindingError, BindingSpec, Found, Location, Refusal};
#[cfg(feature = "sled")]
pub use budget::EmbeddedBudgets;
#[cfg(feature = "postgres")]
pub use budget::PostgresBudgets;
pub use budget::{
    Budget, BudgetRefusal, BudgetScope, BudgetStore, BudgetStoreError, BudgetUses, MemoryBudgets, UsesPer,
};
pub use catalog::{
    validate_name, ApprovalNeed, Catalog, CatalogEntry, CatalogError, CatalogSnapshot, Origin, SecretInfo, ValuePattern,
};
pub use config::{BackendKind, OpenBaoConfig, SecretConfig, VaultConfig};
pub use detokenize::{percent_decode_lossy, Detokenize, DetokenizeLayer, SecretsFound};
pub use inflight::{InFlight, InFlightCall, InFlightGuard, RedeemError, RedeemToken, REDEEM_TOKEN_HEADER};
pub use keys::{Key, KeyError, Keys, PLACEHOLDER_KEY_ENV, VAULT_KEY_ENV};
#[cfg(feature = "sled")]
pub use store::EmbeddedVault;
#[cfg(feature = "openbao")]
pub use store::OpenBaoVault;
pub use store::{MemoryVault, StoredSecret, Vault, VaultError};

/// Entry points for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// What the detokenizer's JSON locator says about a document.
    #[derive(Debug)]
    pub enum Located {
        /// For each range, the JSON pointer of the string token holding it (`None` when
        /// outside any string).
        Pointers(Vec<Option<String>>),
        /// Not one valid JSON document.
        NotJson,
        /// Valid, but over a limit (nesting depth, pointer length): refused.
        OverLimit,
    }

    /// The detokenizer's JSON locator over `doc` for `ranges` (sorted, non-overlapping).
    pub fn json_locate(doc: &[u8], ranges: &[std::ops::Range<usize>]) -> Located {
        match crate::detokenize::json_locate(doc, ranges) {
            Ok(p) => Located::Pointers(p),
            Err(crate::detokenize::LocateError::NotJson) => Located::NotJson,
            Err(_) => Located::OverLimit,
        }
    }
}
