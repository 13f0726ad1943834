//! Use budgets: how many times a binding lets its secret be used (docs/policy.md, "Use
//! budgets").
//!
//! A binding may cap its secret's uses in total (`max_uses`) and per fixed window
//! (`max_uses_per = {count, period}`), for the secret as a whole or for each caller
//! (`budget_scope`). A call that substitutes the secret (once or many times) or a
//! function that redeems it is one use. Windows are aligned to the Unix epoch: window
//! `w` of a `period` of `p` seconds is `[w·p, (w+1)·p)`, the same on every replica.
//!
//! Uses are counted in a [`BudgetStore`]: [`MemoryBudgets`] (this process),
//! `EmbeddedBudgets` (sled, one node, cargo feature `sled`) or `PostgresBudgets` (shared
//! by replicas, cargo feature `postgres`). [`BudgetStore::spend`] adds one use to every
//! counter of a call or to none: a call refused for one secret spends no other's budget.
//!
//! ```
//! use std::time::Duration;
//! use cloakroom_vault::{Budget, BudgetScope, UsesPer};
//! let per = UsesPer { count: 2, period: Duration::from_secs(60) };
//! let b = Budget::new(Some(3), Some(per), BudgetScope::Caller).unwrap().expect("a budget");
//! let counters = b.counters("api_token", "api_key alice", 125);
//! assert_eq!(counters.len(), 2);
//! assert_eq!((counters[1].window, counters[1].limit), (2, 2)); // 120..180
//! assert_eq!(counters[1].resets_at(), Some(180));
//! assert!(Budget::new(Some(0), None, BudgetScope::Secret).is_err());
//! ```

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sled")]
mod sled_store;

pub use memory::MemoryBudgets;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBudgets;
#[cfg(feature = "sled")]
pub use sled_store::EmbeddedBudgets;

/// `max_uses_per = { count = 100, period = "1h" }`: at most `count` uses in each window
/// of `period` (a whole number of seconds, at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsesPer {
    /// Uses allowed in one window (at least 1).
    pub count: u64,
    /// The window's length (humantime: `30s`, `1h`, `1day`).
    #[serde(with = "humantime_serde")]
    pub period: Duration,
}

/// `budget_scope`: whose uses a budget counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetScope {
    /// Every caller's uses together (the default).
    #[default]
    Secret,
    /// Each caller (issuer and subject) has a budget of its own.
    Caller,
}

impl BudgetScope {
    /// Whether it is the default (`secret`), which a binding does not write out.
    pub fn is_default(&self) -> bool {
        *self == BudgetScope::Secret
    }
}

/// A budget that does not make sense; the text says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BudgetError(String);

/// A binding's budget, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    max_uses: Option<u64>,
    max_uses_per: Option<UsesPer>,
    scope: BudgetScope,
}

/// One count a use adds to: a secret's (or a caller's) uses in total (`period_secs` 0)
/// or in one window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counter {
    /// The secret's name.
    pub secret: String,
    /// The caller (`issuer subject`), or `""` for a budget of the whole secret.
    pub caller: String,
    /// The window's length in seconds; 0 for the total.
    pub period_secs: u64,
    /// The window's number (`floor(now / period)`); 0 for the total.
    pub window: u64,
    /// The uses allowed in it.
    pub limit: u64,
}

impl Counter {
    /// When its window ends (Unix seconds); `None` for a total, which never refills.
    pub fn resets_at(&self) -> Option<u64> {
        window_end(self.window, self.period_secs)
    }
}

/// The end of window `window` of `period_secs` (Unix seconds); `None` for the total.
pub fn window_end(window: u64, period_secs: u64) -> Option<u64> {
    (period_secs > 0).then(|| window.saturating_add(1).saturating_mul(period_secs))
}

/// The window holding `now` (Unix seconds) for windows of `period_secs` (at least 1).
pub fn window_of(now: u64, period_secs: u64) -> u64 {
    now / period_secs.max(1)
}

