//! The `AuthnRequest` of an SP-initiated sign-in, sent by the HTTP-Redirect binding:
//! deflated, base64, in the `SAMLRequest` query parameter, with the request id as
//! `RelayState`.

use std::{io::Write, time::SystemTime};

use base64::Engine;
use flate2::{write::DeflateEncoder, Compression};

use super::{
    b64,
    metadata::POST_BINDING,
    xml::{escape, SAML, SAMLP},
};

pub(crate) fn redirect_url(sso_url: &str, entity_id: &str, acs_url: &str, id: &str, now: SystemTime) -> String {
    let instant = time::OffsetDateTime::from(now)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time formats as RFC 3339");
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{POST_BINDING}"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        dest = escape(sso_url),
        acs = escape(acs_url),
        issuer = escape(entity_id),
    );
    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::default());
    deflate.write_all(xml.as_bytes()).expect("writing to a Vec");
    let encoded = b64().encode(deflate.finish().expect("writing to a Vec"));
    let sep = if sso_url.contains('?') { '&' } else { '?' };
    format!("{sso_url}{sep}SAMLRequest={}&RelayState={}", url_escape(&encoded), url_escape(id))
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
