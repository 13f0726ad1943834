//! API keys: the SHA-256 of the presented key compared, in constant time, with the
//! hashes in `[[identity.api_keys]]`.

use cloakroom_core::{AuthMethod, Identity};
#[cfg(test)]
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::{config::ApiKeyConfig, error::ConfigError, AuthError};

/// The issuer recorded for API-key identities.
pub const API_KEY_ISSUER: &str = "api_key";

/// A SHA-256 digest as four words: `subtle` then compares 4 words instead of 32 bytes,
/// each behind its own optimisation barrier.
type Digest256 = [u64; 4];

fn words(digest: &[u8; 32]) -> Digest256 {
    let mut w = [0u64; 4];
    for (i, chunk) in digest.chunks_exact(8).enumerate() {
        w[i] = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    w
}

#[derive(Debug)]
struct Entry {
    hash: Digest256,
    subject: String,
    groups: Vec<String>,
}

/// The configured API keys.
#[derive(Debug, Default)]
pub(crate) struct ApiKeys {
    entries: Vec<Entry>,
}

impl ApiKeys {
    pub(crate) fn new(config: &[ApiKeyConfig]) -> Result<Self, ConfigError> {
        let entries = config
            .iter()
            .enumerate()
            .map(|(index, k)| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(k.sha256.trim(), &mut hash).map_err(|_| ConfigError::ApiKeyHash { index })?;
                Ok(Entry { hash: words(&hash), subject: k.subject.clone(), groups: k.groups.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity of `key`. Every configured hash is compared, whichever matches, so
    /// the time taken does not say which entry (or how much of a hash) matched.
    #[cfg(test)]
    pub(crate) fn verify(&self, key: &str) -> Result<Identity, AuthError> {
        self.verify_digest(&Sha256::digest(key.as_bytes()).into())
    }

    /// Like `verify`, given the SHA-256 of the presented key.
    pub(crate) fn verify_digest(&self, digest: &[u8; 32]) -> Result<Identity, AuthError> {
        let presented = words(digest);
        let mut found: Option<&Entry> = None;
        for entry in &self.entries {
            let eq: Choice = entry.hash[..].ct_eq(&presented[..]);
            if bool::from(eq) && found.is_none() {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(AuthError::UnknownApiKey)?;
        Ok(Identity::new(entry.subject.clone(), API_KEY_ISSUER.to_owned(), AuthMethod::ApiKey)
            .with_groups(entry.groups.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[
            ApiKeyConfig {
                subject: "ci-bot".into(),
                groups: vec!["ci".into()],
                sha256: hex::encode(Sha256::digest(b"ck_one")),
            },
            ApiKeyConfig {
                subject: "ops".into(),
                groups: vec![],
                sha256: hex::encode(Sha256::digest(b"ck_two")).to_uppercase(),
            },
        ])
        .unwrap()
    }

    #[test]
    fn known_keys_give_their_subject_and_groups() {
        let id = keys().verify("ck_one").unwrap();
        assert_eq!(
            (id.subject.as_str(), id.groups.as_slice(), id.method),
            ("ci-bot", &["ci".to_owned()][..], AuthMethod::ApiKey)
        );
        assert_eq!(keys().verify("ck_two").unwrap().subject, "ops");
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        assert_eq!(keys().verify("ck_three"), Err(AuthError::UnknownApiKey));
        assert_eq!(keys().verify(""), Err(AuthError::UnknownApiKey));
        let bad = ApiKeys::new(&[ApiKeyConfig { subject: "x".into(), groups: vec![], sha256: "abc".into() }]);
        assert!(matches!(bad, Err(ConfigError::ApiKeyHash { index: 0 })));
    }
}
