//! The PostgreSQL approval store, for several gateway replicas sharing approvals.
//!
//! Migrations are applied when the store opens (under an advisory lock, so replicas
//! starting together do not race). Every change is a single
//! `UPDATE … WHERE id = $1 AND revision = $2`: the row lock makes it a compare-and-set,
//! so of two replicas consuming one approval exactly one updates the row. The whole
//! scope, the requirements and the grants are stored, so an approval granted through one
//! replica is checked with the same binding on every other.

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use time::OffsetDateTime;
use tokio_postgres::{NoTls, Row};

use super::{Approval, ApprovalCounts, ApprovalState, ApprovalStore, Requester, StoreError};

/// The schema, one entry per version; applied in order, each once.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE cloakroom_approvals (
    id                TEXT PRIMARY KEY,
    requester_subject TEXT NOT NULL,
    requester_issuer  TEXT NOT NULL,
    requester_groups  JSONB NOT NULL,
    function          TEXT NOT NULL,
    digest            TEXT NOT NULL,
    arguments         JSONB NOT NULL,
    call_id           TEXT,
    rule              TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    approvers         JSONB NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'used')),
    decided_by        TEXT,
    decided_at        TIMESTAMPTZ,
    reason            TEXT,
    used_at           TIMESTAMPTZ
);
CREATE INDEX cloakroom_approvals_created ON cloakroom_approvals (created_at DESC);
"#,
    r#"
ALTER TABLE cloakroom_approvals
    ADD COLUMN scope        JSONB,
    ADD COLUMN why          TEXT,
    ADD COLUMN requirements JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN grants       JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN used_by_call TEXT,
    ADD COLUMN revision     BIGINT NOT NULL DEFAULT 0;
"#,
];

/// Arbitrary but fixed: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x636c_6f61_6b72_6d01;

const COLUMNS: &str = "id, requester_subject, requester_issuer, requester_groups, function, digest, arguments, \
                       call_id, rule, created_at, expires_at, approvers, state, decided_by, decided_at, reason, used_at, \
                       scope, why, requirements, grants, used_by_call, revision";

/// Approvals in PostgreSQL (table `cloakroom_approvals`).
#[derive(Clone)]
pub struct PostgresApprovalStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: never print it.
        f.debug_struct("PostgresApprovalStore").finish_non_exhaustive()
    }
}

