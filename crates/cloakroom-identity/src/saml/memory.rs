//! What the SP remembers between requests, bounded and expiring: the sign-ins it started
//! (request id → where to go after) and the assertions it has already accepted.
//!
//! Both are maps with a deadline per entry; a full map first forgets what has expired.
//! Then the accepted assertions refuse new entries (fail closed): forgetting a used
//! assertion id would let it be replayed. The sign-ins in progress instead forget the one
//! closest to its deadline: forgetting one only fails that sign-in, and refusing would let
//! anyone who can reach `GET /v1/saml/login` block every sign-in by filling the map.

use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use super::SamlError;

/// Most sign-ins in progress at once.
pub(crate) const MAX_PENDING: usize = 10_000;
/// Most accepted assertion ids remembered at once.
pub(crate) const MAX_SEEN: usize = 100_000;

/// A bounded map whose entries expire.
pub(crate) struct Expiring<V> {
    entries: Mutex<HashMap<String, (SystemTime, V)>>,
    capacity: usize,
    when_full: WhenFull,
}

/// What a full map does with a new entry once expired ones are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Refuse it ([`SamlError::Busy`]).
    Refuse,
    /// Forget the live entry with the soonest deadline.
    ForgetSoonest,
}

impl<V> Expiring<V> {
    pub(crate) fn new(capacity: usize, when_full: WhenFull) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity, when_full }
    }

    /// Adds `key` until `until`; false when it is already there (and not expired).
    pub(crate) fn insert(&self, key: String, until: SystemTime, value: V, now: SystemTime) -> Result<bool, SamlError> {
        let mut entries = self.entries.lock().expect("not poisoned");
        if let Some((deadline, _)) = entries.get(&key) {
            if *deadline > now {
                return Ok(false);
            }
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, (deadline, _)| *deadline > now);
            if entries.len() >= self.capacity {
                match self.when_full {
                    WhenFull::Refuse => return Err(SamlError::Busy),
                    WhenFull::ForgetSoonest => {
                        let soonest = entries.iter().min_by_key(|(_, (deadline, _))| *deadline).map(|(k, _)| k.clone());
                        if let Some(k) = soonest {
                            entries.remove(&k);
                        }
                    }
                }
            }
        }
        entries.insert(key, (until, value));
        Ok(true)
    }

    /// Removes `key` and returns its value if it had not expired.
    pub(crate) fn take(&self, key: &str, now: SystemTime) -> Option<V> {
        let mut entries = self.entries.lock().expect("not poisoned");
        entries.remove(key).filter(|(deadline, _)| *deadline > now).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_entry_is_taken_once_and_not_after_it_expires() {
        let m = Expiring::new(10, WhenFull::Refuse);
        let now = SystemTime::now();
        assert!(m.insert("a".into(), now + Duration::from_secs(5), 1, now).unwrap());
        assert!(!m.insert("a".into(), now + Duration::from_secs(5), 2, now).unwrap(), "a live key is not replaced");
        assert_eq!(m.take("a", now), Some(1));
        assert_eq!(m.take("a", now), None);
        m.insert("b".into(), now + Duration::from_secs(5), 1, now).unwrap();
        assert_eq!(m.take("b", now + Duration::from_secs(6)), None);
    }

    #[test]
    fn a_full_map_forgets_only_expired_entries_then_refuses() {
        let m = Expiring::new(2, WhenFull::Refuse);
        let now = SystemTime::now();
        m.insert("old".into(), now + Duration::from_secs(1), (), now).unwrap();
        m.insert("live".into(), now + Duration::from_secs(100), (), now).unwrap();
        let later = now + Duration::from_secs(2);
        assert!(m.insert("new".into(), now + Duration::from_secs(100), (), later).unwrap());
        assert!(matches!(m.insert("more".into(), now + Duration::from_secs(100), (), later), Err(SamlError::Busy)));
        assert!(!m.insert("live".into(), now + Duration::from_secs(100), (), later).unwrap(), "still remembered");
    }

    #[test]
    fn a_full_map_of_sign_ins_forgets_the_one_closest_to_its_deadline() {
        let m = Expiring::new(2, WhenFull::ForgetSoonest);
        let now = SystemTime::now();
        m.insert("first".into(), now + Duration::from_secs(10), (), now).unwrap();
        m.insert("second".into(), now + Duration::from_secs(20), (), now).unwrap();
        assert!(m.insert("third".into(), now + Duration::from_secs(30), (), now).unwrap());
        assert_eq!(m.take("first", now), None);
        assert_eq!(m.take("second", now), Some(()));
        assert_eq!(m.take("third", now), Some(()));
    }
}
