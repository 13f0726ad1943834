//! Just-in-time approvals: requests, decisions by approvers, one-time redemption.
//!
//! A call whose decision is `approve` creates an [`Approval`] (pending) bound to the
//! call's whole [`CallScope`]: the caller, the function, the method, the path and query,
//! the content type, every placeholder with its location, and the body digest. It
//! carries one [`Requirement`] per approver group the call needs (every matching
//! `approve` rule's approvers and every used secret's `approvers`); each must be met by
//! a distinct person in that group who is not the requester ([`approval_requirements`]
//! (crate::approval_requirements)). Once every requirement is met the approval is
//! granted, valid for `approvals.ttl`, for a call with exactly that scope, and consumed
//! by its first use. Every change is a compare-and-set on the record's revision, so two
//! gateway replicas sharing a PostgreSQL store can never both consume one approval, and
//! two approvers deciding at once never lose a grant.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cloakroom_core::{AuthMethod, CallId, CallScope, Decision, Identity};
//! use cloakroom_policy::{ApprovalState, Approvals, ApprovalsConfig, SledApprovalStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
//! let approvals = Approvals::new(store, ApprovalsConfig::default());
//! let who = |s: &str, g: &str| {
//!     Identity::new(s.into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec![g.into()])
//! };
//! let scope = CallScope { issuer: "api_key".into(), subject: "alice".into(),
//!     function: "payments/refund".into(), method: "POST".into(), path: "/refund".into(),
//!     query: String::new(), content_type: Some("application/json".into()), placeholders: vec![],
//!     body_sha256: CallScope::body_digest(br#"{"amount": 900}"#) };
//! let decision = Decision::approve("big refunds", "approval required", vec!["finance".into()]);
//!
//! let args = serde_json::json!({"amount": 900});
//! let a = approvals.request(&who("alice", "ops"), &scope, &args, &decision, None).await.unwrap();
//! assert!(approvals.approve(&a.id, &who("alice", "finance"), None).await.is_err()); // own request
//! approvals.approve(&a.id, &who("carol", "finance"), None).await.unwrap();
//! let mut other = scope.clone();
//! other.method = "DELETE".into();
//! assert!(approvals.redeem(&a.id, &who("alice", "ops"), &other, CallId::new()).await.is_err()); // another call
//! let used = approvals.redeem(&a.id, &who("alice", "ops"), &scope, CallId::new()).await.unwrap();
//! assert_eq!(used.state, ApprovalState::Used);
//! assert!(approvals.redeem(&a.id, &who("alice", "ops"), &scope, CallId::new()).await.is_err()); // used once
//! # });
//! ```

mod memory;
mod open;
#[cfg(feature = "postgres")]
mod postgres;
pub mod requirements;
#[cfg(feature = "webhooks")]
pub mod slack;
#[cfg(feature = "sled")]
mod sled_store;
#[cfg(feature = "webhooks")]
mod webhook;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use cloakroom_core::{
    ApprovalLookup, ApprovalRef, CallId, CallScope, ConsumedApproval, Decision, Error, ErrorCode, Identity,
    LookupFuture,
};
use serde::{Deserialize, Serialize};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

pub use memory::MemoryApprovalStore;
pub use open::OpenError;
#[cfg(feature = "postgres")]
pub use postgres::PostgresApprovalStore;
pub use requirements::{Grant, Requirement};
#[cfg(feature = "webhooks")]
pub use slack::SlackApp;
#[cfg(feature = "sled")]
pub use sled_store::SledApprovalStore;
#[cfg(feature = "webhooks")]
pub use webhook::WebhookNotifier;

use crate::ApprovalsConfig;

/// The life of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for approvers: not every requirement is met yet.
    Pending,
    /// Every requirement met; usable once until it expires.
    Approved,
    /// Refused by an approver.
    Denied,
    /// Not decided (pending) or not used (approved) in time.
    Expired,
    /// Granted and used by the call it was for.
    Used,
}

