//! Verifying a `samlp:Response` from the HTTP-POST binding into the person it vouches for.
//!
//! The order is the point: the document is parsed without DTDs; its shape is checked so
//! that there is exactly one assertion and no signature anywhere but on the response or
//! that assertion, and no ID used twice; every signature present must verify
//! ([`verify_enveloped`]); and the person is then read from the [`Signed`] node only —
//! the signed assertion itself, or the one assertion child of the signed response.

use std::time::{Duration, SystemTime};

use roxmltree::Node;
use rsa::RsaPublicKey;

use super::{
    signature::{signature_of, verify_enveloped, Signed},
    xml::{children, only_child, optional_child, parse, sole_text, DS, SAML, SAMLP},
    SamlError,
};

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What a response must match.
pub(crate) struct Expect<'a> {
    pub(crate) idp_entity_id: &'a str,
    pub(crate) keys: &'a [RsaPublicKey],
    pub(crate) sp_entity_id: &'a str,
    pub(crate) acs_url: &'a str,
    pub(crate) groups_attribute: &'a str,
    pub(crate) leeway: Duration,
    pub(crate) now: SystemTime,
}

/// The person a verified assertion vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vouched {
    pub(crate) name_id: String,
    pub(crate) groups: Vec<String>,
    pub(crate) assertion_id: String,
    /// The request this answers (`SubjectConfirmationData/@InResponseTo`, signed), if any.
    pub(crate) in_response_to: Option<String>,
    /// Until when the assertion could be presented (its id is remembered until then).
    pub(crate) valid_until: SystemTime,
    /// The IdP's `SessionNotOnOrAfter`, if it set one.
    pub(crate) session_not_on_or_after: Option<SystemTime>,
}

/// Verifies the response `xml` against `expect`.
pub(crate) fn verify(xml: &str, expect: &Expect<'_>) -> Result<Vouched, SamlError> {
    let doc = parse(xml)?;
    let response = doc.root_element();
    if response.tag_name().namespace() != Some(SAMLP) || response.tag_name().name() != "Response" {
        return Err(SamlError::Invalid("the document is not a <samlp:Response>".into()));
    }
    refuse_duplicate_ids(&doc)?;
    // One assertion in the whole document, as a direct child of the response, and no
    // signature anywhere except on the response and on that assertion: nothing for a
    // wrapping attack to hide a second assertion or signature in.
    let assertions: Vec<Node<'_, '_>> = doc.descendants().filter(|n| is(*n, SAML, "Assertion")).collect();
    if doc.descendants().any(|n| is(n, SAML, "EncryptedAssertion")) {
        return Err(SamlError::Invalid("encrypted assertions are not supported".into()));
    }
    let [assertion] = assertions.as_slice() else {
        return Err(SamlError::Invalid(format!(
            "the response must hold exactly one assertion, not {}",
            assertions.len()
        )));
    };
    let assertion = *assertion;
    if assertion.parent() != Some(response) {
        return Err(SamlError::Invalid("the assertion is not a child of the response".into()));
    }
    let response_sig = signature_of(response);
    let assertion_sig = signature_of(assertion);
    let allowed = [response_sig.map(|s| s.id()), assertion_sig.map(|s| s.id())];
    if doc.descendants().any(|n| is(n, DS, "Signature") && !allowed.contains(&Some(n.id()))) {
        return Err(SamlError::Invalid("a signature is in a place SAML does not put one".into()));
    }
    let signed_response = response_sig.map(|_| verify_enveloped(response, expect.keys)).transpose()?;
    let signed_assertion = assertion_sig.map(|_| verify_enveloped(assertion, expect.keys)).transpose()?;
    // By construction: the assertion read below is a node a signature covers.
    let signed: SignedAssertion<'_, '_> = match (signed_assertion, signed_response) {
        (Some(a), _) => SignedAssertion(a.node()),
        (None, Some(r)) => SignedAssertion::within(r)?,
        (None, None) => return Err(SamlError::Signature("neither the response nor its assertion is signed".into())),
    };

    // The response's own fields; when only the assertion is signed these are not covered,
    // so everything that matters is checked again inside the assertion.
    let status = only_child(only_child(response, SAMLP, "Status")?, SAMLP, "StatusCode")?;
    if status.attribute("Value") != Some(SUCCESS) {
        return Err(SamlError::Refused(format!(
            "the IdP answered {}",
            status.attribute("Value").unwrap_or("no status")
        )));
    }
    if response.attribute("Version") != Some("2.0") {
        return Err(SamlError::Invalid("the response is not SAML 2.0".into()));
    }
    match response.attribute("Destination") {
        Some(d) if d == expect.acs_url => {}
        Some(d) => return Err(SamlError::Invalid(format!("the response is for {d:?}, not this ACS"))),
        None if signed_response.is_some() => {
            return Err(SamlError::Invalid("a signed response must name its Destination".into()))
        }
        None => {}
    }
    if let Some(issuer) = optional_child(response, SAML, "Issuer")? {
        if sole_text(issuer)?.trim() != expect.idp_entity_id {
            return Err(SamlError::Invalid("the response's issuer is not the configured IdP".into()));
        }
    }
    let mut vouched = signed.read(expect)?;
    // The request answered: the signed assertion's, else the response's own when the
    // response is what is signed; never an unsigned one.
    match (vouched.in_response_to.as_deref(), response.attribute("InResponseTo")) {
        (Some(a), Some(r)) if a != r => {
            return Err(SamlError::Invalid("the response and its assertion answer different requests".into()))
        }
        (None, Some(r)) if signed_response.is_some() => vouched.in_response_to = Some(r.to_owned()),
        (None, Some(_)) => {
            return Err(SamlError::Invalid("the response's InResponseTo is not covered by a signature".into()))
        }
        _ => {}
    }
    Ok(vouched)
}

