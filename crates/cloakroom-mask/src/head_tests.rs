use cloakroom_core::Secret;
use http::{Response, StatusCode};

use super::*;
use crate::{MaskEntry, MaskOptions};

const SECRET: &str = "sk_live_head_gate_0123456789abcdef";

fn matcher() -> Matcher {
    Matcher::build([MaskEntry::new("k", Secret::from(SECRET), "cloak_k")], &MaskOptions::default()).unwrap()
}

fn head(status: u16, headers: &[(&str, &str)]) -> Parts {
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        res.headers_mut().append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    res.into_parts().0
}

#[test]
fn every_value_of_every_header_is_masked() {
    let parts = head(200, &[("x-a", "fine"), ("x-a", SECRET), ("set-cookie", SECRET), ("set-cookie", "b=2")]);
    let admitted = admit(parts, &matcher()).unwrap();
    let values: Vec<_> = admitted.parts.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(values, ["fine", "cloak_k"]);
    let cookies: Vec<_> = admitted.parts.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["cloak_k", "b=2"]);
    assert_eq!(admitted.masked, 2);
}

#[test]
fn the_reason_phrase_and_every_other_extension_are_left_behind() {
    let mut parts = head(200, &[]);
    parts.extensions.insert("an upstream's reason phrase");
    parts.extensions.insert(cloakroom_core::Error::new(cloakroom_core::ErrorCode::UpstreamTimeout, "late"));
    let admitted = admit(parts, &matcher()).unwrap();
    assert!(admitted.parts.extensions.get::<&str>().is_none());
    assert!(admitted.parts.extensions.get::<cloakroom_core::Error>().is_some());
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
    let parts = head(
        200,
        &[("connection", "x-private"), ("x-private", "1"), ("keep-alive", "5"), ("upgrade", "h2c"), ("x-kept", "1")],
    );
    let admitted = admit(parts, &Matcher::empty()).unwrap();
    assert_eq!(admitted.parts.headers.len(), 1);
    assert!(admitted.parts.headers.contains_key("x-kept"));
}

#[test]
fn a_header_named_after_a_secret_is_dropped() {
    let lower = "sk_live_named_0123456789abcdef";
    let m = Matcher::build([MaskEntry::new("n", Secret::from(lower), "cloak_n")], &MaskOptions::default()).unwrap();
    let admitted = admit(head(200, &[(lower, "1"), ("x-kept", "1")]), &m).unwrap();
    assert_eq!(admitted.parts.headers.len(), 1);
    assert_eq!(admitted.masked, 1);
    // Names arrive lowercased: an all-caps secret sent as a name is found all the same.
    let upper = "AKIA0123456789ABCDEFGH";
    let m = Matcher::build([MaskEntry::new("u", Secret::from(upper), "cloak_u")], &MaskOptions::raw_only()).unwrap();
    let admitted = admit(head(200, &[(upper, "1"), ("x-kept", "1")]), &m).unwrap();
    assert_eq!(admitted.parts.headers.len(), 1);
}

#[test]
fn every_content_coding_of_every_header_is_read() {
    let admitted =
        admit(head(200, &[("content-encoding", "identity"), ("content-encoding", "gzip")]), &matcher()).unwrap();
    assert_eq!(admitted.codings, [ContentCoding::Gzip]);
    assert!(!admitted.parts.headers.contains_key("content-encoding"));
    let admitted = admit(head(200, &[("content-encoding", "gzip, br")]), &matcher()).unwrap();
    assert_eq!(admitted.codings, [ContentCoding::Gzip, ContentCoding::Brotli]);
    for refused in [
        vec![("content-encoding", "gzip, compress")],
        vec![("content-encoding", "gzip"), ("content-encoding", "x-custom")],
        vec![("content-encoding", SECRET)],
        vec![("content-encoding", "gzip, gzip, gzip, gzip, gzip")],
    ] {
        assert_eq!(admit(head(200, &refused), &matcher()).unwrap_err(), Refusal::ContentCoding, "{refused:?}");
    }
}

#[test]
fn a_transfer_coding_other_than_chunked_is_refused() {
    assert!(admit(head(200, &[("transfer-encoding", "chunked")]), &matcher()).is_ok());
    for refused in [
        vec![("transfer-encoding", "gzip, chunked")],
        vec![("transfer-encoding", "gzip"), ("transfer-encoding", "chunked")],
        vec![("transfer-encoding", "chunked, identity, x")],
    ] {
        assert_eq!(admit(head(200, &refused), &matcher()).unwrap_err(), Refusal::TransferCoding, "{refused:?}");
    }
}

#[test]
fn informational_and_partial_answers_are_refused() {
    assert_eq!(admit(head(101, &[]), &matcher()).unwrap_err(), Refusal::Informational);
    assert_eq!(admit(head(103, &[]), &matcher()).unwrap_err(), Refusal::Informational);
    assert_eq!(admit(head(206, &[]), &matcher()).unwrap_err(), Refusal::PartialContent);
}

#[test]
fn an_event_stream_is_recognized_in_any_content_type_header() {
    let admitted = admit(
        head(200, &[("content-type", "text/plain"), ("content-type", "Text/Event-Stream; charset=utf-8")]),
        &matcher(),
    )
    .unwrap();
    assert!(admitted.event_stream);
    assert!(!admit(head(200, &[("content-type", "application/json")]), &matcher()).unwrap().event_stream);
}

#[test]
fn refusals_never_quote_the_upstream() {
    for refusal in [Refusal::Informational, Refusal::PartialContent, Refusal::TransferCoding, Refusal::ContentCoding] {
        assert!(!refusal.to_string().contains(SECRET));
    }
}