impl ApprovalState {
    /// The state's name (`pending`, `approved`, …) as stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Used => "used",
        }
    }

    /// The state a record stored as `self` with expiry `expires_at` is in at `now`: a
    /// pending or approved request past its expiry is expired.
    pub fn as_of(self, expires_at: OffsetDateTime, now: OffsetDateTime) -> ApprovalState {
        match self {
            ApprovalState::Pending | ApprovalState::Approved if now >= expires_at => ApprovalState::Expired,
            s => s,
        }
    }

    /// Every state, in the order of its life.
    pub const ALL: [ApprovalState; 5] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Expired,
        ApprovalState::Used,
    ];

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            "used" => ApprovalState::Used,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked for an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The caller's subject.
    pub subject: String,
    /// The caller's issuer.
    pub issuer: String,
    /// The caller's groups when they asked.
    pub groups: Vec<String>,
}

/// How many approvals a store holds in each state (as of a moment: expiry counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApprovalCounts([u64; 5]);

impl ApprovalCounts {
    /// Counts one more in `state`.
    pub fn add(&mut self, state: ApprovalState, n: u64) {
        self.0[Self::index(state)] += n;
    }

    /// How many are in `state`.
    pub fn get(&self, state: ApprovalState) -> u64 {
        self.0[Self::index(state)]
    }

    fn index(state: ApprovalState) -> usize {
        ApprovalState::ALL.iter().position(|s| *s == state).unwrap_or(0)
    }
}

/// The most JSON text of a call's arguments an approval keeps to show approvers
/// (16 KiB), so that a caller cannot make every approval it asks for as large as a
/// request body, and every list of approvals (the console's inbox, the API) that large
/// in memory. What the approval is bound to is the call's digest, not this.
pub const MAX_SHOWN_ARGUMENTS_BYTES: usize = 16 * 1024;

/// Longest string shown whole in shortened arguments, in characters.
const SHOWN_STRING_CHARS: usize = 256;
/// Most elements of an array shown in shortened arguments.
const SHOWN_ARRAY_ITEMS: usize = 32;

/// `arguments` as an approval keeps them. Up to [`MAX_SHOWN_ARGUMENTS_BYTES`] of JSON
/// text: as they are. Longer: shortened where it hides no name — every object keeps
/// every key (a field that decides the call, such as `amount`, cannot be pushed out of
/// view by padding before it), strings keep their first 256 characters and say how
/// much more there was, arrays their first 32 elements and a count of the rest. If
/// that is still too long (a body of thousands of keys): the marker
/// `{"cloakroom_truncated": {"bytes": N, "shown": "<the first 16 KiB of the text>"}}`,
/// which the console shows as a warning.
pub fn shown_arguments(arguments: serde_json::Value) -> serde_json::Value {
    let fits = |v: &serde_json::Value| {
        let text = serde_json::to_string(v).unwrap_or_default();
        (text.len() <= MAX_SHOWN_ARGUMENTS_BYTES, text)
    };
    let (whole, text) = fits(&arguments);
    if whole {
        return arguments;
    }
    let shortened = shorten(arguments);
    if fits(&shortened).0 {
        return shortened;
    }
    let mut cut = MAX_SHOWN_ARGUMENTS_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::json!({ "cloakroom_truncated": { "bytes": text.len(), "shown": &text[..cut] } })
}

fn shorten(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().count() > SHOWN_STRING_CHARS => {
            let kept: String = s.chars().take(SHOWN_STRING_CHARS).collect();
            let more = s.len() - kept.len();
            Value::String(format!("{kept}… [{more} more bytes not shown]"))
        }
        Value::Array(items) => {
            let total = items.len();
            let mut kept: Vec<Value> = items.into_iter().take(SHOWN_ARRAY_ITEMS).map(shorten).collect();
            if total > SHOWN_ARRAY_ITEMS {
                kept.push(Value::String(format!("… [{} more items not shown]", total - SHOWN_ARRAY_ITEMS)));
            }
            Value::Array(kept)
        }
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, shorten(v))).collect()),
        other => other,
    }
}

