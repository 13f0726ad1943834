//! [`EmbeddedBudgets`]: uses counted in sled under the data directory, for one node
//! (`approvals.store = "embedded"`); they survive a restart.
//!
//! Tree `uses`, key = secret name | 0 | period (u64 BE) | window (u64 BE) | caller, value =
//! uses (u64 BE). A call's counters change in one sled transaction. sled can block on
//! disk I/O: everything runs on tokio's blocking pool.

use std::path::Path;

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{BudgetStore, BudgetStoreError, Counter};

/// Uses counted in an embedded sled database.
#[derive(Debug, Clone)]
pub struct EmbeddedBudgets {
    uses: sled::Tree,
}

fn storage(e: impl std::fmt::Display) -> BudgetStoreError {
    BudgetStoreError(format!("embedded store: {e}"))
}

fn prefix(secret: &str, period_secs: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(secret.len() + 9);
    k.extend_from_slice(secret.as_bytes());
    k.push(0);
    k.extend_from_slice(&period_secs.to_be_bytes());
    k
}

fn window_prefix(secret: &str, period_secs: u64, window: u64) -> Vec<u8> {
    let mut k = prefix(secret, period_secs);
    k.extend_from_slice(&window.to_be_bytes());
    k
}

fn key(c: &Counter) -> Vec<u8> {
    let mut k = window_prefix(&c.secret, c.period_secs, c.window);
    k.extend_from_slice(c.caller.as_bytes());
    k
}

fn decode(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BudgetStoreError> + Send + 'static,
) -> Result<T, BudgetStoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| Err(storage("a blocking task did not finish")))
}

impl EmbeddedBudgets {
    /// Opens (or creates) the database in `dir`, waiting out a held lock.
    pub fn open(dir: &Path) -> Result<Self, BudgetStoreError> {
        let db = cloakroom_core::sled_open::open(&sled::Config::new().path(dir)).map_err(storage)?;
        Ok(Self { uses: db.open_tree("uses").map_err(storage)? })
    }
}

#[async_trait]
impl BudgetStore for EmbeddedBudgets {
    async fn spend(&self, counters: &[Counter]) -> Result<Option<usize>, BudgetStoreError> {
        let tree = self.uses.clone();
        let counters = counters.to_vec();
        blocking(move || {
            let keys: Vec<Vec<u8>> = counters.iter().map(key).collect();
            let outcome = tree.transaction(|tx| {
                let mut now = Vec::with_capacity(keys.len());
                for (i, (k, c)) in keys.iter().zip(&counters).enumerate() {
                    let n = tx.get(k)?.map(|v| decode(&v)).unwrap_or(0);
                    if n >= c.limit {
                        return Ok(Some(i));
                    }
                    now.push(n + 1);
                }
                for (k, n) in keys.iter().zip(now) {
                    tx.insert(k.as_slice(), &n.to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(None)
            });
            let full = match outcome {
                Ok(full) => full,
                Err(TransactionError::Storage(e)) => return Err(storage(e)),
                Err(TransactionError::Abort(())) => return Err(storage("transaction aborted")),
            };
            if full.is_none() {
                // Forget the windows before the previous one of the counters just spent
                // (every store keeps the previous window; see the PostgreSQL store).
                for c in counters.iter().filter(|c| c.period_secs > 0) {
                    let start = prefix(&c.secret, c.period_secs);
                    let end = window_prefix(&c.secret, c.period_secs, c.window.saturating_sub(1));
                    for old in tree.range(start..end) {
                        let (k, _) = old.map_err(storage)?;
                        tree.remove(k).map_err(storage)?;
                    }
                }
            }
            Ok(full)
        })
        .await
    }

    async fn count(&self, secret: &str, period_secs: u64, window: u64) -> Result<u64, BudgetStoreError> {
        let tree = self.uses.clone();
        let prefix = window_prefix(secret, period_secs, window);
        blocking(move || {
            let mut n = 0u64;
            for kv in tree.scan_prefix(prefix) {
                n = n.saturating_add(decode(&kv.map_err(storage)?.1));
            }
            Ok(n)
        })
        .await
    }
}
