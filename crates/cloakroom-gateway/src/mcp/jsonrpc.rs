//! JSON-RPC as MCP clients send it: what a POST body asks for.

use cloakroom_core::limits::MAX_MCP_BATCH;
use http::HeaderMap;
use serde_json::Value;

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the body is JSON but not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: the parameters are invalid.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: the `Mcp-Method` / `Mcp-Name` headers disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Cloakroom: the gateway refused the call (policy, binding, approval, identity).
pub const REFUSED: i64 = -32001;
/// Cloakroom: the call waits for a person's approval; `data` is the pending object.
pub const APPROVAL_PENDING: i64 = -32002;
/// Cloakroom: the function could not be reached or did not answer in time.
pub const UPSTREAM_FAILED: i64 = -32003;
/// Cloakroom: the gateway cannot serve the call now (vault or audit sink down).
pub const UNAVAILABLE: i64 = -32004;
/// Cloakroom: the request is too large.
pub const TOO_LARGE: i64 = -32005;

/// The `Mcp-Method` header of MCP 2026-07-28.
pub const MCP_METHOD_HEADER: &str = "mcp-method";
/// The `Mcp-Name` header of MCP 2026-07-28.
pub const MCP_NAME_HEADER: &str = "mcp-name";

/// What one MCP POST body is.
#[derive(Debug, Clone, PartialEq)]
pub enum McpMessage {
    /// A request (has an `id`).
    Request {
        /// Its id.
        id: Value,
        /// Its method.
        method: String,
        /// Its params (`Null` when absent).
        params: Value,
    },
    /// A notification (no `id`).
    Notification {
        /// Its method.
        method: String,
    },
    /// A response from the client (to a server's request: sampling, elicitation, roots).
    Response {
        /// Its id.
        id: Value,
    },
    /// A batch (MCP 2025-03-26 and older).
    Batch(Vec<McpMessage>),
}

/// A JSON-RPC refusal before the call goes anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i64,
    /// Message.
    pub message: String,
    /// The request id it answers (`Null` when unknown).
    pub id: Value,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>, id: Value) -> Self {
        Self { code, message: message.into(), id }
    }

    /// The JSON-RPC error response object.
    pub fn to_json(&self, data: Option<Value>) -> Value {
        error_object(&self.id, self.code, &self.message, data)
    }
}

