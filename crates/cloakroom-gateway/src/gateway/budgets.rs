//! Where the gateway counts use budgets (docs/policy.md, "Use budgets"): in the store
//! `[approvals]` names, the one that already holds the state replicas must share.
//! `postgres` counts in the same database (`approvals.postgres_url_env`), `embedded` in
//! sled under `data_dir/budgets`, `memory` in this process.

use std::{path::Path, sync::Arc};

use cloakroom_policy::{ApprovalStoreKind, ApprovalsConfig};
use cloakroom_vault::{BudgetStore, MemoryBudgets};

use super::GatewayError;

/// Opens the budget store that goes with `config.store`.
#[cfg_attr(not(feature = "sled"), allow(unused_variables))]
pub(super) async fn open(config: &ApprovalsConfig, data_dir: &Path) -> Result<Arc<dyn BudgetStore>, GatewayError> {
    match config.store {
        #[cfg(feature = "sled")]
        ApprovalStoreKind::Embedded => {
            let dir = data_dir.join("budgets");
            // Opening waits out a held sled lock with `std::thread::sleep`: off the runtime.
            let store = tokio::task::spawn_blocking(move || cloakroom_vault::EmbeddedBudgets::open(&dir))
                .await
                .map_err(|e| super::component("budgets", e))?
                .map_err(|e| super::component("budgets", e))?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        ApprovalStoreKind::Postgres => {
            let var = &config.postgres_url_env;
            let url = std::env::var(var).map_err(|_| {
                super::component(
                    "budgets",
                    format!("approvals.store = \"postgres\" needs the environment variable {var}"),
                )
            })?;
            // The error never quotes the connection string: name the variable only.
            let store = cloakroom_vault::PostgresBudgets::connect(&url)
                .await
                .map_err(|e| super::component("budgets", format!("PostgreSQL from {var}: {e}")))?;
            Ok(Arc::new(store))
        }
        ApprovalStoreKind::Memory => Ok(Arc::new(MemoryBudgets::new())),
        // A store compiled out: `Approvals::open` refused it before.
        #[allow(unreachable_patterns)]
        other => Err(super::component("budgets", format!("approvals.store = {:?} is not compiled in", other.as_str()))),
    }
}
