//! Which JSON pointer a byte range of a JSON document sits in.
//!
//! The detokenizer substitutes on the raw bytes (so the document keeps its formatting,
//! key order and duplicate keys exactly as the caller sent them) but checks `json:/pointer`
//! locations, so it needs, for each placeholder occurrence, the pointer of the string
//! holding it. One pass over the bytes with a stack of containers gives that without
//! building a `serde_json::Value`.
//!
//! Its work is bounded whatever the document's shape: nesting deeper than
//! [`MAX_JSON_DEPTH`] is refused as soon as it is seen, and a pointer is built only for a
//! string holding a placeholder, at most [`MAX_POINTER_BYTES`] long (the caller bounds
//! the number of placeholders by [`cloakroom_core::limits::MAX_PLACEHOLDERS`]).

use std::ops::Range;

use cloakroom_core::limits::{MAX_JSON_DEPTH, MAX_POINTER_BYTES};

/// Why [`locate`] gave no pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocateError {
    /// Not a single valid JSON document (RFC 8259).
    NotJson,
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// A placeholder's pointer would be longer than [`MAX_POINTER_BYTES`].
    PointerTooLong,
}

enum Frame {
    /// An object and the byte range of its current member's key token (quotes included).
    Object { key: Option<Range<usize>> },
    /// An array and the index of its current element.
    Array { index: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    ValueOrEnd,
    KeyOrEnd,
    Key,
    Colon,
    CommaOrEnd,
    Done,
}

fn push_escaped(out: &mut String, segment: &str) {
    for c in segment.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

fn decode_key(doc: &[u8], token: &Range<usize>) -> Result<String, LocateError> {
    let raw = &doc[token.start + 1..token.end - 1];
    // An escape is at most 6 bytes for a character: a raw key this long decodes to more
    // than the pointer may hold.
    if raw.len() / 6 > MAX_POINTER_BYTES {
        return Err(LocateError::PointerTooLong);
    }
    if !raw.contains(&b'\\') {
        // Validated UTF-8 without escapes: the key is the bytes.
        return Ok(String::from_utf8_lossy(raw).into_owned());
    }
    Ok(serde_json::from_slice::<String>(&doc[token.clone()]).unwrap_or_default())
}

fn pointer(doc: &[u8], stack: &[Frame], member: Option<&Range<usize>>) -> Result<String, LocateError> {
    let mut out = String::new();
    let segment = |out: &mut String, key: &Range<usize>| {
        out.push('/');
        push_escaped(out, &decode_key(doc, key)?);
        if out.len() > MAX_POINTER_BYTES {
            return Err(LocateError::PointerTooLong);
        }
        Ok(())
    };
    for f in stack {
        match f {
            Frame::Object { key: Some(k) } => segment(&mut out, k)?,
            Frame::Object { key: None } => {}
            Frame::Array { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
    }
    if let Some(m) = member {
        segment(&mut out, m)?;
    }
    if out.len() > MAX_POINTER_BYTES {
        return Err(LocateError::PointerTooLong);
    }
    Ok(out)
}

/// Scans the string token starting at `doc[start] == b'"'`; returns the index after its
/// closing quote, or `None` if it is not a valid JSON string.
fn scan_string(doc: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        let rel = memchr::memchr2(b'"', b'\\', &doc[i..])?;
        // Raw control characters are not allowed inside JSON strings.
        if doc[i..i + rel].iter().any(|&b| b < 0x20) {
            return None;
        }
        i += rel;
        if doc[i] == b'"' {
            return Some(i + 1);
        }
        match *doc.get(i + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
            b'u' if doc.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
            _ => return None,
        }
    }
}

/// Scans a number starting at `i`; returns the index after it.
fn scan_number(doc: &[u8], mut i: usize) -> Option<usize> {
    let digits = |doc: &[u8], mut i: usize| {
        let s = i;
        while i < doc.len() && doc[i].is_ascii_digit() {
            i += 1;
        }
        (i > s).then_some(i)
    };
    if doc[i] == b'-' {
        i += 1;
    }
    match doc.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(doc, i)?,
        _ => return None,
    }
    if doc.get(i) == Some(&b'.') {
        i = digits(doc, i + 1)?;
    }
    if matches!(doc.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(doc.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(doc, i)?;
    }
    Some(i)
}

/// For each of `ranges` (sorted, non-overlapping), the JSON pointer of the string token
/// containing it (`None` if it is not inside one). An error when `doc` is not a single
/// valid JSON document (RFC 8259), is nested too deep or a pointer would be too long,
/// checked in the same pass.
pub(crate) fn locate(doc: &[u8], ranges: &[Range<usize>]) -> Result<Vec<Option<String>>, LocateError> {
    check(doc, ranges).ok_or(LocateError::NotJson)?
}

/// [`locate`], with `None` for "not JSON" so that `?` reads the grammar.
fn check(doc: &[u8], ranges: &[Range<usize>]) -> Option<Result<Vec<Option<String>>, LocateError>> {
    std::str::from_utf8(doc).ok()?;
    let mut out = vec![None; ranges.len()];
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect = Expect::Value;
    let mut next = 0; // first range not yet passed
    let mut i = 0;
    let after_value = |stack: &[Frame]| if stack.is_empty() { Expect::Done } else { Expect::CommaOrEnd };
    while i < doc.len() {
        let b = doc[i];
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
            continue;
        }
        match (expect, b) {
            (Expect::Value | Expect::ValueOrEnd, b'{' | b'[') if stack.len() >= MAX_JSON_DEPTH => {
                return Some(Err(LocateError::TooDeep));
            }
            (Expect::Value | Expect::ValueOrEnd, b'{') => {
                stack.push(Frame::Object { key: None });
                expect = Expect::KeyOrEnd;
                i += 1;
            }
            (Expect::Value | Expect::ValueOrEnd, b'[') => {
                stack.push(Frame::Array { index: 0 });
                expect = Expect::ValueOrEnd;
                i += 1;
            }
            (Expect::Value | Expect::ValueOrEnd | Expect::KeyOrEnd | Expect::Key, b'"') => {
                let end = scan_string(doc, i)?;
                let token = i..end;
                let is_key = matches!(expect, Expect::KeyOrEnd | Expect::Key);
                while next < ranges.len() && ranges[next].end <= token.start {
                    next += 1;
                }
                let mut here: Option<String> = None;
                while next < ranges.len() && ranges[next].start >= token.start && ranges[next].end <= token.end {
                    // One pointer per string, however many placeholders it holds.
                    if here.is_none() {
                        let built = pointer(doc, &stack, is_key.then_some(&token));
                        match built {
                            Ok(p) => here = Some(p),
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    out[next] = here.clone();
                    next += 1;
                }
                if is_key {
                    if let Some(Frame::Object { key }) = stack.last_mut() {
                        *key = Some(token);
                    }
                    expect = Expect::Colon;
                } else {
                    expect = after_value(&stack);
                }
                i = end;
            }
            (Expect::Value | Expect::ValueOrEnd, b'-' | b'0'..=b'9') => {
                i = scan_number(doc, i)?;
                expect = after_value(&stack);
            }
            (Expect::Value | Expect::ValueOrEnd, b't' | b'f' | b'n') => {
                let lit: &[u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !doc[i..].starts_with(lit) {
                    return None;
                }
                i += lit.len();
                expect = after_value(&stack);
            }
            (Expect::Colon, b':') => {
                expect = Expect::Value;
                i += 1;
            }
            (Expect::CommaOrEnd, b',') => {
                expect = match stack.last_mut()? {
                    Frame::Object { key } => {
                        *key = None;
                        Expect::Key
                    }
                    Frame::Array { index } => {
                        *index += 1;
                        Expect::Value
                    }
                };
                i += 1;
            }
            (Expect::CommaOrEnd | Expect::KeyOrEnd, b'}') => {
                if !matches!(stack.pop()?, Frame::Object { .. }) {
                    return None;
                }
                expect = after_value(&stack);
                i += 1;
            }
            (Expect::CommaOrEnd | Expect::ValueOrEnd, b']') => {
                if !matches!(stack.pop()?, Frame::Array { .. }) {
                    return None;
                }
                expect = after_value(&stack);
                i += 1;
            }
            _ => return None,
        }
    }
    (expect == Expect::Done).then_some(Ok(out))
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn at(doc: &str, needle: &str) -> Vec<Range<usize>> {
        doc.match_indices(needle).map(|(i, m)| i..i + m.len()).collect()
    }

    #[test]
    fn pointers_of_strings_in_objects_and_arrays() {
        let doc = r#"{"a": {"b": "X"}, "list": [1, "no", "pre X post"], "c/d": "X", "~": ["X"]}"#;
        let got = locate(doc.as_bytes(), &at(doc, "X")).unwrap();
        let want = ["/a/b", "/list/2", "/c~1d", "/~0/0"].map(|s| Some(s.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn top_level_string_and_key_positions() {
        assert_eq!(locate(br#""X""#, &[1..2]).unwrap(), vec![Some(String::new())]);
        let doc = r#"{"X": 1}"#;
        assert_eq!(locate(doc.as_bytes(), &at(doc, "X")).unwrap(), vec![Some("/X".into())]);
    }

    #[test]
    fn escaped_quotes_and_keys_are_decoded() {
        let doc = r#"{"k\"1": "a\"X", "n": "X"}"#;
        let got = locate(doc.as_bytes(), &at(doc, "X")).unwrap();
        assert_eq!(got, vec![Some("/k\"1".into()), Some("/n".into())]);
    }

    #[test]
    fn invalid_json_is_none() {
        assert!(locate(b"{\"a\": X}", &[6..7]).is_err());
        assert!(locate(b"not json X", &[9..10]).is_err());
        for bad in [
            &b"{\"a\": \"X\""[..],
            b"{\"a\" \"X\"}",
            b"[\"X\",]",
            b"{\"a\": \"X\",}",
            b"\"X\" \"Y\"",
            b"[\"X\"}",
            b"{\"a\": 01, \"b\": \"X\"}",
            b"{\"a\": tru, \"b\": \"X\"}",
            b"[\"bad \\q escape\", \"X\"]",
            b"[\"raw\ttab\", \"X\"]",
            b"[\"X\xff\"]",
        ] {
            assert_eq!(locate(bad, &[]), Err(LocateError::NotJson), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_before_any_pointer_is_built() {
        let ok = format!("{}\"X\"{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        let got = locate(ok.as_bytes(), &at(&ok, "X")).unwrap();
        assert_eq!(got, vec![Some("/0".repeat(MAX_JSON_DEPTH))]);
        // The shape that took 2.7 GiB: 900,000 brackets, then thousands of placeholders.
        let deep = format!("{}{}", "[".repeat(900_000), "\"X\",".repeat(5000));
        assert_eq!(locate(deep.as_bytes(), &at(&deep, "X")), Err(LocateError::TooDeep));
    }

    #[test]
    fn pointers_longer_than_the_limit_are_refused() {
        let key = "k".repeat(MAX_POINTER_BYTES);
        let doc = format!("{{\"{key}\": \"X\"}}");
        assert_eq!(locate(doc.as_bytes(), &at(&doc, "X")), Err(LocateError::PointerTooLong));
        let fits = format!("{{\"{}\": \"X\"}}", &key[1..]);
        assert!(locate(fits.as_bytes(), &at(&fits, "X")).is_ok());
        // Long keys cost nothing where no placeholder sits below them.
        let far = format!("{{\"{key}\": 1, \"a\": \"X\"}}");
        assert_eq!(locate(far.as_bytes(), &at(&far, "X")).unwrap(), vec![Some("/a".into())]);
    }

    #[test]
    fn valid_documents_of_every_shape_are_accepted() {
        for good in [
            &b"{}"[..],
            b"[]",
            b" {\"a\": [1, -2.5e+3, 0, true, false, null, {}, [], \"s\\u00e9\\n\"]} ",
            b"\"just a string\"",
            b"42",
        ] {
            assert!(locate(good, &[]).is_ok(), "{}", String::from_utf8_lossy(good));
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[a-z~/ \"\\\\\u{e9}]{0,6}".prop_map(Value::String),
            "[a-z ]{0,3}".prop_map(|s| Value::String(format!("{s}XMARK{s}"))),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z~/\"\\\\]{0,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn expected(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => {
                out.extend(std::iter::repeat_n(path.to_owned(), s.matches("XMARK").count()))
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    expected(x, &format!("{path}/{i}"), out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    expected(x, &format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            _ => {}
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn agrees_with_serde_json_on_validity(doc in "[\\[\\]{}\",:a-c0-9 .eE+\\-tfnrulse\\\\]{0,24}") {
            let ours = locate(doc.as_bytes(), &[]).is_ok();
            let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&doc).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{}", doc);
        }

        #[test]
        fn pointers_agree_with_a_walk_of_the_parsed_document(v in arb_json(), pretty in proptest::bool::ANY) {
            let doc = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { serde_json::to_string(&v).unwrap() };
            let ranges = at(&doc, "XMARK");
            let mut want = Vec::new();
            expected(&v, "", &mut want);
            let got: Vec<String> = locate(doc.as_bytes(), &ranges).unwrap().into_iter().map(|p| p.unwrap()).collect();
            proptest::prop_assert_eq!(got, want, "{}", doc);
        }
    }
}
