//! MCP specifics: JSON-RPC parsing, the rescue step that re-renders refusals as
//! JSON-RPC errors, and `tools/list` filtering. See docs/mcp.md.

pub mod jsonrpc;
pub mod rescue;
pub mod sse;
