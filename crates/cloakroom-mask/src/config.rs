//! The `[masking]` section of `cloakroom.toml` (docs/configuration.md).
//!
//! ```
//! use cloakroom_mask::{Detectors, Encoding, MaskingConfig, Replacement};
//! let config: MaskingConfig = toml::from_str(r#"
//!     replacement = "redact"
//!     encodings = ["raw", "json", "base64"]
//!     detectors = "none"
//! "#).unwrap();
//! assert_eq!(config.replacement, Replacement::Redact);
//! assert_eq!(config.detectors, Detectors::None);
//! assert_eq!(config.replacement_for("stripe_key", "cloak_aaaa"), b"[REDACTED:stripe_key]");
//! assert!(!config.options().detectors);
//! assert_eq!(config.options().encodings, vec![Encoding::Raw, Encoding::Json, Encoding::Base64]);
//! ```

use serde::{Deserialize, Serialize};

use crate::{Encoding, MaskOptions};

/// What a known secret is replaced by in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    /// The secret's placeholder (`cloak_…`), so the caller can send it back.
    #[default]
    Placeholder,
    /// `[REDACTED:<secret name>]`.
    Redact,
}

/// Whether the built-in detectors run on responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detectors {
    /// AWS access key ids, GitHub, Slack and Stripe live tokens, PEM private keys, JWTs.
    #[default]
    Default,
    /// No detectors: only secrets the vault knows are masked.
    None,
}

/// `[masking]`: how responses are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// What replaces a known secret: `"placeholder"` (default) or `"redact"`
    /// (`[REDACTED:<name>]`).
    pub replacement: Replacement,
    /// The encodings each secret is searched in. Default: all of `raw`, `json`, `url`,
    /// `base64`, `base64url`, `hex`, `html` (JSON, URL, HTML, line-broken base64 and
    /// mixed-case hex through their escape grammars). `raw` is always searched. Encoded forms of secrets
    /// shorter than 8 bytes are never searched (see docs/masking.md).
    pub encodings: Vec<Encoding>,
    /// `"default"`: built-in detectors for secrets the vault does not know; `"none"`.
    pub detectors: Detectors,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self { replacement: Replacement::Placeholder, encodings: Encoding::ALL.to_vec(), detectors: Detectors::Default }
    }
}

impl MaskingConfig {
    /// The matcher options this configuration asks for.
    pub fn options(&self) -> MaskOptions {
        MaskOptions { encodings: self.encodings.clone(), detectors: self.detectors == Detectors::Default }
    }

    /// The replacement bytes for the secret `name` whose placeholder is `placeholder`.
    pub fn replacement_for(&self, name: &str, placeholder: &str) -> Vec<u8> {
        match self.replacement {
            Replacement::Placeholder => placeholder.as_bytes().to_vec(),
            Replacement::Redact => format!("[REDACTED:{name}]").into_bytes(),
        }
    }
}
