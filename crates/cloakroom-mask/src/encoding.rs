//! The encodings a secret is searched in, and the byte forms each one produces.
//!
//! A secret leaves an API response in more shapes than its raw bytes: escaped inside a
//! JSON string, percent-encoded in a URL, base64-encoded in a basic-auth header or a
//! data blob, hex-dumped. [`Encoding::forms`] lists, for one value, every byte string
//! the masker searches for in that encoding.
//!
//! ```
//! use cloakroom_mask::Encoding;
//! let forms = Encoding::Url.forms(b"p@ss/word!");
//! assert!(forms.contains(&b"p%40ss%2Fword%21".to_vec()));
//! assert!(forms.contains(&b"p%40ss%2fword%21".to_vec()));
//! ```

use std::fmt;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Secrets shorter than this many bytes are masked only in their raw form: their encoded
/// forms are refused (an encoded one-byte secret would blank out every other character
/// of a response, as GitHub's runner once did for a one-character secret).
pub const MIN_ENCODED_SECRET_LEN: usize = 8;

/// One encoding a secret is searched in (`masking.encodings` in `cloakroom.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The value's bytes as they are.
    Raw,
    /// Escaped inside a JSON string: `\"`, `\\`, control characters, `\/`, `\uXXXX`
    /// (upper and lower hex) for non-ASCII and for `<`, `>`, `&` (as Go escapes them).
    Json,
    /// Percent-encoded: RFC 3986 (unreserved kept), HTML forms (`+` for space),
    /// JavaScript's `encodeURIComponent` and every non-alphanumeric byte encoded, each
    /// with upper and lower hex digits.
    Url,
    /// Standard base64 at all three byte alignments, padded or not.
    Base64,
    /// URL-safe base64 (`-`, `_`) at all three byte alignments, padded or not.
    Base64Url,
    /// Hexadecimal, lower and upper case (and, through its view, mixed case).
    Hex,
    /// HTML/XML character references: named (`&quot;`, `&amp;`…), decimal (`&#39;`)
    /// and hex (`&#x27;`), in any mix.
    Html,
}

impl Encoding {
    /// Every encoding, in the order the configuration lists them.
    pub const ALL: [Encoding; 7] = [
        Encoding::Raw,
        Encoding::Json,
        Encoding::Url,
        Encoding::Base64,
        Encoding::Base64Url,
        Encoding::Hex,
        Encoding::Html,
    ];

    /// The configuration name (`"raw"`, `"json"`, `"url"`, `"base64"`, `"base64url"`,
    /// `"hex"`, `"html"`).
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Json => "json",
            Encoding::Url => "url",
            Encoding::Base64 => "base64",
            Encoding::Base64Url => "base64url",
            Encoding::Hex => "hex",
            Encoding::Html => "html",
        }
    }

    /// Common byte strings of `value` in this encoding (deduplicated; may contain `value`
    /// itself when the encoding leaves it unchanged).
    ///
    /// The matcher searches base64 and hex through these forms; JSON, URL and HTML (and
    /// base64 with line breaks, hex in mixed case) are matched through their escape
    /// grammars instead, which find these forms and every other mix of escapes
    /// (docs/masking.md, "Escape grammars"). The forms remain for tests and benches.
    ///
    /// For base64 the forms are the *cores*: the characters that depend on the secret's
    /// bytes alone, for the secret standing at offset 0, 1 and 2 of a 3-byte group. A core
    /// occurs whatever precedes or follows the secret (`base64("user:" + secret)`), with or
    /// without padding; the at most two edge characters that also depend on neighbouring
    /// bytes carry at most 4 bits of the secret each and are left in place.
    pub fn forms(self, value: &[u8]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut push = |f: Vec<u8>| {
            if !f.is_empty() && !out.contains(&f) {
                out.push(f);
            }
        };
        match self {
            Encoding::Raw => push(value.to_vec()),
            Encoding::Json => {
                for slash in [false, true] {
                    for html in [false, true] {
                        for ascii_only in [false, true] {
                            for upper in [false, true] {
                                push(json_escape(value, JsonStyle { slash, html, ascii_only, upper }));
                            }
                        }
                    }
                }
            }
            Encoding::Url => {
                for upper in [true, false] {
                    push(percent_encode(value, is_rfc3986_unreserved, false, upper));
                    push(percent_encode(value, is_form_unreserved, true, upper));
                    push(percent_encode(value, is_uri_component_unreserved, false, upper));
                    push(percent_encode(value, |b| b.is_ascii_alphanumeric(), false, upper));
                }
            }
            Encoding::Base64 | Encoding::Base64Url => {
                for offset in 0..3 {
                    push(base64_core(value, offset, self == Encoding::Base64Url));
                }
            }
            Encoding::Hex => {
                push(hex_encode(value, b"0123456789abcdef"));
                push(hex_encode(value, b"0123456789ABCDEF"));
            }
            Encoding::Html => {
                // Python's html.escape, escapers writing `&#39;`, and every byte numeric.
                push(html_escape(value, b"&#x27;"));
                push(html_escape(value, b"&#39;"));
                if let Ok(text) = std::str::from_utf8(value) {
                    push(text.chars().flat_map(|c| format!("&#{};", u32::from(c)).into_bytes()).collect());
                    push(text.chars().flat_map(|c| format!("&#x{:x};", u32::from(c)).into_bytes()).collect());
                }
            }
        }
        out
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy)]
struct JsonStyle {
    slash: bool,
    html: bool,
    ascii_only: bool,
    upper: bool,
}