/// A JSON-RPC error response.
pub fn error_object(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

impl McpMessage {
    /// Parses a POST body with the gateway's strict JSON parser
    /// ([`crate::json::parse_strict_json`]: bounded depth, no duplicate keys, numbers
    /// with one exact value), and batches of at most [`MAX_MCP_BATCH`] messages.
    pub fn parse(body: &[u8]) -> Result<Self, RpcError> {
        let v: Value = crate::json::parse_strict_json(body)
            .map_err(|e| RpcError::new(PARSE_ERROR, format!("Parse error: {e}"), Value::Null))?;
        match v {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(RpcError::new(INVALID_REQUEST, "Invalid Request: empty batch", Value::Null));
                }
                if items.len() > MAX_MCP_BATCH {
                    return Err(RpcError::new(
                        INVALID_REQUEST,
                        format!("Invalid Request: a batch of more than {MAX_MCP_BATCH} messages"),
                        Value::Null,
                    ));
                }
                items.into_iter().map(Self::from_value).collect::<Result<Vec<_>, _>>().map(McpMessage::Batch)
            }
            other => Self::from_value(other),
        }
    }

    fn from_value(v: Value) -> Result<Self, RpcError> {
        let Value::Object(mut obj) = v else {
            return Err(RpcError::new(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC object", Value::Null));
        };
        let id = obj.remove("id");
        if let Some(id) = &id {
            if !(id.is_string() || id.is_number() || id.is_null()) {
                return Err(RpcError::new(
                    INVALID_REQUEST,
                    "Invalid Request: id must be a string or a number",
                    Value::Null,
                ));
            }
        }
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: jsonrpc must be \"2.0\"",
                id.unwrap_or_default(),
            ));
        }
        match obj.remove("method") {
            Some(Value::String(method)) => {
                let params = obj.remove("params").unwrap_or(Value::Null);
                if !(params.is_null() || params.is_object() || params.is_array()) {
                    return Err(RpcError::new(
                        INVALID_REQUEST,
                        "Invalid Request: params must be structured",
                        id.unwrap_or_default(),
                    ));
                }
                Ok(match id {
                    Some(id) => McpMessage::Request { id, method, params },
                    None => McpMessage::Notification { method },
                })
            }
            Some(_) => {
                Err(RpcError::new(INVALID_REQUEST, "Invalid Request: method must be a string", id.unwrap_or_default()))
            }
            None => match id {
                Some(id) if obj.contains_key("result") || obj.contains_key("error") => Ok(McpMessage::Response { id }),
                _ => Err(RpcError::new(INVALID_REQUEST, "Invalid Request: no method", id.unwrap_or_default())),
            },
        }
    }

    /// The id a refusal should answer, when this is a single request.
    pub fn request_id(&self) -> Option<&Value> {
        match self {
            McpMessage::Request { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether any message in it is a `tools/call`.
    pub fn has_tool_call(&self) -> bool {
        match self {
            McpMessage::Request { method, .. } => method == "tools/call",
            McpMessage::Batch(items) => items.iter().any(Self::has_tool_call),
            _ => false,
        }
    }

    /// The method name (for a single request or notification).
    pub fn method(&self) -> Option<&str> {
        match self {
            McpMessage::Request { method, .. } | McpMessage::Notification { method } => Some(method),
            _ => None,
        }
    }

    /// What `Mcp-Name` must be for this message: `params.name` of `tools/call` and
    /// `prompts/get`, `params.uri` of `resources/read`.
    pub fn name(&self) -> Option<&str> {
        let McpMessage::Request { method, params, .. } = self else { return None };
        match method.as_str() {
            "tools/call" | "prompts/get" => params.get("name").and_then(Value::as_str),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                params.get("uri").and_then(Value::as_str)
            }
            _ => None,
        }
    }

    /// Checks the MCP 2026-07-28 routing headers against the body: when present they
    /// must say exactly what the body says, so a proxy or policy that trusts them can
    /// never be steered past by a body naming another tool.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), RpcError> {
        let header = |name: &str| -> Result<Option<String>, RpcError> {
            let mut values = headers.get_all(name).iter();
            let first = values.next();
            if values.next().is_some() {
                return Err(self.mismatch(&format!("more than one {name} header")));
            }
            first
                .map(|v| {
                    v.to_str().map(str::to_owned).map_err(|_| self.mismatch(&format!("{name} is not visible ASCII")))
                })
                .transpose()
        };
        let method_h = header(MCP_METHOD_HEADER)?;
        let name_h = header(MCP_NAME_HEADER)?;
        if method_h.is_none() && name_h.is_none() {
            return Ok(());
        }
        if let Some(m) = &method_h {
            if self.method() != Some(m.as_str()) {
                return Err(self.mismatch("the Mcp-Method header does not match the body's method"));
            }
        }
        match (&name_h, self.name()) {
            (Some(h), Some(b)) if h == b => {}
            (None, None) => {}
            (None, Some(_)) if method_h.is_none() => {}
            (None, Some(_)) => return Err(self.mismatch("the Mcp-Name header is missing for this method")),
            _ => return Err(self.mismatch("the Mcp-Name header does not match the body")),
        }
        Ok(())
    }

    fn mismatch(&self, what: &str) -> RpcError {
        RpcError::new(
            HEADER_MISMATCH,
            format!("Header mismatch: {what}"),
            self.request_id().cloned().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
#[path = "jsonrpc_tests.rs"]
mod tests;
