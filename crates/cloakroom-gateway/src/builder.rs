//! [`GatewayBuilder`]: a gateway started from code, with custom policies.
//!
//! `cloakroomd` runs the gateway a configuration file describes. A program that embeds
//! the gateway can also plug in its own [`Policy`] implementations (Rust code, which no
//! configuration file can load): they are evaluated with the rules and Datalog files of
//! `[policy]`, deny-overrides, for every call — and kept when [`Gateway::reload`] or
//! [`Gateway::apply`] swap in a new configuration. docs/policy.md shows a whole binary.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use cloakroom_core::Decision;
//! use cloakroom_gateway::{Config, Gateway};
//! use cloakroom_policy::{Policy, PolicyInput};
//!
//! struct NoDeletes;
//!
//! #[async_trait]
//! impl Policy for NoDeletes {
//!     fn name(&self) -> &str { "no-deletes" }
//!     async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
//!         if input.call.method == "DELETE" {
//!             Some(Decision::deny("no-deletes", "DELETE is never allowed"))
//!         } else {
//!             None // no opinion
//!         }
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = Config::from_toml_str("example", &format!(
//!     "[server]\ndata_dir = {:?}\n", dir.path().display().to_string()
//! )).unwrap();
//! let gateway = Gateway::builder(config)
//!     .keys(cloakroom_vault::Keys::generate()) // dev mode: keys given, not read from the environment
//!     .policy(Arc::new(NoDeletes))
//!     .start()
//!     .await
//!     .unwrap();
//! gateway.close().await;
//! # });
//! ```

use std::{path::PathBuf, sync::Arc};

use cloakroom_policy::Policy;
use cloakroom_vault::Keys;

use crate::{
    config::Config,
    gateway::{Gateway, GatewayError},
};

/// Builds a [`Gateway`]: the configuration, where it was read from, dev-mode keys and
/// custom policies. Made by [`Gateway::builder`].
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct GatewayBuilder {
    config: Config,
    config_path: Option<PathBuf>,
    keys: Option<Keys>,
    policies: Vec<Arc<dyn Policy>>,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("config_path", &self.config_path)
            .field("keys", &self.keys.as_ref().map(|_| "given"))
            .field("policies", &self.policies.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// The file [`Gateway::reload`] reads again; relative Datalog files are resolved
    /// against its directory. Without it, `reload` is refused (use [`Gateway::apply`]) and
    /// Datalog files are relative to the working directory.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// The placeholder and vault keys, instead of reading them from the environment or
    /// `vault.keys_file` (dev mode and tests).
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Adds a custom policy, evaluated for every call with the configuration's rules and
    /// Datalog files (deny-overrides, after them in naming order) and kept across reloads.
    /// May be called any number of times.
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policies.push(policy);
        self
    }

    /// Opens the stores under `server.data_dir` and builds the data path. The listeners
    /// are the caller's: serve [`Gateway::service`] and [`Gateway::admin_service`] with
    /// [`crate::server::serve`].
    pub async fn start(self) -> Result<Gateway, GatewayError> {
        Gateway::launch(self.config, self.config_path, self.keys, self.policies).await
    }
}

impl Gateway {
    /// A builder for a gateway running `config`.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder { config, config_path: None, keys: None, policies: Vec::new() }
    }
}
