use super::*;

fn redact(input: &str) -> String {
    let (out, _) = Detectors::default_set().replace_all(input.as_bytes());
    String::from_utf8(out).unwrap()
}

fn kinds(input: &str) -> Vec<&'static str> {
    let (_, kinds) = Detectors::default_set().replace_all(input.as_bytes());
    kinds.into_keys().collect()
}

#[test]
fn aws_access_key_ids_are_redacted() {
    assert_eq!(redact("key=AKIAIOSFODNN7EXAMPLE;"), "key=[REDACTED:aws_access_key_id];");
    assert_eq!(redact("\"ASIAY34FZKBOKMUTVV7A\""), "\"[REDACTED:aws_access_key_id]\"");
}

#[test]
fn aws_near_misses_are_left_alone() {
    for s in [
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLEX",
        "XAKIAIOSFODNN7EXAMPLE",
        "AKIAiosfodnn7example",
        "AKZAIOSFODNN7EXAMPLE",
    ] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn github_tokens_are_redacted() {
    let classic = "ghp_1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvWxYz";
    assert_eq!(classic.len(), 40);
    assert_eq!(redact(&format!("token {classic}\n")), "token [REDACTED:github_token]\n");
    let fine = format!("github_pat_11ABCDEFG0{}_{}", "a".repeat(12), "B".repeat(59));
    assert_eq!(fine.len(), 93);
    assert_eq!(redact(&format!("{fine} ")), "[REDACTED:github_token] ");
    assert_eq!(kinds(&format!("x gho_{} y", "Z".repeat(36))), vec!["github_token"]);
}

#[test]
fn github_near_misses_are_left_alone() {
    for s in ["ghp_short", "ghx_1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvWxYz", "github_pat_tooshort"] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn slack_tokens_are_redacted() {
    let bot = "xoxb-2345678901-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    assert_eq!(redact(&format!("SLACK_TOKEN={bot}\n")), "SLACK_TOKEN=[REDACTED:slack_token]\n");
    let user = "xoxp-2345678901-2345678901-2345678901-0123456789abcdef0123456789abcdef";
    assert_eq!(redact(user), "[REDACTED:slack_token]");
}

#[test]
fn slack_near_misses_are_left_alone() {
    for s in ["xoxb-", "xoxb-abc-def", "xoxz-2345678901-1234567890123-AbCdEfGh", "xoxb-12345-abcdefghij"] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn stripe_live_keys_are_redacted_but_test_keys_are_not() {
    let live = "sk_live_51H8xYzAbCdEfGhIjKlMnOpQrStUv";
    assert_eq!(redact(&format!("Bearer {live}")), "Bearer [REDACTED:stripe_live_key]");
    assert_eq!(redact("rk_live_abcdefghijklmnopqrstuvwx1234"), "[REDACTED:stripe_live_key]");
    for s in ["sk_test_51H8xYzAbCdEfGhIjKlMnOpQrStUv", "sk_live_short", "pk_live_51H8xYzAbCdEfGhIjKlMnOpQrStUv"] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn pem_private_key_blocks_are_redacted_whole() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH\nlWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSL0yWMdjMfNOqNtrQqKlN4kE\n-----END RSA PRIVATE KEY-----";
    assert_eq!(redact(&format!("key:\n{pem}\nrest")), "key:\n[REDACTED:private_key]\nrest");
    let ossh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(redact(ossh), "[REDACTED:private_key]");
    // Escaped inside JSON, newlines are `\n`: still one block.
    let json =
        "{\"key\":\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n\"}";
    assert_eq!(redact(json), "{\"key\":\"[REDACTED:private_key]\\n\"}");
}

#[test]
fn a_truncated_private_key_is_still_redacted() {
    let out =
        redact("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49");
    assert_eq!(out, "[REDACTED:private_key]");
}

#[test]
fn public_keys_and_certificates_are_left_alone() {
    for s in [
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
    ] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn jwts_are_redacted() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert_eq!(redact(&format!("Authorization: Bearer {jwt}\r\n")), "Authorization: Bearer [REDACTED:jwt]\r\n");
    assert_eq!(redact(&format!("{{\"id_token\":\"{jwt}\"}}")), "{\"id_token\":\"[REDACTED:jwt]\"}");
}

#[test]
fn jwt_near_misses_are_left_alone() {
    for s in [
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.notajwt",
        "eyJ.eyJ.x",
        "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
    ] {
        assert_eq!(redact(s), s);
    }
}

#[test]
fn two_adjacent_tokens_are_both_redacted() {
    assert_eq!(
        redact("AKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLE"),
        "[REDACTED:aws_access_key_id] [REDACTED:aws_access_key_id]"
    );
}

#[test]
fn a_stream_holds_back_only_from_a_candidate_start() {
    let det = Detectors::default_set();
    let mut state = DetectState::default();
    let mut out = Out::default();
    state.push(&det, Bytes::from_static(b"data: hello world\n\n"), false, &mut out);
    assert_eq!(out.finish().concat(), b"data: hello world\n\n");
    assert!(state.held.is_empty());
    let mut out = Out::default();
    state.push(&det, Bytes::from_static(b"token AKIAIOSF"), false, &mut out);
    assert_eq!(out.finish().concat(), b"token ");
    assert_eq!(state.held, b"AKIAIOSF");
    let mut out = Out::default();
    state.push(&det, Bytes::from_static(b"ODNN7EXAMPLE\n"), false, &mut out);
    assert_eq!(out.finish().concat(), b"[REDACTED:aws_access_key_id]\n");
}
