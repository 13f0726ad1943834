//! Names as case-blind parsers match them.
//!
//! Go's `encoding/json` (and so Go MCP servers), ASP.NET Core's default JSON options
//! and Jackson's case-insensitive properties bind a JSON key to a field without regard
//! to case. The gateway's strict JSON parser refuses an object with two keys of one
//! folded name (docs/gateway.md), so in a document it accepted a folded name finds at
//! most one key: a rule on `/amount` also sees `{"Amount": …}`, as such a server does.

use std::borrow::Cow;

/// The name a case-blind parser matches `key` by: NUL removed (Go MCP SDKs took
/// `name\0` for `name`), then each character mapped to the lower case of its
/// single-character upper case (Unicode's simple case folding: `ſ` is `s`, the Kelvin
/// sign is `k`, `ẞ` is `ß`, but `ß` is not `ss`), and `İ` and `ı` to `i` (Jackson
/// lower-cases in the JVM's locale, Turkish included). A key in plain ASCII lower case
/// without NUL is its own folded name, borrowed.
///
/// ```
/// use cloakroom_core::fold_name;
/// assert_eq!(fold_name("Amount"), "amount");
/// assert_eq!(fold_name("\u{17f}ql"), "sql");
/// assert_eq!(fold_name("\u{1e9e}"), fold_name("\u{df}"));
/// assert_ne!(fold_name("ss"), fold_name("\u{df}"));
/// ```
pub fn fold_name(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase() && b != 0) {
        return Cow::Borrowed(key);
    }
    fn single(mut chars: impl Iterator<Item = char>) -> Option<char> {
        let c = chars.next()?;
        chars.next().is_none().then_some(c)
    }
    Cow::Owned(
        key.chars()
            .filter(|c| *c != '\0')
            .map(|c| match c {
                '\u{130}' | '\u{131}' => 'i',
                c => {
                    let upper = single(c.to_uppercase()).unwrap_or(c);
                    single(upper.to_lowercase()).unwrap_or(upper)
                }
            })
            .collect(),
    )
}

/// The member of `object` whose key is `name`, or else the one whose folded name is
/// `name`'s (see [`fold_name`]).
pub fn get_folded<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    object.get(name).or_else(|| {
        let folded = fold_name(name);
        object.iter().find(|(k, _)| fold_name(k) == folded).map(|(_, v)| v)
    })
}

/// The value at JSON pointer `pointer` (RFC 6901) in `value`, each object key matched
/// exactly or else by its folded name ([`get_folded`]).
pub fn pointer_folded<'a>(value: &'a serde_json::Value, pointer: &str) -> Option<&'a serde_json::Value> {
    if let Some(exact) = value.pointer(pointer) {
        return Some(exact);
    }
    if pointer.is_empty() {
        return Some(value);
    }
    let rest = pointer.strip_prefix('/')?;
    rest.split('/').try_fold(value, |at, segment| {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        match at {
            serde_json::Value::Object(map) => get_folded(map, &segment),
            serde_json::Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_find_keys_by_their_folded_name() {
        let v = json!({"Amount": 5, "Opts": {"MODE": "x", "list": [{"K\u{212a}": 1}]}, "a/b": {"~c": 2}});
        assert_eq!(pointer_folded(&v, "/amount"), Some(&json!(5)));
        assert_eq!(pointer_folded(&v, "/opts/mode"), Some(&json!("x")));
        assert_eq!(pointer_folded(&v, "/opts/list/0/kk"), Some(&json!(1)));
        assert_eq!(pointer_folded(&v, "/a~1b/~0c"), Some(&json!(2)));
        assert_eq!(pointer_folded(&v, "/missing"), None);
        assert_eq!(pointer_folded(&v, "/opts/list/1"), None);
        assert_eq!(pointer_folded(&v, ""), Some(&v));
        // The exact key wins where both exist (a document the strict parser refuses).
        assert_eq!(pointer_folded(&json!({"a": 1, "A": 2}), "/A"), Some(&json!(2)));
    }
}