/// An approval request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The approval id (a UUIDv7), the value of `Cloakroom-Approval`.
    pub id: String,
    /// Who asked.
    pub requester: Requester,
    /// The function called.
    pub function: String,
    /// [`CallScope::digest`] of the call the approval is for: a call is accepted under it
    /// only when its own scope has exactly this digest.
    pub digest: String,
    /// The call as approvers see it: method, path, query (masked), content type, secrets
    /// by name and location, body digest. `None` only in records written before scopes.
    #[serde(default)]
    pub scope: Option<CallScope>,
    /// The arguments as shown to approvers, after the gateway's redaction.
    pub arguments: serde_json::Value,
    /// The id of the call that asked.
    #[serde(default)]
    pub call_id: Option<String>,
    /// The rule that required approval (the first; `reason` names every source).
    #[serde(default)]
    pub rule: Option<String>,
    /// Why approval is required: every rule and secret that asked for it.
    #[serde(default)]
    pub why: Option<String>,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when it may be decided (pending) or used (approved).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The approver groups the call needs, one requirement each.
    pub approvers: Vec<String>,
    /// Each requirement and whether a distinct approver meets it.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Everyone who approved, in order.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// Where it is in its life.
    pub state: ApprovalState,
    /// Who decided: the approvers who met the requirements (comma-separated), or the
    /// approver who denied.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When it was decided (every requirement met, or denied).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The denying approver's reason, if they gave one.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the approved call used it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
    /// The call that used it.
    #[serde(default)]
    pub used_by_call: Option<String>,
    /// Bumped by every change; the store's compare-and-set compares it.
    #[serde(default)]
    pub revision: i64,
}

impl Approval {
    /// The state at time `now`: a pending or approved request past its expiry is expired.
    pub fn state_at(&self, now: OffsetDateTime) -> ApprovalState {
        self.state.as_of(self.expires_at, now)
    }

    /// The same approval with its state as of `now`.
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.state = self.state_at(now);
        self
    }

    /// The audit record's `approval` object.
    pub fn to_ref(&self) -> ApprovalRef {
        ApprovalRef {
            id: self.id.clone(),
            requested_by: self.requester.subject.clone(),
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at.and_then(|t| t.format(&Rfc3339).ok()),
        }
    }

    /// Whether `identity` may decide this approval: not the requester (by subject, from
    /// any issuer) and a member of at least one required group.
    fn may_decide(&self, identity: &Identity) -> Result<(), ApprovalError> {
        if identity.subject == self.requester.subject {
            return Err(ApprovalError::Forbidden(
                "separation of duties: the requester cannot decide their own approval".into(),
            ));
        }
        if !identity.in_any_group(&self.approvers) {
            return Err(ApprovalError::Forbidden(format!(
                "only members of {:?} may decide this approval",
                self.approvers
            )));
        }
        Ok(())
    }

    /// The groups whose requirement a distinct approver meets.
    pub fn groups_met(&self) -> Vec<String> {
        requirements::requirements(&self.approvers, &self.grants)
            .into_iter()
            .filter(|r| r.met)
            .map(|r| r.group)
            .collect()
    }
}