/// The limit of a total without `max_uses` (the largest count PostgreSQL's `BIGINT` holds).
pub const UNLIMITED: u64 = i64::MAX as u64;

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Budget {
    /// Checks a budget: `max_uses` and `count` at least 1, `period` a whole number of
    /// seconds, at least one. `None` when neither limit is set (the secret is not counted).
    pub fn new(
        max_uses: Option<u64>,
        max_uses_per: Option<UsesPer>,
        scope: BudgetScope,
    ) -> Result<Option<Self>, BudgetError> {
        if max_uses == Some(0) {
            return Err(BudgetError("max_uses must be at least 1".into()));
        }
        if let Some(per) = &max_uses_per {
            if per.count == 0 {
                return Err(BudgetError("max_uses_per.count must be at least 1".into()));
            }
            if per.period < Duration::from_secs(1) || per.period.subsec_nanos() != 0 {
                return Err(BudgetError(format!(
                    "max_uses_per.period must be a whole number of seconds, at least 1s (got {:?})",
                    per.period
                )));
            }
        }
        if max_uses.is_none() && max_uses_per.is_none() {
            if scope != BudgetScope::Secret {
                return Err(BudgetError("budget_scope needs max_uses or max_uses_per".into()));
            }
            return Ok(None);
        }
        Ok(Some(Self { max_uses, max_uses_per, scope }))
    }

    /// `max_uses`.
    pub fn max_uses(&self) -> Option<u64> {
        self.max_uses
    }

    /// `max_uses_per`.
    pub fn max_uses_per(&self) -> Option<UsesPer> {
        self.max_uses_per
    }

    /// `budget_scope`.
    pub fn scope(&self) -> BudgetScope {
        self.scope
    }

    /// The counters one use of `secret` by `caller` at `now` (Unix seconds) adds to.
    pub fn counters(&self, secret: &str, caller: &str, now: u64) -> Vec<Counter> {
        let caller = match self.scope {
            BudgetScope::Secret => String::new(),
            BudgetScope::Caller => caller.to_owned(),
        };
        let mut out = Vec::with_capacity(2);
        // The total is always counted (for `GET /v1/secrets`), capped only by `max_uses`.
        let limit = self.max_uses.unwrap_or(UNLIMITED);
        out.push(Counter { secret: secret.to_owned(), caller: caller.clone(), period_secs: 0, window: 0, limit });
        if let Some(per) = self.max_uses_per {
            let period_secs = per.period.as_secs();
            let window = window_of(now, period_secs);
            out.push(Counter { secret: secret.to_owned(), caller, period_secs, window, limit: per.count });
        }
        out
    }
}

/// The budget store could not be read or written; the call is refused (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("budget store unavailable: {0}")]
pub struct BudgetStoreError(pub String);

/// Where uses are counted. Implementations add to every counter of a call or to none.
#[async_trait]
pub trait BudgetStore: Send + Sync + std::fmt::Debug {
    /// Adds one use to each of `counters` (sorted, distinct) if every one is under its
    /// limit, and returns `None`; otherwise adds nothing and returns the index of a
    /// counter at its limit. Old windows of the same counters may be forgotten.
    async fn spend(&self, counters: &[Counter]) -> Result<Option<usize>, BudgetStoreError>;

    /// The uses counted for `secret` in window `window` of `period_secs` (0, 0: the
    /// total), summed over callers.
    async fn count(&self, secret: &str, period_secs: u64, window: u64) -> Result<u64, BudgetStoreError>;
}

