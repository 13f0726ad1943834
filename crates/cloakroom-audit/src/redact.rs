//! The last masking pass before a record is written.
//!
//! The gateway plugs its response masker in as a [`Redactor`]; the audit log runs it over
//! the raw bytes of each binary (base64-recorded) body and then over every string of the
//! serialized record — object keys included, so headers, paths, text bodies and error
//! messages all pass through it — so a secret that an inner layer failed to mask never
//! reaches the store.
//!
//! ```
//! use cloakroom_audit::Redactor;
//! struct Hide;
//! impl Redactor for Hide {
//!     fn redact(&self, bytes: &[u8]) -> Vec<u8> {
//!         String::from_utf8_lossy(bytes).replace("hunter2", "[REDACTED:pw]").into_bytes()
//!     }
//! }
//! assert_eq!(Hide.redact(b"pw=hunter2"), b"pw=[REDACTED:pw]");
//! ```

/// Replaces every known secret in `bytes` (in every encoding it knows) by its
/// placeholder or a redaction marker. It is called with raw content (a string's
/// characters, not their JSON escapes; a binary body's bytes); for a string the result
/// must stay UTF-8.
///
/// The log first runs it once over all of a record's strings joined by NUL bytes, and
/// goes string by string only when that changes something. So a redactor must change
/// an input whenever it would change a NUL-delimited part of it — true of any matcher
/// that finds patterns (a NUL counting as a boundary), which is what a redactor is.
pub trait Redactor: Send + Sync {
    /// The bytes with every known secret replaced.
    fn redact(&self, bytes: &[u8]) -> Vec<u8>;

    /// Whether [`redact`](Self::redact) could change `bytes`: `false` only when it
    /// would return them unchanged. The audit log asks this of every record first and
    /// redacts only when it is `true`. The default redacts and compares; a redactor
    /// that can search without building the output should say so more cheaply.
    fn finds(&self, bytes: &[u8]) -> bool {
        self.redact(bytes) != bytes
    }
}

/// A redactor that changes nothing, for embeddings without a vault.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRedaction;

impl Redactor for NoRedaction {
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        bytes.to_vec()
    }

    fn finds(&self, _bytes: &[u8]) -> bool {
        false
    }
}

/// Any `Fn(&[u8]) -> Vec<u8>` is a redactor, so the gateway can plug its masker in with
/// a closure.
impl<F> Redactor for F
where
    F: Fn(&[u8]) -> Vec<u8> + Send + Sync,
{
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_redactors() {
        let r = |b: &[u8]| String::from_utf8_lossy(b).replace("pw", "**").into_bytes();
        assert_eq!(Redactor::redact(&r, b"my pw"), b"my **");
        assert_eq!(NoRedaction.redact(b"my pw"), b"my pw");
    }
}
