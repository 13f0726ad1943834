//! One secret to mask: its name, its value and what replaces it.

use bytes::Bytes;
use cloakroom_core::Secret;

/// A secret to mask: every occurrence of `value` (in every enabled encoding) is replaced
/// by `replacement`. The value stays a [`Secret`]: `Debug` prints it redacted.
#[derive(Debug, Clone)]
pub struct MaskEntry {
    name: String,
    value: Secret,
    replacement: Bytes,
}

impl MaskEntry {
    /// A secret named `name` whose occurrences become `replacement` (usually its
    /// placeholder, or `[REDACTED:name]`).
    pub fn new(name: impl Into<String>, value: Secret, replacement: impl Into<Bytes>) -> Self {
        Self { name: name.into(), value, replacement: replacement.into() }
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The secret's value.
    pub fn value(&self) -> &Secret {
        &self.value
    }

    /// What replaces each occurrence.
    pub fn replacement(&self) -> &Bytes {
        &self.replacement
    }
}
