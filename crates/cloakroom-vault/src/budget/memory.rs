//! [`MemoryBudgets`]: uses counted in this process (`vault.backend = "memory"` setups,
//! tests); lost when it exits, not seen by other replicas.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

use super::{BudgetStore, BudgetStoreError, Counter};

/// (secret, caller, period, window) → uses.
type Key = (String, String, u64, u64);

/// Uses counted in memory. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct MemoryBudgets {
    uses: Arc<Mutex<HashMap<Key, u64>>>,
}

impl MemoryBudgets {
    /// No uses counted yet.
    pub fn new() -> Self {
        Self::default()
    }
}

fn key(c: &Counter) -> Key {
    (c.secret.clone(), c.caller.clone(), c.period_secs, c.window)
}

#[async_trait]
impl BudgetStore for MemoryBudgets {
    async fn spend(&self, counters: &[Counter]) -> Result<Option<usize>, BudgetStoreError> {
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(full) = counters.iter().position(|c| uses.get(&key(c)).copied().unwrap_or(0) >= c.limit) {
            return Ok(Some(full));
        }
        for c in counters {
            let k = key(c);
            let new_window = c.period_secs > 0 && !uses.contains_key(&k);
            *uses.entry(k).or_insert(0) += 1;
            if new_window {
                // A window began: forget this counter's windows before the previous one
                // (every store keeps the previous window; see the PostgreSQL store).
                uses.retain(|(s, u, p, w), _| {
                    !(s == &c.secret && u == &c.caller && *p == c.period_secs && *w < c.window.saturating_sub(1))
                });
            }
        }
        Ok(None)
    }

    async fn count(&self, secret: &str, period_secs: u64, window: u64) -> Result<u64, BudgetStoreError> {
        let uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        Ok(uses
            .iter()
            .filter(|((s, _, p, w), _)| s == secret && *p == period_secs && *w == window)
            .map(|(_, n)| n)
            .sum())
    }
}
