//! `[identity.saml]`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[identity.saml]`: Cloakroom as a SAML 2.0 service provider for people's sign-in
/// (docs/identity.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlConfig {
    /// The IdP's metadata: a file path, or an `https://` (or `http://`) URL fetched at
    /// start. Its entity id, HTTP-Redirect SSO URL and signing certificates are used.
    pub idp_metadata: String,
    /// Our entity id (the `Audience` assertions must name, the `Issuer` of our requests).
    pub entity_id: String,
    /// The assertion attribute (its `Name`) holding the person's groups. Default `groups`.
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// How long a session minted after a SAML sign-in lasts (shortened to the
    /// assertion's `SessionNotOnOrAfter` when the IdP says so). Default:
    /// `identity.sessions.ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "humantime_serde")]
    pub session_ttl: Option<Duration>,
    /// The assertion consumer service URL as the browser reaches it (the `Recipient` and
    /// `Destination` a response must name). Default `http://<server.admin_listen>/v1/saml/acs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acs_url: Option<String>,
    /// Clock skew tolerated on `NotBefore`/`NotOnOrAfter`. Default `60s`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Accept responses the IdP sends without a request from us (IdP-initiated sign-in).
    /// Default `false`: every response must answer a `GET /v1/saml/login` of ours.
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// How long a sign-in started at `GET /v1/saml/login` may take. Default `10m`.
    #[serde(default = "default_login_timeout", with = "humantime_serde")]
    pub login_timeout: Duration,
}

fn default_groups_attribute() -> String {
    "groups".to_owned()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_login_timeout() -> Duration {
    Duration::from_secs(600)
}

impl SamlConfig {
    /// A configuration with the defaults.
    pub fn new(idp_metadata: impl Into<String>, entity_id: impl Into<String>) -> Self {
        Self {
            idp_metadata: idp_metadata.into(),
            entity_id: entity_id.into(),
            groups_attribute: default_groups_attribute(),
            session_ttl: None,
            acs_url: None,
            leeway: default_leeway(),
            allow_idp_initiated: false,
            login_timeout: default_login_timeout(),
        }
    }

    /// Whether `idp_metadata` is a URL rather than a file path.
    pub fn metadata_is_url(&self) -> bool {
        self.idp_metadata.starts_with("https://") || self.idp_metadata.starts_with("http://")
    }

    /// Checks what can be checked without the network: names present, URLs well formed,
    /// a metadata file readable and valid. The key in the message names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.entity_id.trim().is_empty() {
            return Err(("entity_id", "expected a non-empty entity id".into()));
        }
        if self.groups_attribute.trim().is_empty() {
            return Err(("groups_attribute", "expected a non-empty attribute name".into()));
        }
        if let Some(acs) = &self.acs_url {
            if !(acs.starts_with("https://") || acs.starts_with("http://")) {
                return Err(("acs_url", format!("expected an http(s) URL, got {acs:?}")));
            }
        }
        if self.login_timeout.is_zero() {
            return Err(("login_timeout", "expected a duration greater than 0".into()));
        }
        if self.session_ttl.is_some_and(|t| t.is_zero()) {
            return Err(("session_ttl", "expected a duration greater than 0".into()));
        }
        if !self.metadata_is_url() {
            let text = std::fs::read_to_string(&self.idp_metadata)
                .map_err(|e| ("idp_metadata", format!("{}: {e}", self.idp_metadata)))?;
            super::IdpMetadata::parse(&text).map_err(|e| ("idp_metadata", format!("{}: {e}", self.idp_metadata)))?;
        }
        Ok(())
    }
}