/// An assertion a verified signature covers; the only source of a [`Vouched`].
struct SignedAssertion<'a, 'i>(Node<'a, 'i>);

impl<'a, 'i> SignedAssertion<'a, 'i> {
    /// The one assertion child of a signed response.
    fn within(response: Signed<'a, 'i>) -> Result<Self, SamlError> {
        only_child(response.node(), SAML, "Assertion").map(Self)
    }

    fn read(&self, expect: &Expect<'_>) -> Result<Vouched, SamlError> {
        let a = self.0;
        let invalid = |why: &str| SamlError::Invalid(why.to_owned());
        if a.attribute("Version") != Some("2.0") {
            return Err(invalid("the assertion is not SAML 2.0"));
        }
        let assertion_id =
            a.attribute("ID").filter(|s| !s.is_empty()).ok_or_else(|| invalid("the assertion has no ID"))?;
        if sole_text(only_child(a, SAML, "Issuer")?)?.trim() != expect.idp_entity_id {
            return Err(invalid("the assertion's issuer is not the configured IdP"));
        }
        let now = expect.now;
        let leeway = expect.leeway;

        // Subject: the NameID, and a bearer confirmation for this ACS.
        let subject = only_child(a, SAML, "Subject")?;
        let name_id = sole_text(only_child(subject, SAML, "NameID")?)?.trim().to_owned();
        if name_id.is_empty() {
            return Err(invalid("the NameID is empty"));
        }
        let mut confirmed = None;
        for sc in children(subject, SAML, "SubjectConfirmation").filter(|sc| sc.attribute("Method") == Some(BEARER)) {
            let Some(data) = optional_child(sc, SAML, "SubjectConfirmationData")? else { continue };
            if data.attribute("Recipient") != Some(expect.acs_url) {
                continue;
            }
            let Some(until) = data.attribute("NotOnOrAfter").map(instant).transpose()? else { continue };
            if now >= until + leeway {
                return Err(SamlError::Expired("the assertion's subject confirmation has expired".into()));
            }
            if let Some(nb) = data.attribute("NotBefore").map(instant).transpose()? {
                if nb > now + leeway {
                    return Err(SamlError::Expired("the subject confirmation is not valid yet".into()));
                }
            }
            confirmed = Some((until, data.attribute("InResponseTo").map(str::to_owned)));
            break;
        }
        let Some((confirmed_until, in_response_to)) = confirmed else {
            return Err(invalid("no bearer subject confirmation names this ACS as its Recipient"));
        };

        // Conditions: the time window and our audience.
        let conditions = only_child(a, SAML, "Conditions")?;
        let mut valid_until = confirmed_until;
        if let Some(nb) = conditions.attribute("NotBefore").map(instant).transpose()? {
            if nb > now + leeway {
                return Err(SamlError::Expired("the assertion is not valid yet (NotBefore)".into()));
            }
        }
        if let Some(noa) = conditions.attribute("NotOnOrAfter").map(instant).transpose()? {
            if now >= noa + leeway {
                return Err(SamlError::Expired("the assertion has expired (NotOnOrAfter)".into()));
            }
            valid_until = valid_until.min(noa);
        }
        let restrictions: Vec<_> = children(conditions, SAML, "AudienceRestriction").collect();
        if restrictions.is_empty() {
            return Err(invalid("the assertion has no AudienceRestriction"));
        }
        for r in restrictions {
            let mut ours = false;
            for audience in children(r, SAML, "Audience") {
                ours |= sole_text(audience)?.trim() == expect.sp_entity_id;
            }
            if !ours {
                return Err(invalid("the assertion is meant for another audience"));
            }
        }

        let authn =
            children(a, SAML, "AuthnStatement").next().ok_or_else(|| invalid("the assertion has no AuthnStatement"))?;
        let session_not_on_or_after = authn.attribute("SessionNotOnOrAfter").map(instant).transpose()?;

        let mut groups = Vec::new();
        for statement in children(a, SAML, "AttributeStatement") {
            for attribute in
                children(statement, SAML, "Attribute").filter(|x| x.attribute("Name") == Some(expect.groups_attribute))
            {
                for value in children(attribute, SAML, "AttributeValue") {
                    let g = sole_text(value)?.trim();
                    if !g.is_empty() {
                        groups.push(g.to_owned());
                    }
                }
            }
        }
        Ok(Vouched {
            name_id,
            groups,
            assertion_id: assertion_id.to_owned(),
            in_response_to,
            valid_until: valid_until + leeway,
            session_not_on_or_after,
        })
    }
}

fn is(n: Node<'_, '_>, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
}

/// No two elements may carry the same ID: a signature's reference must have one meaning.
fn refuse_duplicate_ids(doc: &roxmltree::Document<'_>) -> Result<(), SamlError> {
    let mut seen = std::collections::HashSet::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes().filter(|a| matches!(a.name(), "ID" | "Id" | "id" | "AssertionID")) {
            if !seen.insert(a.value()) {
                return Err(SamlError::Invalid("two elements carry the same ID".into()));
            }
        }
    }
    Ok(())
}

/// An `xs:dateTime` in UTC (`2026-12-03T12:00:00Z`, fractions allowed).
fn instant(s: &str) -> Result<SystemTime, SamlError> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| SamlError::Invalid(format!("{s:?} is not a UTC date and time")))?;
    Ok(t.into())
}
