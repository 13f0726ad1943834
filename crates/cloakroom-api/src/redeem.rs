//! `POST /v1/redeem`: a function asks for the value behind a placeholder of a call it is
//! serving, proving it with the call's `Cloakroom-Redeem-Token` header.

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/redeem`. Read strictly by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedeemRequest {
    /// The placeholder the call carried.
    pub placeholder: String,
    /// The call's id (`Cloakroom-Call-Id`).
    pub call_id: String,
}

impl RedeemRequest {
    /// Redeem `placeholder` for call `call_id`.
    pub fn new(placeholder: impl Into<String>, call_id: impl Into<String>) -> Self {
        Self { placeholder: placeholder.into(), call_id: call_id.into() }
    }
}

wire_enum! {
    /// How [`Redeemed::value`] is written.
    pub enum ValueEncoding {
        /// The value is UTF-8 text, as is.
        Utf8 = "utf8",
        /// The value is binary, in standard base64.
        Base64 = "base64",
    }
}

/// The answer to `POST /v1/redeem` (sent with `Cache-Control: no-store`). It holds a
/// secret: `Debug` redacts it, and it must never be logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Redeemed {
    /// The secret value, written as `encoding` says.
    pub value: String,
    /// `utf8` or `base64`.
    pub encoding: ValueEncoding,
}

impl Redeemed {
    /// `value` written as `encoding`.
    pub fn new(value: String, encoding: ValueEncoding) -> Self {
        Self { value, encoding }
    }
}

impl std::fmt::Debug for Redeemed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redeemed").field("value", &"[REDACTED]").field("encoding", &self.encoding).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_never_in_debug() {
        let r = Redeemed::new("sk_live_1".into(), ValueEncoding::Utf8);
        assert!(!format!("{r:?}").contains("sk_live"));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"value":"sk_live_1","encoding":"utf8"}"#);
    }

    #[test]
    fn a_request_with_an_unknown_field_is_refused() {
        assert!(serde_json::from_str::<RedeemRequest>(r#"{"placeholder":"p","call_id":"c","as":"x"}"#).is_err());
    }
}
