//! The `[audit]` section of `cloakroom.toml`.
//!
//! ```
//! use cloakroom_audit::{AuditConfig, Durability, OnFailure, SinkKind};
//! let c: AuditConfig = toml::from_str(r#"
//!     sink = "embedded"
//!     durability = "batched"
//!     export_jsonl = "./audit.jsonl"
//! "#).unwrap();
//! assert_eq!(c.sink, SinkKind::Embedded);
//! assert_eq!(c.durability, Durability::Batched);
//! assert_eq!(c.on_failure, OnFailure::Refuse);
//! assert_eq!(c.max_body_record_bytes, 65536);
//! ```

use std::path::PathBuf;

use cloakroom_core::{require_feature, MissingFeature};
use serde::{Deserialize, Serialize};

/// Where records are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Segment files in `server.data_dir` (`<data_dir>/audit`): one chain, this gateway's.
    /// Always there (no cargo feature).
    #[default]
    Embedded,
    /// A PostgreSQL table shared by every replica, one chain per replica (cargo feature
    /// `postgres`).
    Postgres,
}

impl SinkKind {
    /// Its name in `audit.sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Embedded => "embedded",
            SinkKind::Postgres => "postgres",
        }
    }

    /// The cargo feature of this crate the sink is compiled with; `None` for one that is
    /// always there.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            SinkKind::Embedded => None,
            SinkKind::Postgres => Some("postgres"),
        }
    }
}

/// Whether this build of the crate has `feature`.
#[allow(clippy::match_like_matches_macro)] // the arms' values are the build's features
fn compiled(feature: &str) -> bool {
    match feature {
        "postgres" => cfg!(feature = "postgres"),
        "sled" => cfg!(feature = "sled"),
        _ => false,
    }
}

/// When a record counts as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The record is on disk (flushed / committed) before the response to the caller
    /// completes; records of concurrent calls share one flush.
    #[default]
    Sync,
    /// Records are queued (bounded) and group-committed off the request path at least
    /// every 10 ms; a crash can lose the last few milliseconds.
    Batched,
}

/// What the gateway does when the audit sink cannot write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Refuse new calls with 503 `audit_unavailable` until the sink writes again: an
    /// unrecorded call must not happen.
    #[default]
    Refuse,
    /// Let calls through and count every record that could not be written in the
    /// `records_lost` metric.
    Continue,
}

/// `[audit]`: where and how every call is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `embedded` (segment files in `data_dir`, the default) or `postgres`.
    #[serde(default)]
    pub sink: SinkKind,
    /// `sync` (the default: on disk before the response completes) or `batched`
    /// (group commit at least every 10 ms, off the request path).
    #[serde(default)]
    pub durability: Durability,
    /// Whether request and response bodies are recorded (default `true`).
    #[serde(default = "default_record_bodies")]
    pub record_bodies: bool,
    /// At most this many bytes of each body are recorded; longer bodies are marked
    /// `truncated` (default 65536).
    #[serde(default = "default_max_body_record_bytes")]
    pub max_body_record_bytes: usize,
    /// The environment variable holding the PostgreSQL connection string (URL or
    /// key=value), for `sink = "postgres"`. Default `CLOAKROOM_POSTGRES_URL`. The string
    /// itself never goes in the config file: it usually carries a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_url_env: Option<String>,
    /// Also append every record, one JSON object per line, to this file (for a SIEM).
    /// A write failure there counts like a sink failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_jsonl: Option<PathBuf>,
    /// This replica's chain id. Default: a random id created once and kept in
    /// `<data_dir>/audit-replica-id`, so it survives restarts. Two replicas writing to
    /// one PostgreSQL table must have different ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// `refuse` (the default: refuse new calls with 503 `audit_unavailable` while the
    /// sink cannot write) or `continue` (let calls through and count lost records).
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// The environment variable read for the PostgreSQL connection string by default.
pub const DEFAULT_POSTGRES_URL_ENV: &str = "CLOAKROOM_POSTGRES_URL";

fn default_record_bodies() -> bool {
    true
}

fn default_max_body_record_bytes() -> usize {
    65536
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sink: SinkKind::default(),
            durability: Durability::default(),
            record_bodies: default_record_bodies(),
            max_body_record_bytes: default_max_body_record_bytes(),
            postgres_url_env: None,
            export_jsonl: None,
            chain_id: None,
            on_failure: OnFailure::default(),
        }
    }
}

impl AuditConfig {
    /// The environment variable that holds the PostgreSQL connection string.
    pub fn postgres_url_env(&self) -> &str {
        self.postgres_url_env.as_deref().unwrap_or(DEFAULT_POSTGRES_URL_ENV)
    }

    /// Refuses a `sink` this build was compiled without, naming the cargo feature it
    /// needs. [`AuditLog::open`](crate::AuditLog::open) checks it; the gateway checks it
    /// when it loads the configuration.
    pub fn check_features(&self) -> Result<(), MissingFeature> {
        self.check_features_with(compiled)
    }

    fn check_features_with(&self, compiled: impl Fn(&str) -> bool) -> Result<(), MissingFeature> {
        match self.sink.feature() {
            Some(feature) => {
                require_feature(compiled(feature), feature, format!("audit.sink = \"{}\"", self.sink.as_str()))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_spec_defaults() {
        let c: AuditConfig = toml::from_str("").unwrap();
        assert_eq!(c, AuditConfig::default());
        assert_eq!(c.sink, SinkKind::Embedded);
        assert_eq!(c.durability, Durability::Sync);
        assert!(c.record_bodies);
        assert_eq!(c.postgres_url_env(), "CLOAKROOM_POSTGRES_URL");
    }

    #[test]
    fn a_sink_compiled_out_is_refused_naming_its_feature() {
        let postgres = AuditConfig { sink: SinkKind::Postgres, ..AuditConfig::default() };
        let err = postgres.check_features_with(|_| false).unwrap_err();
        assert_eq!(err.feature(), "postgres");
        assert!(
            err.to_string()
                .starts_with("audit.sink = \"postgres\" needs Cloakroom built with the cargo feature `postgres`"),
            "{err}"
        );
        assert!(postgres.check_features_with(|_| true).is_ok());
        assert_eq!(postgres.check_features().is_ok(), compiled("postgres"));
        let embedded = AuditConfig::default();
        assert!(embedded.check_features_with(|_| false).is_ok(), "segment files are always there");
    }

    #[test]
    fn every_key_parses_and_unknown_keys_are_refused() {
        let c: AuditConfig = toml::from_str(
            r#"sink = "postgres"
               durability = "batched"
               record_bodies = false
               max_body_record_bytes = 10
               postgres_url_env = "PG"
               export_jsonl = "/tmp/a.jsonl"
               chain_id = "replica-a"
               on_failure = "continue""#,
        )
        .unwrap();
        assert_eq!(c.sink, SinkKind::Postgres);
        assert_eq!(c.on_failure, OnFailure::Continue);
        assert_eq!(c.chain_id.as_deref(), Some("replica-a"));
        assert_eq!(c.postgres_url_env(), "PG");
        let err = toml::from_str::<AuditConfig>("sinks = \"embedded\"").unwrap_err();
        assert!(err.to_string().contains("sinks"), "{err}");
    }
}
