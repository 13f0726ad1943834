//! The gate every upstream response head crosses before a caller sees it.
//!
//! Rather than patching each field an upstream could abuse, the gate rebuilds the head
//! from what it allows (docs/masking.md, "Invariant: every upstream byte"):
//!
//! - the status code, and nothing of the status line's reason phrase: the extensions are
//!   rebuilt from an allow-list (only the gateway's own [`Error`](cloakroom_core::Error)),
//!   so hyper's `ReasonPhrase` is dropped and the caller gets the canonical phrase;
//! - a final status of 1xx (`101 Switching Protocols`) or `206 Partial Content` is
//!   refused: the masker must see a whole representation (requests go without `Range`);
//! - every header, repeated ones included, is masked value by value; a header whose
//!   *name* holds a secret is dropped; hop-by-hop headers (and those `Connection` names)
//!   are dropped;
//! - every coding of every `Transfer-Encoding` header must be `chunked` (hyper undid it);
//!   every coding of every `Content-Encoding` header must be one the gateway decodes
//!   ([`ContentCoding`]); anything else is refused, never passed on.
//!
//! [`mask_fields`] is also what masks trailers, so headers and trailers cannot differ.

use std::sync::Arc;

use http::{header, response::Parts, Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{ContentCoding, Matcher};

/// The most content codings one response may stack (`gzip, gzip` is two).
const MAX_CODINGS: usize = 4;

/// Connection-specific headers (RFC 9110 §7.6.1, and the proxy ones) an upstream's
/// answer never carries on. `Trailer` stays: it names the trailers (masked) hyper may
/// send an HTTP/1 caller that accepts them.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The matcher a response was masked with, in the extensions of every response the
/// [`MaskLayer`](crate::MaskLayer) returns. A step outside the layer that rewrites the
/// body after it was masked (the MCP rescue step re-serializing a `tools/list`) masks
/// what it writes with this same matcher, so nothing it produces escapes the masker.
#[derive(Clone, Debug)]
pub struct MaskedWith(pub Arc<Matcher>);

/// Why the gate refused an upstream response. The messages never quote the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A 1xx status as the final answer.
    #[error(
        "the function answered with an informational (1xx) status as its final answer; the gateway does not pass it on"
    )]
    Informational,
    /// `206 Partial Content`.
    #[error(
        "the function answered with partial content (206); the gateway asks for whole representations only, \
         since a part of one cannot be masked"
    )]
    PartialContent,
    /// A transfer coding other than `chunked`.
    #[error(
        "the function answered with a transfer coding other than chunked, which the gateway does not decode, \
         so the response could not be masked"
    )]
    TransferCoding,
    /// A content coding the gateway cannot undo, or too many.
    #[error(
        "the function answered with a content encoding the gateway cannot decode, so the response could not be masked"
    )]
    ContentCoding,
}

/// A head the gate let through.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The rebuilt head.
    pub(crate) parts: Parts,
    /// The content codings to undo, in the order the upstream applied them.
    pub(crate) codings: Vec<ContentCoding>,
    /// Whether the body is a `text/event-stream`.
    pub(crate) event_stream: bool,
    /// Replacements made in the headers.
    pub(crate) masked: u64,
}

/// Rebuilds `parts` as a caller may see it, or refuses it (see the module docs).
pub(crate) fn admit(mut parts: Parts, matcher: &Matcher) -> Result<Admitted, Refusal> {
    if parts.status.is_informational() {
        return Err(Refusal::Informational);
    }
    if parts.status == StatusCode::PARTIAL_CONTENT {
        return Err(Refusal::PartialContent);
    }
    let headers = std::mem::take(&mut parts.headers);
    for coding in codings(&headers, &header::TRANSFER_ENCODING) {
        if !coding.eq_ignore_ascii_case("chunked") {
            return Err(Refusal::TransferCoding);
        }
    }
    let mut content_codings = Vec::new();
    for coding in codings(&headers, &header::CONTENT_ENCODING) {
        let value = HeaderValue::from_str(&coding).map_err(|_| Refusal::ContentCoding)?;
        if let Some(c) = ContentCoding::from_header(&value).map_err(|_| Refusal::ContentCoding)? {
            content_codings.push(c);
        }
    }
    if content_codings.len() > MAX_CODINGS {
        return Err(Refusal::ContentCoding);
    }
    let event_stream = headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let essence = v.as_bytes().split(|b| *b == b';').next().unwrap_or_default();
        essence.trim_ascii().eq_ignore_ascii_case(b"text/event-stream")
    });
    let connection_named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect();
    let framing_changes = !content_codings.is_empty() || !matcher.is_empty();
    let (headers, masked) = mask_fields(matcher, headers, |name| {
        HOP_BY_HOP.contains(name)
            || connection_named.contains(name)
            || name == header::CONTENT_ENCODING
            || (framing_changes && name == header::CONTENT_LENGTH)
    });
    parts.headers = headers;
    let mut extensions = Extensions::new();
    if let Some(error) = parts.extensions.get::<cloakroom_core::Error>() {
        extensions.insert(error.clone());
    }
    parts.extensions = extensions;
    Ok(Admitted { parts, codings: content_codings, event_stream, masked })
}

/// Every coding listed by every `name` header, trimmed, empty ones and `identity` left
/// out; a value that is not text gives a coding no check accepts.
fn codings(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            out.push(String::from("\u{0}"));
            continue;
        };
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                out.push(coding.to_owned());
            }
        }
    }
    out
}

/// Masks every field of `fields` (headers or trailers), repeated ones included, leaving
/// out those `leave_out` names and those whose name holds a secret; returns the masked map
/// and the number of replacements. A value that is no longer a valid header after
/// masking becomes `[REDACTED]`.
pub(crate) fn mask_fields(
    matcher: &Matcher,
    fields: HeaderMap,
    leave_out: impl Fn(&HeaderName) -> bool,
) -> (HeaderMap, u64) {
    let mut out = HeaderMap::with_capacity(fields.len());
    let mut masked = 0;
    let mut current: Option<(HeaderName, bool)> = None;
    for (name, value) in fields {
        if let Some(name) = name {
            let mut keep = !leave_out(&name);
            if keep && !matcher.is_empty() && name_holds_secret(matcher, &name) {
                masked += 1;
                keep = false;
            }
            current = Some((name, keep));
        }
        let Some((name, true)) = &current else { continue };
        // `finds` first: most values hold nothing and need no masked copy.
        if matcher.is_empty() || !matcher.finds(value.as_bytes()) {
            out.append(name.clone(), value);
            continue;
        }
        let replaced = matcher.replace(value.as_bytes());
        masked += replaced.total();
        let value =
            HeaderValue::from_bytes(&replaced.output).unwrap_or_else(|_| HeaderValue::from_static("[REDACTED]"));
        out.append(name.clone(), value);
    }
    (out, masked)
}

/// Whether a field name holds a secret. Names arrive lowercased (HTTP/1 parsers fold
/// them, HTTP/2 requires it), so a secret with capitals is also looked for in the
/// uppercased name: an all-caps secret (AWS key ids, uppercase hex) sent as a name would
/// otherwise reach the caller in lowercase, which loses nothing.
fn name_holds_secret(matcher: &Matcher, name: &HeaderName) -> bool {
    let lower = name.as_str().as_bytes();
    matcher.finds(lower) || matcher.finds(&lower.to_ascii_uppercase())
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
