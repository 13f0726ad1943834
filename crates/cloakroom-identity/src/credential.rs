//! Finding the caller's credential in the request and telling its kind by its shape.
//!
//! ```
//! use cloakroom_identity::{Credential, CredentialKind};
//! use http::{header, HeaderMap};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(header::AUTHORIZATION, "Bearer cloak_placeholder_for_the_function".parse().unwrap());
//! headers.insert(header::PROXY_AUTHORIZATION, "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln".parse().unwrap());
//! let cred = Credential::from_headers(&headers).unwrap().unwrap();
//! assert_eq!(cred.header, header::PROXY_AUTHORIZATION);
//! assert_eq!(cred.kind(), CredentialKind::Jwt);
//! ```

use http::{header, HeaderMap, HeaderName};

use crate::AuthError;

/// The longest credential accepted, in bytes. Real JWTs and Biscuits are a few KiB;
/// anything longer is refused before it is hashed, decoded or parsed.
pub const MAX_CREDENTIAL_LEN: usize = 16 * 1024;

/// What a credential looks like, which decides the verifier that checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Three base64url segments separated by two dots: a JWS compact JWT.
    Jwt,
    /// No dots, base64url (padding allowed) whose bytes start like a Biscuit protobuf
    /// (field 1 `root_key_id` or field 2 `authority`) and are long enough to hold a
    /// signed block. An API key of this shape is still tried as an API key first.
    Biscuit,
    /// Anything else.
    ApiKey,
}

/// A bearer credential and the header that carried it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The header that carried it (removed before the request goes upstream).
    pub header: HeaderName,
    /// The token after `Bearer `.
    pub token: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A credential: never print it.
        f.debug_struct("Credential")
            .field("header", &self.header)
            .field("token", &format_args!("[REDACTED; {} bytes]", self.token.len()))
            .finish()
    }
}

impl Credential {
    /// The credential of docs/reference.md: `Proxy-Authorization` when present, else `Authorization`.
    ///
    /// `Ok(None)` when neither header is present. A present header that is repeated, not
    /// visible ASCII, not of the `Bearer` scheme, empty or too long is an error: the
    /// caller tried to authenticate and did it wrong.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Credential>, AuthError> {
        let name = if headers.contains_key(header::PROXY_AUTHORIZATION) {
            header::PROXY_AUTHORIZATION
        } else if headers.contains_key(header::AUTHORIZATION) {
            header::AUTHORIZATION
        } else {
            return Ok(None);
        };
        let mut values = headers.get_all(&name).iter();
        let value = values.next().ok_or(AuthError::Missing)?;
        if values.next().is_some() {
            return Err(AuthError::MalformedHeader);
        }
        if value.len() > MAX_CREDENTIAL_LEN + 7 {
            return Err(AuthError::TooLong);
        }
        let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::MalformedHeader);
        }
        let token = token.trim();
        if token.is_empty() || token.contains(' ') {
            return Err(AuthError::MalformedHeader);
        }
        Ok(Some(Credential { header: name, token: token.to_owned() }))
    }

    /// The verifier this credential goes to.
    pub fn kind(&self) -> CredentialKind {
        kind_of(&self.token)
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The kind of a bare token (see [`CredentialKind`]).
pub fn kind_of(token: &str) -> CredentialKind {
    let (mut dots, mut b64) = (0usize, true);
    for &b in token.as_bytes() {
        dots += usize::from(b == b'.');
        b64 &= is_b64url(b) || b == b'.';
    }
    if dots == 2 && b64 {
        return CredentialKind::Jwt;
    }
    if dots == 0 && looks_like_biscuit(token) {
        return CredentialKind::Biscuit;
    }
    CredentialKind::ApiKey
}

fn looks_like_biscuit(token: &str) -> bool {
    let unpadded = token.trim_end_matches('=');
    // A signed authority block holds at least a 32-byte key and a 64-byte signature.
    if unpadded.len() < 128 || !unpadded.bytes().all(is_b64url) {
        return false;
    }
    // The first base64url character carries the top six bits of the first byte: a
    // protobuf tag for field 1 varint (0x08 -> 'C') or field 2 length-delimited (0x12 -> 'E').
    matches!(unpadded.as_bytes()[0], b'C' | b'E')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(n.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn proxy_authorization_wins_over_authorization() {
        let h =
            headers(&[(header::AUTHORIZATION, "Bearer for-upstream"), (header::PROXY_AUTHORIZATION, "Bearer mine")]);
        let c = Credential::from_headers(&h).unwrap().unwrap();
        assert_eq!((c.header, c.token.as_str()), (header::PROXY_AUTHORIZATION, "mine"));
        let h = headers(&[(header::AUTHORIZATION, "bearer   mine ")]);
        let c = Credential::from_headers(&h).unwrap().unwrap();
        assert_eq!((c.header, c.token.as_str()), (header::AUTHORIZATION, "mine"));
    }

    #[test]
    fn absent_repeated_and_foreign_scheme_headers() {
        assert_eq!(Credential::from_headers(&HeaderMap::new()), Ok(None));
        let h = headers(&[(header::AUTHORIZATION, "Bearer a"), (header::AUTHORIZATION, "Bearer b")]);
        assert_eq!(Credential::from_headers(&h), Err(AuthError::MalformedHeader));
        let h = headers(&[(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")]);
        assert_eq!(Credential::from_headers(&h), Err(AuthError::MalformedHeader));
        let h = headers(&[(header::AUTHORIZATION, "Bearer ")]);
        assert_eq!(Credential::from_headers(&h), Err(AuthError::MalformedHeader));
        let long = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_LEN + 1));
        assert_eq!(Credential::from_headers(&headers(&[(header::AUTHORIZATION, &long)])), Err(AuthError::TooLong));
    }

    #[test]
    fn shapes() {
        assert_eq!(kind_of("eyJh.eyJz.c2ln"), CredentialKind::Jwt);
        assert_eq!(kind_of("a.b"), CredentialKind::ApiKey);
        assert_eq!(kind_of("a.b.c.d"), CredentialKind::ApiKey);
        assert_eq!(kind_of("a+b.c.d"), CredentialKind::ApiKey);
        assert_eq!(kind_of("ck_live_0123456789"), CredentialKind::ApiKey);
        assert_eq!(kind_of(&format!("E{}", "A".repeat(200))), CredentialKind::Biscuit);
        assert_eq!(kind_of(&format!("C{}==", "A".repeat(200))), CredentialKind::Biscuit);
        assert_eq!(kind_of(&format!("Z{}", "A".repeat(200))), CredentialKind::ApiKey);
        assert!(
            !format!("{:?}", Credential { header: header::AUTHORIZATION, token: "s3cr3t".into() }).contains("s3cr3t")
        );
    }
}
