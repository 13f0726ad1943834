//! Canonical JSON: the one writer behind every hash and digest Cloakroom computes over
//! JSON (the audit chain, the argument digest approvals bind, replay's digests).
//!
//! Object keys in byte order, no insignificant whitespace, strings escaped as serde_json
//! escapes them (`\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00xx`),
//! integers as decimal. Independent of serde_json's `preserve_order` feature, so the
//! same value gives the same bytes in every build.
//!
//! Floats have no single text form across implementations: [`canonical_json`] refuses
//! them (audit records never hold one), [`canonical_json_with_floats`] writes them as
//! serde_json prints them (shortest round-trip form) for digests that only this program
//! compares — a caller's arguments may hold `1.5`.
//!
//! ```
//! use cloakroom_core::canonical::{canonical_json, canonical_json_with_floats};
//! let v: serde_json::Value = serde_json::from_str(r#"{"b": [1, {"y": "\n"}], "a": 2}"#).unwrap();
//! assert_eq!(canonical_json(&v).unwrap(), r#"{"a":2,"b":[1,{"y":"\n"}]}"#);
//! assert!(canonical_json(&serde_json::json!({"x": 1.5})).is_err());
//! assert_eq!(canonical_json_with_floats(&serde_json::json!({"x": 1.5})), r#"{"x":1.5}"#);
//! ```

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// A floating-point number was found (its text form is not canonical).
    #[error("a float ({0}) cannot be hashed canonically")]
    Float(String),
    /// The value did not serialize.
    #[error("value does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The canonical JSON text of `value`; floats are refused.
pub fn canonical_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(1024);
    write_canonical_json(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical JSON text of `value` to `out`; floats are refused.
pub fn write_canonical_json(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    write(value, out, false)
}

/// The canonical JSON text of `value`, floats written as serde_json prints them.
pub fn canonical_json_with_floats(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    // Infallible with floats allowed: every other case writes without error.
    let _ = write(value, &mut out, true);
    out
}

/// The keys of `map` in the canonical (byte) order.
pub fn sorted_keys(map: &serde_json::Map<String, Value>) -> Vec<&String> {
    // Sort explicitly: serde_json's map order depends on a crate feature.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    keys
}

fn write(value: &Value, out: &mut String, floats: bool) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() && !floats {
                return Err(CanonicalError::Float(n.to_string()));
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out, floats)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, key) in sorted_keys(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write(&map[key], out, floats)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Which bytes a JSON string must escape (the quote, the backslash and the control
/// characters), as a table so that the common case costs one load per byte.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it. Hand-written
/// rather than `serde_json::to_string`: the audit writer renders every recorded body
/// through it, and copying clean runs whole is measured in docs/performance.md.
pub fn write_json_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        // Clean runs are copied whole; only the bytes that need escaping are rewritten,
        // a char at a time (a JSON text recorded as a string has a `"` every few bytes,
        // and a two-byte copy per escape cost more than the escape).
        if start < i {
            out.push_str(&s[start..i]);
        }
        let short = match b {
            b'"' => '"',
            b'\\' => '\\',
            0x08 => 'b',
            0x0c => 'f',
            b'\n' => 'n',
            b'\r' => 'r',
            b'\t' => 't',
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
                start = i + 1;
                continue;
            }
        };
        out.push('\\');
        out.push(short);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The text parses back to the same value, and strings are escaped byte for byte
        /// as serde_json escapes them (digests computed before this writer existed, with
        /// serde_json, stay the same).
        #[test]
        fn round_trips_and_escapes_like_serde_json(v in json_value(), s in any::<String>()) {
            let text = canonical_json(&v).unwrap();
            prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
            let mut out = String::new();
            write_json_string(&s, &mut out);
            prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter_and_floats_are_a_choice() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y":2,"x":1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
        assert_eq!(canonical_json(&a).unwrap(), r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
        assert!(matches!(canonical_json(&serde_json::json!([0.5])), Err(CanonicalError::Float(_))));
        assert_eq!(canonical_json_with_floats(&serde_json::json!([0.5, 1])), "[0.5,1]");
    }
}