/// A failure of the approval store itself (not a refusal). The variants of a store are
/// there only with its cargo feature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded sled store failed.
    #[cfg(feature = "sled")]
    #[error("approval store (sled): {0}")]
    Sled(#[from] sled::Error),
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error("approval store (postgres): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[cfg(feature = "postgres")]
    #[error("approval store (postgres pool): {0}")]
    Pool(String),
    /// A stored record does not decode.
    #[error("approval store: corrupt record: {0}")]
    Corrupt(String),
}

/// Where approvals live. Every change goes through [`replace`](Self::replace), a
/// compare-and-set on the record's revision, so the rules of what may change live in
/// one place ([`Approvals`]) for every store.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Stores a new approval.
    async fn insert(&self, approval: &Approval) -> Result<(), StoreError>;

    /// The approval `id`, as stored (see [`Approval::state_at`] for expiry).
    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError>;

    /// The newest approvals first, at most `limit`, with their state as of `now`
    /// ([`Approval::at`]); only those in `state` (as of `now`) when given.
    async fn list(
        &self,
        state: Option<ApprovalState>,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError>;

    /// How many approvals there are in each state as of `now`, without reading their
    /// arguments where the store can (the `/metrics` gauges). The default counts the
    /// newest [`LIST_LIMIT`] through [`list`](Self::list).
    async fn counts(&self, now: OffsetDateTime) -> Result<ApprovalCounts, StoreError> {
        let mut counts = ApprovalCounts::default();
        for a in self.list(None, now, LIST_LIMIT).await? {
            counts.add(a.state, 1);
        }
        Ok(counts)
    }

    /// Stores `new` (whose `revision` is `current.revision + 1`) in place of the record
    /// `current.id` if its stored revision is still `current.revision`, atomically.
    /// `Ok(false)` when another writer changed it first.
    async fn replace(&self, current: &Approval, new: &Approval) -> Result<bool, StoreError>;
}

/// Redacts what approvers are shown. The gateway plugs its masker in; the default keeps
/// arguments as they are (at this point they carry placeholders, not secrets).
pub trait ArgumentRedactor: Send + Sync {
    /// The arguments as approvers may read them.
    fn redact(&self, arguments: &serde_json::Value) -> serde_json::Value;

    /// A piece of text (the query string) as approvers may read it.
    fn redact_text(&self, text: &str) -> String {
        text.to_owned()
    }
}

impl<F> ArgumentRedactor for F
where
    F: Fn(&serde_json::Value) -> serde_json::Value + Send + Sync,
{
    fn redact(&self, arguments: &serde_json::Value) -> serde_json::Value {
        self(arguments)
    }
}

/// Why an approval operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No approval with that id.
    #[error("no approval {0:?}")]
    NotFound(String),
    /// The identity may not decide this approval (not an approver, or the requester).
    #[error("{0}")]
    Forbidden(String),
    /// The approval is no longer pending.
    #[error("approval {id:?} is {state}, not pending")]
    NotPending {
        /// The approval.
        id: String,
        /// Its state.
        state: ApprovalState,
    },
    /// The approver already approved, or every requirement they could meet is met.
    #[error("{0}")]
    Conflict(String),
    /// The approval does not allow this call (unknown, expired, used, or for another call).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApprovalError {
    /// The wire error (code and a message safe to show).
    pub fn to_error(&self) -> Error {
        let code = match self {
            ApprovalError::NotFound(_) => ErrorCode::NotFound,
            ApprovalError::Forbidden(_) => ErrorCode::Forbidden,
            ApprovalError::NotPending { .. } | ApprovalError::Conflict(_) => ErrorCode::Conflict,
            ApprovalError::Invalid(_) => ErrorCode::ApprovalInvalid,
            ApprovalError::Store(_) => ErrorCode::Internal,
        };
        let message = match self {
            ApprovalError::Store(_) => "the approval store is unavailable".to_owned(),
            other => other.to_string(),
        };
        Error::new(code, message)
    }
}

/// The approvals service: creates, decides and redeems approvals over a store, enforcing
/// the scope binding, the requirements and separation of duties, and notifies webhooks
/// of new requests.
///
/// Clones share one store and one set of settings: [`Approvals::apply_config`] on any
/// clone changes them for every clone.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    settings: Arc<ArcSwap<Settings>>,
    redactor: Option<Arc<dyn ArgumentRedactor>>,
    decided: Arc<tokio::sync::Notify>,
    /// The Slack app, when `[approvals.slack]` is configured (set by the gateway, which
    /// reads its credentials from the environment).
    #[cfg(feature = "webhooks")]
    slack: Arc<arc_swap::ArcSwapOption<SlackApp>>,
}

