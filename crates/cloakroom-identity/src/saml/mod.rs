//! Cloakroom as a SAML 2.0 service provider: people sign in at their IdP and get a
//! gateway session (docs/identity.md, "SAML sign-in").
//!
//! [`ServiceProvider::login`] starts an SP-initiated sign-in (an `AuthnRequest` over the
//! HTTP-Redirect binding, its id remembered for a bounded time);
//! [`ServiceProvider::consume`] verifies the `SAMLResponse` the browser posts back and
//! says who signed in. Verification is pure Rust: roxmltree (no DTDs), exclusive
//! canonicalization ([`c14n`]), RSA-SHA256 with the `rsa` crate against the keys of the
//! IdP's metadata ([`signature`]); the person is read only from the element the
//! signature covers ([`response`]).
//!
//! ```
//! use cloakroom_identity::saml::{SamlConfig, ServiceProvider};
//!
//! let idp = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com">
//!   <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
//!     <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data>
//!       <ds:X509Certificate>not a certificate</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
//!     <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
//!   </md:IDPSSODescriptor></md:EntityDescriptor>"#;
//! let config = SamlConfig::new("idp.xml", "https://cloakroom.example.com/saml");
//! let err = ServiceProvider::new(config, "https://cloakroom.example.com/v1/saml/acs".into(), idp).unwrap_err();
//! assert!(err.to_string().contains("X509Certificate"));
//! ```

use std::time::{Duration, SystemTime};

use cloakroom_core::AuthMethod;

use crate::SignIn;

mod c14n;
mod config;
mod memory;
mod metadata;
mod request;
mod response;
mod signature;
mod xml;

pub use config::SamlConfig;
pub use metadata::IdpMetadata;
pub use xml::MAX_XML_BYTES;

use memory::{Expiring, WhenFull, MAX_PENDING, MAX_SEEN};

/// Why a SAML sign-in failed. Messages name what was wrong, never a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// The XML is not acceptable (too large, a DTD, does not parse).
    #[error("SAML response refused: {0}")]
    Malformed(String),
    /// A signature is missing, unsupported or does not verify.
    #[error("SAML response refused: {0}")]
    Signature(String),
    /// The message does not say what it must (issuer, audience, recipient, request).
    #[error("SAML response refused: {0}")]
    Invalid(String),
    /// Outside its validity window.
    #[error("SAML response refused: {0}")]
    Expired(String),
    /// The assertion was already used.
    #[error("SAML response refused: the assertion was already used")]
    Replayed,
    /// The IdP did not sign the person in.
    #[error("SAML sign-in failed: {0}")]
    Refused(String),
    /// Too many sign-ins or remembered assertions to take another now.
    #[error("too many SAML sign-ins are in progress; try again in a few minutes")]
    Busy,
    /// The `return_to` is not a local path.
    #[error("return_to must be a local path such as /console")]
    ReturnTo,
    /// The IdP metadata is unusable.
    #[error("IdP metadata: {0}")]
    Metadata(String),
}

/// Where a sign-in returns to unless `return_to` says otherwise.
pub const DEFAULT_RETURN_TO: &str = "/console";

/// A person the IdP vouched for, ready to get a session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SamlSignIn {
    /// Subject = NameID, issuer = the IdP's entity id, groups from `groups_attribute`.
    pub sign_in: SignIn,
    /// How long their session may last.
    pub ttl: Duration,
    /// The local path the sign-in started from (`/console` by default).
    pub return_to: String,
}

/// The service provider: configuration, the IdP's metadata, sign-ins in progress and the
/// assertions already used.
pub struct ServiceProvider {
    config: SamlConfig,
    acs_url: String,
    idp: IdpMetadata,
    pending: Expiring<String>,
    seen: Expiring<()>,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("entity_id", &self.config.entity_id)
            .field("idp", &self.idp)
            .finish_non_exhaustive()
    }
}

impl ServiceProvider {
    /// A service provider with the IdP metadata `idp_metadata_xml`; `acs_url` is the
    /// resolved `identity.saml.acs_url`.
    pub fn new(config: SamlConfig, acs_url: String, idp_metadata_xml: &str) -> Result<Self, SamlError> {
        let idp = IdpMetadata::parse(idp_metadata_xml)?;
        Ok(Self {
            config,
            acs_url,
            idp,
            pending: Expiring::new(MAX_PENDING, WhenFull::ForgetSoonest),
            seen: Expiring::new(MAX_SEEN, WhenFull::Refuse),
        })
    }

    /// Reads `config.idp_metadata` (the file, or the URL with a 10 s deadline) and builds
    /// the service provider.
    pub async fn load(config: SamlConfig, acs_url: String) -> Result<Self, SamlError> {
        let text = if config.metadata_is_url() {
            fetch(&config.idp_metadata).await?
        } else {
            tokio::fs::read_to_string(&config.idp_metadata)
                .await
                .map_err(|e| SamlError::Metadata(format!("{}: {e}", config.idp_metadata)))?
        };
        Self::new(config, acs_url, &text)
    }