impl PostgresApprovalStore {
    /// Connects with a libpq-style connection string (`host=… user=… dbname=…` or a
    /// `postgres://` URL) and applies migrations.
    pub async fn connect(conninfo: &str) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(conninfo)?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(8).build().map_err(|e| StoreError::Pool(e.to_string()))?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool and applies migrations.
    pub async fn with_pool(pool: Pool) -> Result<Self, StoreError> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS cloakroom_approvals_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let row = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM cloakroom_approvals_migrations", &[]).await?;
        let applied: i32 = row.get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i32 + 1;
            if version > applied {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO cloakroom_approvals_migrations (version) VALUES ($1)", &[&version]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

fn from_row(row: &Row) -> Result<Approval, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    let groups: serde_json::Value = row.try_get("requester_groups")?;
    let approvers: serde_json::Value = row.try_get("approvers")?;
    let state: String = row.try_get("state")?;
    Ok(Approval {
        id: row.try_get("id")?,
        requester: Requester {
            subject: row.try_get("requester_subject")?,
            issuer: row.try_get("requester_issuer")?,
            groups: serde_json::from_value(groups).map_err(|_| corrupt("requester_groups"))?,
        },
        function: row.try_get("function")?,
        digest: row.try_get("digest")?,
        arguments: row.try_get("arguments")?,
        call_id: row.try_get("call_id")?,
        rule: row.try_get("rule")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        approvers: serde_json::from_value(approvers).map_err(|_| corrupt("approvers"))?,
        state: ApprovalState::parse(&state).ok_or_else(|| corrupt("state"))?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        reason: row.try_get("reason")?,
        used_at: row.try_get("used_at")?,
        scope: match row.try_get::<_, Option<serde_json::Value>>("scope")? {
            None => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|_| corrupt("scope"))?),
        },
        why: row.try_get("why")?,
        requirements: serde_json::from_value(row.try_get("requirements")?).map_err(|_| corrupt("requirements"))?,
        grants: serde_json::from_value(row.try_get("grants")?).map_err(|_| corrupt("grants"))?,
        used_by_call: row.try_get("used_by_call")?,
        revision: row.try_get("revision")?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl ApprovalStore for PostgresApprovalStore {
    async fn insert(&self, a: &Approval) -> Result<(), StoreError> {
        let client = self.client().await?;
        let groups = to_json(&a.requester.groups)?;
        let approvers = to_json(&a.approvers)?;
        let scope = a.scope.as_ref().map(to_json).transpose()?;
        let (requirements, grants) = (to_json(&a.requirements)?, to_json(&a.grants)?);
        client
            .execute(
                &format!(
                    "INSERT INTO cloakroom_approvals ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21, $22, $23)"
                ),
                &[
                    &a.id,
                    &a.requester.subject,
                    &a.requester.issuer,
                    &groups,
                    &a.function,
                    &a.digest,
                    &a.arguments,
                    &a.call_id,
                    &a.rule,
                    &a.created_at,
                    &a.expires_at,
                    &approvers,
                    &a.state.as_str(),
                    &a.decided_by,
                    &a.decided_at,
                    &a.reason,
                    &a.used_at,
                    &scope,
                    &a.why,
                    &requirements,
                    &grants,
                    &a.used_by_call,
                    &a.revision,
                ],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt(&format!("SELECT {COLUMNS} FROM cloakroom_approvals WHERE id = $1"), &[&id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list(
        &self,
        state: Option<ApprovalState>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Expiry is evaluated against `now` ($1), as `Approval::state_at` does.
        let filter = match state {
            None => "TRUE",
            Some(ApprovalState::Pending) => "state = 'pending' AND expires_at > $1",
            Some(ApprovalState::Approved) => "state = 'approved' AND expires_at > $1",
            Some(ApprovalState::Expired) => {
                "(state = 'expired' OR (state IN ('pending', 'approved') AND expires_at <= $1))"
            }
            Some(ApprovalState::Denied) => "state = 'denied'",
            Some(ApprovalState::Used) => "state = 'used'",
        };
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM cloakroom_approvals WHERE {filter} AND $1::timestamptz IS NOT NULL \
                     ORDER BY created_at DESC, id DESC LIMIT $2"
                ),
                &[&now, &limit],
            )
            .await?;
        rows.iter().map(|r| from_row(r).map(|a| a.at(now))).collect()
    }

    async fn counts(&self, now: OffsetDateTime) -> Result<ApprovalCounts, StoreError> {
        let client = self.client().await?;
        // Expiry as of `now` ($1), as `Approval::state_at` does.
        let rows = client
            .query(
                "SELECT CASE WHEN state IN ('pending', 'approved') AND expires_at <= $1 THEN 'expired' ELSE state END, \
                 count(*) FROM cloakroom_approvals GROUP BY 1",
                &[&now],
            )
            .await?;
        let mut counts = ApprovalCounts::default();
        for row in rows {
            let (state, n): (String, i64) = (row.get(0), row.get(1));
            let state = ApprovalState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?;
            counts.add(state, u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
    }

    async fn replace(&self, current: &Approval, a: &Approval) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let (requirements, grants) = (to_json(&a.requirements)?, to_json(&a.grants)?);
        let n = client
            .execute(
                "UPDATE cloakroom_approvals \
                 SET state = $3, decided_by = $4, decided_at = $5, reason = $6, used_at = $7, expires_at = $8, \
                     requirements = $9, grants = $10, used_by_call = $11, revision = $12 \
                 WHERE id = $1 AND revision = $2",
                &[
                    &current.id,
                    &current.revision,
                    &a.state.as_str(),
                    &a.decided_by,
                    &a.decided_at,
                    &a.reason,
                    &a.used_at,
                    &a.expires_at,
                    &requirements,
                    &grants,
                    &a.used_by_call,
                    &a.revision,
                ],
            )
            .await?;
        Ok(n == 1)
    }
}
