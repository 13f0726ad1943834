//! Secret values: redacted when printed, zeroized when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value (an API key, a bearer token, a password).
///
/// `Debug` and `Display` print `[REDACTED]`; the bytes are wiped from memory when the
/// last copy is dropped. There is deliberately no `Serialize` implementation: a secret
/// reaches the wire only through [`Secret::expose`], so every place that reveals one is
/// easy to find.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps raw bytes as a secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret's bytes. Call this only where the value must leave the gateway
    /// (substituting it into a request, encrypting it at rest, building a matcher).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8, if it is valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The value's length in bytes (safe to log: it reveals no content).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value.into_bytes())
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::from("hunter2-but-longer");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([REDACTED])");
        assert_eq!(s.expose(), b"hunter2-but-longer");
    }

    #[test]
    fn panic_message_of_a_struct_holding_a_secret_is_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            key: Secret,
        }
        let h = Holder { key: Secret::from("sk_live_abcdefgh") };
        let msg = format!("{h:?}");
        assert!(!msg.contains("sk_live"), "{msg}");
    }
}
