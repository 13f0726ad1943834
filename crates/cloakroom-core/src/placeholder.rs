//! Placeholders: the tickets callers hold instead of secrets.

use std::{fmt, str::FromStr};

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

/// Every placeholder starts with this prefix.
pub const PLACEHOLDER_PREFIX: &str = "cloak_";
/// Number of base32 characters after the prefix (26 characters = 130 bits).
pub const PLACEHOLDER_BODY_LEN: usize = 26;
/// Total length of a placeholder in bytes.
pub const PLACEHOLDER_LEN: usize = PLACEHOLDER_PREFIX.len() + PLACEHOLDER_BODY_LEN;

/// A placeholder: `cloak_` followed by 26 lowercase base32 characters (`a-z`, `2-7`).
///
/// Placeholders are derived by the vault from HMAC-SHA256(placeholder key, secret name)
/// (see [`Placeholder::from_digest`]); this type only knows their shape.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Placeholder(String);

/// Why a string is not a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// The string does not start with `cloak_`.
    #[error("a placeholder starts with \"cloak_\"")]
    Prefix,
    /// The string has the wrong length.
    #[error("a placeholder is \"cloak_\" followed by exactly 26 characters, got {0} characters")]
    Length(usize),
    /// The string holds a character outside lowercase base32.
    #[error("a placeholder's characters are lowercase base32 (a-z, 2-7)")]
    Alphabet,
    /// The digest given to [`Placeholder::from_digest`] is too short.
    #[error("a placeholder needs at least 17 bytes of digest, got {0}")]
    DigestTooShort(usize),
}

impl Placeholder {
    /// Builds a placeholder from the first 130 bits of a digest (at least 17 bytes),
    /// typically HMAC-SHA256(placeholder key, secret name).
    pub fn from_digest(digest: &[u8]) -> Result<Self, PlaceholderError> {
        if digest.len() < 17 {
            return Err(PlaceholderError::DigestTooShort(digest.len()));
        }
        let encoded = BASE32_NOPAD.encode(&digest[..17]).to_ascii_lowercase();
        let mut s = String::with_capacity(PLACEHOLDER_LEN);
        s.push_str(PLACEHOLDER_PREFIX);
        s.push_str(&encoded[..PLACEHOLDER_BODY_LEN]);
        Ok(Self(s))
    }

    /// Checks the shape of a placeholder without allocating.
    pub fn validate(s: &str) -> Result<(), PlaceholderError> {
        let Some(body) = s.strip_prefix(PLACEHOLDER_PREFIX) else {
            return Err(PlaceholderError::Prefix);
        };
        if body.len() != PLACEHOLDER_BODY_LEN {
            return Err(PlaceholderError::Length(body.chars().count()));
        }
        if !body.bytes().all(is_base32_lower) {
            return Err(PlaceholderError::Alphabet);
        }
        Ok(())
    }

    /// The placeholder as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The placeholder's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Whether `b` is in the lowercase base32 alphabet used by placeholders.
pub(crate) fn is_base32_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)
}

impl FromStr for Placeholder {
    type Err = PlaceholderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::validate(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Placeholder {
    type Error = PlaceholderError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::validate(&s)?;
        Ok(Self(s))
    }
}

impl From<Placeholder> for String {
    fn from(p: Placeholder) -> Self {
        p.0
    }
}

impl AsRef<str> for Placeholder {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Placeholder({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn from_digest_has_the_documented_shape() {
        let p = Placeholder::from_digest(&[0xAB; 32]).unwrap();
        assert_eq!(p.as_str().len(), PLACEHOLDER_LEN);
        assert!(p.as_str().starts_with("cloak_"));
        Placeholder::validate(p.as_str()).unwrap();
    }

    #[test]
    fn short_digest_is_refused() {
        assert_eq!(Placeholder::from_digest(&[0; 16]), Err(PlaceholderError::DigestTooShort(16)));
    }

    #[test]
    fn malformed_strings_are_refused() {
        assert_eq!(Placeholder::validate("token_abcdefghijklmnopqrstuvwxyz"), Err(PlaceholderError::Prefix));
        assert_eq!(Placeholder::validate("cloak_abc"), Err(PlaceholderError::Length(3)));
        assert_eq!(Placeholder::validate("cloak_abcdefghijklmnopqrstuvwxyZ"), Err(PlaceholderError::Alphabet));
        assert_eq!(Placeholder::validate("cloak_abcdefghijklmnopqrstuvwxy1"), Err(PlaceholderError::Alphabet));
        assert!("cloak_abcdefghijklmnopqrstuvwx27".parse::<Placeholder>().is_ok());
    }

    #[test]
    fn serde_round_trip_validates() {
        let p = Placeholder::from_digest(&[7; 20]).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Placeholder>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Placeholder>("\"cloak_nope\"").is_err());
    }

    proptest! {
        #[test]
        fn every_digest_gives_a_valid_distinct_placeholder(a in proptest::collection::vec(any::<u8>(), 17..40),
                                                          b in proptest::collection::vec(any::<u8>(), 17..40)) {
            let pa = Placeholder::from_digest(&a).unwrap();
            let pb = Placeholder::from_digest(&b).unwrap();
            prop_assert!(Placeholder::validate(pa.as_str()).is_ok());
            prop_assert_eq!(pa == pb, a[..17] == b[..17] || (a[..16] == b[..16] && (a[16] >> 6) == (b[16] >> 6)));
        }
    }
}
