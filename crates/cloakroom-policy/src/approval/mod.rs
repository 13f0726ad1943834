//! Just-in-time approvals: requests, decisions by approvers, one-time redemption.
//!
//! A call whose decision is `approve` creates an [`Approval`] (pending). A member of one
//! of its approver groups — never the requester themself — approves or denies it. An
//! approved request is valid for `approvals.ttl`, for that caller, that function and that
//! argument digest only, and is consumed by its first use. Every state change is one
//! atomic compare-and-set in the store, so two gateway replicas sharing a PostgreSQL
//! store can never both consume one approval.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cloakroom_core::{AuthMethod, Call, Decision, Identity, Protocol};
//! use cloakroom_policy::{ApprovalState, Approvals, ApprovalsConfig, SledApprovalStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Arc::new(SledApprovalStore::open(dir.path()).unwrap());
//! let approvals = Approvals::new(store, ApprovalsConfig::default());
//! let who = |s: &str, g: &str| Identity { subject: s.into(), issuer: "api_key".into(),
//!     method: AuthMethod::ApiKey, groups: vec![g.into()], source_ip: None, biscuit: None };
//! let call = Call { function: "payments/refund".into(), protocol: Protocol::Http,
//!     arguments: serde_json::json!({"amount": 900}), detail: None, method: "POST".into(),
//!     digest: "d1".into() };
//! let decision = Decision::approve("big refunds", "approval required", vec!["finance".into()]);
//!
//! let a = approvals.request(&who("alice", "ops"), &call, &decision, None).await.unwrap();
//! assert!(approvals.approve(&a.id, &who("alice", "finance"), None).await.is_err()); // own request
//! approvals.approve(&a.id, &who("carol", "finance"), None).await.unwrap();
//! let used = approvals.redeem(&a.id, &who("alice", "ops"), &call).await.unwrap();
//! assert_eq!(used.state, ApprovalState::Used);
//! assert!(approvals.redeem(&a.id, &who("alice", "ops"), &call).await.is_err()); // used once
//! # });
//! ```

mod postgres;
mod sled_store;
mod webhook;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use cloakroom_core::{ApprovalRef, Call, CallId, Decision, Error, ErrorCode, Identity};
use serde::{Deserialize, Serialize};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

pub use postgres::PostgresApprovalStore;
pub use sled_store::SledApprovalStore;
pub use webhook::WebhookNotifier;

use crate::ApprovalsConfig;

/// The life of an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for an approver.
    Pending,
    /// Granted; usable once until it expires.
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

/// An approval request and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The approval id (a UUIDv7), the value of `Cloakroom-Approval`.
    pub id: String,
    /// Who asked.
    pub requester: Requester,
    /// The function called.
    pub function: String,
    /// `Call::digest`: the canonical JSON arguments (or the raw body) the approval is for.
    pub digest: String,
    /// The arguments as shown to approvers, after the caller's redaction hook.
    pub arguments: serde_json::Value,
    /// The id of the call that asked.
    #[serde(default)]
    pub call_id: Option<String>,
    /// The rule that required approval.
    #[serde(default)]
    pub rule: Option<String>,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when it may be decided (pending) or used (approved).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Groups whose members may decide.
    pub approvers: Vec<String>,
    /// Where it is in its life.
    pub state: ApprovalState,
    /// The approver's subject, once decided.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When it was decided.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The approver's reason, if they gave one.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the approved call used it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

impl Approval {
    /// The state at time `now`: a pending or approved request past its expiry is expired.
    pub fn state_at(&self, now: OffsetDateTime) -> ApprovalState {
        match self.state {
            ApprovalState::Pending | ApprovalState::Approved if now >= self.expires_at => ApprovalState::Expired,
            s => s,
        }
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
}

/// An approver's verdict, applied by [`ApprovalStore::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// [`ApprovalState::Approved`] or [`ApprovalState::Denied`].
    pub state: ApprovalState,
    /// The approver's subject.
    pub decided_by: String,
    /// The approver's reason.
    pub reason: Option<String>,
    /// The new expiry: an approved request is usable until then.
    pub expires_at: OffsetDateTime,
}

/// What a call presenting an approval must match, applied by [`ApprovalStore::consume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The caller's subject.
    pub subject: &'a str,
    /// The caller's issuer.
    pub issuer: &'a str,
    /// The function called.
    pub function: &'a str,
    /// The call's digest.
    pub digest: &'a str,
}