    /// The IdP this SP trusts.
    pub fn idp(&self) -> &IdpMetadata {
        &self.idp
    }

    /// The ACS URL responses must be addressed to.
    pub fn acs_url(&self) -> &str {
        &self.acs_url
    }

    /// Our SP metadata XML.
    pub fn metadata_xml(&self) -> String {
        metadata::sp_metadata(&self.config.entity_id, &self.acs_url)
    }

    /// Starts a sign-in that returns to `return_to` (a local path; default `/console`):
    /// the URL to redirect the browser to.
    pub fn login(&self, return_to: Option<&str>, now: SystemTime) -> Result<String, SamlError> {
        let return_to = match return_to {
            None | Some("") => DEFAULT_RETURN_TO.to_owned(),
            Some(r) if is_local_path(r) => r.to_owned(),
            Some(_) => return Err(SamlError::ReturnTo),
        };
        let id = format!("_{}", hex::encode(rand::random::<[u8; 20]>()));
        self.pending.insert(id.clone(), now + self.config.login_timeout, return_to, now)?;
        Ok(request::redirect_url(&self.idp.sso_url, &self.config.entity_id, &self.acs_url, &id, now))
    }

    /// Verifies a posted `SAMLResponse` (base64) and its `RelayState`: who signed in.
    pub fn consume(
        &self,
        saml_response: &str,
        relay_state: Option<&str>,
        now: SystemTime,
    ) -> Result<SamlSignIn, SamlError> {
        // base64 of MAX_XML_BYTES, with room for line breaks.
        if saml_response.len() > MAX_XML_BYTES / 3 * 4 + MAX_XML_BYTES / 32 {
            return Err(SamlError::Malformed(format!("the response is larger than {MAX_XML_BYTES} bytes")));
        }
        let bytes = signature::decode(saml_response)
            .ok_or_else(|| SamlError::Malformed("SAMLResponse is not base64".into()))?;
        let xml = String::from_utf8(bytes).map_err(|_| SamlError::Malformed("the response is not UTF-8".into()))?;
        let expect = response::Expect {
            idp_entity_id: &self.idp.entity_id,
            keys: &self.idp.keys,
            sp_entity_id: &self.config.entity_id,
            acs_url: &self.acs_url,
            groups_attribute: &self.config.groups_attribute,
            leeway: self.config.leeway,
            now,
        };
        let vouched = response::verify(&xml, &expect)?;
        let return_to = match &vouched.in_response_to {
            Some(id) => {
                if relay_state.is_some_and(|r| r != id) {
                    return Err(SamlError::Invalid("the RelayState belongs to another sign-in".into()));
                }
                self.pending.take(id, now).ok_or_else(|| {
                    SamlError::Invalid(
                        "the response answers no sign-in in progress (unknown, expired or used InResponseTo)".into(),
                    )
                })?
            }
            None if self.config.allow_idp_initiated => DEFAULT_RETURN_TO.to_owned(),
            None => {
                return Err(SamlError::Invalid(
                    "unsolicited (IdP-initiated) responses are refused; start at /v1/saml/login".into(),
                ))
            }
        };
        if !self.seen.insert(vouched.assertion_id.clone(), vouched.valid_until, (), now)? {
            return Err(SamlError::Replayed);
        }
        let mut ttl = self.config.session_ttl.unwrap_or(Duration::from_secs(8 * 3600));
        if let Some(end) = vouched.session_not_on_or_after {
            ttl =
                ttl.min(end.duration_since(now).map_err(|_| SamlError::Expired("the IdP's session has ended".into()))?);
        }
        let sign_in =
            SignIn::new(vouched.name_id, self.idp.entity_id.clone(), AuthMethod::Saml).with_groups(vouched.groups);
        Ok(SamlSignIn { sign_in, ttl, return_to })
    }
}

/// A path on this listener: `/` then no second `/` or `\` (which a browser would read as
/// another host), and nothing but printable ASCII without backslashes.
pub fn is_local_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
        && p.len() <= 1024
}

async fn fetch(url: &str) -> Result<String, SamlError> {
    let err = |e: String| SamlError::Metadata(format!("{url}: {e}"));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| err(e.to_string()))?;
    let res = client.get(url).send().await.map_err(|e| err(e.to_string()))?;
    if !res.status().is_success() {
        return Err(err(format!("HTTP {}", res.status())));
    }
    let body = res.bytes().await.map_err(|e| err(e.to_string()))?;
    if body.len() > MAX_XML_BYTES {
        return Err(err(format!("larger than {MAX_XML_BYTES} bytes")));
    }
    String::from_utf8(body.to_vec()).map_err(|_| err("not UTF-8".into()))
}

/// The base64 engine SAML uses.
pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

#[cfg(test)]
#[path = "attacks_tests.rs"]
mod attacks_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_only_ever_a_local_path() {
        for ok in ["/console", "/console/approvals?x=1", "/"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in ["//evil.com", "/\\evil.com", "https://evil.com", "evil", "/a b", "/a\nb", ""] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
