//! The PostgreSQL store: one table shared by every replica, one chain per replica.
//!
//! Each replica appends only to its own chain (`chain_id`), so replicas never contend
//! on one chain head; the primary key `(chain_id, seq)` makes a second writer on the same
//! chain fail instead of forking it. The record is kept as the canonical text that was
//! hashed (`record TEXT`, not `jsonb`, which would rewrite it). Migrations run on start,
//! serialized between replicas by an advisory lock.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{AuditSink, AuditStore, RecordQuery, SealedRecord, Since, SinkError};

/// The table records are kept in.
pub const POSTGRES_TABLE: &str = "cloakroom_audit_records";

/// Migrations in order; `cloakroom_audit_migrations` remembers which ran.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE cloakroom_audit_records (
         chain_id TEXT NOT NULL,
         seq BIGINT NOT NULL CHECK (seq > 0),
         call_id TEXT NOT NULL,
         time TEXT NOT NULL,
         hash TEXT NOT NULL,
         record TEXT NOT NULL,
         PRIMARY KEY (chain_id, seq)
     );
     CREATE INDEX cloakroom_audit_records_call_id ON cloakroom_audit_records (call_id);
     CREATE INDEX cloakroom_audit_records_time ON cloakroom_audit_records (time);",
)];

/// An arbitrary constant naming the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x636c_6f61_6b61_7564;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresSink {
    pool: Pool,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: never print it.
        f.debug_struct("PostgresSink").finish_non_exhaustive()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl PostgresSink {
    /// Connects with a libpq connection string (URL or key=value) and applies migrations.
    pub async fn connect(conninfo: &str) -> Result<Self, SinkError> {
        let config: tokio_postgres::Config = conninfo.parse()?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(8).build().map_err(|e| SinkError::Pool(e.to_string()))?;
        let sink = Self { pool };
        sink.migrate().await?;
        Ok(sink)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SinkError> {
        self.pool.get().await.map_err(|e| SinkError::Pool(e.to_string()))
    }

    async fn migrate(&self) -> Result<(), SinkError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS cloakroom_audit_migrations (
                 version INT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        for (version, sql) in MIGRATIONS {
            let done = tx.query_opt("SELECT 1 FROM cloakroom_audit_migrations WHERE version = $1", &[version]).await?;
            if done.is_none() {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO cloakroom_audit_migrations (version) VALUES ($1)", &[version]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl AuditSink for PostgresSink {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn append(&self, batch: &[SealedRecord]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let chains: Vec<&str> = batch.iter().map(|r| r.chain_id.as_str()).collect();
        let seqs: Vec<i64> = batch.iter().map(|r| to_i64(r.seq)).collect();
        let ids: Vec<&str> = batch.iter().map(|r| r.call_id.as_str()).collect();
        let times: Vec<&str> = batch.iter().map(|r| r.time.as_str()).collect();
        let hashes: Vec<&str> = batch.iter().map(|r| r.hash.as_str()).collect();
        let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
        let client = self.client().await?;
        // One statement: atomic, and committed (durable) when it returns.
        let res = client
            .execute(
                "INSERT INTO cloakroom_audit_records (chain_id, seq, call_id, time, hash, record)
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[])",
                &[&chains, &seqs, &ids, &times, &hashes, &texts],
            )
            .await;
        match res {
            Ok(_) => Ok(()),
            // A retry of a batch whose commit succeeded but whose answer was lost: if
            // exactly these records are stored, the batch is written.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                let stored: i64 = client
                    .query_one(
                        "SELECT count(*) FROM cloakroom_audit_records r
                         JOIN UNNEST($1::text[], $2::int8[], $3::text[]) AS b(chain_id, seq, hash)
                           ON r.chain_id = b.chain_id AND r.seq = b.seq AND r.hash = b.hash",
                        &[&chains, &seqs, &hashes],
                    )
                    .await?
                    .get(0);
                if stored == batch.len() as i64 {
                    Ok(())
                } else {
                    Err(e.into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl AuditStore for PostgresSink {
    async fn head(&self, chain_id: &str) -> Result<Option<(u64, String)>, SinkError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT seq, hash FROM cloakroom_audit_records WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&chain_id],
            )
            .await?;
        Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
    }

    async fn chain_ids(&self) -> Result<Vec<String>, SinkError> {
        let client = self.client().await?;
        let rows = client.query("SELECT DISTINCT chain_id FROM cloakroom_audit_records ORDER BY chain_id", &[]).await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }

    async fn scan(&self, chain_id: &str, after: Option<u64>, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SinkError> {
        let client = self.client().await?;
        let after = after.map(to_i64).unwrap_or(i64::MIN);
        let rows = client
            .query(
                "SELECT seq, record FROM cloakroom_audit_records
                 WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&chain_id, &after, &to_i64(limit as u64)],
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1).into_bytes())).collect())
    }

    async fn query(&self, query: &RecordQuery, local_chain: &str) -> Result<Vec<Vec<u8>>, SinkError> {
        let client = self.client().await?;
        let limit = to_i64(query.limit as u64);
        let rows = match (query.since, &query.chain_id) {
            (Since::Seq(seq), chain) => {
                let chain = chain.as_deref().unwrap_or(local_chain);
                client
                    .query(
                        "SELECT record FROM cloakroom_audit_records
                         WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                        &[&chain, &to_i64(seq), &limit],
                    )
                    .await?
            }
            (since, chain) => {
                let from = match since {
                    Since::Time(t) => crate::record::format_time(t),
                    _ => String::new(),
                };
                client
                    .query(
                        "SELECT record FROM cloakroom_audit_records
                         WHERE time >= $1 AND ($2::text IS NULL OR chain_id = $2)
                         ORDER BY time, chain_id, seq LIMIT $3",
                        &[&from, chain, &limit],
                    )
                    .await?
            }
        };
        Ok(rows.into_iter().map(|r| r.get::<_, String>(0).into_bytes()).collect())
    }

    async fn find(&self, call_id: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT record FROM cloakroom_audit_records WHERE call_id = $1 LIMIT 1", &[&call_id])
            .await?;
        Ok(row.map(|r| r.get::<_, String>(0).into_bytes()))
    }
}