/// A failure of the approval store itself (not a refusal).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded sled store failed.
    #[error("approval store (sled): {0}")]
    Sled(#[from] sled::Error),
    /// PostgreSQL failed.
    #[error("approval store (postgres): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("approval store (postgres pool): {0}")]
    Pool(String),
    /// A stored record does not decode.
    #[error("approval store: corrupt record: {0}")]
    Corrupt(String),
}

/// Where approvals live. Implementations make [`decide`](Self::decide) and
/// [`consume`](Self::consume) atomic compare-and-set operations.
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

    /// Pending and not expired at `now` -> the verdict's state, atomically. `None` when
    /// the approval is unknown, no longer pending, or expired.
    async fn decide(&self, id: &str, verdict: &Verdict, now: OffsetDateTime) -> Result<Option<Approval>, StoreError>;

    /// Approved, not expired at `now`, and for exactly this claim -> used, atomically.
    /// `None` otherwise.
    async fn consume(&self, id: &str, claim: &Claim<'_>, now: OffsetDateTime) -> Result<Option<Approval>, StoreError>;
}

/// Redacts arguments before approvers see them. The gateway plugs its masker in; the
/// default keeps arguments as they are (at this point they carry placeholders, not secrets).
pub trait ArgumentRedactor: Send + Sync {
    /// The arguments as approvers may read them.
    fn redact(&self, arguments: &serde_json::Value) -> serde_json::Value;
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
            ApprovalError::NotPending { .. } => ErrorCode::Conflict,
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
/// separation of duties, and notifies webhooks of new requests.
///
/// Clones share one store and one set of settings: [`Approvals::apply_config`] on any
/// clone changes them for every clone.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    settings: Arc<ArcSwap<Settings>>,
    redactor: Option<Arc<dyn ArgumentRedactor>>,
    decided: Arc<tokio::sync::Notify>,
}

/// The `[approvals]` settings in force and the notifier built from their webhooks.
struct Settings {
    config: Arc<ApprovalsConfig>,
    notifier: Option<WebhookNotifier>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("config", &self.config()).finish_non_exhaustive()
    }
}

/// How often a held call looks in the store for a decision made on another replica.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Most approvals [`Approvals::list`] returns.
const LIST_LIMIT: usize = 1000;

fn notifier_for(webhooks: &[String]) -> Option<WebhookNotifier> {
    (!webhooks.is_empty()).then(|| WebhookNotifier::new(webhooks.to_vec()))
}

