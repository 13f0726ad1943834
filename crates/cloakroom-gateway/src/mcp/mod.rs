//! MCP specifics: JSON-RPC parsing, the rescue step that re-renders refusals as
//! JSON-RPC errors, `tools/list` filtering, and sessions bound to the identity that
//! opened them. See docs/mcp.md.

pub mod jsonrpc;
pub mod session;
pub mod sse;
