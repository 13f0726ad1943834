//! The shared vocabulary of Cloakroom.
//!
//! Every other crate speaks in these types: who is calling ([`Identity`]), what is
//! being called ([`Call`]), what policy said ([`Decision`]), the tickets callers hold
//! instead of secrets ([`Placeholder`]), the secrets themselves ([`Secret`]), the id
//! that ties a call to its audit record ([`CallId`]), the error codes of the wire
//! interface ([`ErrorCode`], [`Error`]) and the [`AuditNote`] that the layers fill in
//! for the audit record.
//!
//! ```
//! use cloakroom_core::{Placeholder, Secret};
//!
//! let p: Placeholder = "cloak_abcdefghijklmnopqrstuvwxyz".parse().unwrap();
//! assert_eq!(p.as_str().len(), 32);
//!
//! let s = Secret::from("sk_live_0123456789");
//! assert_eq!(format!("{s:?}"), "[REDACTED]");
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod audit_note;
mod body;
mod call;
mod call_id;
pub mod canonical;
mod client_addr;
mod decision;
mod error;
mod feature;
mod fold;
mod function_pattern;
mod identity;
pub mod limits;
mod placeholder;
mod quote;
mod scope;
mod secret;
#[cfg(feature = "sled")]
pub mod sled_open;

pub use audit_note::{ApprovalRef, AuditNote, AuditNoteSnapshot, SecretUse};
pub use body::ResponseBody;
pub use call::{Call, Protocol};
pub use call_id::CallId;
pub use client_addr::ClientAddr;
pub use decision::{Decision, Effect, ShadowVerdict};
pub use error::{Error, ErrorCode};
pub use feature::{require_feature, MissingFeature};
pub use fold::{fold_name, get_folded, pointer_folded};
pub use function_pattern::{
    first_segment, literal_first_segment, literal_first_segments, FunctionPattern, FunctionPatternError,
    FunctionPatterns,
};
pub use identity::{AuthMethod, BiscuitToken, Identity};
pub use placeholder::{Placeholder, PlaceholderError, PLACEHOLDER_BODY_LEN, PLACEHOLDER_LEN, PLACEHOLDER_PREFIX};
pub use quote::{quoted, Quoted};
pub use scope::{ApprovalLookup, CallScope, ConsumedApproval, LookupFuture, PlaceholderUse};
pub use secret::Secret;
