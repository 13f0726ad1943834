//! The request-shape limits every layer agrees on (docs/configuration.md, "Limits").
//!
//! They are constants rather than settings: each bounds the work one request can cause
//! whatever `server.max_body_bytes` is, and the parsers that must agree about a request
//! (the `CallLayer`'s JSON, the detokenizer's JSON locator, the MCP JSON-RPC parser)
//! read the same numbers from here.

/// Deepest nesting of arrays and objects in a JSON body (the outermost container is
/// depth 1). A deeper body is refused with `bad_request` before policy.
pub const MAX_JSON_DEPTH: usize = 64;

/// Most values (strings, numbers, literals, arrays and objects) in one JSON body. Each
/// costs 32 bytes or more once parsed, whatever its length in the body (`0,` is two
/// bytes), and the parsed arguments are held by several layers: a body of a million
/// values is refused with `bad_request` before policy, which bounds what one request
/// can make the gateway hold at tens of megabytes whatever `server.max_body_bytes` is.
pub const MAX_JSON_VALUES: usize = 1_000_000;

/// Most placeholder occurrences in one request (headers, query and body together).
/// More is refused with `bad_request` before anything is checked or fetched.
pub const MAX_PLACEHOLDERS: usize = 1024;

/// Longest JSON pointer the detokenizer builds for a placeholder's location, in bytes.
/// A placeholder whose pointer would be longer is refused with `bad_request`.
pub const MAX_POINTER_BYTES: usize = 1024;

/// Most query parameters in one request; more is refused with `bad_request`.
pub const MAX_QUERY_PARAMS: usize = 256;

/// Most messages in one MCP JSON-RPC batch; more is refused with `bad_request`.
pub const MAX_MCP_BATCH: usize = 64;

/// Longest caller-chosen string written into a log line or a notification text, in
/// characters, before it is cut (see [`crate::quoted`]).
pub const MAX_QUOTED_CHARS: usize = 128;

/// Most bytes an upstream's content-coded (gzip, deflate, br, zstd) answer may decode
/// to, per compressed byte received, past [`DECODE_SLACK_BYTES`]. A larger expansion (a
/// decompression bomb) ends the answer with an error, recorded in the audit record: the
/// masker must read every decoded byte, so an unbounded ratio would be unbounded work.
pub const MAX_DECODE_RATIO: u64 = 256;

/// Decoded bytes an answer may always reach, whatever its compressed size.
pub const DECODE_SLACK_BYTES: u64 = 16 * 1024 * 1024;
