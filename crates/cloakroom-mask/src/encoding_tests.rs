use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::*;

fn has(forms: &[Vec<u8>], s: &str) -> bool {
    forms.iter().any(|f| f == s.as_bytes())
}

#[test]
fn raw_is_the_value_itself() {
    assert_eq!(Encoding::Raw.forms(b"abc"), vec![b"abc".to_vec()]);
}

#[test]
fn json_escapes_quotes_backslashes_and_controls() {
    let forms = Encoding::Json.forms(b"a\"b\\c\nd\x01");
    assert!(has(&forms, r#"a\"b\\c\nd\u0001"#));
    assert!(has(&forms, r#"a\"b\\c\nd\u0001"#));
}

#[test]
fn json_covers_escaped_slash_and_go_html_escapes() {
    let forms = Encoding::Json.forms(b"a/b<c>&d");
    assert!(has(&forms, "a/b<c>&d"));
    assert!(has(&forms, r"a\/b<c>&d"));
    assert!(has(&forms, r"a/b\u003cc\u003e\u0026d"));
    assert!(has(&forms, r"a\/b\u003Cc\u003E\u0026d"));
}

#[test]
fn json_covers_non_ascii_as_u_escapes_with_surrogates() {
    let forms = Encoding::Json.forms("pä𝄞".as_bytes());
    assert!(has(&forms, "pä𝄞"));
    assert!(has(&forms, r"p\u00e4\ud834\udd1e"));
    assert!(has(&forms, r"p\u00E4\uD834\uDD1E"));
    // What serde_json and Python's json.dumps produce.
    assert!(has(&forms, serde_json::to_string("pä𝄞").unwrap().trim_matches('"')));
}

#[test]
fn url_covers_upper_and_lower_hex_and_form_plus() {
    let forms = Encoding::Url.forms(b"a b/c~");
    assert!(has(&forms, "a%20b%2Fc~"));
    assert!(has(&forms, "a%20b%2fc~"));
    assert!(has(&forms, "a+b%2Fc%7E"));
    assert!(has(&forms, "a%20b%2Fc%7E"));
}

#[test]
fn base64_cores_occur_in_every_alignment_padded_or_not() {
    let secret = b"hunter2-is-my-password";
    for url_safe in [false, true] {
        let enc = if url_safe { Encoding::Base64Url } else { Encoding::Base64 };
        let forms = enc.forms(secret);
        assert!(forms.len() <= 3);
        for prefix in ["", "u", "us", "use", "user:"] {
            for suffix in ["", "x", "xy", "xyz"] {
                let data = [prefix.as_bytes(), secret, suffix.as_bytes()].concat();
                let encoded = if url_safe { URL_SAFE_NO_PAD.encode(&data) } else { STANDARD.encode(&data) };
                assert!(
                    forms.iter().any(|f| encoded.as_bytes().windows(f.len()).any(|w| w == &f[..])),
                    "no core found in base64 of prefix {prefix:?} + secret + {suffix:?}"
                );
            }
        }
    }
}

#[test]
fn base64_core_of_an_eight_byte_secret_is_at_least_eight_characters() {
    for enc in [Encoding::Base64, Encoding::Base64Url] {
        for f in enc.forms(b"12345678") {
            assert!(f.len() >= MIN_ENCODED_SECRET_LEN, "{}", f.len());
        }
    }
}

#[test]
fn hex_has_both_cases() {
    assert_eq!(Encoding::Hex.forms(b"\xab\x01"), vec![b"ab01".to_vec(), b"AB01".to_vec()]);
}

#[test]
fn serde_names_match_the_configuration() {
    let names: Vec<String> = Encoding::ALL.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert_eq!(names, ["\"raw\"", "\"json\"", "\"url\"", "\"base64\"", "\"base64url\"", "\"hex\"", "\"html\""]);
    for e in Encoding::ALL {
        assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{}\"", e.name()));
    }
}
