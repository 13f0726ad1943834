//! The note every layer fills in for the call's audit record.
//!
//! The `AuditLayer` (outermost) puts an [`AuditNote`] into the request extensions;
//! the inner layers find it there and write what they learned: the identity, the
//! parsed call, the decision, the approval, the secrets substituted, the upstream's
//! answer, the number of masked matches, an error. When the response body ends the
//! audit layer takes a [`AuditNoteSnapshot`] and seals the record. Because the note is
//! a shared handle, what inner layers write is seen even when they short-circuit with an
//! error response or the client goes away.
//!
//! ```
//! use cloakroom_core::{AuditNote, CallId, ErrorCode, Error};
//! let note = AuditNote::new(CallId::new());
//! note.set_error(&Error::new(ErrorCode::Forbidden, "no rule allows this call"));
//! assert_eq!(note.snapshot().error.unwrap().code, ErrorCode::Forbidden);
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::{Call, CallId, Decision, Error, Identity, Placeholder, ShadowVerdict};

/// A secret substituted into a request: its name, placeholder and where it was found.
/// Never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretUse {
    /// The secret's name.
    pub name: String,
    /// The placeholder the caller sent.
    pub placeholder: Placeholder,
    /// Where it was found: `header:NAME`, `query:NAME`, `json:/pointer` or `body`.
    pub location: String,
}

/// The approval a call went ahead under (or asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRef {
    /// The approval id.
    pub id: String,
    /// Subject of the caller who asked.
    pub requested_by: String,
    /// Subject of the approver, once decided.
    pub decided_by: Option<String>,
    /// When it was decided (RFC 3339), once decided.
    pub decided_at: Option<String>,
}

/// What the layers have noted about one call so far.
#[derive(Debug, Clone, Default)]
pub struct AuditNoteSnapshot {
    /// The call id.
    pub call_id: Option<CallId>,
    /// The verified caller.
    pub identity: Option<Identity>,
    /// The parsed call.
    pub call: Option<Call>,
    /// The policy decision.
    pub decision: Option<Decision>,
    /// What `mode = "shadow"` rules would have decided (not enforced).
    pub shadow: Vec<ShadowVerdict>,
    /// The approval the call used or asked for.
    pub approval: Option<ApprovalRef>,
    /// Secrets substituted into the request.
    pub secrets_used: Vec<SecretUse>,
    /// The upstream's status and how long it took to answer, in milliseconds.
    pub upstream: Option<(u16, u64)>,
    /// How many secrets the masker replaced in the response.
    pub masked: u64,
    /// The error the call ended with, if any.
    pub error: Option<Error>,
}

/// A shared, cloneable handle on the audit note of one call.
#[derive(Debug, Clone)]
pub struct AuditNote(Arc<Mutex<AuditNoteSnapshot>>);

impl AuditNote {
    /// A fresh note for call `call_id`.
    pub fn new(call_id: CallId) -> Self {
        Self(Arc::new(Mutex::new(AuditNoteSnapshot { call_id: Some(call_id), ..Default::default() })))
    }

    fn lock(&self) -> MutexGuard<'_, AuditNoteSnapshot> {
        // A panic while holding this lock cannot leave the note half-written in a way
        // that matters more than losing the record, so recover the data.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the verified identity.
    pub fn set_identity(&self, identity: &Identity) {
        self.lock().identity = Some(identity.clone());
    }

    /// Records the parsed call.
    pub fn set_call(&self, call: &Call) {
        self.lock().call = Some(call.clone());
    }

    /// Records the decision.
    pub fn set_decision(&self, decision: &Decision) {
        self.lock().decision = Some(decision.clone());
    }

    /// Records what the shadow rules would have decided (replacing an earlier list).
    pub fn set_shadow(&self, shadow: &[ShadowVerdict]) {
        self.lock().shadow = shadow.to_vec();
    }

    /// Records the approval.
    pub fn set_approval(&self, approval: ApprovalRef) {
        self.lock().approval = Some(approval);
    }

    /// Records a substituted secret.
    pub fn add_secret_used(&self, used: SecretUse) {
        self.lock().secrets_used.push(used);
    }

    /// Records the upstream's status and latency.
    pub fn set_upstream(&self, status: u16, duration_ms: u64) {
        self.lock().upstream = Some((status, duration_ms));
    }

    /// Adds to the count of masked matches.
    pub fn add_masked(&self, n: u64) {
        self.lock().masked += n;
    }

    /// Records the error the call ended with (the first one wins: it is the cause).
    pub fn set_error(&self, error: &Error) {
        let mut g = self.lock();
        if g.error.is_none() {
            g.error = Some(error.clone());
        }
    }

    /// A copy of everything noted so far.
    pub fn snapshot(&self) -> AuditNoteSnapshot {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn clones_share_one_note_and_first_error_wins() {
        let note = AuditNote::new(CallId::new());
        let inner = note.clone();
        inner.add_masked(2);
        inner.add_masked(3);
        inner.set_upstream(200, 12);
        inner.set_error(&Error::new(ErrorCode::UpstreamTimeout, "first"));
        inner.set_error(&Error::new(ErrorCode::Internal, "second"));
        let s = note.snapshot();
        assert_eq!(s.masked, 5);
        assert_eq!(s.upstream, Some((200, 12)));
        assert_eq!(s.error.unwrap().message, "first");
    }
}
