//! The `[[functions]]` entries.

use cloakroom_core::Protocol;
use serde::Deserialize;

/// One `[[functions]]` entry: a function the gateway routes to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The function's name as policy and bindings see it. Letters, digits, `-`, `_`, `.`;
    /// no `/` (MCP tools become `<name>/<tool>`).
    pub name: String,
    /// `http` (default) or `mcp`.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// The upstream base URL, `http://host:port[/base]` or `https://…`. The path below
    /// the route is appended to the base path.
    pub upstream: String,
    /// The gateway path prefix, e.g. `/fn/payments`; stripped before forwarding.
    pub route: String,
    /// Forward the caller's `Host` header unchanged instead of the upstream's
    /// authority. Default `false`.
    #[serde(default)]
    pub preserve_host: bool,
    /// For an `https://` upstream with a private CA: a PEM file of CA certificates
    /// trusted in addition to the public (webpki) roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_protocol() -> Protocol {
    Protocol::Http
}
