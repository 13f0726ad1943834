//! Which JSON pointer a byte range of a JSON document sits in.
//!
//! The detokenizer substitutes on the raw bytes (so the document keeps its formatting,
//! key order and duplicate keys exactly as the caller sent them) but checks `json:/pointer`
//! locations, so it needs, for each placeholder occurrence, the pointer of the string
//! holding it. One pass over the bytes with a stack of containers gives that without
//! building a `serde_json::Value`.

use std::ops::Range;

enum Frame {
    Object { key: Option<String>, expect_key: bool },
    Array { index: usize },
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

fn pointer(stack: &[Frame], member: Option<&str>) -> String {
    let mut out = String::new();
    for f in stack {
        match f {
            Frame::Object { key: Some(k), .. } => {
                out.push('/');
                push_escaped(&mut out, k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
    }
    if let Some(m) = member {
        out.push('/');
        push_escaped(&mut out, m);
    }
    out
}

/// For each of `ranges` (sorted, non-overlapping), the JSON pointer of the string token
/// containing it (`None` if it is not inside one). `None` overall when `doc` is not a
/// single valid JSON document.
pub(crate) fn locate(doc: &[u8], ranges: &[Range<usize>]) -> Option<Vec<Option<String>>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(doc).ok()?;
    let mut out = vec![None; ranges.len()];
    let mut stack: Vec<Frame> = Vec::new();
    let mut next = 0; // first range not yet passed
    let mut i = 0;
    while i < doc.len() {
        match doc[i] {
            b'{' => stack.push(Frame::Object { key: None, expect_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, expect_key }) => {
                    *key = None;
                    *expect_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => return None,
            },
            b':' => {
                if let Some(Frame::Object { expect_key, .. }) = stack.last_mut() {
                    *expect_key = false;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < doc.len() && doc[i] != b'"' {
                    i += if doc[i] == b'\\' { 2 } else { 1 };
                }
                let end = i + 1; // token is start..end, quotes included
                while next < ranges.len() && ranges[next].end <= start {
                    next += 1;
                }
                let is_key = matches!(stack.last(), Some(Frame::Object { expect_key: true, .. }));
                let mut k = next;
                let mut decoded_key: Option<String> = None;
                if is_key {
                    decoded_key = Some(serde_json::from_slice::<String>(&doc[start..end]).ok()?);
                }
                while k < ranges.len() && ranges[k].start >= start && ranges[k].end <= end {
                    out[k] = Some(match &decoded_key {
                        Some(key) => pointer(&stack, Some(key)),
                        None => pointer(&stack, None),
                    });
                    k += 1;
                }
                next = k;
                if let (Some(key), Some(Frame::Object { key: slot, .. })) = (decoded_key, stack.last_mut()) {
                    *slot = Some(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Some(out)
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
        assert!(locate(b"{\"a\": X}", &[6..7]).is_none());
        assert!(locate(b"not json X", &[9..10]).is_none());
    }
}
