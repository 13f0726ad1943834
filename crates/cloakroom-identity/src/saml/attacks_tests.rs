//! The classic attacks on a SAML service provider, each as a response an attacker could
//! post, and the legitimate responses they are variations of. Responses are signed here
//! with the test IdP key (testdata/idp.key); `xmlsec1_signed_response_verifies` checks the
//! canonicalization against libxmlsec1's signature, and bins/cloakroomd/tests/saml.rs
//! against a real pysaml2 IdP.

use std::time::{Duration, SystemTime};

use base64::Engine;
use rsa::{pkcs1v15::Pkcs1v15Sign, pkcs8::DecodePrivateKey, RsaPrivateKey};
use sha2::{Digest, Sha256};

use super::{c14n::canonicalize, xml, SamlConfig, SamlError, ServiceProvider};

const IDP: &str = "https://idp.test/saml";
const SP: &str = "https://cloakroom.test/sp";
const ACS: &str = "http://127.0.0.1:9081/v1/saml/acs";
const IDP_KEY: &str = include_str!("testdata/idp.key");
const IDP_CERT: &str = include_str!("testdata/idp.crt");
const OTHER_KEY: &str = include_str!("testdata/other.key");

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_300_000)
}

fn stamp(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn metadata() -> String {
    let cert: String = IDP_CERT.lines().filter(|l| !l.starts_with("-----")).collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso"/>
  </md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

fn sp_with(f: impl FnOnce(&mut SamlConfig)) -> ServiceProvider {
    let mut config = SamlConfig::new("idp.xml", SP);
    f(&mut config);
    ServiceProvider::new(config, ACS.into(), &metadata()).unwrap()
}

fn sp() -> ServiceProvider {
    sp_with(|_| {})
}

/// Starts a sign-in; the request id the IdP would answer.
fn start(sp: &ServiceProvider, return_to: Option<&str>) -> String {
    let url = sp.login(return_to, t0()).unwrap();
    url.split("RelayState=").nth(1).unwrap().to_owned()
}

/// What an assertion and its response say.
#[derive(Clone)]
struct Says {
    name_id: String,
    audience: String,
    recipient: String,
    destination: String,
    in_response_to: Option<String>,
    assertion_id: String,
    not_before: SystemTime,
    not_on_or_after: SystemTime,
    issuer: String,
}

impl Says {
    fn to(request: &str) -> Self {
        Self {
            name_id: "alice@example.com".into(),
            audience: SP.into(),
            recipient: ACS.into(),
            destination: ACS.into(),
            in_response_to: Some(request.into()),
            assertion_id: format!("_a{}", hex::encode(rand::random::<[u8; 8]>())),
            not_before: t0() - Duration::from_secs(30),
            not_on_or_after: t0() + Duration::from_secs(300),
            issuer: IDP.into(),
        }
    }

    fn assertion(&self) -> String {
        let irt = self.in_response_to.as_ref().map(|i| format!(r#" InResponseTo="{i}""#)).unwrap_or_default();
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" Version="2.0" IssueInstant="{nb}"><saml:Issuer>{issuer}</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="{noa}" Recipient="{rcpt}"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{nb}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue xsi:type="xs:string">finance-leads</saml:AttributeValue><saml:AttributeValue xsi:type="xs:string">staff</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#,
            id = self.assertion_id,
            issuer = self.issuer,
            name = self.name_id,
            nb = stamp(self.not_before),
            noa = stamp(self.not_on_or_after),
            rcpt = self.recipient,
            aud = self.audience,
        )
    }

    fn response(&self, assertion: &str) -> String {
        let irt = self.in_response_to.as_ref().map(|i| format!(r#" InResponseTo="{i}""#)).unwrap_or_default();
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{id}" Version="2.0" IssueInstant="{t}" Destination="{dest}"{irt}><saml:Issuer>{IDP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertion}</samlp:Response>"#,
            id = self.assertion_id,
            t = stamp(t0()),
            dest = self.destination,
        )
    }

    /// The usual IdP output: a response whose assertion is signed.
    fn signed_assertion(&self) -> String {
        self.response(&sign(&self.assertion(), &self.assertion_id, IDP_KEY))
    }
}

/// Signs the element with `ID="id"` in `xml` (enveloped, inserted after its Issuer).
fn sign(xml: &str, id: &str, key_pem: &str) -> String {
    let doc = xml::parse(xml).unwrap();
    let el = doc.descendants().find(|n| n.attribute("ID") == Some(id)).unwrap();
    let digest = super::b64().encode(Sha256::digest(canonicalize(el, None, &[]).as_bytes()));
    let sig = format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>SIGVALUE</ds:SignatureValue></ds:Signature>"##
    );
    let issuer_end = el.first_element_child().unwrap().range().end;
    let with_sig = format!("{}{}{}", &xml[..issuer_end], sig, &xml[issuer_end..]);
    let doc = xml::parse(&with_sig).unwrap();
    let info = doc
        .descendants()
        .find(|n| {
            n.tag_name().name() == "SignedInfo" && n.parent().unwrap().parent().unwrap().attribute("ID") == Some(id)
        })
        .unwrap();
    let hashed = Sha256::digest(canonicalize(info, None, &[]).as_bytes());
    let key = RsaPrivateKey::from_pkcs8_pem(key_pem).unwrap();
    let value = super::b64().encode(key.sign(Pkcs1v15Sign::new::<Sha256>(), &hashed).unwrap());
    with_sig.replacen("SIGVALUE", &value, 1)
}

fn post(xml: &str) -> String {
    super::b64().encode(xml)
}

fn consume(sp: &ServiceProvider, xml: &str) -> Result<super::SamlSignIn, SamlError> {
    sp.consume(&post(xml), None, t0())
}

#[track_caller]
fn refused(result: Result<super::SamlSignIn, SamlError>, contains: &str) {
    match result {
        Ok(s) => panic!("accepted as {:?}", s.sign_in),
        Err(e) => assert!(e.to_string().contains(contains), "{e}"),
    }
}

// === the legitimate responses ===

#[test]
fn a_signed_assertion_signs_the_person_in_with_their_groups() {
    let sp = sp();
    let req = start(&sp, Some("/console/approvals"));
    let s = sp.consume(&post(&Says::to(&req).signed_assertion()), Some(&req), t0()).unwrap();
    assert_eq!(s.sign_in.subject, "alice@example.com");
    assert_eq!(s.sign_in.issuer, IDP);
    assert_eq!(s.sign_in.groups, ["finance-leads", "staff"]);
    assert_eq!(s.return_to, "/console/approvals");
}

#[test]
fn a_signed_response_covering_its_unsigned_assertion_signs_the_person_in() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let xml = sign(&says.response(&says.assertion()), &format!("_r{}", says.assertion_id), IDP_KEY);
    let s = consume(&sp, &xml).unwrap();
    assert_eq!(s.sign_in.subject, "alice@example.com");
    assert_eq!(s.return_to, "/console");
}

#[test]
fn a_signed_response_may_carry_the_request_id_alone_but_an_unsigned_one_may_not() {
    let sp = sp();
    let req = start(&sp, Some("/console/x"));
    let says = Says::to(&req);
    let assertion = says.assertion().replace(&format!(r#" InResponseTo="{req}""#), "");
    let rid = format!("_r{}", says.assertion_id);
    let xml = sign(&says.response(&assertion), &rid, IDP_KEY);
    assert_eq!(consume(&sp, &xml).unwrap().return_to, "/console/x");
    // Only the assertion signed: the response's InResponseTo is the attacker's to write.
    let req = start(&sp, None);
    let says = Says::to(&req);
    let assertion = says.assertion().replace(&format!(r#" InResponseTo="{req}""#), "");
    let xml = says.response(&sign(&assertion, &says.assertion_id, IDP_KEY));
    refused(consume(&sp, &xml), "not covered by a signature");
}

#[test]
fn xmlsec1_signed_response_verifies() {
    // testdata/xmlsec1-response.xml: the assertion signed by `xmlsec1 --sign` (libxmlsec1)
    // with namespaces declared on the response and an InclusiveNamespaces prefix list.
    let xml = include_str!("testdata/xmlsec1-response.xml");
    let sp = sp_with(|c| c.allow_idp_initiated = true);
    let s = consume(&sp, xml).unwrap();
    assert_eq!(s.sign_in.subject, "bob@example.com");
    assert_eq!(s.sign_in.groups, ["ops"]);
}

// === signatures ===

#[test]
fn an_assertion_changed_after_signing_is_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let xml = says.signed_assertion().replace("alice@example.com", "admin@example.com");
    refused(consume(&sp, &xml), "changed after signing");
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let xml = says.response(&sign(&says.assertion(), &says.assertion_id, OTHER_KEY));
    refused(consume(&sp, &xml), "not made by the IdP's key");
}

#[test]
fn an_unsigned_response_and_assertion_are_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    refused(consume(&sp, &says.response(&says.assertion())), "neither the response nor its assertion is signed");
}

#[test]
fn a_response_signature_that_refers_to_its_assertion_instead_of_itself_is_refused() {
    // The signature sits in the response but covers the assertion: the response's own
    // fields would be unsigned while looking signed.
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let signed = sign(&says.assertion(), &says.assertion_id, IDP_KEY);
    let start_sig = signed.find("<ds:Signature").unwrap();
    let end_sig = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &signed[start_sig..end_sig];
    let unsigned_assertion = format!("{}{}", &signed[..start_sig], &signed[end_sig..]);
    let xml = says.response(&unsigned_assertion).replacen("<samlp:Status>", &format!("{sig}<samlp:Status>"), 1);
    refused(consume(&sp, &xml), "does not refer to the element it is in");
}

#[test]
fn weak_algorithms_and_references_to_anything_but_the_signed_element_are_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let xml = says.signed_assertion();
    for (from, to, why) in [
        ("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1\" x=\"", "RSA-SHA256"),
        ("xmlenc#sha256", "xmldsig#sha1\" x=\"", "SHA-256"),
        (r##"URI="#_a"##, r##"URI="" x="#_a"##, "does not refer to the element it is in"),
        (
            "xml-exc-c14n#\"/><ds:SignatureMethod",
            "xml-exc-c14n#WithComments\"/><ds:SignatureMethod",
            "canonicalization",
        ),
    ] {
        assert!(xml.contains(from), "{from}");
        refused(consume(&sp, &xml.replacen(from, to, 1)), why);
    }
}

// === signature wrapping (XSW) ===

#[test]
fn xsw_an_extra_unsigned_assertion_beside_the_signed_one_is_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let mut evil = says.clone();
    evil.name_id = "admin@example.com".into();
    evil.assertion_id = "_evil".into();
    for xml in [
        says.response(&format!("{}{}", evil.assertion(), sign(&says.assertion(), &says.assertion_id, IDP_KEY))),
        says.response(&format!("{}{}", sign(&says.assertion(), &says.assertion_id, IDP_KEY), evil.assertion())),
    ] {
        refused(consume(&sp, &xml), "exactly one assertion");
    }
}

#[test]
fn xsw_the_signed_assertion_moved_into_extensions_or_the_evil_assertion_is_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let signed = sign(&says.assertion(), &says.assertion_id, IDP_KEY);
    let mut evil = says.clone();
    evil.name_id = "admin@example.com".into();
    evil.assertion_id = "_evil".into();
    // XSW3/4-style: the evil assertion is the response's child, the signed one hidden.
    let hidden = format!("<samlp:Extensions>{signed}</samlp:Extensions>{}", evil.assertion());
    refused(consume(&sp, &says.response(&hidden)), "exactly one assertion");
    // XSW7/8-style: the signed original hidden inside the evil assertion's own signature Object.
    let evil_a = evil.assertion().replacen(
        "</saml:Issuer>",
        &format!("</saml:Issuer><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object>{signed}</ds:Object></ds:Signature>"),
        1,
    );
    refused(consume(&sp, &says.response(&evil_a)), "exactly one assertion");
}

#[test]
fn xsw_a_duplicated_id_is_refused() {
    // The evil assertion takes the signed one's ID, the signed one is kept elsewhere so
    // an ID lookup could find it: the document is refused before any signature check.
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let signed = sign(&says.assertion(), &says.assertion_id, IDP_KEY);
    let wrapper =
        format!(r#"<samlp:Extensions><x:Wrap xmlns:x="urn:x" ID="{}"/></samlp:Extensions>{signed}"#, says.assertion_id);
    refused(consume(&sp, &says.response(&wrapper)), "same ID");
}

#[test]
fn xsw_a_signed_response_wrapped_inside_an_evil_response_is_refused() {
    // XSW1/2-style: the evil response carries the original signed response in its
    // Extensions and its own (unsigned) evil assertion.
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let original = sign(&says.response(&says.assertion()), &format!("_r{}", says.assertion_id), IDP_KEY);
    let mut evil = says.clone();
    evil.name_id = "admin@example.com".into();
    evil.assertion_id = "_evil".into();
    let xml = evil.response(&format!("<samlp:Extensions>{original}</samlp:Extensions>{}", evil.assertion()));
    let err = consume(&sp, &xml).unwrap_err().to_string();
    assert!(err.contains("exactly one assertion") || err.contains("signature"), "{err}");
}

#[test]
fn an_assertion_added_to_a_signed_response_breaks_the_response_signature() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let signed = sign(&says.response(&says.assertion()), &format!("_r{}", says.assertion_id), IDP_KEY);
    let mut evil = says.clone();
    evil.name_id = "admin@example.com".into();
    evil.assertion_id = "_evil".into();
    // The signed response's assertion swapped for an unsigned one.
    let xml = signed.replace(&says.assertion(), &evil.assertion());
    refused(consume(&sp, &xml), "changed after signing");
}

// === the NameID ===

#[test]
fn a_comment_inside_the_name_id_is_refused_not_truncated() {
    // Comments are not part of the canonical form, so the IdP's signature over
    // "alice@example.com.evil.com" still verifies with a comment inserted; a reader that
    // takes the first text node would see alice@example.com.
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.name_id = "alice@example.com.evil.com".into();
    let xml = says.signed_assertion().replace("alice@example.com.evil.com", "alice@example.com<!---->.evil.com");
    refused(consume(&sp, &xml), "plain text only");
}

// === conditions ===

#[test]
fn another_audience_is_refused() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.audience = "https://other-sp.test".into();
    refused(consume(&sp, &says.signed_assertion()), "another audience");
}

#[test]
fn another_recipient_is_refused() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.recipient = "https://other-sp.test/acs".into();
    refused(consume(&sp, &says.signed_assertion()), "Recipient");
}