fn push_u_escape(out: &mut Vec<u8>, unit: u16, upper: bool) {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(digits[usize::from((unit >> shift) & 0xf)]);
    }
}

fn json_escape(value: &[u8], style: JsonStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    // Non-UTF-8 values cannot be `\u`-escaped as characters; escape their ASCII part only.
    let text = std::str::from_utf8(value).ok();
    let escape_ascii = |out: &mut Vec<u8>, b: u8| match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'/' if style.slash => out.extend_from_slice(b"\\/"),
        b'<' | b'>' | b'&' if style.html => push_u_escape(out, u16::from(b), style.upper),
        0x00..=0x1f => push_u_escape(out, u16::from(b), style.upper),
        _ => out.push(b),
    };
    match text {
        Some(text) => {
            for ch in text.chars() {
                if ch.is_ascii() {
                    escape_ascii(&mut out, ch as u8);
                } else if style.ascii_only || (style.html && (ch == '\u{2028}' || ch == '\u{2029}')) {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        push_u_escape(&mut out, *unit, style.upper);
                    }
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        None => {
            for &b in value {
                if b.is_ascii() {
                    escape_ascii(&mut out, b);
                } else {
                    out.push(b);
                }
            }
        }
    }
    out
}

fn is_rfc3986_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_form_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_')
}

fn is_uri_component_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')')
}

/// Hand-written rather than the `percent-encoding` crate: the masker must know every way a
/// secret can be escaped, including lower-case hex digits and `+` for a space, which
/// that crate (upper case only, no `+`) cannot produce. Runs once per secret per form
/// when the masker is built, never per byte of traffic.
fn percent_encode(value: &[u8], keep: fn(u8) -> bool, plus_for_space: bool, upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut out = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if keep(b) {
            out.push(b);
        } else if plus_for_space && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', digits[usize::from(b >> 4)], digits[usize::from(b & 0xf)]]);
        }
    }
    out
}

/// The base64 characters fixed by `value` alone when it starts `offset` bytes into a
/// 3-byte group: character `i` covers bits `6i..6i+6`, the value covers bits
/// `8*offset..8*(offset+len)`.
fn base64_core(value: &[u8], offset: usize, url_safe: bool) -> Vec<u8> {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(value);
    let encoded = if url_safe { URL_SAFE_NO_PAD.encode(&data) } else { STANDARD_NO_PAD.encode(&data) };
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + value.len())) / 6;
    if first >= end {
        return Vec::new();
    }
    encoded.as_bytes()[first..end].to_vec()
}

fn html_escape(value: &[u8], apos: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    for &b in value {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(apos),
            _ => out.push(b),
        }
    }
    out
}

fn hex_encode(value: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for &b in value {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0xf)]);
    }
    out
}

#[cfg(test)]
#[path = "encoding_tests.rs"]
mod tests;
