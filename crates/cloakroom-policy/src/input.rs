//! What a policy is asked about: the caller, the call and its context.

use std::net::IpAddr;

use cloakroom_core::{Call, Identity};
use time::OffsetDateTime;

/// The names of the secrets whose placeholders appear in the call.
///
/// The policy layer runs before the detokenizer, so it cannot know this by itself: the
/// gateway (which can scan for placeholders) puts this extension on the request and the
/// `PolicyLayer` turns each name into a Datalog `secret($name)` fact. Without it, no
/// `secret` facts exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsInCall(pub Vec<String>);

/// Everything a [`crate::Policy`] sees about one call.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The verified caller.
    pub identity: &'a Identity,
    /// The parsed call.
    pub call: &'a Call,
    /// The caller's address: `Identity::source_ip`, else the connection's peer.
    pub source_ip: Option<IpAddr>,
    /// Names of the secrets the call's placeholders refer to (see [`SecretsInCall`]).
    pub secrets: &'a [String],
    /// The time of the call (the Datalog `time` fact; custom policies use it for hours).
    pub now: OffsetDateTime,
}

impl<'a> PolicyInput<'a> {
    /// An input for `identity` and `call` at the current time, with the identity's
    /// source address and no secrets.
    pub fn new(identity: &'a Identity, call: &'a Call) -> Self {
        Self { identity, call, source_ip: identity.source_ip, secrets: &[], now: OffsetDateTime::now_utc() }
    }

    /// The same input with `secrets` named.
    pub fn with_secrets(mut self, secrets: &'a [String]) -> Self {
        self.secrets = secrets;
        self
    }

    /// The same input at time `now`.
    pub fn at(mut self, now: OffsetDateTime) -> Self {
        self.now = now;
        self
    }

    /// The same input with `source_ip` (used when the identity has none).
    pub fn with_source_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }
}
