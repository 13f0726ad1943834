//! What is being called: the function, its protocol and its arguments.

use serde::{Deserialize, Serialize};

/// How a function is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A plain HTTP endpoint; the arguments are the JSON request body.
    Http,
    /// A Model Context Protocol server; `tools/call` names the tool and its arguments.
    Mcp,
}

impl Protocol {
    /// The protocol's name as in the configuration (`http`, `mcp`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Mcp => "mcp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed call, put in the request extensions by the `CallLayer`.
///
/// Built with [`Call::new`] and the `with_*` methods:
///
/// ```
/// use cloakroom_core::{Call, Protocol};
///
/// let call = Call::new("payments".into(), Protocol::Http)
///     .with_method("POST".into())
///     .with_arguments(serde_json::json!({"amount": 5}));
/// assert_eq!(call.argument("/amount"), Some(&serde_json::json!(5)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Call {
    /// The function name policy and bindings see: the configured function's `name`
    /// for `http`, `<name>/<tool>` for an MCP `tools/call`.
    pub function: String,
    /// The protocol of the configured function.
    pub protocol: Protocol,
    /// The arguments: the JSON request body for `http` functions, `params.arguments`
    /// for MCP `tools/call`; `Value::Null` when there are none (non-JSON bodies).
    #[serde(default)]
    pub arguments: serde_json::Value,
    /// Extra detail: for `http` the first segment of the path below the route, for MCP
    /// the JSON-RPC method (`tools/call`, `tools/list`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The HTTP method of the request.
    pub method: String,
    /// Lowercase hex SHA-256 of what approvals bind to: the canonical JSON arguments
    /// when there are any, else the raw request body.
    pub digest: String,
}

impl Call {
    /// A call of `function` with no arguments, no detail, an empty method and digest.
    pub fn new(function: String, protocol: Protocol) -> Self {
        Self {
            function,
            protocol,
            arguments: serde_json::Value::Null,
            detail: None,
            method: String::new(),
            digest: String::new(),
        }
    }

    /// With these arguments.
    pub fn with_arguments(mut self, arguments: serde_json::Value) -> Self {
        self.arguments = arguments;
        self
    }

    /// With this detail (the first path segment, or the JSON-RPC method).
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    /// With this HTTP method.
    pub fn with_method(mut self, method: String) -> Self {
        self.method = method;
        self
    }

    /// With this digest (lowercase hex SHA-256 of what approvals bind to).
    pub fn with_digest(mut self, digest: String) -> Self {
        self.digest = digest;
        self
    }

    /// The argument at a JSON pointer (`/sql`, `/amount`), if present: each key matched
    /// exactly or else by its folded name, as case-blind servers bind keys to fields
    /// (`/amount` also finds `{"Amount": …}`; [`crate::pointer_folded`]).
    pub fn argument(&self, pointer: &str) -> Option<&serde_json::Value> {
        crate::pointer_folded(&self.arguments, pointer)
    }
}
