//! The embedded approval store (sled), the default for a single gateway.

use std::path::Path;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Approval, ApprovalState, ApprovalStore, StoreError};

/// Approvals in a sled tree, one JSON record per id. Changes are compare-and-swap on the
/// stored bytes, so of two writers that read the same revision only one wins.
#[derive(Debug, Clone)]
pub struct SledApprovalStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledApprovalStore {
    /// Opens (or creates) the store in directory `path`, waiting up to two seconds for a
    /// directory lock that a handle just closed may still hold
    /// ([`cloakroom_core::sled_open`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = cloakroom_core::sled_open::open(&sled::Config::new().path(path))?;
        Self::with_db(db)
    }

    /// Uses the `approvals` tree of an open sled database.
    pub fn with_db(db: sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("approvals")?;
        Ok(Self { db, tree })
    }
}

fn decode(bytes: &[u8]) -> Result<Approval, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(a: &Approval) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(a).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl ApprovalStore for SledApprovalStore {
    async fn insert(&self, approval: &Approval) -> Result<(), StoreError> {
        let res = self.tree.compare_and_swap(&approval.id, None::<&[u8]>, Some(encode(approval)?))?;
        if res.is_err() {
            return Err(StoreError::Corrupt(format!("approval {} already exists", approval.id)));
        }
        self.db.flush_async().await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.tree.get(id)?.map(|v| decode(&v)).transpose()
    }

    async fn list(
        &self,
        state: Option<ApprovalState>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        // Ids are UUIDv7: key order is creation order.
        let mut out = Vec::new();
        for kv in self.tree.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let a = decode(&kv?.1)?.at(now);
            if state.is_none_or(|s| a.state == s) {
                out.push(a);
            }
        }
        Ok(out)
    }

    async fn replace(&self, current: &Approval, new: &Approval) -> Result<bool, StoreError> {
        let Some(old) = self.tree.get(&current.id)? else { return Ok(false) };
        if decode(&old)?.revision != current.revision {
            return Ok(false);
        }
        if self.tree.compare_and_swap(&current.id, Some(old), Some(encode(new)?))?.is_err() {
            return Ok(false);
        }
        self.db.flush_async().await?;
        Ok(true)
    }
}
