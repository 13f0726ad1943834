//! Verified tokens remembered by the SHA-256 of the token, until they expire.
//!
//! The key is a hash, so the cache holds no credential: a memory dump shows which
//! identities were seen, not the tokens that prove them.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::RwLock,
    time::{Duration, Instant},
};

use cloakroom_core::Identity;
use sha2::{Digest, Sha256};

/// The SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The keys are SHA-256 digests already: their first eight bytes are a perfectly good
/// hash, and SipHash over them would only cost time. Only verified tokens are inserted,
/// so nobody can pick digests to collide.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

type DigestMap<V> = HashMap<TokenHash, V, BuildHasherDefault<DigestHasher>>;

#[derive(Debug)]
struct Entry {
    identity: Identity,
    expires: Instant,
}

/// A bounded map from token hash to the identity it proved.
#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    entries: RwLock<DigestMap<Entry>>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, entries: RwLock::new(DigestMap::default()) }
    }

    /// The identity a still-valid cached token proved.
    pub(crate) fn get(&self, hash: &TokenHash) -> Option<Identity> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(hash)?;
        (entry.expires > Instant::now()).then(|| entry.identity.clone())
    }

    /// Remembers `identity` for `ttl`.
    pub(crate) fn insert(&self, hash: TokenHash, identity: &Identity, ttl: Duration) {
        if self.capacity == 0 || ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&hash) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.capacity {
                // Still full of live tokens: forget an arbitrary eighth (the map's order
                // follows the digests, which no caller can steer).
                let drop: Vec<TokenHash> = entries.keys().take((self.capacity / 8).max(1)).copied().collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        let mut identity = identity.clone();
        // The source address belongs to the request, not to the token.
        identity.source_ip = None;
        entries.insert(hash, Entry { identity, expires: now + ttl });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloakroom_core::AuthMethod;

    fn id(s: &str) -> Identity {
        Identity::new(s.into(), "i".into(), AuthMethod::Oidc).with_source_ip(Some("1.2.3.4".parse().unwrap()))
    }

    #[test]
    fn remembers_until_expiry_without_source_address() {
        let c = TokenCache::new(4);
        c.insert(token_hash("a"), &id("alice"), Duration::from_secs(60));
        c.insert(token_hash("b"), &id("bob"), Duration::from_nanos(1));
        let got = c.get(&token_hash("a")).unwrap();
        assert_eq!(got.subject, "alice");
        assert_eq!(got.source_ip, None);
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.get(&token_hash("b")).is_none());
        assert!(c.get(&token_hash("c")).is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::new(16);
        for i in 0..1000 {
            c.insert(token_hash(&i.to_string()), &id("x"), Duration::from_secs(60));
            assert!(c.len() <= 16);
        }
        assert!(c.get(&token_hash("999")).is_some());
        let off = TokenCache::new(0);
        off.insert(token_hash("a"), &id("a"), Duration::from_secs(60));
        assert!(off.get(&token_hash("a")).is_none());
    }
}