#[test]
fn another_destination_is_refused() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.destination = "https://other-sp.test/acs".into();
    refused(consume(&sp, &says.signed_assertion()), "not this ACS");
}

#[test]
fn another_issuer_is_refused() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.issuer = "https://evil-idp.test".into();
    refused(consume(&sp, &says.signed_assertion()), "issuer is not the configured IdP");
}

#[test]
fn an_expired_assertion_is_refused_beyond_the_leeway_only() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.not_on_or_after = t0() - Duration::from_secs(30);
    consume(&sp, &says.signed_assertion()).expect("30 s late is within the 60 s leeway");
    let mut says = Says::to(&start(&sp, None));
    says.not_on_or_after = t0() - Duration::from_secs(61);
    refused(consume(&sp, &says.signed_assertion()), "expired");
}

#[test]
fn a_not_yet_valid_assertion_is_refused() {
    let sp = sp();
    let mut says = Says::to(&start(&sp, None));
    says.not_before = t0() + Duration::from_secs(120);
    refused(consume(&sp, &says.signed_assertion()), "not valid yet");
}

// === requests and replay ===

#[test]
fn an_unknown_in_response_to_is_refused() {
    let sp = sp();
    start(&sp, None);
    refused(consume(&sp, &Says::to("_not-ours").signed_assertion()), "answers no sign-in in progress");
}

