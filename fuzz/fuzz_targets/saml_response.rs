//! Arbitrary bytes as the XML of a `SAMLResponse` (base64-encoded as the HTTP-POST
//! binding carries it) through `cloakroom_identity::saml::ServiceProvider::consume`,
//! configured with the test IdP of crates/cloakroom-identity/src/saml/testdata and
//! IdP-initiated responses allowed (so no request id is needed).
//!
//! What must hold, for every input:
//! - no panic;
//! - only the one response the IdP key signed is accepted, for the one person it names:
//!   the seed (seeds/saml_response/xmlsec1-response.xml, signed by `xmlsec1`) says
//!   `bob@example.com` in group `ops`, and any input that is accepted must say exactly
//!   that. A mutation that makes the SP read another person or group from a
//!   response whose signature still verifies is a signature-wrapping bug.
#![no_main]

use std::time::SystemTime;

use base64::Engine;
use cloakroom_identity::saml::{SamlConfig, ServiceProvider};
use libfuzzer_sys::fuzz_target;

const CERT: &str = include_str!("../../crates/cloakroom-identity/src/saml/testdata/idp.crt");

fn service_provider() -> ServiceProvider {
    let cert: String = CERT.lines().filter(|l| !l.starts_with("-----")).collect();
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.test/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso"/>
  </md:IDPSSODescriptor></md:EntityDescriptor>"#
    );
    let mut config = SamlConfig::new("idp.xml", "https://cloakroom.test/sp");
    config.allow_idp_initiated = true;
    ServiceProvider::new(config, "http://127.0.0.1:9081/v1/saml/acs".into(), &metadata).expect("test metadata")
}

fuzz_target!(|data: &[u8]| {
    // A fresh SP per input: the seed's assertion id is not "already used" by the last run.
    let sp = service_provider();
    let posted = base64::engine::general_purpose::STANDARD.encode(data);
    if let Ok(signed_in) = sp.consume(&posted, None, SystemTime::now()) {
        assert_eq!(signed_in.sign_in.subject, "bob@example.com", "accepted another person");
        assert_eq!(signed_in.sign_in.groups, ["ops"], "accepted other groups");
    }
});
