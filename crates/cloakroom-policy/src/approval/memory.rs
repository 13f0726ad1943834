//! The in-memory approval store: one process, not durable.
//!
//! Always compiled: it is what a build without the `sled` and `postgres` features has
//! (`approvals.store = "memory"`), and what tests and embedders can use without a
//! directory. Every approval — pending, granted or used — is gone when the process
//! exits, and no other replica sees it: a restart forgets which approvals were used, but
//! they expire with `approvals.ttl` anyway.

use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Approval, ApprovalCounts, ApprovalState, ApprovalStore, StoreError};

/// Approvals in a map in this process's memory. Changes compare the stored revision
/// under one lock, so of two writers that read the same revision only one wins.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use cloakroom_policy::{ApprovalState, ApprovalStore, Approvals, ApprovalsConfig, MemoryApprovalStore};
///
/// let approvals = Approvals::new(Arc::new(MemoryApprovalStore::new()), ApprovalsConfig::default());
/// let pending = approvals.store().list(Some(ApprovalState::Pending), time::OffsetDateTime::now_utc(), 10);
/// assert!(pending.await.unwrap().is_empty());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct MemoryApprovalStore {
    // Ids are UUIDv7: key order is creation order.
    approvals: Mutex<BTreeMap<String, Approval>>,
}

impl MemoryApprovalStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Approval>> {
        // A panic while the lock was held left a whole map (every change is one insert).
        self.approvals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ApprovalStore for MemoryApprovalStore {
    async fn insert(&self, approval: &Approval) -> Result<(), StoreError> {
        let mut map = self.map();
        if map.contains_key(&approval.id) {
            return Err(StoreError::Corrupt(format!("approval {} already exists", approval.id)));
        }
        map.insert(approval.id.clone(), approval.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self.map().get(id).cloned())
    }

    async fn list(
        &self,
        state: Option<ApprovalState>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        Ok(self
            .map()
            .values()
            .rev()
            .map(|a| a.clone().at(now))
            .filter(|a| state.is_none_or(|s| a.state == s))
            .take(limit)
            .collect())
    }

    async fn counts(&self, now: OffsetDateTime) -> Result<ApprovalCounts, StoreError> {
        let mut counts = ApprovalCounts::default();
        for a in self.map().values() {
            counts.add(a.state_at(now), 1);
        }
        Ok(counts)
    }

    async fn replace(&self, current: &Approval, new: &Approval) -> Result<bool, StoreError> {
        let mut map = self.map();
        match map.get_mut(&current.id) {
            Some(stored) if stored.revision == current.revision => {
                *stored = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
