//! What the SP remembers between requests, bounded and expiring: the sign-ins it started
//! (request id → where to go after) and the assertions it has already accepted.
//!
//! Both are maps with a deadline per entry; a full map first forgets what has expired
//! and then refuses new entries (fail closed) rather than forgetting live ones: forgetting
//! a used assertion id would let it be replayed.

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
}

impl<V> Expiring<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity }
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
                return Err(SamlError::Busy);
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
        let m = Expiring::new(10);
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
        let m = Expiring::new(2);
        let now = SystemTime::now();
        m.insert("old".into(), now + Duration::from_secs(1), (), now).unwrap();
        m.insert("live".into(), now + Duration::from_secs(100), (), now).unwrap();
        let later = now + Duration::from_secs(2);
        assert!(m.insert("new".into(), now + Duration::from_secs(100), (), later).unwrap());
        assert!(matches!(m.insert("more".into(), now + Duration::from_secs(100), (), later), Err(SamlError::Busy)));
        assert!(!m.insert("live".into(), now + Duration::from_secs(100), (), later).unwrap(), "still remembered");
    }
}
