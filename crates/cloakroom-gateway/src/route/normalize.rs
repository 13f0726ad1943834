//! The one normalization of a request target, at the edge, before routing.
//!
//! Envoy-like (docs/gateway.md, "Path and query normalization"): what routing, policy,
//! the audit record, the detokenizer and the upstream see is the canonical target this
//! module returns, never the bytes the caller sent; a target that cannot be made
//! canonical without guessing is refused.
//!
//! Path:
//! - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, every
//!   other escape is written with uppercase hex (`%2e` is `.`, `%66n` is `fn`);
//! - empty segments are merged (`//` is `/`), dot segments are removed (RFC 3986 §5.2.4;
//!   `..` above the root is refused);
//! - refused: an encoded slash or backslash (`%2F`, `%5C`), a raw backslash, an encoded
//!   control character (`%00`–`%1F`, `%7F`), a malformed escape (`%zz`, `%4`), and a
//!   segment that is `.` or `..` followed by `;` (`..;/`, which Java servers treat as `..`).
//!
//! Query (parsed the way Go's `net/url.ParseQuery`, the strictest common upstream,
//! does, then written back in one canonical form):
//! - pairs are separated by `&` only; a `;` anywhere in the query is refused;
//! - `+` is a space; escapes must be well formed and decode to UTF-8, else refused;
//! - empty pairs are dropped; keys and values are written back percent-encoded (every
//!   byte but the unreserved ones, uppercase hex, space as `%20`); a key without `=`
//!   stays without `=`; duplicates are kept, in order;
//! - more than [`MAX_QUERY_PARAMS`] parameters are refused.
//!
//! ```
//! use cloakroom_gateway::route::normalize_target;
//! assert_eq!(normalize_target("/fn/echo/../other//x/./y", None).unwrap(), "/fn/other/x/y");
//! assert_eq!(normalize_target("/fn/%65cho/%2e%2E/a", Some("b=c+d&&e")).unwrap(), "/fn/a?b=c%20d&e");
//! assert!(normalize_target("/fn/echo/..%2fx", None).is_err());
//! assert!(normalize_target("/fn/echo", Some("a=1;b=2")).is_err());
//! ```

use cloakroom_core::limits::MAX_QUERY_PARAMS;

/// Why a request target was refused (answered `bad_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The path does not start with `/` (asterisk or authority form).
    #[error("the request path must start with /")]
    NotAbsolute,
    /// `%2F` or `%5C` in the path.
    #[error("the request path contains an encoded slash or backslash")]
    EncodedSlash,
    /// A raw `\` in the path.
    #[error("the request path contains a backslash")]
    Backslash,
    /// An encoded control character or a malformed escape.
    #[error("the request path contains a malformed or control-character percent-escape")]
    BadEscape,
    /// `..` would climb above the root.
    #[error("the request path climbs above the root with ..")]
    AboveRoot,
    /// `.;` or `..;` segments.
    #[error("the request path has a dot segment with ; parameters")]
    DotParameters,
    /// `;` in the query.
    #[error("the query string contains ';', which some servers treat as a separator")]
    QuerySemicolon,
    /// A malformed escape, or one that is not UTF-8, in the query.
    #[error("the query string contains a malformed percent-escape or non-UTF-8 bytes")]
    QueryEscape,
    /// Too many query parameters.
    #[error("the query string has more than {MAX_QUERY_PARAMS} parameters")]
    TooManyParams,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(UPPER_HEX[usize::from(b >> 4)] as char);
    out.push(UPPER_HEX[usize::from(b & 15)] as char);
}

/// One path segment in canonical form: unreserved escapes decoded, others uppercase.
fn canonical_segment(raw: &str) -> Result<String, TargetError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(h), Some(l)) =
                    (bytes.get(i + 1).and_then(|&b| hex(b)), bytes.get(i + 2).and_then(|&b| hex(b)))
                else {
                    return Err(TargetError::BadEscape);
                };
                let b = h << 4 | l;
                match b {
                    b'/' | b'\\' => return Err(TargetError::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(TargetError::BadEscape),
                    b if unreserved(b) => out.push(b as char),
                    b => push_escaped(&mut out, b),
                }
                i += 3;
            }
            b'\\' => return Err(TargetError::Backslash),
            b if b.is_ascii() => {
                out.push(b as char);
                i += 1;
            }
            // Bytes of a raw UTF-8 character: written escaped, like any other.
            b => {
                push_escaped(&mut out, b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The canonical path of `path` (see the module docs).
pub fn normalize_path(path: &str) -> Result<String, TargetError> {
    let Some(below_root) = path.strip_prefix('/') else { return Err(TargetError::NotAbsolute) };
    let mut segments: Vec<String> = Vec::new();
    let raw: Vec<&str> = below_root.split('/').collect();
    let last = raw.len() - 1;
    // Whether the result ends with `/` (a trailing empty segment or a final dot segment).
    let mut trailing = false;
    for (i, raw) in raw.into_iter().enumerate() {
        let seg = canonical_segment(raw)?;
        let bare = seg.split(';').next().unwrap_or("");
        if seg.contains(';') && (bare == "." || bare == "..") {
            return Err(TargetError::DotParameters);
        }
        match seg.as_str() {
            "" | "." => trailing = i == last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(TargetError::AboveRoot);
                }
                trailing = i == last;
            }
            _ => {
                segments.push(seg);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Decodes one query key or value (`+` is a space); `None` if malformed or not UTF-8.
fn decode_component(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = bytes.get(i + 1).and_then(|&b| hex(b))?;
                let l = bytes.get(i + 2).and_then(|&b| hex(b))?;
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn encode_component(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            push_escaped(out, b);
        }
    }
}

/// The parameters of `query` in order, decoded: `(key, Some(value))`, or `(key, None)`
/// for a parameter without `=`.
pub fn parse_query(query: &str) -> Result<Vec<(String, Option<String>)>, TargetError> {
    if query.contains(';') {
        return Err(TargetError::QuerySemicolon);
    }
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if params.len() == MAX_QUERY_PARAMS {
            return Err(TargetError::TooManyParams);
        }
        let (k, v) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        let key = decode_component(k).ok_or(TargetError::QueryEscape)?;
        let value = match v {
            Some(v) => Some(decode_component(v).ok_or(TargetError::QueryEscape)?),
            None => None,
        };
        params.push((key, value));
    }
    Ok(params)
}

/// The canonical query of `query` (`None` when it has no parameters).
pub fn normalize_query(query: &str) -> Result<Option<String>, TargetError> {
    let params = parse_query(query)?;
    if params.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(query.len());
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k, &mut out);
        if let Some(v) = v {
            out.push('=');
            encode_component(v, &mut out);
        }
    }
    Ok(Some(out))
}

/// The canonical path and query (`/path?query`) of a request target.
pub fn normalize_target(path: &str, query: Option<&str>) -> Result<String, TargetError> {
    let mut out = normalize_path(path)?;
    if let Some(q) = query.map(normalize_query).transpose()?.flatten() {
        out.push('?');
        out.push_str(&q);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
