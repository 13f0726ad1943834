//! The `[policy]` and `[approvals]` sections of `cloakroom.toml`.
//!
//! ```
//! use cloakroom_policy::{ApprovalsConfig, PolicyConfig};
//!
//! #[derive(serde::Deserialize)]
//! struct File { policy: PolicyConfig, approvals: ApprovalsConfig }
//!
//! let f: File = toml::from_str(r#"
//!     [[policy.rules]]
//!     name = "payments-ops may call payments"
//!     effect = "allow"
//!     functions = ["payments/*"]
//!     groups = ["payments-ops"]
//!     source_cidrs = ["127.0.0.0/8", "::1/128"]
//!
//!     [[policy.datalog]]
//!     file = "policies/payments.datalog"
//!
//!     [approvals]
//!     wait = "0s"
//!     ttl = "15m"
//!     webhooks = ["https://hooks.slack.com/services/T000/B000/XXXX"]
//! "#).unwrap();
//! assert_eq!(f.policy.rules.len(), 1);
//! assert_eq!(f.approvals.ttl, std::time::Duration::from_secs(900));
//! assert_eq!(f.approvals.store, cloakroom_policy::ApprovalStoreKind::Embedded);
//! ```

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use cloakroom_core::{require_feature, Effect, MissingFeature};
use serde::{Deserialize, Serialize};

/// The `[policy]` table: built-in rules and Datalog policy files, evaluated together
/// (deny-overrides, deny by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The built-in rules, `[[policy.rules]]`, in any order (order does not change the
    /// outcome: a matching `deny` always wins).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Biscuit Datalog policy files, `[[policy.datalog]]`.
    #[serde(default)]
    pub datalog: Vec<DatalogConfig>,
    /// Bounds on every Datalog evaluation, `[policy.datalog_limits]`, so that a hostile
    /// token or a runaway rule cannot stall the gateway.
    #[serde(default)]
    pub datalog_limits: DatalogLimitsConfig,
}

/// One `[[policy.rules]]` entry. A field left empty (or out) places no condition:
/// it matches any value. A rule matches a call when every field matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name; it is shown in decisions, denials, audit records and `explain`.
    pub name: String,
    /// What a match means: `allow`, `deny` or `approve` (a person must approve first).
    pub effect: Effect,
    /// Function-name globs (`payments/*`, `**`); `*` stays within a `/` segment.
    #[serde(default)]
    pub functions: Vec<String>,
    /// The caller must be in at least one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The caller's subject must be one of these (exact match).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The caller's address must be in one of these CIDRs (IPv4 or IPv6). A call whose
    /// source address is unknown does not match a rule that lists CIDRs.
    #[serde(default)]
    pub source_cidrs: Vec<String>,
    /// The HTTP method of the request must be one of these (case-insensitive).
    #[serde(default)]
    pub methods: Vec<String>,
    /// JSON pointer -> regex; every listed argument must be present and match. Strings
    /// are matched as they are; other values against their compact JSON text
    /// (`42`, `true`, `null`, `{"a":1}`). A pointer absent from the arguments does not match.
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// With `effect = "approve"`: the groups whose members may approve (required then,
    /// and refused with any other effect).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// `enforce` (the default) or `shadow`: a shadow rule is evaluated on every call and
    /// its would-be effect recorded in the audit record and counted, but not enforced.
    #[serde(default)]
    pub mode: RuleMode,
}

/// Whether a rule's effect is enforced (`policy.rules[].mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMode {
    /// The rule decides calls.
    #[default]
    Enforce,
    /// The rule is evaluated and its would-be effect recorded (`shadow` in the audit
    /// record, `cloakroom_policy_shadow_total`), but it changes no decision.
    Shadow,
}

impl RuleMode {
    /// The mode's name as in configuration.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleMode::Enforce => "enforce",
            RuleMode::Shadow => "shadow",
        }
    }
}

/// One `[[policy.datalog]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatalogConfig {
    /// A file of Biscuit Datalog: facts, rules, checks and `allow if …` / `deny if …`
    /// policies. Relative paths are resolved against the configuration file's directory
    /// by the caller that loads the configuration.
    pub file: PathBuf,
}

/// `[policy.datalog_limits]`: per-call bounds for every Datalog evaluation. A call whose
/// evaluation exceeds one is denied with a reason naming the limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatalogLimitsConfig {
    /// Most facts the evaluation may hold (the call's own facts included).
    #[serde(default = "default_max_facts")]
    pub max_facts: u64,
    /// Most rounds of rule application.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u64,
    /// Longest time one evaluation may run.
    #[serde(default = "default_max_time", with = "humantime_serde")]
    pub max_time: Duration,
}

