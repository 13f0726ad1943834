//! SAML metadata: the IdP's (read from `identity.saml.idp_metadata`) and ours (served at
//! `GET /v1/saml/metadata`).

use rsa::{pkcs8::DecodePublicKey, RsaPublicKey};
use x509_cert::der::{Decode, Encode};

use super::{
    signature::decode,
    xml::{children, escape, parse, DS, MD},
    SamlError,
};

const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub(crate) const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// What Cloakroom needs from the IdP's metadata.
#[derive(Clone)]
pub struct IdpMetadata {
    /// The IdP's entity id: the `Issuer` its assertions must name.
    pub entity_id: String,
    /// Its single sign-on URL for the HTTP-Redirect binding.
    pub sso_url: String,
    /// The public keys of its signing certificates (several during a key rollover).
    pub(crate) keys: Vec<RsaPublicKey>,
}

impl std::fmt::Debug for IdpMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpMetadata")
            .field("entity_id", &self.entity_id)
            .field("sso_url", &self.sso_url)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl IdpMetadata {
    /// Reads an `EntityDescriptor` (alone or the first in an `EntitiesDescriptor`) with an
    /// `IDPSSODescriptor`: its entity id, HTTP-Redirect SSO URL and RSA signing certificates.
    pub fn parse(xml: &str) -> Result<Self, SamlError> {
        let doc = parse(xml)?;
        let bad = |why: String| SamlError::Metadata(why);
        let entity = doc
            .descendants()
            .find(|n| {
                n.is_element()
                    && n.tag_name().namespace() == Some(MD)
                    && n.tag_name().name() == "EntityDescriptor"
                    && children(*n, MD, "IDPSSODescriptor").next().is_some()
            })
            .ok_or_else(|| bad("no <EntityDescriptor> with an <IDPSSODescriptor>".into()))?;
        let entity_id = entity
            .attribute("entityID")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("the entityID is missing".into()))?;
        let idp = children(entity, MD, "IDPSSODescriptor").next().expect("found above");
        let sso_url = children(idp, MD, "SingleSignOnService")
            .find(|s| s.attribute("Binding") == Some(REDIRECT_BINDING))
            .and_then(|s| s.attribute("Location"))
            .ok_or_else(|| bad("the IdP has no SingleSignOnService for the HTTP-Redirect binding".into()))?;
        if !(sso_url.starts_with("https://") || sso_url.starts_with("http://")) {
            return Err(bad(format!("the SingleSignOnService location {sso_url:?} is not an http(s) URL")));
        }
        let mut keys = Vec::new();
        for kd in children(idp, MD, "KeyDescriptor").filter(|k| k.attribute("use").is_none_or(|u| u == "signing")) {
            for cert in kd.descendants().filter(|n| {
                n.is_element() && n.tag_name().namespace() == Some(DS) && n.tag_name().name() == "X509Certificate"
            }) {
                let der =
                    decode(cert.text().unwrap_or("")).ok_or_else(|| bad("an X509Certificate is not base64".into()))?;
                let cert = x509_cert::Certificate::from_der(&der)
                    .map_err(|e| bad(format!("an X509Certificate does not parse: {e}")))?;
                let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| bad(e.to_string()))?;
                let key = RsaPublicKey::from_public_key_der(&spki)
                    .map_err(|_| bad("a signing certificate's key is not an RSA key".into()))?;
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(bad("the IdP has no signing certificate (KeyDescriptor use=\"signing\")".into()));
        }
        Ok(Self { entity_id: entity_id.to_owned(), sso_url: sso_url.to_owned(), keys })
    }
}

/// Our SP metadata: entity id, the ACS for the HTTP-POST binding, the NameID formats we
/// take, and that we want assertions signed.
pub(crate) fn sp_metadata(entity_id: &str, acs_url: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{MD}" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST_BINDING}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(entity_id),
        acs = escape(acs_url),
    )
}