/// Why a use was refused: a budget is spent, or the store cannot say (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BudgetRefusal {
    /// A counter is at its limit. The text names the secret, never its value.
    #[error("{}", exhausted_message(.secret, *.limit, *.period_secs, *.retry_after))]
    Exhausted {
        /// The secret whose budget is spent.
        secret: String,
        /// The limit reached.
        limit: u64,
        /// The window's length in seconds; 0: `max_uses`, which never refills.
        period_secs: u64,
        /// Seconds until the window ends; `None` for `max_uses`.
        retry_after: Option<u64>,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Unavailable(#[from] BudgetStoreError),
}

fn exhausted_message(secret: &str, limit: u64, period_secs: u64, retry_after: Option<u64>) -> String {
    match retry_after {
        Some(s) => {
            format!("secret {secret:?} has used its budget of {limit} uses per {period_secs}s; the window ends in {s}s")
        }
        None if period_secs == 0 => {
            format!("secret {secret:?} has used its budget of {limit} uses (max_uses); it does not refill")
        }
        None => format!("secret {secret:?} has used its budget of {limit} uses per {period_secs}s"),
    }
}

impl BudgetRefusal {
    /// As a wire error: `budget_exhausted` (429, with `Retry-After` for a window), or
    /// `vault_unavailable` (503) when the store cannot be reached.
    pub fn to_error(&self) -> cloakroom_core::Error {
        use cloakroom_core::{Error, ErrorCode};
        match self {
            BudgetRefusal::Exhausted { retry_after, .. } => {
                let e = Error::new(ErrorCode::BudgetExhausted, self.to_string());
                match retry_after {
                    Some(s) => e.retry_after(*s),
                    None => e,
                }
            }
            BudgetRefusal::Unavailable(_) => Error::new(
                ErrorCode::VaultUnavailable,
                "the use budget store is unavailable; the call was not forwarded",
            ),
        }
    }
}

/// Spends one use of each of `uses` (secret name and its budget; a name given twice is
/// one use) by `caller` at `now` (Unix seconds): all of them, or none when any budget
/// is spent. Nothing is asked of the store when `uses` is empty.
pub async fn spend(
    store: &dyn BudgetStore,
    uses: &[(&str, &Budget)],
    caller: &str,
    now: u64,
) -> Result<(), BudgetRefusal> {
    let mut counters: Vec<Counter> = uses.iter().flat_map(|(name, b)| b.counters(name, caller, now)).collect();
    if counters.is_empty() {
        return Ok(());
    }
    // One order for every call: no two calls wait on each other's counters.
    counters.sort();
    counters.dedup();
    match store.spend(&counters).await? {
        None => Ok(()),
        Some(i) => {
            let c = &counters[i];
            Err(BudgetRefusal::Exhausted {
                secret: c.secret.clone(),
                limit: c.limit,
                period_secs: c.period_secs,
                retry_after: c.resets_at().map(|end| end.saturating_sub(now).max(1)),
            })
        }
    }
}

/// The caller key of a per-caller budget: issuer and subject, the issuer's length first
/// so that no two (issuer, subject) pairs share a key whatever characters they hold.
pub fn caller_key(issuer: &str, subject: &str) -> String {
    format!("{}:{issuer} {subject}", issuer.len())
}

#[cfg(test)]
mod caller_key_tests {
    use super::caller_key;

    #[test]
    fn no_two_callers_share_a_key() {
        assert_ne!(caller_key("a b", "c"), caller_key("a", "b c"));
        assert_ne!(caller_key("", "x"), caller_key("x", ""));
        assert_eq!(caller_key("https://idp", "alice"), caller_key("https://idp", "alice"));
    }
}

/// A secret's uses as `GET /v1/secrets` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUses {
    /// Uses counted since the budget was set (summed over callers for a per-caller budget).
    pub total: u64,
    /// Uses in the current window, with `max_uses_per`.
    pub window_count: Option<u64>,
    /// When the current window ends (Unix seconds), with `max_uses_per`.
    pub window_resets_at: Option<u64>,
}

/// Reads the uses of `secret` under `budget` now.
pub async fn read_uses(
    store: &dyn BudgetStore,
    secret: &str,
    budget: &Budget,
    now: u64,
) -> Result<BudgetUses, BudgetStoreError> {
    let total = store.count(secret, 0, 0).await?;
    let (window_count, window_resets_at) = match budget.max_uses_per {
        Some(per) => {
            let period_secs = per.period.as_secs();
            let window = window_of(now, period_secs);
            (Some(store.count(secret, period_secs, window).await?), window_end(window, period_secs))
        }
        None => (None, None),
    };
    Ok(BudgetUses { total, window_count, window_resets_at })
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
