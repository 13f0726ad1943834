//! What the gateway remembers between the steps of a sign-in: each is taken exactly once.
//!
//! A started sign-in is kept under its `state` until the issuer sends the browser back
//! (10 minutes at most); a session minted for `cloakroom login` is kept under a one-time
//! hand-off code until the CLI collects it (60 seconds at most). Both maps are bounded:
//! when full, expired entries are dropped first and then the oldest, so a flood of
//! `/v1/oidc/login` requests costs memory it gives back and cannot grow without bound.
//! Taking an entry removes it whether or not what follows succeeds: a state or hand-off
//! code is never usable twice.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use cloakroom_identity::{PendingLogin, Session};

/// How long a started sign-in waits for the issuer's callback.
pub(super) const LOGIN_TTL: Duration = Duration::from_secs(600);
/// How long a session minted for `cloakroom login` waits for the CLI.
pub(super) const HANDOFF_TTL: Duration = Duration::from_secs(60);
/// The most sign-ins (and, separately, hand-offs) kept at once.
const MAX_ENTRIES: usize = 10_000;

/// Where the browser goes once signed in.
#[derive(Debug, Clone)]
pub(super) enum Destination {
    /// A local path on the admin listener (`return_to`), with the session as a cookie.
    Local(String),
    /// `cloakroom login`'s loopback listener, with a hand-off code the CLI redeems with
    /// the verifier of `challenge`.
    Cli { redirect: url::Url, challenge: String },
}

/// A started sign-in, as the callback needs it.
#[derive(Debug)]
pub(super) struct Started {
    pub(super) login: PendingLogin,
    /// SHA-256 of the value of the browser-binding cookie set at `/v1/oidc/login`.
    pub(super) browser: [u8; 32],
    pub(super) destination: Destination,
    pub(super) secure: bool,
}

/// A session waiting for `cloakroom login` to collect it.
pub(super) struct Handoff {
    pub(super) session: Session,
    pub(super) subject: String,
    pub(super) groups: Vec<String>,
    /// The S256 challenge the CLI sent; only the matching verifier collects the session.
    pub(super) challenge: String,
}

struct Entry<T> {
    value: T,
    expires: Instant,
}

struct Expiring<T> {
    entries: HashMap<String, Entry<T>>,
}

impl<T> Expiring<T> {
    fn insert(&mut self, key: String, value: T, ttl: Duration) {
        let now = Instant::now();
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| e.expires > now);
        }
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone()) {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, Entry { value, expires: now + ttl });
    }

    fn take(&mut self, key: &str) -> Option<T> {
        self.entries.remove(key).filter(|e| e.expires > Instant::now()).map(|e| e.value)
    }
}

/// OIDC sign-ins in progress and sessions waiting for the CLI, shared by the admin
/// listener's connections (and kept across reloads).
pub(crate) struct OidcSignIns {
    started: Mutex<Expiring<Started>>,
    handoffs: Mutex<Expiring<Handoff>>,
}

impl Default for OidcSignIns {
    fn default() -> Self {
        Self {
            started: Mutex::new(Expiring { entries: HashMap::new() }),
            handoffs: Mutex::new(Expiring { entries: HashMap::new() }),
        }
    }
}

impl std::fmt::Debug for OidcSignIns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSignIns").finish_non_exhaustive()
    }
}

impl OidcSignIns {
    pub(super) fn start(&self, state: String, started: Started) {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).insert(state, started, LOGIN_TTL);
    }

    /// The sign-in started with `state`, once; `None` when unknown, used or expired.
    pub(super) fn take_started(&self, state: &str) -> Option<Started> {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).take(state)
    }

    pub(super) fn hand_off(&self, code: String, handoff: Handoff) {
        self.handoffs.lock().unwrap_or_else(|p| p.into_inner()).insert(code, handoff, HANDOFF_TTL);
    }

    /// The session waiting under hand-off `code`, once.
    pub(super) fn take_handoff(&self, code: &str) -> Option<Handoff> {
        self.handoffs.lock().unwrap_or_else(|p| p.into_inner()).take(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_taken_once_and_not_after_it_expires() {
        let mut m = Expiring { entries: HashMap::new() };
        m.insert("a".into(), 1, Duration::from_secs(60));
        m.insert("b".into(), 2, Duration::ZERO);
        assert_eq!(m.take("a"), Some(1));
        assert_eq!(m.take("a"), None);
        assert_eq!(m.take("b"), None);
    }

    #[test]
    fn a_full_map_drops_expired_then_oldest_entries() {
        let mut m = Expiring { entries: HashMap::new() };
        for i in 0..MAX_ENTRIES {
            m.insert(format!("k{i}"), i, Duration::from_secs(60 + i as u64));
        }
        m.insert("new".into(), 0, Duration::from_secs(3600));
        assert_eq!(m.entries.len(), MAX_ENTRIES);
        assert!(m.take("k0").is_none(), "the oldest went");
        assert_eq!(m.take("new"), Some(0));
    }
}