/// The `[approvals]` settings in force and the notifier built from their webhooks.
struct Settings {
    config: Arc<ApprovalsConfig>,
    #[cfg(feature = "webhooks")]
    notifier: Option<WebhookNotifier>,
}

impl Settings {
    /// The settings of `config`, with a notifier for its webhooks: `current`'s when a
    /// reload leaves them alone (keeping its retries in flight), else a new one. Without
    /// the `webhooks` feature there is none, and webhooks given are logged as not posted.
    fn new(config: ApprovalsConfig, current: Option<&Settings>) -> Self {
        #[cfg(feature = "webhooks")]
        let notifier = match current {
            Some(c) if c.config.webhooks == config.webhooks => c.notifier.clone(),
            _ => (!config.webhooks.is_empty()).then(|| WebhookNotifier::new(config.webhooks.to_vec())),
        };
        #[cfg(not(feature = "webhooks"))]
        if !config.webhooks.is_empty() && current.is_none_or(|c| c.config.webhooks != config.webhooks) {
            // The gateway refuses such a configuration (`ApprovalsConfig::check_features`).
            let missing = cloakroom_core::MissingFeature::new("webhooks", "approvals.webhooks");
            tracing::error!("approvals.webhooks are not posted: {missing}");
        }
        Self {
            config: Arc::new(config),
            #[cfg(feature = "webhooks")]
            notifier,
        }
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("config", &self.config()).finish_non_exhaustive()
    }
}

/// How often a held call looks in the store for a decision made on another replica.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Most approvals [`Approvals::list`] returns.
/// The most approvals a list returns.
pub const LIST_LIMIT: usize = 1000;

/// How many times a change is retried when other writers keep changing the record.
const MAX_CAS_ATTEMPTS: usize = 64;

/// What a change to a record decided: store this, or refuse with that.
type Change = Result<Approval, ApprovalError>;

impl Approvals {
    /// A service over `store` with `config` (webhooks from `config.webhooks`, posted with
    /// the cargo feature `webhooks`; [`ApprovalsConfig::check_features`] refuses them
    /// without it).
    pub fn new(store: Arc<dyn ApprovalStore>, config: ApprovalsConfig) -> Self {
        Self {
            store,
            settings: Arc::new(ArcSwap::from_pointee(Settings::new(config, None))),
            redactor: None,
            decided: Arc::new(tokio::sync::Notify::new()),
            #[cfg(feature = "webhooks")]
            slack: Arc::new(arc_swap::ArcSwapOption::empty()),
        }
    }

