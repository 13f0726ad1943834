use super::*;

fn decode_all(g: Grammar, hay: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < hay.len() {
        match g.token_at(hay, p, hay.len(), true) {
            Tok::Esc { len, out: o, n } => {
                out.extend_from_slice(&o[..usize::from(n)]);
                p += usize::from(len);
            }
            Tok::Skip { len } => p += usize::from(len),
            _ => {
                out.push(hay[p]);
                p += 1;
            }
        }
    }
    out
}

#[test]
fn json_escapes_decode_in_any_mix() {
    let g = Grammar::Json;
    assert_eq!(decode_all(g, br#"s\u0033cr\/\"t\\\u00E9\ud83d\ude00"#), "s3cr/\"t\\é😀".as_bytes());
    // A lone surrogate or an unknown escape is a literal backslash.
    assert_eq!(decode_all(g, br"\ud83dx\q"), br"\ud83dx\q");
    // `\\u0073` is an escaped backslash followed by `u0073`.
    assert_eq!(decode_all(g, br"\\u0073"), br"\u0073");
    assert_eq!(g.token_at(b"\\u00", 0, 4, false), Tok::Incomplete);
    assert_eq!(g.token_at(b"\\ud83d\\u", 0, 8, false), Tok::Incomplete);
    assert_eq!(g.token_at(b"\\u00", 0, 4, true), Tok::Lit);
}

#[test]
fn html_references_decode_named_decimal_and_hex() {
    let g = Grammar::Html;
    assert_eq!(
        decode_all(g, b"&quot;a&amp;b&#39;c&#x27;&#X2F;&lt;&DiacriticalGrave;&#128512;"),
        "\"a&b'c'/<`😀".as_bytes()
    );
    // Unterminated, unknown or too long: literal.
    assert_eq!(decode_all(g, b"&amp &bogus; &#00000039; &#;"), b"&amp &bogus; &#00000039; &#;");
    assert_eq!(g.token_at(b"&am", 0, 3, false), Tok::Incomplete);
    assert_eq!(g.token_at(b"&#12", 0, 4, false), Tok::Incomplete);
}

#[test]
fn percent_encoding_in_either_case_and_plus_for_space() {
    assert_eq!(decode_all(Grammar::Url, b"a%2fb%2Fc+d%zz%4"), b"a/b/c+d%zz%4");
    assert_eq!(decode_all(Grammar::UrlPlus, b"a+b%20c"), b"a b c");
    assert_eq!(Grammar::Url.token_at(b"%4", 0, 2, false), Tok::Incomplete);
}

#[test]
fn base64_line_breaks_decode_to_nothing() {
    assert_eq!(decode_all(Grammar::Base64Lines, b"QUJD\r\nREVG\\nR0g="), b"QUJDREVGR0g=");
    assert_eq!(Grammar::Base64Lines.token_at(b"=", 0, 1, true), Tok::Stop);
}

#[test]
fn boundaries_account_for_straddling_tokens() {
    let g = Grammar::Json;
    let hay = br"ab\\\u0041cd";
    // Tokens: a b \\ \u0041 c d
    assert_eq!(g.boundary_before(hay, 0, 3, hay.len()), 2);
    assert_eq!(g.boundary_before(hay, 0, 4, hay.len()), 4);
    assert_eq!(g.boundary_before(hay, 0, 7, hay.len()), 4);
    assert_eq!(g.boundary_after(hay, 0, 7, hay.len()), 10);
    let u = Grammar::Url;
    assert_eq!(u.boundary_before(b"x%41y", 0, 3, 5), 1);
    assert_eq!(u.boundary_after(b"x%41y", 0, 3, 5), 4);
    assert_eq!(Grammar::Html.boundary_before(b"a&amp;b", 0, 4, 7), 1);
}