fn default_max_facts() -> u64 {
    1000
}
fn default_max_iterations() -> u64 {
    100
}
fn default_max_time() -> Duration {
    Duration::from_millis(20)
}

impl Default for DatalogLimitsConfig {
    fn default() -> Self {
        Self { max_facts: default_max_facts(), max_iterations: default_max_iterations(), max_time: default_max_time() }
    }
}

/// The `[approvals]` table.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Greater than zero: hold a call that needs approval open this long, waiting for a
    /// decision, before answering `202 pending_approval`. `"0s"` answers at once.
    #[serde(default, with = "humantime_serde")]
    pub wait: Duration,
    /// How long an approval request stays pending, and how long a granted approval stays
    /// valid for that exact call (caller, function, argument digest).
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// Webhook URLs (Slack-compatible incoming webhooks) that receive a link-free
    /// `{"text": …}` summary of every new pending approval. Delivery is retried a few
    /// times and never delays the call.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Where approvals live: `embedded` (default; sled in `server.data_dir/approvals`,
    /// one gateway only), `postgres` (table `cloakroom_approvals`, shared by several
    /// replicas: an approval requested on one can be decided and used on another, once)
    /// or `memory` (this process only, not durable).
    #[serde(default)]
    pub store: ApprovalStoreKind,
    /// With `store = "postgres"`: the environment variable holding the PostgreSQL
    /// connection string (a `postgres://` URL or libpq key=value). Default
    /// `CLOAKROOM_POSTGRES_URL`. The string itself never goes in the file: it may hold a
    /// password.
    #[serde(default = "default_postgres_url_env")]
    pub postgres_url_env: String,
    /// `[approvals.slack]`: post new approvals to a Slack channel with Approve / Deny
    /// buttons, decided by mapped Slack users through `POST /v1/slack/interactions`.
    #[serde(default)]
    pub slack: Option<SlackConfig>,
}

/// `[approvals.slack]`: a Slack app that posts approvals and takes decisions.
///
/// The bot token and the signing secret are read from the environment variables named
/// here (never from the file). Only Slack users listed in `users` can decide, as the
/// Cloakroom identity they map to: the same separation-of-duties and group rules as the
/// admin API apply.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The environment variable holding the bot token (`xoxb-…`, scope `chat:write`).
    pub bot_token_env: String,
    /// The environment variable holding the app's signing secret, which authenticates
    /// every interaction Slack sends.
    pub signing_secret_env: String,
    /// The channel approvals are posted to (an id such as `C0123456789`; the bot must
    /// be a member).
    pub channel: String,
    /// The Slack Web API base URL. Default `https://slack.com/api`.
    #[serde(default = "default_slack_api_url")]
    pub api_url: String,
    /// When set, interactions from any other workspace (team id) are refused, even when
    /// correctly signed (an app installed in several workspaces signs for all of them).
    #[serde(default)]
    pub team_id: Option<String>,
    /// Slack user id (`U…`) -> the Cloakroom identity that user decides as. A user
    /// who is not listed cannot decide anything.
    #[serde(default)]
    pub users: BTreeMap<String, SlackUser>,
}

/// One `[approvals.slack.users]` entry: who a Slack user is to Cloakroom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// The subject, as the person's other credentials name them (their API key's or
    /// OIDC subject), so that they cannot approve their own calls from Slack either.
    pub subject: String,
    /// The issuer recorded with their grants. Default `slack`.
    #[serde(default = "default_slack_issuer")]
    pub issuer: String,
    /// Their groups, as approver groups are named in rules and secret bindings.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_slack_api_url() -> String {
    "https://slack.com/api".into()
}

fn default_slack_issuer() -> String {
    "slack".into()
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the names of the variables are here, but say so explicitly.
        f.debug_struct("SlackConfig")
            .field("bot_token_env", &self.bot_token_env)
            .field("signing_secret_env", &self.signing_secret_env)
            .field("channel", &self.channel)
            .field("api_url", &self.api_url)
            .field("team_id", &self.team_id)
            .field("users", &self.users.len())
            .finish()
    }
}

/// `approvals.store`: which store holds approvals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStoreKind {
    /// sled in `server.data_dir/approvals` (a single gateway; cargo feature `sled`).
    #[default]
    Embedded,
    /// PostgreSQL, for several replicas sharing approvals (cargo feature `postgres`).
    Postgres,
    /// This process's memory: not durable, every approval is forgotten when it exits,
    /// and no other replica sees it. For tests, `--dev` and builds without `sled`.
    Memory,
}

