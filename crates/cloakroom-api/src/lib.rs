//! The wire types of Cloakroom's admin API (docs/reference.md, "Admin API"): one set of
//! request and answer bodies that `cloakroomd` writes and the `cloakroom` CLI — or any
//! operator's tool written in Rust — reads.
//!
//! Every endpoint the CLI or a script uses has its types here, named after what they
//! carry: secrets ([`PutSecret`], [`SecretStored`], [`SecretList`], [`SecretDeleted`] and
//! the [`BindingSpec`] they share), approvals ([`ApprovalList`], [`Approval`],
//! [`DecideApproval`]), the audit log ([`AuditPage`], [`AuditRecord`], [`VerifyReport`]),
//! [`Reloaded`], [`RedeemRequest`] and [`Redeemed`], [`Readiness`] and [`Health`], the
//! CLI's sign-in ([`SessionRequest`], [`Session`]) and every refusal ([`ErrorBody`] with
//! its [`ErrorCode`]).
//!
//! Made to last across versions: answers read leniently (a field this version does not
//! know is ignored; a code or state it does not know is kept as `Other`), structs that
//! will grow are `#[non_exhaustive]` (build them with `new` and `with_…`), and the one
//! request where a misspelt field would change what happens — a binding — is read
//! strictly by the server ([`PutSecret`]).
//!
//! ```
//! use cloakroom_api::{ErrorBody, ErrorCode, SecretStored};
//!
//! let stored: SecretStored =
//!     serde_json::from_str(r#"{"name":"stripe_key","placeholder":"cloak_abcdefghijklmnopqrstuvwxyz"}"#).unwrap();
//! assert_eq!(stored.placeholder, "cloak_abcdefghijklmnopqrstuvwxyz");
//!
//! let refused: ErrorBody =
//!     serde_json::from_str(r#"{"error":{"code":"vault_unavailable","message":"the vault cannot be read"}}"#).unwrap();
//! assert_eq!(refused.error.code, ErrorCode::VaultUnavailable);
//! assert_eq!(refused.error.code.status(), Some(503));
//!
//! // A code from a newer server is kept, not refused.
//! let newer: ErrorBody = serde_json::from_str(r#"{"error":{"code":"quota_spent","message":"…"}}"#).unwrap();
//! assert_eq!(newer.error.code.as_str(), "quota_spent");
//! ```
//!
//! ## Audit records stay JSON
//!
//! An audit record ([`AuditRecord`]) is a `serde_json::Value`, not the audit crate's
//! record type. The record is large, its schema belongs to `cloakroom-audit` (which
//! versions it, hashes its canonical JSON into the chain and documents it in
//! docs/audit.md), and that crate brings PostgreSQL, sled and tokio with it: a CLI that
//! only prints records should not link a storage engine, and an auditor's tool must show
//! a field added by a newer gateway rather than drop it. So the envelope of the audit
//! endpoints is typed here ([`AuditPage`], [`VerifyReport`]) and the record body is not.
//! [`AuditPage`] is generic so the gateway serializes its own record type into it
//! without a detour through `Value`.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[macro_use]
mod wire_enum;

mod approvals;
mod audit;
mod error;
mod redeem;
mod secrets;
mod session;
mod status;

pub use approvals::{
    Approval, ApprovalList, ApprovalState, CallScope, DecideApproval, Grant, PlaceholderUse, Requester, Requirement,
};
pub use audit::{AuditPage, AuditRecord, BreakKind, ChainBreak, ChainReport, VerifyReport};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use redeem::{RedeemRequest, Redeemed, ValueEncoding};
pub use secrets::{
    BindingSpec, BudgetScope, PutSecret, SecretDeleted, SecretList, SecretOrigin, SecretStored, SecretSummary,
    SecretUses, UsesPer,
};
pub use session::{Session, SessionRequest};
pub use status::{CheckState, Health, Readiness, ReadinessChecks, ReadyStatus, Reloaded};
