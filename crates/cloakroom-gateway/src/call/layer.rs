//! The [`CallLayer`].

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use cloakroom_core::{Call, Identity, PlaceholderUse};

use super::NameCall;

/// Decides whether a caller may see a tool in a `tools/list` result: called with the
/// caller and the `tools/call` it would make (arguments `Null`).
pub type ToolVisibility =
    Arc<dyn Fn(Option<Identity>, Call) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Finds the known placeholders of a buffered request with their locations (`header:NAME`,
/// `query:NAME`, `body`) and the names of their secrets: for policy (`SecretsInCall`)
/// and for the call's scope, which approvals bind.
pub type SecretScanner = Arc<dyn Fn(&http::request::Parts, &[u8]) -> Vec<PlaceholderUse> + Send + Sync>;

/// Names the function a request calls, for services without the gateway's routes (an
/// axum application): called with the request head and the buffered body; `None` is
/// 404 `not_found`.
pub type Namer = Arc<dyn Fn(&http::request::Parts, &[u8]) -> Option<CallName> + Send + Sync>;

/// What a [naming closure](CallLayer::naming) says a request calls.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CallName {
    /// The function name policy rules and secret bindings match (`payments`, `tools/x`).
    pub function: String,
    /// The function's detail, as `detail` in rules (for `http` functions the first path
    /// segment below the route).
    pub detail: Option<String>,
    /// The arguments rules see; `None` reads the body as the gateway does for `http`
    /// functions (strict JSON, or a form's fields).
    pub arguments: Option<serde_json::Value>,
}

impl CallName {
    /// The function `function`, no detail, arguments read from the body.
    pub fn new(function: impl Into<String>) -> Self {
        Self { function: function.into(), detail: None, arguments: None }
    }

    /// With `detail`.
    pub fn detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    /// With these arguments instead of the body's.
    pub fn arguments(mut self, arguments: serde_json::Value) -> Self {
        self.arguments = Some(arguments);
        self
    }
}

/// Parses calls; see the [module docs](crate::call).
#[derive(Clone)]
pub struct CallLayer {
    pub(crate) max_body_bytes: u64,
    pub(crate) tool_visibility: Option<ToolVisibility>,
    pub(crate) secret_scanner: Option<SecretScanner>,
    pub(crate) namer: Option<Namer>,
}

impl fmt::Debug for CallLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallLayer")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tool_visibility", &self.tool_visibility.is_some())
            .field("secret_scanner", &self.secret_scanner.is_some())
            .field("namer", &self.namer.is_some())
            .finish()
    }
}

impl CallLayer {
    /// A layer refusing request bodies over `max_body_bytes`.
    pub fn new(max_body_bytes: u64) -> Self {
        Self { max_body_bytes, tool_visibility: None, secret_scanner: None, namer: None }
    }

    /// Puts `cloakroom_policy::SecretsInCall` with the secrets `scan` finds on every call,
    /// and their uses into the call's scope.
    pub fn secret_scanner(mut self, scan: SecretScanner) -> Self {
        self.secret_scanner = Some(scan);
        self
    }

    /// Filters `tools/list` results of MCP functions with `visible`.
    pub fn tool_visibility(mut self, visible: ToolVisibility) -> Self {
        self.tool_visibility = Some(visible);
        self
    }

    /// Names calls with `name` where the request carries no gateway route
    /// ([`Routed`](crate::route::Routed)): an application embedding the layers says which
    /// function each request is. The call is an `http` call; everything else (the body
    /// limit, the strict parse, the refusals, the digest and the scope approvals bind)
    /// is the same as for the gateway's own functions.
    ///
    /// ```
    /// use cloakroom_gateway::call::{CallLayer, CallName};
    /// // `/weather/today` is the function `weather` with detail `today`.
    /// let layer = CallLayer::new(1 << 20).naming(|req, _body| {
    ///     let mut segments = req.uri.path().split('/').filter(|s| !s.is_empty());
    ///     let function = segments.next()?;
    ///     Some(CallName::new(function).detail(segments.next().map(str::to_owned)))
    /// });
    /// ```
    pub fn naming<F>(mut self, name: F) -> Self
    where
        F: Fn(&http::request::Parts, &[u8]) -> Option<CallName> + Send + Sync + 'static,
    {
        self.namer = Some(Arc::new(name));
        self
    }
}

impl<S> tower::Layer<S> for CallLayer {
    type Service = NameCall<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NameCall::from_layer(inner, self.clone())
    }
}
