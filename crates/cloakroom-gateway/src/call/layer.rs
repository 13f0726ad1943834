//! The [`CallLayer`].

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use cloakroom_core::{Call, Identity, PlaceholderUse};

use super::CallService;

/// Decides whether a caller may see a tool in a `tools/list` result: called with the
/// caller and the `tools/call` it would make (arguments `Null`).
pub type ToolVisibility =
    Arc<dyn Fn(Option<Identity>, Call) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Finds the known placeholders of a buffered request with their locations (`header:NAME`,
/// `query:NAME`, `body`) and the names of their secrets: for policy (`SecretsInCall`)
/// and for the call's scope, which approvals bind.
pub type SecretScanner = Arc<dyn Fn(&http::request::Parts, &[u8]) -> Vec<PlaceholderUse> + Send + Sync>;

/// Parses calls; see the [module docs](crate::call).
#[derive(Clone)]
pub struct CallLayer {
    pub(crate) max_body_bytes: u64,
    pub(crate) tool_visibility: Option<ToolVisibility>,
    pub(crate) secret_scanner: Option<SecretScanner>,
}

impl fmt::Debug for CallLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallLayer")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tool_visibility", &self.tool_visibility.is_some())
            .finish()
    }
}

impl CallLayer {
    /// A layer refusing request bodies over `max_body_bytes`.
    pub fn new(max_body_bytes: u64) -> Self {
        Self { max_body_bytes, tool_visibility: None, secret_scanner: None }
    }

    /// Puts `cloakroom_policy::SecretsInCall` with the secrets `scan` finds on every call,
    /// and their uses into the call's scope.
    pub fn with_secret_scanner(mut self, scan: SecretScanner) -> Self {
        self.secret_scanner = Some(scan);
        self
    }

    /// Filters `tools/list` results of MCP functions with `visible`.
    pub fn with_tool_visibility(mut self, visible: ToolVisibility) -> Self {
        self.tool_visibility = Some(visible);
        self
    }
}

impl<S> tower::Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService::new(inner, self.clone())
    }
}
