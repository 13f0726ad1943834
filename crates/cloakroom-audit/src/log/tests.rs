use super::*;

/// Replaces one secret, like the gateway's masker would.
fn knows_hunter2(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).replace("hunter2!", "cloak_pw").into_bytes()
}

fn record() -> AuditRecord {
    let mut r = AuditRecord::new(CallId::new(), time::OffsetDateTime::UNIX_EPOCH);
    r.function = Some("echo".into());
    r.request.method = "POST".into();
    r.request.path = "/fn/echo?q=1".into();
    r.request.headers.insert("x-note".into(), vec!["nothing \"quoted\"\n".into()]);
    r.request.body = Some(RecordBody::capture(b"{\"a\":\"here\"}", 12, 1024));
    r
}

#[test]
fn a_clean_record_needs_no_per_string_pass() {
    assert!(!holds_secret(&Rendered::new(&record()), &knows_hunter2));
}

#[test]
fn a_secret_in_any_string_or_key_is_found_by_the_joined_scan() {
    type Plant = fn(&mut AuditRecord);
    let plants: [Plant; 5] = [
        |r| r.request.path = "/fn/echo?pw=hunter2!".into(),
        |r| drop(r.request.headers.insert("hunter2!".into(), vec!["v".into()])),
        |r| r.response.body = Some(RecordBody::capture(b"{\"pw\":\"hunter2!\"}", 17, 1024)),
        // Escaped in the text: the scan sees the unescaped string.
        |r| r.request.headers.get_mut("x-note").unwrap().push("\"hunter2!\"\t".into()),
        |r| r.source_ip = Some("hunter2!".into()),
    ];
    for plant in plants {
        let mut r = record();
        plant(&mut r);
        assert!(holds_secret(&Rendered::new(&r), &knows_hunter2), "{r:?}");
        let mut redacted = serde_json::to_value(&r).unwrap();
        redact_strings(&mut redacted, &knows_hunter2).unwrap();
        assert!(!redacted.to_string().contains("hunter2"), "{redacted}");
    }
}
