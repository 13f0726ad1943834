use super::*;

#[test]
fn dot_segments_raw_and_encoded_are_removed() {
    for (raw, want) in [
        ("/fn/echo/../other/x", "/fn/other/x"),
        ("/fn/echo/%2e%2e/other/x", "/fn/other/x"),
        ("/fn/echo/%2E./other/x", "/fn/other/x"),
        ("/fn/echo/.%2e/other/x", "/fn/other/x"),
        ("/fn/echo/./x/.", "/fn/echo/x/"),
        ("/fn/echo/x/..", "/fn/echo/"),
        ("/fn/echo/%2e/x", "/fn/echo/x"),
        ("/", "/"),
        ("/fn/echo/", "/fn/echo/"),
    ] {
        assert_eq!(normalize_path(raw).unwrap(), want, "{raw}");
    }
}

#[test]
fn empty_segments_are_merged() {
    assert_eq!(normalize_path("//fn///echo//x").unwrap(), "/fn/echo/x");
    assert_eq!(normalize_path("/fn/echo//").unwrap(), "/fn/echo/");
}

#[test]
fn unreserved_escapes_are_decoded_and_others_uppercased() {
    assert_eq!(normalize_path("/%66n/%65cho/a%3ab%7e").unwrap(), "/fn/echo/a%3Ab~");
    assert_eq!(normalize_path("/fn/caf\u{e9}").unwrap(), "/fn/caf%C3%A9");
    assert_eq!(normalize_path("/fn/x%25y").unwrap(), "/fn/x%25y");
}

#[test]
fn ambiguous_paths_are_refused() {
    for (raw, why) in [
        ("/fn/echo/..%2fother", TargetError::EncodedSlash),
        ("/fn/echo%2F..%2Fother", TargetError::EncodedSlash),
        ("/fn/echo/%5c..", TargetError::EncodedSlash),
        ("/fn/echo\\..\\other", TargetError::Backslash),
        ("/fn/echo/%zz", TargetError::BadEscape),
        ("/fn/echo/%4", TargetError::BadEscape),
        ("/fn/echo/%00", TargetError::BadEscape),
        ("/fn/echo/%7f", TargetError::BadEscape),
        ("/..", TargetError::AboveRoot),
        ("/fn/../../etc", TargetError::AboveRoot),
        ("/fn/echo/..;/other", TargetError::DotParameters),
        ("/fn/echo/.;x=1/other", TargetError::DotParameters),
        ("*", TargetError::NotAbsolute),
    ] {
        assert_eq!(normalize_path(raw), Err(why), "{raw}");
    }
}

#[test]
fn the_query_is_parsed_strictly_and_written_back_canonically() {
    for (raw, want) in [
        ("a=1&b=2", Some("a=1&b=2")),
        ("a=1&a=2", Some("a=1&a=2")),
        ("b=c+d", Some("b=c%20d")),
        ("b=c%20d", Some("b=c%20d")),
        ("k=%2b", Some("k=%2B")),
        ("flag&x=", Some("flag&x=")),
        ("&&a=1&", Some("a=1")),
        ("", None),
        ("&", None),
        ("q=a/b:c,d", Some("q=a%2Fb%3Ac%2Cd")),
        ("caf%C3%A9=%E2%82%AC", Some("caf%C3%A9=%E2%82%AC")),
        ("x=a=b", Some("x=a%3Db")),
    ] {
        assert_eq!(normalize_query(raw).unwrap().as_deref(), want, "{raw}");
    }
}

#[test]
fn ambiguous_queries_are_refused() {
    assert_eq!(normalize_query("a=1;b=2"), Err(TargetError::QuerySemicolon));
    assert_eq!(normalize_query("a=%zz"), Err(TargetError::QueryEscape));
    assert_eq!(normalize_query("a=%4"), Err(TargetError::QueryEscape));
    assert_eq!(normalize_query("a=%ff"), Err(TargetError::QueryEscape));
    let many = (0..=MAX_QUERY_PARAMS).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
    assert_eq!(normalize_query(&many), Err(TargetError::TooManyParams));
    let enough = (0..MAX_QUERY_PARAMS).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
    assert!(normalize_query(&enough).is_ok());
}

proptest::proptest! {
    #[test]
    fn normalizing_twice_changes_nothing(path in "(/[a-z.%2eEfF5cC;]{0,4}){0,6}", query in "[a-z=&+%2041]{0,12}") {
        if let Ok(once) = normalize_target(if path.is_empty() { "/" } else { &path }, Some(&query)) {
            let (p, q) = match once.split_once('?') { Some((p, q)) => (p, Some(q)), None => (once.as_str(), None) };
            proptest::prop_assert_eq!(normalize_target(p, q).unwrap(), once.clone());
        }
    }

    #[test]
    fn no_dot_segment_survives(path in "(/[.%2eE]{0,4}|/a){0,8}") {
        if let Ok(p) = normalize_path(if path.is_empty() { "/" } else { &path }) {
            proptest::prop_assert!(p.split('/').all(|s| s != "." && s != ".."), "{}", p);
        }
    }
}
