//! The id that ties a call, its upstream request and its audit record together.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A call id: a UUIDv7, so ids sort by the time the call arrived.
///
/// Sent upstream as `Cloakroom-Call-Id` and used as the audit record's `id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(Uuid);

impl CallId {
    /// A fresh, time-ordered call id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for CallId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl FromStr for CallId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip_through_strings() {
        let a = CallId::new();
        let b = CallId::new();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<CallId>().unwrap(), a);
        assert!("not-a-call-id".parse::<CallId>().is_err());
    }
}
