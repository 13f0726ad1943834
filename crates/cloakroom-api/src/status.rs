//! The open probes (`GET /healthz`, `GET /readyz`) and `POST /v1/reload`.

use serde::{Deserialize, Serialize};

/// The answer to `GET /healthz`: the process serves (`{"status": "ok"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// `ok`.
    pub status: String,
}

impl Health {
    /// `{"status": "ok"}`.
    pub fn ok() -> Self {
        Self { status: "ok".into() }
    }
}

wire_enum! {
    /// Whether a replica should receive traffic.
    pub enum ReadyStatus {
        /// Every shared store answers.
        Ready = "ready",
        /// At least one does not (the answer is a 503).
        NotReady = "not_ready",
    }
}

wire_enum! {
    /// The state of one store in [`ReadinessChecks`].
    pub enum CheckState {
        /// It answered a cheap read in time.
        Ok = "ok",
        /// It did not.
        Unavailable = "unavailable",
    }
}

impl CheckState {
    /// `ok` when `ok`, else `unavailable`.
    pub fn of(ok: bool) -> Self {
        if ok {
            CheckState::Ok
        } else {
            CheckState::Unavailable
        }
    }
}

/// Each shared store the gateway needs, probed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReadinessChecks {
    /// The audit sink.
    pub audit: CheckState,
    /// The vault.
    pub vault: CheckState,
    /// The approval store.
    pub approvals: CheckState,
}

impl ReadinessChecks {
    /// The three checks.
    pub fn new(audit: CheckState, vault: CheckState, approvals: CheckState) -> Self {
        Self { audit, vault, approvals }
    }

    /// Whether every check is `ok`.
    pub fn all_ok(&self) -> bool {
        [&self.audit, &self.vault, &self.approvals].iter().all(|c| **c == CheckState::Ok)
    }
}

/// The answer to `GET /readyz` (200 when ready, else 503):
/// `{"status": "ready"|"not_ready", "checks": {"audit", "vault", "approvals"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Readiness {
    /// The verdict.
    pub status: ReadyStatus,
    /// Each store.
    pub checks: ReadinessChecks,
}

impl Readiness {
    /// The readiness the `checks` make: ready when every one is `ok`.
    pub fn new(checks: ReadinessChecks) -> Self {
        let status = if checks.all_ok() { ReadyStatus::Ready } else { ReadyStatus::NotReady };
        Self { status, checks }
    }

    /// Whether the replica is ready.
    pub fn is_ready(&self) -> bool {
        self.status == ReadyStatus::Ready
    }
}

/// The answer to `POST /v1/reload` once the configuration file is re-read
/// (`{"status": "reloaded"}`); a configuration that does not load is refused with
/// `bad_request` and the running one stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reloaded {
    /// `reloaded`.
    pub status: String,
}

impl Reloaded {
    /// `{"status": "reloaded"}`.
    pub fn new() -> Self {
        Self { status: "reloaded".into() }
    }
}

impl Default for Reloaded {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_its_checks() {
        let ready = Readiness::new(ReadinessChecks::new(CheckState::Ok, CheckState::Ok, CheckState::Ok));
        assert!(ready.is_ready());
        let r = Readiness::new(ReadinessChecks::new(CheckState::Ok, CheckState::of(false), CheckState::Ok));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"status": "not_ready", "checks": {"audit": "ok", "vault": "unavailable", "approvals": "ok"}})
        );
    }

    #[test]
    fn probes_and_reload_have_their_fixed_words() {
        assert_eq!(serde_json::to_string(&Health::ok()).unwrap(), r#"{"status":"ok"}"#);
        assert_eq!(serde_json::to_string(&Reloaded::new()).unwrap(), r#"{"status":"reloaded"}"#);
    }
}
