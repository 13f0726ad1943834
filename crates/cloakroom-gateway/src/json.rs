//! The one JSON parser policy trusts: strict where parsers disagree.
//!
//! A body two parsers read differently is a body policy can be steered past, so every
//! JSON document the gateway evaluates (an `http` function's arguments, an MCP JSON-RPC
//! message) is parsed here and refused when it is ambiguous:
//!
//! - nesting deeper than [`MAX_JSON_DEPTH`] (parsers' limits differ; a deep document
//!   also costs memory in every layer that walks it), and more than
//!   [`MAX_JSON_VALUES`] values (each costs 32 bytes or more parsed, `0,` is two bytes
//!   of body);
//! - a duplicate key in any object at any depth (some parsers keep the first, some the
//!   last), and two keys that are one name to a parser that ignores letter case
//!   (`name` and `Name`, `ſql` and `sql`, `name` and `name\u0000`: Go's encoding/json,
//!   and so Go MCP servers, matches keys that way and takes the last);
//! - a number that does not have one exact value everywhere: `NaN`/`Infinity` and
//!   overflow to infinity (`1e400`) are not JSON; an integer outside i64/u64, or any
//!   number whose value is an integer of magnitude 2^53 or more but that is not an i64
//!   or u64 literal (`1e300`, `18446744073709551616`), is read exactly by some parsers
//!   and rounded by others.
//!
//! ```
//! # use cloakroom_gateway::call::parse_strict_json;
//! assert_eq!(parse_strict_json(br#"{"a": [1, 2.5, "x"]}"#).unwrap()["a"][1], 2.5);
//! assert!(parse_strict_json(br#"{"a": 1, "a": 2}"#).is_err());
//! assert!(parse_strict_json(br#"{"n": NaN}"#).is_err());
//! assert!(parse_strict_json(b"18446744073709551616").is_err());
//! assert!(parse_strict_json("[".repeat(65).as_bytes()).is_err());
//! ```

use std::{cell::Cell, fmt};

use cloakroom_core::limits::{MAX_JSON_DEPTH, MAX_JSON_VALUES};
use http::{header, request::Parts};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body that is (or claims to be) JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonRefusal(String);

/// The largest magnitude up to which every integer is an exact f64.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

struct Strict<'c> {
    depth: usize,
    /// Values parsed so far in the whole document.
    values: &'c Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'c> Strict<'c> {
    fn nested<E: serde::de::Error>(&self) -> Result<Strict<'c>, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(E::custom(format_args!("JSON nested deeper than {MAX_JSON_DEPTH} levels")));
        }
        Ok(Strict { depth: self.depth + 1, values: self.values })
    }

    /// Counts one more value; an error past [`MAX_JSON_VALUES`].
    fn count<E: serde::de::Error>(&self) -> Result<(), E> {
        let n = self.values.get() + 1;
        if n > MAX_JSON_VALUES {
            return Err(E::custom(format_args!("a JSON document of more than {MAX_JSON_VALUES} values")));
        }
        self.values.set(n);
        Ok(())
    }

    fn child(&self) -> Strict<'c> {
        Strict { depth: self.depth, values: self.values }
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.count()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.count()?;
        if !v.is_finite() || (v.fract() == 0.0 && v.abs() >= EXACT_F64) {
            return Err(E::custom("a JSON number has no single exact value (out of the i64/u64/f64 range)"));
        }
        Ok(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(inner.child())? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let inner = self.nested()?;
        let mut obj = Map::new();
        // The folded names of the keys whose folded name is not the key itself (most
        // keys are plain lower case and are their own folded name: they are found in
        // `obj`). A set: a body of a million upper-case keys must not cost a million
        // squared comparisons.
        let mut folded_names: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let folded = cloakroom_core::fold_name(&key);
            // A key in `obj` that is `folded` is its own folded name (folding twice
            // changes nothing), so it is the same name as `key`; every other key's
            // folded name is in `folded_names`. An exact duplicate is found either way.
            let clash = obj.contains_key(folded.as_ref()) || folded_names.contains(folded.as_ref());
            if clash {
                return Err(A::Error::custom(format_args!(
                    "duplicate key in a JSON object (at depth {}): two keys are the same name, or the same \
                     name to parsers that ignore letter case",
                    inner.depth
                )));
            }
            if let std::borrow::Cow::Owned(f) = folded {
                folded_names.insert(f);
            }
            let v = map.next_value_seed(inner.child())?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

/// Parses `body` as one JSON document, refusing the ambiguous ones (module docs).
pub fn parse_strict_json(body: &[u8]) -> Result<Value, JsonRefusal> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let values = Cell::new(0);
    let value = Strict { depth: 0, values: &values }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    // serde_json's messages name a position and what was expected, never the content.
    value.map_err(|e| JsonRefusal(format!("the request body is not unambiguous JSON: {e}")))
}

/// Whether the content type says JSON (`application/json`, `application/*+json`).
pub(crate) fn content_type_is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Whether the body looks like a JSON document to a lenient parser: its first byte
/// after whitespace and a UTF-8 byte order mark opens an object or array, or it starts
/// with a UTF-16/32 byte order mark or a NUL (JSON in another encoding, which some
/// parsers detect).
pub(crate) fn looks_like_json(body: &[u8]) -> bool {
    if body.starts_with(&[0xFE, 0xFF]) || body.starts_with(&[0xFF, 0xFE]) || body.first() == Some(&0) {
        return true;
    }
    let body = body.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(body);
    let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    matches!(first, Some(b'{' | b'['))
}

/// The arguments of an `http` call (docs/reference.md, the data path, layer 4): the body parsed as JSON whatever
/// its content type; an empty body has none; a body that claims JSON (by content type or by its first byte)
/// and is not unambiguous JSON is refused; any other body that does not parse has no
/// arguments (`Null`).
pub(crate) fn http_arguments(parts: &Parts, body: &[u8]) -> Result<Value, JsonRefusal> {
    // An empty body is no document to anyone (a GET that names a JSON content type).
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Ok(Value::Null);
    }
    let claims = content_type_is_json(parts) || looks_like_json(body);
    match parse_strict_json(body) {
        Ok(v) => Ok(v),
        Err(e) if claims => Err(e),
        Err(_) => Ok(Value::Null),
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
