//! The `[vault]` and `[[secrets]]` sections of `cloakroom.toml`.
//!
//! ```
//! use cloakroom_vault::{BackendKind, SecretConfig, VaultConfig};
//! let vault: VaultConfig = toml::from_str(r#"
//!     backend = "openbao"
//!     [openbao]
//!     address = "http://127.0.0.1:8200"
//!     token_env = "BAO_TOKEN"
//!     cache_ttl = "10s"
//! "#).unwrap();
//! assert_eq!(vault.backend, BackendKind::Openbao);
//! assert_eq!(vault.openbao.unwrap().mount, "secret");
//!
//! let secret: SecretConfig = toml::from_str(r#"
//!     name = "stripe_key"
//!     functions = ["payments", "payments/*"]
//!     locations = ["header:Authorization"]
//!     groups = ["payments-ops"]
//! "#).unwrap();
//! assert!(secret.binding().unwrap().allows_function("payments/refund"));
//! ```

use std::{path::PathBuf, time::Duration};

use cloakroom_core::{require_feature, MissingFeature};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    binding::{Binding, BindingError, BindingSpec},
    budget::{BudgetScope, UsesPer},
};

/// Which store holds the secret values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// sled in `server.data_dir`/vault, values encrypted with `CLOAKROOM_VAULT_KEY`
    /// (cargo feature `sled`).
    #[default]
    Embedded,
    /// An OpenBao (or HashiCorp Vault) server's KV v2 engine (cargo feature `openbao`).
    Openbao,
    /// This process's memory: not durable, every value is gone when it exits, and no
    /// other replica sees it. For tests, `--dev` and builds without the `sled` feature.
    Memory,
}

impl BackendKind {
    /// Its name in `vault.backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Embedded => "embedded",
            BackendKind::Openbao => "openbao",
            BackendKind::Memory => "memory",
        }
    }

    /// The cargo feature of this crate the backend is compiled with; `None` for one that
    /// is always there.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            BackendKind::Embedded => Some("sled"),
            BackendKind::Openbao => Some("openbao"),
            BackendKind::Memory => None,
        }
    }
}

/// Whether this build of the crate has `feature`.
#[allow(clippy::match_like_matches_macro)] // the arms' values are the build's features
fn compiled(feature: &str) -> bool {
    match feature {
        "sled" => cfg!(feature = "sled"),
        "openbao" => cfg!(feature = "openbao"),
        _ => false,
    }
}

/// `[vault]`: where secret values live and where the keys come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `embedded` (default), `openbao` or `memory` (not durable).
    #[serde(default)]
    pub backend: BackendKind,
    /// A key file holding `CLOAKROOM_PLACEHOLDER_KEY=<hex>` and `CLOAKROOM_VAULT_KEY=<hex>`
    /// lines (mode 0600 or stricter). Environment variables of the same names win.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// `[vault.openbao]`: required when `backend = "openbao"`.
    #[serde(default)]
    pub openbao: Option<OpenBaoConfig>,
}

impl VaultConfig {
    /// Refuses a `backend` this build was compiled without, naming the cargo feature it
    /// needs. [`Catalog::open`](crate::Catalog::open) checks it; the gateway checks it when
    /// it loads the configuration.
    pub fn check_features(&self) -> Result<(), MissingFeature> {
        self.check_features_with(compiled)
    }

    fn check_features_with(&self, compiled: impl Fn(&str) -> bool) -> Result<(), MissingFeature> {
        match self.backend.feature() {
            Some(feature) => {
                require_feature(compiled(feature), feature, format!("vault.backend = \"{}\"", self.backend.as_str()))
            }
            None => Ok(()),
        }
    }
}

/// `[vault.openbao]`: an OpenBao / HashiCorp Vault KV v2 secrets engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// Mount path of the KV v2 engine (default `secret`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// Folder under the mount that holds Cloakroom's secrets (default `cloakroom`):
    /// secret `NAME` lives at `{mount}/data/{path}/NAME`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Environment variable holding a token (token auth).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Environment variable holding the AppRole role id (AppRole auth, with the next one).
    #[serde(default)]
    pub approle_role_id_env: Option<String>,
    /// Environment variable holding the AppRole secret id.
    #[serde(default)]
    pub approle_secret_id_env: Option<String>,
    /// Mount path of the AppRole auth method (default `approle`).
    #[serde(default = "default_approle_mount")]
    pub approle_mount: String,
    /// How long a value read from OpenBao is used before it is read again (default 30s).
    /// `0s` reads on every use. Past it, a server that is down fails calls closed.
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Timeout of one HTTP request to OpenBao (default 5s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_mount() -> String {
    "secret".into()
}
fn default_path() -> String {
    "cloakroom".into()
}
fn default_approle_mount() -> String {
    "approle".into()
}
fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl OpenBaoConfig {
    /// A config for `address` with every default (token auth must still be chosen).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            mount: default_mount(),
            path: default_path(),
            token_env: None,
            approle_role_id_env: None,
            approle_secret_id_env: None,
            approle_mount: default_approle_mount(),
            cache_ttl: default_cache_ttl(),
            timeout: default_timeout(),
        }
    }
}

