//! The digest approvals bind to.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the canonical JSON of `arguments` (object keys sorted, no
/// whitespace) when there are arguments, else of the raw `body`.
pub fn call_digest(arguments: &Value, body: &[u8]) -> String {
    let mut h = Sha256::new();
    if arguments.is_null() {
        h.update(body);
    } else {
        let mut out = Vec::new();
        canonical_json(arguments, &mut out);
        h.update(&out);
    }
    hex::encode(h.finalize())
}

/// Writes `v` as canonical JSON: object keys in byte order, no insignificant whitespace,
/// strings and numbers as serde_json prints them. Independent of serde_json's
/// `preserve_order` feature, so the digest is the same in every build.
pub fn canonical_json(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(k).expect("string serializes").as_bytes());
                out.push(b':');
                canonical_json(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(serde_json::to_string(other).expect("scalar serializes").as_bytes()),
    }
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
        let mut out = Vec::new();
        canonical_json(&a, &mut out);
        assert_eq!(out, br#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
    }

    #[test]
    fn different_arguments_or_bodies_differ() {
        assert_ne!(call_digest(&json!({"a": 1}), b""), call_digest(&json!({"a": 2}), b""));
        assert_ne!(call_digest(&Value::Null, b"x"), call_digest(&Value::Null, b"y"));
        assert_eq!(call_digest(&Value::Null, b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
