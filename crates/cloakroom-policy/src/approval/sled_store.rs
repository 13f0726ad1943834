//! The embedded approval store (sled), the default for a single gateway.
//!
//! sled's reads, compare-and-swaps and scans block on disk I/O (a page fault on a cold
//! tree, a segment read): each runs on tokio's blocking pool, never on a serving thread.

use std::path::Path;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Approval, ApprovalCounts, ApprovalState, ApprovalStore, StoreError};

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

/// Runs `f` on the blocking pool. A task that panicked or was cancelled (the runtime
/// shutting down) is an I/O error of the store; the panic's message is not repeated.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(StoreError::Sled(sled::Error::Io(std::io::Error::other("the store's blocking task did not finish"))))
    })
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode(a: &Approval) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(a).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl ApprovalStore for SledApprovalStore {
    async fn insert(&self, approval: &Approval) -> Result<(), StoreError> {
        let (tree, id, bytes) = (self.tree.clone(), approval.id.clone(), encode(approval)?);
        let res = blocking(move || Ok(tree.compare_and_swap(&id, None::<&[u8]>, Some(bytes))?)).await?;
        if res.is_err() {
            return Err(StoreError::Corrupt(format!("approval {} already exists", approval.id)));
        }
        self.db.flush_async().await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let (tree, id) = (self.tree.clone(), id.to_owned());
        blocking(move || tree.get(id)?.map(|v| decode(&v)).transpose()).await
    }

    async fn list(
        &self,
        state: Option<ApprovalState>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        let tree = self.tree.clone();
        blocking(move || {
            // Ids are UUIDv7: key order is creation order.
            let mut out = Vec::new();
            for kv in tree.iter().rev() {
                if out.len() >= limit {
                    break;
                }
                let a = decode::<Approval>(&kv?.1)?.at(now);
                if state.is_none_or(|s| a.state == s) {
                    out.push(a);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn counts(&self, now: OffsetDateTime) -> Result<ApprovalCounts, StoreError> {
        /// What a state as of `now` needs of a record; the rest (the arguments) is
        /// skipped by the parser, not built.
        #[derive(serde::Deserialize)]
        struct StateOf {
            state: ApprovalState,
            #[serde(with = "time::serde::rfc3339")]
            expires_at: OffsetDateTime,
        }
        let tree = self.tree.clone();
        blocking(move || {
            let mut counts = ApprovalCounts::default();
            for kv in tree.iter() {
                let a: StateOf = decode(&kv?.1)?;
                counts.add(a.state.as_of(a.expires_at, now), 1);
            }
            Ok(counts)
        })
        .await
    }

    async fn replace(&self, current: &Approval, new: &Approval) -> Result<bool, StoreError> {
        let (tree, id, revision, bytes) = (self.tree.clone(), current.id.clone(), current.revision, encode(new)?);
        let swapped = blocking(move || {
            let Some(old) = tree.get(&id)? else { return Ok(false) };
            if decode::<Approval>(&old)?.revision != revision {
                return Ok(false);
            }
            Ok(tree.compare_and_swap(&id, Some(old), Some(bytes))?.is_ok())
        })
        .await?;
        if swapped {
            self.db.flush_async().await?;
        }
        Ok(swapped)
    }
}