    /// Uses `redactor` on the arguments and query shown to approvers.
    pub fn with_redactor(mut self, redactor: Arc<dyn ArgumentRedactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Uses `notifier` instead of one built from `config.webhooks` (until a reload
    /// changes the webhooks).
    #[cfg(feature = "webhooks")]
    pub fn with_notifier(self, notifier: WebhookNotifier) -> Self {
        let config = self.config();
        self.settings.store(Arc::new(Settings { config, notifier: Some(notifier) }));
        self
    }

    /// Posts new approvals to Slack and shows decisions there through `app` (or stops
    /// when `None`), for every clone of this service.
    #[cfg(feature = "webhooks")]
    pub fn set_slack(&self, app: Option<SlackApp>) {
        self.slack.store(app.map(Arc::new));
    }

    /// The Slack app in force, if any.
    #[cfg(feature = "webhooks")]
    pub fn slack(&self) -> Option<Arc<SlackApp>> {
        self.slack.load_full()
    }

    /// The `[approvals]` settings in force.
    pub fn config(&self) -> Arc<ApprovalsConfig> {
        self.settings.load().config.clone()
    }

    /// Applies a reload's `wait`, `ttl` and `webhooks`, for every clone of this service.
    /// Approvals already requested or granted keep the expiry they were given. `store`
    /// and `postgres_url_env` stay as they are: the store is opened once, at start (the
    /// gateway warns that they need a restart).
    pub fn apply_config(&self, config: &ApprovalsConfig) {
        let current = self.settings.load_full();
        let config = ApprovalsConfig {
            wait: config.wait,
            ttl: config.ttl,
            webhooks: config.webhooks.clone(),
            store: current.config.store,
            postgres_url_env: current.config.postgres_url_env.clone(),
            slack: config.slack.clone(),
        };
        self.settings.store(Arc::new(Settings::new(config, Some(&current))));
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ApprovalStore> {
        &self.store
    }

    /// Creates a pending approval for the call `scope` by `identity`, as `decision`
    /// requires (one requirement per distinct group in `decision.approvers`), and
    /// notifies the webhooks (in the background). `arguments` are shown to approvers
    /// after redaction.
    pub async fn request(
        &self,
        identity: &Identity,
        scope: &CallScope,
        arguments: &serde_json::Value,
        decision: &Decision,
        call_id: Option<&CallId>,
    ) -> Result<Approval, ApprovalError> {
        let now = now();
        let settings = self.settings.load_full();
        let arguments = shown_arguments(match &self.redactor {
            Some(r) => r.redact(arguments),
            None => arguments.clone(),
        });
        let mut shown = scope.clone();
        shown.normalize();
        if let Some(r) = &self.redactor {
            shown.query = r.redact_text(&shown.query);
        }
        let groups = requirements::requirement_groups(&decision.approvers);
        if groups.is_empty() {
            // An approve decision nobody can satisfy would hold the call forever.
            return Err(ApprovalError::Forbidden(format!(
                "approval required by {} but it names no approver group",
                decision.rule.as_deref().unwrap_or("policy")
            )));
        }
        let approval = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            requester: Requester {
                subject: identity.subject.clone(),
                issuer: identity.issuer.clone(),
                groups: identity.groups.clone(),
            },
            function: scope.function.clone(),
            digest: scope.digest(),
            scope: Some(shown),
            arguments,
            call_id: call_id.map(|c| c.to_string()),
            rule: decision.rule.clone(),
            why: Some(decision.reason.clone()),
            created_at: now,
            expires_at: now + settings.config.ttl,
            requirements: requirements::requirements(&groups, &[]),
            approvers: groups,
            grants: Vec::new(),
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            used_at: None,
            used_by_call: None,
            revision: 0,
        };
        self.store.insert(&approval).await?;
        tracing::info!(approval = %approval.id, function = %cloakroom_core::quoted(&approval.function), requester = %cloakroom_core::quoted(&approval.requester.subject), "approval requested");
        #[cfg(feature = "webhooks")]
        {
            if let Some(n) = &settings.notifier {
                n.notify(&approval);
            }
            if let Some(s) = self.slack() {
                s.notify(&approval);
            }
        }
        Ok(approval)
    }

    /// The approval `id` with its current state.
    pub async fn get(&self, id: &str) -> Result<Approval, ApprovalError> {
        let a = self.store.get(id).await?.ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        Ok(a.at(now()))
    }

    /// How many approvals there are in each state now.
    pub async fn counts(&self) -> Result<ApprovalCounts, ApprovalError> {
        Ok(self.store.counts(now()).await?)
    }

    /// Approvals (newest first), only those in `state` when given.
    pub async fn list(&self, state: Option<ApprovalState>) -> Result<Vec<Approval>, ApprovalError> {
        Ok(self.store.list(state, now(), LIST_LIMIT).await?)
    }

    /// Applies `change` to the record `id` as a compare-and-set, retrying when another
    /// writer changed it in between. `change` sees the record with its state as of now.
    async fn update(&self, id: &str, change: impl Fn(&Approval, OffsetDateTime) -> Change) -> Change {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = now();
            let Some(current) = self.store.get(id).await? else {
                return Err(ApprovalError::NotFound(id.to_owned()));
            };
            let mut new = change(&current.clone().at(now), now)?;
            new.revision = current.revision + 1;
            if self.store.replace(&current, &new).await? {
                return Ok(new);
            }
        }
        Err(ApprovalError::Conflict(format!("approval {id:?} is being changed by others; try again")))
    }

    /// `approver` approves `id`: their grant meets one requirement (of a group they are
    /// in and no one else's grant is needed for). Once every requirement is met the
    /// approval is granted and usable for `approvals.ttl`.
    pub async fn approve(
        &self,
        id: &str,
        approver: &Identity,
        reason: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        let ttl = self.config().ttl;
        let a = self
            .update(id, |a, now| {
                a.may_decide(approver)?;
                if a.state != ApprovalState::Pending {
                    return Err(ApprovalError::NotPending { id: id.to_owned(), state: a.state });
                }
                if a.grants.iter().any(|g| g.subject == approver.subject) {
                    return Err(ApprovalError::Conflict(format!(
                        "{} has already approved {id}; each requirement needs a distinct approver",
                        approver.subject
                    )));
                }
                let before = requirements::met_count(&a.approvers, &a.grants);
                let mut new = a.clone();
                new.grants.push(Grant {
                    subject: approver.subject.clone(),
                    issuer: approver.issuer.clone(),
                    groups: a.approvers.iter().filter(|g| approver.in_group(g)).cloned().collect(),
                    at: now,
                    reason: reason.clone(),
                });
                let after = requirements::met_count(&new.approvers, &new.grants);
                if after == before {
                    return Err(ApprovalError::Conflict(format!(
                        "every requirement {} can meet is already met by another approver",
                        approver.subject
                    )));
                }
                new.requirements = requirements::requirements(&new.approvers, &new.grants);
                if after == new.approvers.len() {
                    new.state = ApprovalState::Approved;
                    new.decided_at = Some(now);
                    new.decided_by =
                        Some(new.requirements.iter().filter_map(|r| r.met_by.clone()).collect::<Vec<_>>().join(","));
                    new.expires_at = now + ttl;
                }
                Ok(new)
            })
            .await?;
        tracing::info!(approval = %id, approver = %approver.subject, state = %a.state, "approval granted by one approver");
        self.decided.notify_waiters();
        #[cfg(feature = "webhooks")]
        if let Some(s) = self.slack() {
            s.show(&a);
        }
        Ok(a)
    }

    /// `approver` refuses approval `id`: one eligible approver's no is final.
    pub async fn deny(&self, id: &str, approver: &Identity, reason: Option<String>) -> Result<Approval, ApprovalError> {
        let a = self
            .update(id, |a, now| {
                a.may_decide(approver)?;
                if a.state != ApprovalState::Pending {
                    return Err(ApprovalError::NotPending { id: id.to_owned(), state: a.state });
                }
                let mut new = a.clone();
                new.state = ApprovalState::Denied;
                new.decided_by = Some(approver.subject.clone());
                new.decided_at = Some(now);
                new.reason = reason.clone();
                Ok(new)
            })
            .await?;
        tracing::info!(approval = %id, decided_by = %approver.subject, "approval denied");
        self.decided.notify_waiters();
        #[cfg(feature = "webhooks")]
        if let Some(s) = self.slack() {
            s.show(&a);
        }
        Ok(a)
    }

    /// Consumes approval `id` for call `call_id`, whose scope is `scope`, by `identity`;
    /// refuses with a reason when it is unknown, undecided, denied, expired, used, or for
    /// another call (any field of the scope differs).
    pub async fn redeem(
        &self,
        id: &str,
        identity: &Identity,
        scope: &CallScope,
        call_id: CallId,
    ) -> Result<Approval, ApprovalError> {
        let digest = scope.digest();
        let result = self
            .update(id, |a, now| {
                if a.requester.subject != identity.subject || a.requester.issuer != identity.issuer {
                    return Err(ApprovalError::Invalid("the approval is for another caller".into()));
                }
                if a.digest != digest {
                    return Err(ApprovalError::Invalid(format!(
                        "the approval is for another call ({} differs)",
                        differing_fields(a.scope.as_ref(), scope)
                    )));
                }
                if a.state != ApprovalState::Approved {
                    let missing: Vec<&str> =
                        a.requirements.iter().filter(|r| !r.met).map(|r| r.group.as_str()).collect();
                    return Err(ApprovalError::Invalid(match a.state {
                        ApprovalState::Pending => {
                            format!("the approval is pending: still needs an approver from {missing:?}")
                        }
                        s => format!("the approval is {s}"),
                    }));
                }
                let mut new = a.clone();
                new.state = ApprovalState::Used;
                new.used_at = Some(now);
                new.used_by_call = Some(call_id.to_string());
                Ok(new)
            })
            .await;
        match result {
            Ok(a) => {
                tracing::info!(approval = %id, call_id = %call_id, "approval used");
                Ok(a)
            }
            Err(ApprovalError::NotFound(_)) => Err(ApprovalError::Invalid("unknown approval".into())),
            Err(e) => Err(e),
        }
    }

    /// Waits up to `wait` for approval `id` to be decided (approved, denied or expired);
    /// returns it as it stands when decided or when the wait ends.
    pub async fn wait_for_decision(&self, id: &str, wait: Duration) -> Result<Approval, ApprovalError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for a wake-up before looking, so a decision in between is not missed.
            let notified = self.decided.notified();
            let a = self.get(id).await?;
            if a.state != ApprovalState::Pending {
                return Ok(a);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(a);
            }
            let nap = (deadline - now).min(POLL_INTERVAL);
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }
}