#[test]
fn a_relay_state_of_another_sign_in_is_refused() {
    let sp = sp();
    let req = start(&sp, None);
    let other = start(&sp, None);
    refused(sp.consume(&post(&Says::to(&req).signed_assertion()), Some(&other), t0()), "RelayState");
}

#[test]
fn a_response_to_an_expired_sign_in_is_refused() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let late = t0() + Duration::from_secs(601);
    let mut late_says = says.clone();
    late_says.not_on_or_after = late + Duration::from_secs(300);
    let r = sp.consume(&post(&late_says.signed_assertion()), None, late);
    refused(r, "answers no sign-in in progress");
}

#[test]
fn unsolicited_responses_are_refused_unless_allowed() {
    let mut says = Says::to("unused");
    says.in_response_to = None;
    refused(consume(&sp(), &says.signed_assertion()), "unsolicited");
    let open = sp_with(|c| c.allow_idp_initiated = true);
    assert_eq!(consume(&open, &says.signed_assertion()).unwrap().return_to, "/console");
}

#[test]
fn a_used_assertion_is_refused_when_posted_again() {
    let sp = sp_with(|c| c.allow_idp_initiated = true);
    let mut says = Says::to("unused");
    says.in_response_to = None;
    let xml = says.signed_assertion();
    consume(&sp, &xml).unwrap();
    refused(consume(&sp, &xml), "already used");
    // A solicited response cannot be used twice either: its request is spent.
    let sp = self::sp();
    let xml = Says::to(&start(&sp, None)).signed_assertion();
    consume(&sp, &xml).unwrap();
    assert!(consume(&sp, &xml).is_err());
}

// === the XML itself ===

#[test]
fn a_dtd_is_refused_so_no_entity_is_ever_expanded() {
    let sp = sp();
    let says = Says::to(&start(&sp, None));
    let laughs =
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>"#;
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>"#;
    for prolog in [laughs, xxe, "<!DOCTYPE samlp:Response>"] {
        let xml = format!("{prolog}{}", says.signed_assertion().replacen("alice@example.com", "&x;", 1));
        refused(consume(&sp, &xml), "DTD");
    }
}

#[test]
fn oversized_and_non_base64_input_is_refused() {
    let sp = sp();
    refused(sp.consume(&"A".repeat(400 * 1024), None, t0()), "larger than");
    refused(sp.consume("not base64 at all!", None, t0()), "not base64");
    let big = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\">{}</samlp:Response>",
        "<a/>".repeat(30_000)
    );
    refused(sp.consume(&post(&big), None, t0()), "XML");
}

#[test]
fn return_to_must_be_local() {
    let sp = sp();
    assert!(matches!(sp.login(Some("https://evil.test/"), t0()), Err(SamlError::ReturnTo)));
    assert!(matches!(sp.login(Some("//evil.test/"), t0()), Err(SamlError::ReturnTo)));
}