/// One `[[secrets]]` entry: a secret's name and its binding. The value lives in the
/// vault (put it with the admin API or `cloakroom secret put`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// The secret's name (its placeholder is derived from it).
    pub name: String,
    /// Function-name globs the secret may be sent to (`payments`, `payments/*`, `**`).
    pub functions: Vec<String>,
    /// Where in a request it may be substituted: `header:NAME` (case-insensitive),
    /// `query:NAME`, `json:/pointer` (JSON bodies), `body` (anywhere in the body).
    pub locations: Vec<String>,
    /// Groups whose members may use it; empty means any caller policy lets through.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups whose members must approve every call that uses it.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// After this instant (RFC 3339) the secret is no longer substituted.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires: Option<OffsetDateTime>,
    /// Uses allowed in total, ever (at least 1); past it calls are refused with
    /// `budget_exhausted` (docs/policy.md, "Use budgets").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// Uses allowed per fixed window: `{ count = 100, period = "1h" }` (count at least 1,
    /// period a whole number of seconds, at least `1s`; windows aligned to the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses_per: Option<UsesPer>,
    /// Whose uses the budgets count: `"secret"` (default: every caller together) or
    /// `"caller"` (each caller, by issuer and subject, has the whole budget).
    #[serde(default, skip_serializing_if = "BudgetScope::is_default")]
    pub budget_scope: BudgetScope,
}

impl SecretConfig {
    /// The binding as given (uncompiled).
    pub fn binding_spec(&self) -> BindingSpec {
        BindingSpec {
            functions: self.functions.clone(),
            locations: self.locations.clone(),
            groups: self.groups.clone(),
            approvers: self.approvers.clone(),
            expires: self.expires,
            max_uses: self.max_uses,
            max_uses_per: self.max_uses_per,
            budget_scope: self.budget_scope,
        }
    }

    /// The compiled binding; fails on a bad function glob or location.
    pub fn binding(&self) -> Result<Binding, BindingError> {
        Binding::compile(self.binding_spec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let v: VaultConfig = toml::from_str("").unwrap();
        assert_eq!(v.backend, BackendKind::Embedded);
        assert!(toml::from_str::<VaultConfig>("colour = 1").is_err());
        let o: OpenBaoConfig = toml::from_str("address = \"http://x\"").unwrap();
        assert_eq!((o.mount.as_str(), o.path.as_str(), o.cache_ttl), ("secret", "cloakroom", Duration::from_secs(30)));
        assert!(toml::from_str::<SecretConfig>("name='a'\nfunctions=[]\nlocations=[]\nvalue='x'").is_err());
    }

    #[test]
    fn a_backend_compiled_out_is_refused_naming_its_feature() {
        for (backend, feature) in [(BackendKind::Embedded, "sled"), (BackendKind::Openbao, "openbao")] {
            let config = VaultConfig { backend, ..Default::default() };
            let err = config.check_features_with(|_| false).unwrap_err();
            assert_eq!(err.feature(), feature);
            let wanted = format!(
                "vault.backend = \"{}\" needs Cloakroom built with the cargo feature `{feature}`",
                backend.as_str()
            );
            assert!(err.to_string().starts_with(&wanted), "{err}");
            assert!(config.check_features_with(|_| true).is_ok());
            assert_eq!(config.check_features().is_ok(), compiled(feature), "{backend:?} in this build");
        }
        let memory: VaultConfig = toml::from_str("backend = \"memory\"").unwrap();
        assert_eq!(memory.backend, BackendKind::Memory);
        assert!(memory.check_features_with(|_| false).is_ok(), "the memory backend is always there");
    }

    #[test]
    fn budgets_parse_and_bad_ones_are_clear_errors() {
        let s: SecretConfig = toml::from_str(
            "name='a'\nfunctions=['f']\nlocations=['body']\nmax_uses=10\nmax_uses_per={count=100, period='1h'}\nbudget_scope='caller'",
        )
        .unwrap();
        let b = s.binding().unwrap();
        let budget = b.budget().unwrap();
        assert_eq!(budget.max_uses(), Some(10));
        assert_eq!(budget.max_uses_per(), Some(UsesPer { count: 100, period: Duration::from_secs(3600) }));
        assert_eq!(budget.scope(), BudgetScope::Caller);
        let plain: SecretConfig = toml::from_str("name='a'\nfunctions=['f']\nlocations=['body']").unwrap();
        assert!(plain.binding().unwrap().budget().is_none(), "no budget: not counted");
        for (extra, wanted) in [
            ("max_uses=0", "max_uses must be at least 1"),
            ("max_uses_per={count=0, period='1h'}", "max_uses_per.count must be at least 1"),
            ("max_uses_per={count=1, period='500ms'}", "max_uses_per.period must be a whole number of seconds"),
            ("max_uses_per={count=1, period='1500ms'}", "max_uses_per.period must be a whole number of seconds"),
            ("budget_scope='caller'", "budget_scope needs max_uses or max_uses_per"),
        ] {
            let s: SecretConfig =
                toml::from_str(&format!("name='a'\nfunctions=['f']\nlocations=['body']\n{extra}")).unwrap();
            let err = s.binding().unwrap_err().to_string();
            assert!(err.starts_with(wanted), "{extra}: {err}");
        }
        for bad in
            ["max_uses=-1", "max_uses_per={count=1}", "max_uses_per={count=1, period='soon'}", "budget_scope='team'"]
        {
            let text = format!("name='a'\nfunctions=['f']\nlocations=['body']\n{bad}");
            assert!(toml::from_str::<SecretConfig>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn expires_is_rfc3339() {
        let s: SecretConfig =
            toml::from_str("name='a'\nfunctions=['f']\nlocations=['body']\nexpires='2030-01-01T00:00:00Z'").unwrap();
        assert_eq!(s.expires.unwrap().year(), 2030);
    }
}
