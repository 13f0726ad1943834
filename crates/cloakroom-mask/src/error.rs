//! What can go wrong building a matcher. Messages name the secret, never its value.

use thiserror::Error;

/// A problem with one entry or with the pattern set as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MaskError {
    /// The secret is shorter than [`MIN_ENCODED_SECRET_LEN`](crate::MIN_ENCODED_SECRET_LEN):
    /// its encoded forms are refused, its raw form is still masked.
    #[error(
        "secret `{name}` is {len} bytes long: its encoded forms (json, url, base64, hex) are not masked \
         because secrets shorter than {min} bytes would match ordinary text; only its raw form is masked"
    )]
    SecretTooShort {
        /// The secret's name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The minimum length for encoded forms.
        min: usize,
    },
    /// The secret's value is empty, so there is nothing to mask; the entry is ignored.
    #[error("secret `{name}` has an empty value and is not masked")]
    EmptySecret {
        /// The secret's name.
        name: String,
    },
    /// The automaton could not be built (for example, too many patterns).
    #[error("the masking automaton could not be built: {0}")]
    Build(String),
}