impl ApprovalStoreKind {
    /// Its name in `approvals.store`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStoreKind::Embedded => "embedded",
            ApprovalStoreKind::Postgres => "postgres",
            ApprovalStoreKind::Memory => "memory",
        }
    }

    /// The cargo feature of this crate the store is compiled with; `None` for one that is
    /// always there.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            ApprovalStoreKind::Embedded => Some("sled"),
            ApprovalStoreKind::Postgres => Some("postgres"),
            ApprovalStoreKind::Memory => None,
        }
    }
}

/// Whether this build of the crate has `feature`.
#[allow(clippy::match_like_matches_macro)] // the arms' values are the build's features
fn compiled(feature: &str) -> bool {
    match feature {
        "sled" => cfg!(feature = "sled"),
        "postgres" => cfg!(feature = "postgres"),
        "webhooks" => cfg!(feature = "webhooks"),
        _ => false,
    }
}

impl ApprovalsConfig {
    /// Refuses what this build was compiled without, naming the cargo feature it needs: a
    /// `store` (`sled`, `postgres`), `webhooks` or `[approvals.slack]` (`webhooks`). The
    /// gateway checks it when it loads the configuration (the store is opened by the
    /// embedder, so [`Approvals::new`](crate::Approvals::new) cannot refuse it).
    pub fn check_features(&self) -> Result<(), MissingFeature> {
        self.check_features_with(compiled)
    }

    fn check_features_with(&self, compiled: impl Fn(&str) -> bool) -> Result<(), MissingFeature> {
        if let Some(feature) = self.store.feature() {
            require_feature(compiled(feature), feature, format!("approvals.store = \"{}\"", self.store.as_str()))?;
        }
        if !self.webhooks.is_empty() {
            require_feature(compiled("webhooks"), "webhooks", "approvals.webhooks")?;
        }
        if self.slack.is_some() {
            require_feature(compiled("webhooks"), "webhooks", "[approvals.slack]")?;
        }
        Ok(())
    }
}

fn default_postgres_url_env() -> String {
    "CLOAKROOM_POSTGRES_URL".into()
}

impl std::fmt::Debug for ApprovalsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Incoming-webhook URLs carry their own credential in the path: count, never print.
        f.debug_struct("ApprovalsConfig")
            .field("wait", &self.wait)
            .field("ttl", &self.ttl)
            .field("webhooks", &format_args!("[{} redacted]", self.webhooks.len()))
            .field("store", &self.store)
            .field("postgres_url_env", &self.postgres_url_env)
            .field("slack", &self.slack)
            .finish()
    }
}

fn default_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            wait: Duration::ZERO,
            ttl: default_ttl(),
            webhooks: Vec::new(),
            store: ApprovalStoreKind::Embedded,
            postgres_url_env: default_postgres_url_env(),
            slack: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approvals(text: &str) -> ApprovalsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_store_compiled_out_is_refused_naming_its_feature() {
        for (store, feature) in [("embedded", "sled"), ("postgres", "postgres")] {
            let config = approvals(&format!("store = \"{store}\""));
            let err = config.check_features_with(|_| false).unwrap_err();
            assert_eq!(err.feature(), feature);
            let wanted =
                format!("approvals.store = \"{store}\" needs Cloakroom built with the cargo feature `{feature}`");
            assert!(err.to_string().starts_with(&wanted), "{err}");
            assert!(config.check_features_with(|_| true).is_ok());
            assert_eq!(config.check_features().is_ok(), compiled(feature), "{store} in this build");
        }
        let memory = approvals("store = \"memory\"");
        assert_eq!(memory.store, ApprovalStoreKind::Memory);
        assert!(memory.check_features_with(|_| false).is_ok(), "the memory store is always there");
    }

    #[test]
    fn webhooks_and_slack_compiled_out_are_refused_naming_the_feature() {
        let only = |f: &'static str| move |name: &str| name != f;
        let hooks = approvals("store = \"memory\"\nwebhooks = [\"https://hooks.example/T/B/X\"]");
        let err = hooks.check_features_with(only("webhooks")).unwrap_err();
        assert_eq!((err.feature(), err.what()), ("webhooks", "approvals.webhooks"));
        let slack = approvals(
            "store = \"memory\"\n[slack]\nbot_token_env = \"T\"\nsigning_secret_env = \"S\"\nchannel = \"C1\"",
        );
        let err = slack.check_features_with(only("webhooks")).unwrap_err();
        assert_eq!((err.feature(), err.what()), ("webhooks", "[approvals.slack]"));
        assert!(slack.check_features_with(|_| true).is_ok());
    }
}