/// The names of the scope fields that differ between what was approved (as shown to
/// approvers) and the call presented, for the refusal message. Names only: values may
/// be sensitive.
fn differing_fields(approved: Option<&CallScope>, presented: &CallScope) -> String {
    let Some(a) = approved else { return "the call".into() };
    let mut out: Vec<&str> = Vec::new();
    if a.function != presented.function {
        out.push("function");
    }
    if a.method != presented.method {
        out.push("method");
    }
    if a.path != presented.path {
        out.push("path");
    }
    if a.content_type != presented.content_type {
        out.push("content type");
    }
    let uses = |s: &CallScope| {
        let mut v: Vec<(String, String)> =
            s.placeholders.iter().map(|u| (u.placeholder.clone(), u.location.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    if uses(a) != uses(presented) {
        out.push("placeholders");
    }
    if a.body_sha256 != presented.body_sha256 {
        out.push("body");
    }
    if out.is_empty() {
        // The query is shown masked, so it cannot be compared here; it is what is left.
        out.push("query");
    }
    out.join(", ")
}

impl ApprovalLookup for Approvals {
    fn consumed_by(&self, id: &str, call_id: CallId) -> LookupFuture<'_> {
        let id = id.to_owned();
        Box::pin(async move {
            let Some(a) = self.store.get(&id).await.map_err(|e| {
                tracing::warn!(error = %e, "approval store unavailable while checking a secret's approval");
                Error::new(ErrorCode::Internal, "the approval store is unavailable")
            })?
            else {
                return Ok(None);
            };
            if a.state != ApprovalState::Used || a.used_by_call.as_deref() != Some(call_id.to_string().as_str()) {
                return Ok(None);
            }
            Ok(Some(ConsumedApproval {
                id: a.id.clone(),
                call_id,
                scope_digest: a.digest.clone(),
                placeholders: a.scope.as_ref().map(|s| s.placeholders.clone()).unwrap_or_default(),
                groups_met: a.groups_met(),
            }))
        })
    }
}

/// Now, to the microsecond (what PostgreSQL keeps), so that both stores round-trip times.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}
