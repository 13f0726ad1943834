//! Policies and just-in-time approvals for Cloakroom.
//!
//! `cloakroom-policy` decides, for a verified [`Identity`](cloakroom_core::Identity) and a
//! parsed [`Call`](cloakroom_core::Call), whether the call goes ahead, is refused, or
//! needs a person's approval first — and explains why.
//!
//! - [`Policy`]: the async, object-safe trait every policy implements.
//! - [`PolicySet`]: built-in rules ([`Rule`], from `[[policy.rules]]`), Biscuit Datalog
//!   policies ([`DatalogPolicy`], from `[[policy.datalog]]`) and custom policies,
//!   combined deny-overrides, deny by default; [`PolicySet::explain`] says why.
//! - [`Policies`]: the current set behind `arc-swap`, reloaded atomically.
//! - [`Approvals`] over an [`ApprovalStore`] ([`MemoryApprovalStore`], always there;
//!   `SledApprovalStore` with the cargo feature `sled`, `PostgresApprovalStore` with
//!   `postgres`), with `WebhookNotifier` and the Slack app (feature `webhooks`) for new
//!   requests. No feature is on by default: docs/configuration.md, "Cargo features".
//! - [`PolicyLayer`]: the tower layer that applies all of it to requests.
//!
//! ```
//! use cloakroom_core::{AuthMethod, Call, Effect, Identity, Protocol};
//! use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet};
//!
//! let config: PolicyConfig = toml::from_str(r#"
//!     [[rules]]
//!     name = "refunds need a finance lead"
//!     effect = "approve"
//!     functions = ["payments/refund"]
//!     approvers = ["finance-leads"]
//! "#).unwrap();
//! let set = PolicySet::builder().config(&config).build().unwrap();
//! let id = Identity::new("agent-7".into(), "biscuit".into(), AuthMethod::ApiKey);
//! let call = Call::new("payments/refund".into(), Protocol::Mcp)
//!     .with_arguments(serde_json::json!({"amount": 5000}))
//!     .with_method("POST".into())
//!     .with_digest("…".into());
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let d = rt.block_on(set.evaluate(&PolicyInput::new(&id, &call)));
//! assert_eq!(d.effect, Effect::Approve);
//! assert_eq!(d.approvers, vec!["finance-leads".to_string()]);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod approval;
mod config;
mod datalog;
mod error;
mod explain;
mod index;
mod input;
pub mod layer;
mod policy;
mod rule;
mod set;

#[cfg(feature = "webhooks")]
pub use approval::slack;
#[cfg(feature = "postgres")]
pub use approval::PostgresApprovalStore;
#[cfg(feature = "sled")]
pub use approval::SledApprovalStore;
pub use approval::{
    requirements as approval_requirements, shown_arguments, Approval, ApprovalCounts, ApprovalError, ApprovalState,
    ApprovalStore, Approvals, ArgumentRedactor, Grant, MemoryApprovalStore, OpenError as ApprovalsOpenError, Requester,
    Requirement, StoreError, MAX_SHOWN_ARGUMENTS_BYTES,
};
#[cfg(feature = "webhooks")]
pub use approval::{SlackApp, WebhookNotifier};
pub use config::{
    ApprovalStoreKind, ApprovalsConfig, DatalogConfig, DatalogLimitsConfig, PolicyConfig, RuleConfig, RuleMode,
    SlackConfig, SlackUser,
};
pub use datalog::{DatalogPolicy, MAX_ARGUMENT_DEPTH, MAX_ARGUMENT_FACTS};
pub use error::PolicyError;
pub use explain::{Explanation, RuleKind, RuleReport};
pub use input::{PolicyInput, SecretsInCall};
pub use layer::{Authorize, PendingApproval, PolicyLayer, ResponseBody, ResponseFuture, APPROVAL_HEADER};
pub use policy::Policy;
pub use rule::Rule;
pub use set::{parse_root_key, Policies, PolicySet, PolicySetBuilder};

/// The Biscuit library this crate uses, for callers that build keys and tokens.
pub use biscuit_auth;
