//! The catalog: every known secret's name, placeholder, binding and (cached) value.
//!
//! Readers get an `arc-swap` snapshot and never block; writers (the admin API, config
//! reloads, the refresh task) serialize on a lock and write the backend first. Then the
//! listeners registered with [`Catalog::on_change`] — the response masker's builder —
//! run with the new snapshot on a blocking thread, and only once they are done is the
//! snapshot stored: a value the detokenizer can substitute is always one the masker
//! already masks. Requests never wait for this, except one that reads a value rotated
//! elsewhere (OpenBao), which waits for the masker to learn it before substituting it.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cloakroom_vault::{Catalog, EmbeddedVault, Keys, SecretConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let keys = Keys::generate();
//! let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
//! let declared: SecretConfig = toml::from_str(r#"
//!     name = "stripe_key"
//!     functions = ["payments/*"]
//!     locations = ["header:Authorization"]
//! "#).unwrap();
//! let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[declared], None).await.unwrap();
//! let p = catalog.put("stripe_key", "sk_live_123".into(), None).await.unwrap();
//! assert_eq!(p, keys.placeholder_key().placeholder_for("stripe_key"));
//! assert!(catalog.snapshot().by_placeholder(p.as_bytes()).is_some());
//! # });
//! ```

use std::{
    collections::HashMap,
    path::Path,
    sync::{atomic::AtomicU64, Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use arc_swap::{ArcSwap, ArcSwapOption};
use cloakroom_core::{Placeholder, Secret};
use cloakroom_mask::MaskingConfig;

use crate::{
    binding::{Binding, BindingSpec},
    budget::{BudgetStore, MemoryBudgets},
    config::{BackendKind, SecretConfig, VaultConfig},
    keys::{Key, Keys},
    store::{MemoryVault, StoredSecret, Vault, VaultError},
};

mod error;
mod listeners;
mod snapshot;
mod uses;

pub use error::{validate_name, CatalogError};
use listeners::RebuildState;

use snapshot::CachedValue;
pub use snapshot::{ApprovalNeed, CatalogEntry, CatalogSnapshot, Origin, SecretInfo, ValuePattern};

/// The secret catalog (see the module docs).
pub struct Catalog {
    key: Key,
    vault: Arc<dyn Vault>,
    declared: ArcSwap<HashMap<String, Arc<Binding>>>,
    snapshot: ArcSwap<CatalogSnapshot>,
    writer: tokio::sync::Mutex<()>,
    cache_ttl: Option<Duration>,
    rebuild_requested: AtomicU64,
    rebuild_state: Arc<Mutex<RebuildState>>,
    /// The `[masking]` settings attached maskers are built with.
    masking: Arc<ArcSwap<MaskingConfig>>,
    /// Where use budgets are counted (docs/policy.md, "Use budgets").
    budgets: std::sync::RwLock<Arc<dyn BudgetStore>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("vault", &self.vault)
            .field("secrets", &self.snapshot.load().len())
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

fn compile_declared(secrets: &[SecretConfig]) -> Result<HashMap<String, Arc<Binding>>, CatalogError> {
    secrets
        .iter()
        .map(|s| {
            validate_name(&s.name)?;
            let b = s.binding().map_err(|source| CatalogError::Binding { name: s.name.clone(), source })?;
            Ok((s.name.clone(), Arc::new(b)))
        })
        .collect()
}

impl Catalog {
    /// Opens the configured backend and loads the catalog: keys from the environment or
    /// `vault.keys_file`, the embedded store in `data_dir/vault`, OpenBao, or memory.
    /// A backend this build was compiled without is a [`CatalogError::MissingFeature`].
    pub async fn open(
        config: &VaultConfig,
        secrets: &[SecretConfig],
        data_dir: &Path,
    ) -> Result<Arc<Self>, CatalogError> {
        config.check_features()?;
        let embedded = config.backend == BackendKind::Embedded;
        let keys = Keys::load(config.keys_file.as_deref(), embedded)?;
        Self::open_with_keys(config, secrets, data_dir, &keys).await
    }

    /// Like [`Catalog::open`] with keys given (for `--dev`).
    #[cfg_attr(not(feature = "sled"), allow(unused_variables))]
    pub async fn open_with_keys(
        config: &VaultConfig,
        secrets: &[SecretConfig],
        data_dir: &Path,
        keys: &Keys,
    ) -> Result<Arc<Self>, CatalogError> {
        config.check_features()?;
        match config.backend {
            #[cfg(feature = "sled")]
            BackendKind::Embedded => Self::open_embedded(secrets, data_dir, keys).await,
            #[cfg(feature = "openbao")]
            BackendKind::Openbao => Self::open_openbao(config, secrets, keys).await,
            BackendKind::Memory => {
                tracing::warn!("vault.backend = \"memory\": secrets are kept in this process only, lost when it exits");
                Self::new(Arc::new(MemoryVault::new()), keys.placeholder_key().clone(), secrets, None).await
            }
            // A backend compiled out: `check_features` refused it above.
            #[allow(unreachable_patterns)]
            other => Err(VaultError::Config(format!("vault.backend = {:?} is not compiled in", other.as_str())).into()),
        }
    }

    #[cfg(feature = "sled")]
    async fn open_embedded(secrets: &[SecretConfig], data_dir: &Path, keys: &Keys) -> Result<Arc<Self>, CatalogError> {
        let key = keys.vault_key().ok_or(crate::KeyError::Missing { var: crate::keys::VAULT_KEY_ENV })?;
        let (dir, key) = (data_dir.join("vault"), key.clone());
        // Opening waits out a held sled lock with `std::thread::sleep`: off the runtime.
        let store = tokio::task::spawn_blocking(move || crate::EmbeddedVault::open(&dir, &key))
            .await
            .map_err(|_| VaultError::Unavailable("embedded store: opening did not finish".into()))??;
        Self::new(Arc::new(store), keys.placeholder_key().clone(), secrets, None).await
    }

    #[cfg(feature = "openbao")]
    async fn open_openbao(
        config: &VaultConfig,
        secrets: &[SecretConfig],
        keys: &Keys,
    ) -> Result<Arc<Self>, CatalogError> {
        let cfg = config
            .openbao
            .as_ref()
            .ok_or_else(|| VaultError::Config("backend = \"openbao\" needs a [vault.openbao] table".into()))?;
        let store = crate::OpenBaoVault::connect(cfg).await?;
        let catalog = Self::new(Arc::new(store), keys.placeholder_key().clone(), secrets, Some(cfg.cache_ttl)).await?;
        // Other replicas may change secrets: re-read the store every cache_ttl.
        catalog.spawn_refresh(cfg.cache_ttl.max(Duration::from_secs(1)));
        Ok(catalog)
    }

    /// A catalog over `vault`, deriving placeholders with `placeholder_key`, with the
    /// config-declared `secrets`. `cache_ttl`: how long a value read from the store is
    /// used before it is read again (`None`: the catalog is the only writer, values never
    /// go stale — the embedded store).
    pub async fn new(
        vault: Arc<dyn Vault>,
        placeholder_key: Key,
        secrets: &[SecretConfig],
        cache_ttl: Option<Duration>,
    ) -> Result<Arc<Self>, CatalogError> {
        let declared = compile_declared(secrets)?;
        let catalog = Arc::new(Self {
            key: placeholder_key,
            vault,
            declared: ArcSwap::from_pointee(declared),
            snapshot: ArcSwap::from_pointee(CatalogSnapshot::default()),
            writer: tokio::sync::Mutex::new(()),
            cache_ttl,
            rebuild_requested: AtomicU64::new(0),
            rebuild_state: Arc::new(Mutex::new(RebuildState::default())),
            masking: Arc::new(ArcSwap::from_pointee(MaskingConfig::default())),
            budgets: std::sync::RwLock::new(Arc::new(MemoryBudgets::new())),
        });
        catalog.refresh().await?;
        Ok(catalog)
    }

    /// The backend.
    pub fn vault(&self) -> &Arc<dyn Vault> {
        &self.vault
    }

    /// Counts use budgets in `store` from now on (by default: [`MemoryBudgets`], this
    /// process only). The gateway sets the store `[approvals]` names.
    pub fn set_budget_store(&self, store: Arc<dyn BudgetStore>) {
        *self.budgets.write().unwrap_or_else(|p| p.into_inner()) = store;
    }

    /// Where use budgets are counted.
    pub fn budget_store(&self) -> Arc<dyn BudgetStore> {
        self.budgets.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The placeholder of `name` (whether or not the secret exists).
    pub fn placeholder_for(&self, name: &str) -> Placeholder {
        self.key.placeholder_for(name)
    }

    /// The current snapshot (never blocks).
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshot.load_full()
    }

    fn entry(&self, name: &str, binding: Option<Arc<Binding>>, origin: Origin, value: Option<Secret>) -> CatalogEntry {
        CatalogEntry {
            name: name.to_owned(),
            placeholder: self.key.placeholder_for(name),
            binding,
            origin,
            value: ArcSwapOption::from_pointee(value.map(|secret| CachedValue { secret, fetched: Instant::now() })),
        }
    }

    fn effective_binding(&self, name: &str, stored: Option<&BindingSpec>) -> (Option<Arc<Binding>>, Origin) {
        if let Some(b) = self.declared.load().get(name) {
            return (Some(b.clone()), Origin::Config);
        }
        let binding = stored.and_then(|spec| match Binding::compile(spec.clone()) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::warn!(secret = name, error = %e, "stored binding does not compile; the secret stays unbound");
                None
            }
        });
        (binding, Origin::Api)
    }

    /// Re-reads every secret from the backend and swaps in a new snapshot.
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        let _w = self.writer.lock().await;
        let mut names = self.vault.list().await?;
        let declared = self.declared.load_full();
        for name in declared.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for (name, read) in self.read_all(names).await? {
            let stored = match read {
                Ok(s) => s,
                Err(VaultError::Malformed { name, reason }) => {
                    tracing::warn!(secret = %name, %reason, "skipping malformed stored secret");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if stored.is_none() && !declared.contains_key(&name) {
                continue;
            }
            let (binding, origin) = self.effective_binding(&name, stored.as_ref().and_then(|s| s.binding.as_ref()));
            entries.push(Arc::new(self.entry(&name, binding, origin, stored.map(|s| s.value))));
        }
        let changed = {
            let old = self.snapshot.load();
            old.entries.len() != entries.len()
                || old.entries.iter().zip(&entries).any(|(a, b)| {
                    a.name != b.name
                        || a.binding.as_deref().map(Binding::spec) != b.binding.as_deref().map(Binding::spec)
                        || a.cached_value() != b.cached_value()
                })
        };
        self.publish(CatalogSnapshot::build(entries), changed).await;
        Ok(())
    }

    /// Reads `names` from the backend, a few at a time (OpenBao has no bulk read), in
    /// name order.
    async fn read_all(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Result<Option<StoredSecret>, VaultError>)>, CatalogError> {
        const CONCURRENT_READS: usize = 16;
        let mut out = Vec::with_capacity(names.len());
        let mut pending = names.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < CONCURRENT_READS {
                let Some(name) = pending.next() else { break };
                let vault = self.vault.clone();
                running.spawn(async move {
                    let read = vault.get(&name).await;
                    (name, read)
                });
            }
            match running.join_next().await {
                Some(Ok(done)) => out.push(done),
                Some(Err(e)) => return Err(VaultError::Unavailable(format!("reading a secret failed: {e}")).into()),
                None => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Replaces the config-declared bindings (a configuration reload).
    pub async fn apply_config(&self, secrets: &[SecretConfig]) -> Result<(), CatalogError> {
        self.declared.store(Arc::new(compile_declared(secrets)?));
        self.refresh().await
    }

    /// Spawns a task re-reading the backend every `every` (stops when the catalog is dropped).
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = weak.upgrade() else { return };
                if let Err(e) = c.refresh().await {
                    tracing::warn!(error = %e, "refreshing the secret catalog failed");
                }
            }
        })
    }

    /// Stores `value` for `name` (the admin API's `POST /v1/secrets`) and returns the
    /// placeholder. With a `binding`, it is stored beside the value; for a config-declared
    /// name a binding different from the config's is a [`CatalogError::Conflict`].
    pub async fn put(
        &self,
        name: &str,
        value: Secret,
        binding: Option<BindingSpec>,
    ) -> Result<Placeholder, CatalogError> {
        validate_name(name)?;
        if value.is_empty() {
            return Err(CatalogError::EmptyValue(name.to_owned()));
        }
        let compiled = binding
            .map(|spec| {
                Binding::compile(spec).map_err(|source| CatalogError::Binding { name: name.to_owned(), source })
            })
            .transpose()?;
        if let (Some(declared), Some(given)) = (self.declared.load().get(name), &compiled) {
            if declared.spec() != given.spec() {
                return Err(CatalogError::Conflict(name.to_owned()));
            }
        }
        let _w = self.writer.lock().await;
        let snap = self.snapshot.load_full();
        // Keep an API binding across value rotations that do not restate it.
        let stored_binding = match (&compiled, snap.by_name(name)) {
            (Some(b), _) => Some(b.spec().clone()),
            (None, Some(e)) if e.origin == Origin::Api => e.binding().map(|b| b.spec().clone()),
            _ => None,
        };
        let stored_binding = stored_binding.filter(|_| !self.declared.load().contains_key(name));
        self.vault.put(name, &value, stored_binding.as_ref(), None).await?;
        let (binding, origin) = self.effective_binding(name, stored_binding.as_ref());
        let entry = Arc::new(self.entry(name, binding, origin, Some(value)));
        let mut entries = snap.entries.clone();
        match snap.by_name.get(name) {
            Some(&i) => entries[i] = entry,
            None => entries.push(entry),
        }
        self.publish(CatalogSnapshot::build(entries), true).await;
        Ok(self.key.placeholder_for(name))
    }

    /// Deletes the value of `name` (`DELETE /v1/secrets/{name}`). A config-declared name
    /// keeps its binding and placeholder, with no value. `false` if nothing was stored.
    pub async fn delete(&self, name: &str) -> Result<bool, CatalogError> {
        validate_name(name)?;
        let _w = self.writer.lock().await;
        let existed = self.vault.delete(name).await?;
        let snap = self.snapshot.load_full();
        let mut entries: Vec<_> = snap.entries.iter().filter(|e| e.name != name).cloned().collect();
        if let Some(b) = self.declared.load().get(name) {
            entries.push(Arc::new(self.entry(name, Some(b.clone()), Origin::Config, None)));
        }
        self.publish(CatalogSnapshot::build(entries), true).await;
        Ok(existed)
    }

    /// Every secret, for `GET /v1/secrets`: names, placeholders, bindings, never values.
    pub fn list(&self) -> Vec<SecretInfo> {
        self.snapshot
            .load()
            .entries
            .iter()
            .map(|e| SecretInfo {
                name: e.name.clone(),
                placeholder: e.placeholder.clone(),
                binding: e.binding().map(|b| b.spec().clone()),
                origin: e.origin,
                has_value: e.value.load().is_some(),
            })
            .collect()
    }

    /// The value of `entry` for substitution. With a cache TTL, a value older than it is
    /// read again from the backend; if the backend is down the error is
    /// `vault_unavailable` and the caller must refuse the call (fail closed).
    pub async fn value_of(&self, entry: &CatalogEntry) -> Result<Secret, CatalogError> {
        if let Some(v) = entry.value.load().as_ref() {
            if self.cache_ttl.is_none_or(|ttl| v.fetched.elapsed() < ttl) {
                return Ok(v.secret.clone());
            }
        }
        if self.cache_ttl.is_none() {
            return Err(CatalogError::NoValue(entry.name.clone()));
        }
        match self.vault.get(&entry.name).await? {
            Some(StoredSecret { value, .. }) => {
                let fresh = Arc::new(CachedValue { secret: value.clone(), fetched: Instant::now() });
                let rotated = entry.value.load().as_ref().map(|o| &o.secret) != Some(&value);
                if rotated {
                    // Rotated elsewhere: the masker learns the new value before anyone can
                    // substitute it, so build it from a snapshot holding the new value first.
                    // Under the writer lock: built from a snapshot a concurrent put/delete
                    // is not about to replace, and the value stored into the current entry
                    // before another writer's rebuild reads it.
                    let _w = self.writer.lock().await;
                    let snap = self.snapshot.load_full();
                    let mut entries = snap.entries.clone();
                    if let Some(&i) = snap.by_name.get(&entry.name) {
                        let current = &snap.entries[i];
                        entries[i] = Arc::new(CatalogEntry {
                            name: current.name.clone(),
                            placeholder: current.placeholder.clone(),
                            binding: current.binding.clone(),
                            origin: current.origin,
                            value: ArcSwapOption::new(Some(fresh.clone())),
                        });
                        self.rebuild(Arc::new(CatalogSnapshot::build(entries))).await;
                        current.value.store(Some(fresh.clone()));
                    } else {
                        // Gone from the catalog meanwhile (deleted and put again): still
                        // mask the value being handed out.
                        entries.push(Arc::new(CatalogEntry {
                            name: entry.name.clone(),
                            placeholder: entry.placeholder.clone(),
                            binding: entry.binding.clone(),
                            origin: entry.origin,
                            value: ArcSwapOption::new(Some(fresh.clone())),
                        }));
                        self.rebuild(Arc::new(CatalogSnapshot::build(entries))).await;
                    }
                }
                entry.value.store(Some(fresh));
                Ok(value)
            }
            None => {
                entry.value.store(None);
                Err(CatalogError::NoValue(entry.name.clone()))
            }
        }
    }

    /// The secrets found in `haystacks` (header values, query, body) whose binding has
    /// `approvers`. The gateway asks this before policy so an approval can be required
    /// for every use of such a secret (see `docs/vault.md`).
    pub fn approvers_for<'a>(&self, haystacks: impl IntoIterator<Item = &'a [u8]>) -> Vec<ApprovalNeed> {
        let snap = self.snapshot.load();
        let mut out: Vec<ApprovalNeed> = Vec::new();
        for h in haystacks {
            for (_, e) in snap.find(h) {
                if let Some(b) = e.binding().filter(|b| !b.approvers().is_empty()) {
                    if !out.iter().any(|n| n.name == e.name) {
                        out.push(ApprovalNeed {
                            name: e.name.clone(),
                            placeholder: e.placeholder.clone(),
                            approvers: b.approvers().to_vec(),
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
