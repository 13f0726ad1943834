use http::Request;
use serde_json::json;

use super::*;

fn parts(content_type: Option<&str>) -> Parts {
    let mut b = Request::post("/fn/x");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(()).unwrap().into_parts().0
}

#[test]
fn plain_documents_parse_to_their_value() {
    let v = parse_strict_json(br#" {"a": [1, -2, 2.5, 1e3, true, null, "s\u00e9"], "b": {}} "#).unwrap();
    assert_eq!(v, json!({"a": [1, -2, 2.5, 1000.0, true, null, "s\u{e9}"], "b": {}}));
    assert_eq!(parse_strict_json(b"18446744073709551615").unwrap(), json!(u64::MAX));
    assert_eq!(parse_strict_json(b"-9223372036854775808").unwrap(), json!(i64::MIN));
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    assert!(parse_strict_json(br#"{"sql": "SELECT 1", "sql": "DROP TABLE t"}"#).is_err());
    assert!(parse_strict_json(br#"{"a": [{"b": 1, "c": {"d": 1, "d": 2}}]}"#).is_err());
    // The same key in sibling objects is not a duplicate.
    assert!(parse_strict_json(br#"[{"a": 1}, {"a": 2}]"#).is_ok());
    // Keys are compared after unescaping.
    assert!(parse_strict_json(br#"{"a": 1, "\u0061": 2}"#).is_err());
}

#[test]
fn keys_that_are_one_name_to_a_case_blind_parser_are_refused() {
    for bad in [
        r#"{"name": 1, "Name": 2}"#,
        r#"{"Name": 1, "name": 2}"#,
        r#"{"Name": 1, "NAME": 2}"#,
        r#"{"s": 1, "\u017f": 2}"#,
        r#"{"\u017fql": 1, "SQL": 2}"#,
        r#"{"k": 1, "\u212a": 2}"#,
        r#"{"name": 1, "name\u0000": 2}"#,
        r#"{"na\u0000me": 1, "NAME": 2}"#,
        r#"{"\u00e9t\u00e9": 1, "\u00c9T\u00c9": 2}"#,
        r#"{"\u00df": 1, "\u1e9e": 2}"#,
        r#"{"\u1e9e": 1, "\u00df": 2}"#,
        r#"{"id": 1, "\u0130d": 2}"#,
        r#"{"\u0131d": 1, "ID": 2}"#,
        r#"[{"ok": 1}, {"deep": {"Mode": 1, "mode": 2}}]"#,
    ] {
        let err = parse_strict_json(bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{bad}: {err}");
    }
    // Distinct names stay distinct, whatever their case; siblings do not clash.
    for good in [
        r#"{"name": 1, "names": 2, "nam": 3}"#,
        r#"{"protocolVersion": "x", "clientInfo": {}, "capabilities": {}}"#,
        r#"[{"Name": 1}, {"name": 2}]"#,
        r#"{"\u00e9": 1, "e": 2}"#,
        r#"{"ss": 1, "\u00df": 2}"#,
        r#"{"ff": 1, "\ufb00": 2}"#,
    ] {
        assert!(parse_strict_json(good.as_bytes()).is_ok(), "{good}");
    }
}

proptest::proptest! {
    /// Two keys clash exactly when a case-blind parser takes them for one name: equal
    /// after NUL is removed and each character is simply case-folded.
    #[test]
    fn keys_clash_exactly_when_they_fold_to_one_name(
        a in "[a-zA-Z\u{17f}\u{212a}\u{e9}\u{c9}\u{df}\u{1e9e}\u{130}\u{131}\0]{0,4}",
        b in "[a-zA-Z\u{17f}\u{212a}\u{e9}\u{c9}\u{df}\u{1e9e}\u{130}\u{131}\0]{0,4}",
    ) {
        let fold = |k: &str| -> String {
            k.chars()
                .filter(|c| *c != '\0')
                .map(|c| match c {
                    'S' | 's' | '\u{17f}' => 's',
                    'K' | 'k' | '\u{212a}' => 'k',
                    'I' | 'i' | '\u{130}' | '\u{131}' => 'i',
                    '\u{df}' | '\u{1e9e}' => '\u{df}',
                    '\u{c9}' | '\u{e9}' => '\u{e9}',
                    c => c.to_ascii_lowercase(),
                })
                .collect()
        };
        let object = format!("{{{}: 1, {}: 2}}", serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        proptest::prop_assert_eq!(parse_strict_json(object.as_bytes()).is_err(), fold(&a) == fold(&b), "{}", object);
    }
}

/// Many keys that each need folding cost a set lookup each, not a scan of the others.
#[test]
fn a_million_upper_case_keys_are_checked_in_linear_time() {
    let n = 200_000;
    let object = format!("{{{}\"Z\": 0}}", (0..n).map(|i| format!("\"K{i}\": 0, ")).collect::<String>());
    let started = std::time::Instant::now();
    assert_eq!(parse_strict_json(object.as_bytes()).unwrap().as_object().unwrap().len(), n + 1);
    // Not a timing assertion on the machine: a quadratic check takes 2 x 10^10
    // comparisons here, hours in a debug build; this test would not finish.
    eprintln!("{n} upper-case keys: {:?}", started.elapsed());
}

#[test]
fn a_document_of_more_than_a_million_values_is_refused() {
    use cloakroom_core::limits::MAX_JSON_VALUES;
    // The array itself is a value: MAX_JSON_VALUES - 1 elements fill the limit.
    let doc = |elements: usize| format!("[{}0]", "0,".repeat(elements - 1));
    assert_eq!(
        parse_strict_json(doc(MAX_JSON_VALUES - 1).as_bytes()).unwrap().as_array().unwrap().len(),
        MAX_JSON_VALUES - 1
    );
    let err = parse_strict_json(doc(MAX_JSON_VALUES).as_bytes()).unwrap_err();
    assert!(err.to_string().contains("more than 1000000 values"), "{err}");
    // Keys do not count; objects and their members do.
    let object = format!("{{{}\"z\": 0}}", (0..MAX_JSON_VALUES).map(|i| format!("\"k{i}\": 0, ")).collect::<String>());
    assert!(parse_strict_json(object.as_bytes()).is_err());
}

#[test]
fn numbers_without_one_exact_value_are_refused() {
    for bad in [
        "NaN",
        "[Infinity]",
        "[-Infinity]",
        "1e400",
        "-1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "1e300",
        "9007199254740992.0",
        "123456789012345678901234567890",
    ] {
        assert!(parse_strict_json(bad.as_bytes()).is_err(), "{bad}");
    }
    for good in ["9007199254740991.0", "0.1", "-0", "1.5e-300", "4503599627370495.5"] {
        assert!(parse_strict_json(good.as_bytes()).is_ok(), "{good}");
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
    assert!(parse_strict_json(ok.as_bytes()).is_ok());
    let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
    let err = parse_strict_json(deep.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("deeper than 64"), "{err}");
    let objects = format!("{}1{}", r#"{"a":"#.repeat(MAX_JSON_DEPTH + 1), "}".repeat(MAX_JSON_DEPTH + 1));
    assert!(parse_strict_json(objects.as_bytes()).is_err());
    // Nine hundred thousand brackets fail fast, without recursing that deep.
    assert!(parse_strict_json("[".repeat(900_000).as_bytes()).is_err());
}

#[test]
fn a_body_that_parses_is_json_whatever_its_content_type() {
    let body = br#"{"sql": "DROP TABLE t"}"#;
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json")] {
        assert_eq!(http_arguments(&parts(ct), body).unwrap(), json!({"sql": "DROP TABLE t"}), "{ct:?}");
    }
}

#[test]
fn a_body_that_claims_json_and_does_not_parse_is_refused() {
    let nan = br#"{"sql": "DROP TABLE t", "n": NaN}"#;
    for ct in [None, Some("text/plain"), Some("application/json"), Some("application/vnd.x+json")] {
        assert!(http_arguments(&parts(ct), nan).is_err(), "{ct:?}");
    }
    assert!(http_arguments(&parts(Some("application/json")), b"not json").is_err());
    assert!(http_arguments(&parts(None), b"\xEF\xBB\xBF{\"a\": 1}").is_err());
    assert!(http_arguments(&parts(None), b"\xFF\xFE{\x00}\x00").is_err());
    assert!(http_arguments(&parts(None), b"  [1, 2,]").is_err());
}

#[test]
fn other_bodies_have_no_arguments() {
    for body in [&b"a=1&b=2"[..], b"hello", b"", b"  \n", b"\"unterminated"] {
        assert_eq!(http_arguments(&parts(Some("text/plain")), body).unwrap(), Value::Null);
    }
    assert_eq!(http_arguments(&parts(Some("application/json")), b"").unwrap(), Value::Null);
    assert_eq!(http_arguments(&parts(None), b"42").unwrap(), json!(42));
}
