//! Backends behind cargo features: the one error every crate gives when a configuration
//! names a backend this build was compiled without.
//!
//! The PostgreSQL stores, the embedded sled stores, the OpenBao vault and the approval
//! webhooks are cargo features (`postgres`, `sled`, `openbao`, `webhooks`; see
//! docs/configuration.md, "Cargo features"). A configuration that asks for one that is
//! not compiled in is refused when it is loaded or opened, with a message naming the
//! feature, never by a panic and never by silently using something else.
//!
//! ```
//! use cloakroom_core::require_feature;
//!
//! let compiled = false; // `cfg!(feature = "openbao")` in the crate that owns the backend
//! let err = require_feature(compiled, "openbao", "vault.backend = \"openbao\"").unwrap_err();
//! assert_eq!(err.feature(), "openbao");
//! assert!(err.to_string().contains("cargo feature `openbao`"), "{err}");
//! assert!(require_feature(true, "openbao", "vault.backend = \"openbao\"").is_ok());
//! ```

/// A configuration names a backend this build does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs Cloakroom built with the cargo feature `{feature}`, which this build does not have")]
pub struct MissingFeature {
    feature: &'static str,
    what: String,
}

impl MissingFeature {
    /// `what` (as the configuration says it) needs the cargo feature `feature`.
    pub fn new(feature: &'static str, what: impl Into<String>) -> Self {
        Self { feature, what: what.into() }
    }

    /// The cargo feature that is missing (`postgres`, `sled`, `openbao`, `webhooks`).
    pub fn feature(&self) -> &'static str {
        self.feature
    }

    /// What asked for it, as the configuration says it (`vault.backend = "openbao"`).
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// `Ok` when `compiled` (pass `cfg!(feature = "…")` of the crate that owns the backend),
/// else the [`MissingFeature`] error naming `feature` and `what` asked for it.
pub fn require_feature(compiled: bool, feature: &'static str, what: impl Into<String>) -> Result<(), MissingFeature> {
    if compiled {
        Ok(())
    } else {
        Err(MissingFeature::new(feature, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_feature_is_named_with_what_asked_for_it() {
        let err = require_feature(false, "postgres", "audit.sink = \"postgres\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "audit.sink = \"postgres\" needs Cloakroom built with the cargo feature `postgres`, which this build \
             does not have"
        );
        assert_eq!((err.feature(), err.what()), ("postgres", "audit.sink = \"postgres\""));
    }

    #[test]
    fn a_compiled_feature_is_no_error() {
        assert_eq!(require_feature(true, "sled", "vault.backend = \"embedded\""), Ok(()));
    }
}
