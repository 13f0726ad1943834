//! [`Approvals::open`]: the approval store `[approvals]` names, opened the way every
//! embedder should open it.

use std::{path::Path, sync::Arc};

use super::{ApprovalStore, Approvals, MemoryApprovalStore};
use crate::{ApprovalStoreKind, ApprovalsConfig};

/// Why the approval store could not be opened. Never holds a connection string.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(String);

impl Approvals {
    /// Opens the store `config.store` names (`embedded`: sled under `data_dir/approvals`,
    /// opened on the blocking pool since it waits out a held lock; `postgres`: the URL
    /// in the environment variable `postgres_url_env`; `memory`: this process only) and
    /// builds the service over it. A store compiled out is refused naming its cargo
    /// feature.
    pub async fn open(config: &ApprovalsConfig, data_dir: &Path) -> Result<Self, OpenError> {
        config.check_features().map_err(|e| OpenError(e.to_string()))?;
        let store = open_store(config, data_dir).await?;
        Ok(Self::new(store, config.clone()))
    }
}

async fn open_store(config: &ApprovalsConfig, data_dir: &Path) -> Result<Arc<dyn ApprovalStore>, OpenError> {
    let _ = data_dir;
    match config.store {
        #[cfg(feature = "sled")]
        ApprovalStoreKind::Embedded => {
            let dir = data_dir.join("approvals");
            let store = tokio::task::spawn_blocking(move || super::SledApprovalStore::open(&dir))
                .await
                .map_err(|e| OpenError(e.to_string()))?
                .map_err(|e| OpenError(e.to_string()))?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        ApprovalStoreKind::Postgres => {
            let var = &config.postgres_url_env;
            let url = std::env::var(var)
                .map_err(|_| OpenError(format!("store = \"postgres\" needs the environment variable {var}")))?;
            // The error of a bad connection string may quote it: name the variable only.
            let store = super::PostgresApprovalStore::connect(&url)
                .await
                .map_err(|e| OpenError(format!("PostgreSQL from {var}: {e}")))?;
            Ok(Arc::new(store))
        }
        ApprovalStoreKind::Memory => {
            tracing::warn!("approvals.store = \"memory\": approvals are kept in this process only, lost when it exits");
            Ok(Arc::new(MemoryApprovalStore::new()))
        }
        // A store compiled out: `check_features` refused it above.
        #[allow(unreachable_patterns)]
        other => Err(OpenError(format!("approvals.store = {:?} is not compiled in", other.as_str()))),
    }
}
