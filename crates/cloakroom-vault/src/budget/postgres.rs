//! [`PostgresBudgets`]: uses counted in PostgreSQL, shared by every replica
//! (`approvals.store = "postgres"`, the same database and `approvals.postgres_url_env`).
//!
//! One table, `cloakroom_budget_uses`, created when the store opens (under an advisory
//! lock, so replicas starting together do not race). A call's counters are added to in
//! one transaction, each with
//! `INSERT … ON CONFLICT DO UPDATE SET uses = uses + 1 WHERE uses < limit RETURNING uses`:
//! the row lock serialises replicas on a counter and the `WHERE` is checked against the
//! latest committed count, so no window is ever over-spent. A counter at its limit
//! returns no row and the transaction is rolled back: the call spends nothing. Counters
//! are taken in one order (sorted) so two calls never wait on each other's rows.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{BudgetStore, BudgetStoreError, Counter};

/// The schema, one entry per version; applied in order, each once.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE cloakroom_budget_uses (
    secret      TEXT   NOT NULL,
    caller      TEXT   NOT NULL,
    period_secs BIGINT NOT NULL,
    window_no   BIGINT NOT NULL,
    uses        BIGINT NOT NULL,
    PRIMARY KEY (secret, period_secs, window_no, caller)
);
"#];

/// Arbitrary but fixed: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x636c_6f61_6b72_6d02;

/// How long one spend or count may take before the call is refused (fail closed).
const TIMEOUT: Duration = Duration::from_secs(5);

const SPEND: &str = "INSERT INTO cloakroom_budget_uses AS b (secret, caller, period_secs, window_no, uses) \
                     VALUES ($1, $2, $3, $4, 1) \
                     ON CONFLICT (secret, period_secs, window_no, caller) \
                     DO UPDATE SET uses = b.uses + 1 WHERE b.uses < $5 RETURNING uses";

/// Uses counted in PostgreSQL (table `cloakroom_budget_uses`).
#[derive(Clone)]
pub struct PostgresBudgets {
    pool: Pool,
}

impl std::fmt::Debug for PostgresBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: never print it.
        f.debug_struct("PostgresBudgets").finish_non_exhaustive()
    }
}

fn db(e: impl std::fmt::Display) -> BudgetStoreError {
    BudgetStoreError(format!("PostgreSQL: {e}"))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresBudgets {
    /// Connects with a libpq-style connection string (`host=… user=… dbname=…` or a
    /// `postgres://` URL) and creates the table if needed. The error never quotes it.
    pub async fn connect(conninfo: &str) -> Result<Self, BudgetStoreError> {
        let mut config = tokio_postgres::Config::from_str(conninfo)
            .map_err(|_| BudgetStoreError("PostgreSQL: invalid connection string".into()))?;
        config.connect_timeout(TIMEOUT);
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(16).build().map_err(db)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), BudgetStoreError> {
        let mut client = self.pool.get().await.map_err(db)?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS cloakroom_budget_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(db)?;
        let row =
            tx.query_one("SELECT COALESCE(MAX(version), 0) FROM cloakroom_budget_migrations", &[]).await.map_err(db)?;
        let applied: i32 = row.get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i32 + 1;
            if version > applied {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute("INSERT INTO cloakroom_budget_migrations (version) VALUES ($1)", &[&version])
                    .await
                    .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)
    }

    async fn spend_now(&self, counters: &[Counter]) -> Result<Option<usize>, BudgetStoreError> {
        let mut client = self.pool.get().await.map_err(db)?;
        let tx = client.transaction().await.map_err(db)?;
        let spend = tx.prepare_cached(SPEND).await.map_err(db)?;
        let mut new_windows = Vec::new();
        for (i, c) in counters.iter().enumerate() {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&c.secret, &c.caller, &int(c.period_secs), &int(c.window), &int(c.limit)];
            match tx.query_opt(&spend, &params).await.map_err(db)? {
                Some(row) => {
                    let uses: i64 = row.get(0);
                    if uses == 1 && c.period_secs > 0 {
                        new_windows.push(c);
                    }
                }
                None => {
                    tx.rollback().await.map_err(db)?;
                    return Ok(Some(i));
                }
            }
        }
        tx.commit().await.map_err(db)?;
        // A window began: forget the ones before the previous (after the commit, outside
        // the call's transaction; a failure here only leaves old rows behind). The
        // previous window stays: a replica whose clock lags a little is still counting in
        // it, and deleting it would give that replica the window's budget again.
        for c in new_windows {
            let forgotten = client
                .execute(
                    "DELETE FROM cloakroom_budget_uses WHERE secret = $1 AND period_secs = $2 AND window_no < $3",
                    &[&c.secret, &int(c.period_secs), &int(c.window.saturating_sub(1))],
                )
                .await;
            if let Err(e) = forgotten {
                tracing::debug!(error = %e, "forgetting ended budget windows failed");
            }
        }
        Ok(None)
    }

    async fn count_now(&self, secret: &str, period_secs: u64, window: u64) -> Result<u64, BudgetStoreError> {
        let client = self.pool.get().await.map_err(db)?;
        let row = client
            .query_one(
                "SELECT COALESCE(SUM(uses), 0)::BIGINT FROM cloakroom_budget_uses \
                 WHERE secret = $1 AND period_secs = $2 AND window_no = $3",
                &[&secret, &int(period_secs), &int(window)],
            )
            .await
            .map_err(db)?;
        let n: i64 = row.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T, BudgetStoreError>>) -> Result<T, BudgetStoreError> {
    tokio::time::timeout(TIMEOUT, f).await.unwrap_or_else(|_| Err(db("timed out")))
}

#[async_trait]
impl BudgetStore for PostgresBudgets {
    async fn spend(&self, counters: &[Counter]) -> Result<Option<usize>, BudgetStoreError> {
        timed(self.spend_now(counters)).await
    }

    async fn count(&self, secret: &str, period_secs: u64, window: u64) -> Result<u64, BudgetStoreError> {
        timed(self.count_now(secret, period_secs, window)).await
    }
}