impl Approvals {
    /// A service over `store` with `config` (webhooks from `config.webhooks`).
    pub fn new(store: Arc<dyn ApprovalStore>, config: ApprovalsConfig) -> Self {
        let notifier = notifier_for(&config.webhooks);
        let settings = Settings { config: Arc::new(config), notifier };
        Self {
            store,
            settings: Arc::new(ArcSwap::from_pointee(settings)),
            redactor: None,
            decided: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Uses `redactor` on the arguments shown to approvers.
    pub fn with_redactor(mut self, redactor: Arc<dyn ArgumentRedactor>) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Uses `notifier` instead of one built from `config.webhooks` (until a reload
    /// changes the webhooks).
    pub fn with_notifier(self, notifier: WebhookNotifier) -> Self {
        let config = self.config();
        self.settings.store(Arc::new(Settings { config, notifier: Some(notifier) }));
        self
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
        let notifier = if config.webhooks == current.config.webhooks {
            current.notifier.clone()
        } else {
            notifier_for(&config.webhooks)
        };
        let config = ApprovalsConfig {
            wait: config.wait,
            ttl: config.ttl,
            webhooks: config.webhooks.clone(),
            store: current.config.store,
            postgres_url_env: current.config.postgres_url_env.clone(),
        };
        self.settings.store(Arc::new(Settings { config: Arc::new(config), notifier }));
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ApprovalStore> {
        &self.store
    }

    /// Creates a pending approval for `call` by `identity`, as `decision` requires, and
    /// notifies the webhooks (in the background).
    pub async fn request(
        &self,
        identity: &Identity,
        call: &Call,
        decision: &Decision,
        call_id: Option<&CallId>,
    ) -> Result<Approval, ApprovalError> {
        let now = now();
        let settings = self.settings.load_full();
        let arguments = match &self.redactor {
            Some(r) => r.redact(&call.arguments),
            None => call.arguments.clone(),
        };
        let approval = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            requester: Requester {
                subject: identity.subject.clone(),
                issuer: identity.issuer.clone(),
                groups: identity.groups.clone(),
            },
            function: call.function.clone(),
            digest: call.digest.clone(),
            arguments,
            call_id: call_id.map(|c| c.to_string()),
            rule: decision.rule.clone(),
            created_at: now,
            expires_at: now + settings.config.ttl,
            approvers: decision.approvers.clone(),
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            used_at: None,
        };
        self.store.insert(&approval).await?;
        tracing::info!(approval = %approval.id, function = %cloakroom_core::quoted(&approval.function), requester = %cloakroom_core::quoted(&approval.requester.subject), "approval requested");
        if let Some(n) = &settings.notifier {
            n.notify(&approval);
        }
        Ok(approval)
    }

    /// The approval `id` with its current state.
    pub async fn get(&self, id: &str) -> Result<Approval, ApprovalError> {
        let a = self.store.get(id).await?.ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        Ok(a.at(now()))
    }

    /// Approvals (newest first), only those in `state` when given.
    pub async fn list(&self, state: Option<ApprovalState>) -> Result<Vec<Approval>, ApprovalError> {
        Ok(self.store.list(state, now(), LIST_LIMIT).await?)
    }

    /// `approver` grants approval `id`.
    pub async fn approve(
        &self,
        id: &str,
        approver: &Identity,
        reason: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        self.decide(id, approver, ApprovalState::Approved, reason).await
    }

    /// `approver` refuses approval `id`.
    pub async fn deny(&self, id: &str, approver: &Identity, reason: Option<String>) -> Result<Approval, ApprovalError> {
        self.decide(id, approver, ApprovalState::Denied, reason).await
    }

    async fn decide(
        &self,
        id: &str,
        approver: &Identity,
        state: ApprovalState,
        reason: Option<String>,
    ) -> Result<Approval, ApprovalError> {
        let now = now();
        let current = self.get(id).await?;
        // Requester and approver groups never change after creation, so checking them
        // before the atomic state change is safe.
        if approver.subject == current.requester.subject {
            return Err(ApprovalError::Forbidden(
                "separation of duties: the requester cannot decide their own approval".into(),
            ));
        }
        if !approver.in_any_group(&current.approvers) {
            return Err(ApprovalError::Forbidden(format!(
                "only members of {:?} may decide this approval",
                current.approvers
            )));
        }
        if current.state != ApprovalState::Pending {
            return Err(ApprovalError::NotPending { id: id.to_owned(), state: current.state });
        }
        let verdict =
            Verdict { state, decided_by: approver.subject.clone(), reason, expires_at: now + self.config().ttl };
        match self.store.decide(id, &verdict, now).await? {
            Some(a) => {
                tracing::info!(approval = %id, decided_by = %approver.subject, state = %a.state, "approval decided");
                self.decided.notify_waiters();
                Ok(a)
            }
            None => {
                // Someone else decided it, or it expired, in between.
                let state = self.get(id).await?.state;
                Err(ApprovalError::NotPending { id: id.to_owned(), state })
            }
        }
    }

    /// Consumes approval `id` for this exact call by `identity`; refuses with a reason
    /// when it is unknown, undecided, denied, expired, used, or for another call.
    pub async fn redeem(&self, id: &str, identity: &Identity, call: &Call) -> Result<Approval, ApprovalError> {
        let now = now();
        let claim = Claim {
            subject: &identity.subject,
            issuer: &identity.issuer,
            function: &call.function,
            digest: &call.digest,
        };
        if let Some(a) = self.store.consume(id, &claim, now).await? {
            tracing::info!(approval = %id, "approval used");
            return Ok(a);
        }
        let why = match self.store.get(id).await? {
            None => "unknown approval".to_owned(),
            Some(a) => {
                let a = a.at(now);
                if a.requester.subject != identity.subject || a.requester.issuer != identity.issuer {
                    "the approval is for another caller".to_owned()
                } else if a.function != call.function {
                    "the approval is for another function".to_owned()
                } else if a.digest != call.digest {
                    "the approval is for other arguments".to_owned()
                } else {
                    format!("the approval is {}", a.state)
                }
            }
        };
        Err(ApprovalError::Invalid(why))
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

/// Now, to the microsecond (what PostgreSQL keeps), so that both stores round-trip times.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}
