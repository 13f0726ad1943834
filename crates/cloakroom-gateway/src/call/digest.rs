//! The digest approvals bind to.

use cloakroom_core::canonical::canonical_json_with_floats;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the canonical JSON of `arguments` (object keys sorted, no
/// whitespace) when there are arguments, else of the raw `body`.
pub fn call_digest(arguments: &Value, body: &[u8]) -> String {
    let mut h = Sha256::new();
    if arguments.is_null() {
        h.update(body);
    } else {
        h.update(canonical_json_with_floats(arguments).as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_digest() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y":2,"x":1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(call_digest(&a, b"ignored"), call_digest(&b, b"other"));
        assert_eq!(canonical_json_with_floats(&a), r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
    }

    #[test]
    fn different_arguments_or_bodies_differ() {
        assert_ne!(call_digest(&json!({"a": 1}), b""), call_digest(&json!({"a": 2}), b""));
        assert_ne!(call_digest(&Value::Null, b"x"), call_digest(&Value::Null, b"y"));
        assert_eq!(call_digest(&Value::Null, b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
