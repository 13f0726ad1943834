//! The embedded approval store (sled), the default for a single gateway.

use std::path::Path;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Approval, ApprovalState, ApprovalStore, Claim, StoreError, Verdict};

/// Approvals in a sled tree, one JSON record per id. State changes are compare-and-swap
/// loops on the record, so concurrent deciders and redeemers in one process never both win.
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

    /// Applies `change` to the record `id` when `allowed` holds, atomically.
    async fn update(
        &self,
        id: &str,
        allowed: impl Fn(&Approval) -> bool,
        change: impl Fn(&mut Approval),
    ) -> Result<Option<Approval>, StoreError> {
        loop {
            let Some(old) = self.tree.get(id)? else { return Ok(None) };
            let mut a = decode(&old)?;
            if !allowed(&a) {
                return Ok(None);
            }
            change(&mut a);
            let new = encode(&a)?;
            if self.tree.compare_and_swap(id, Some(old), Some(new))?.is_ok() {
                self.db.flush_async().await?;
                return Ok(Some(a));
            }
            // Another writer changed it first: look again.
        }
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

    async fn decide(&self, id: &str, verdict: &Verdict, now: OffsetDateTime) -> Result<Option<Approval>, StoreError> {
        self.update(
            id,
            |a| a.state == ApprovalState::Pending && now < a.expires_at,
            |a| {
                a.state = verdict.state;
                a.decided_by = Some(verdict.decided_by.clone());
                a.decided_at = Some(now);
                a.reason = verdict.reason.clone();
                a.expires_at = verdict.expires_at;
            },
        )
        .await
    }

    async fn consume(&self, id: &str, claim: &Claim<'_>, now: OffsetDateTime) -> Result<Option<Approval>, StoreError> {
        self.update(
            id,
            |a| {
                a.state == ApprovalState::Approved
                    && now < a.expires_at
                    && a.requester.subject == claim.subject
                    && a.requester.issuer == claim.issuer
                    && a.function == claim.function
                    && a.digest == claim.digest
            },
            |a| {
                a.state = ApprovalState::Used;
                a.used_at = Some(now);
            },
        )
        .await
    }
}
