//! An in-memory store: nothing persists. For tests, benches, embedding experiments and
//! builds without the `sled` feature; the gateway uses it only when configured with
//! `vault.backend = "memory"` (or in `--dev` when built without `sled`). Not durable:
//! every value is gone when the process exits, and no other replica sees it.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use cloakroom_core::Secret;

use super::{StoredSecret, Vault, VaultError};
use crate::{binding::BindingSpec, BackendKind};

/// A [`Vault`] in a `HashMap`: one process, not durable.
#[derive(Default)]
pub struct MemoryVault(Mutex<HashMap<String, StoredSecret>>);

impl std::fmt::Debug for MemoryVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryVault").field("secrets", &self.0.lock().map(|m| m.len()).unwrap_or(0)).finish()
    }
}

impl MemoryVault {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts without going through the async API (to fill large catalogs quickly).
    pub fn insert(&self, name: &str, value: Secret, binding: Option<BindingSpec>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let version = m.get(name).map_or(1, |s| s.version + 1);
        m.insert(name.to_owned(), StoredSecret { value, binding, version });
    }
}

#[async_trait]
impl Vault for MemoryVault {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, VaultError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned())
    }

    async fn put(
        &self,
        name: &str,
        value: &Secret,
        binding: Option<&BindingSpec>,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let current = m.get(name).map_or(0, |s| s.version);
        if cas.is_some_and(|c| c != current) {
            return Err(VaultError::Conflict { name: name.to_owned() });
        }
        m.insert(
            name.to_owned(),
            StoredSecret { value: value.clone(), binding: binding.cloned(), version: current + 1 },
        );
        Ok(current + 1)
    }

    async fn delete(&self, name: &str) -> Result<bool, VaultError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(name).is_some())
    }

    async fn list(&self) -> Result<Vec<String>, VaultError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect())
    }
}
