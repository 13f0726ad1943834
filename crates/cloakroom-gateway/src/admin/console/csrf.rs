//! Cross-site request forgery: every console `POST` must come from a console page.
//!
//! Two independent checks, both required. [`check_origin`]: the browser's own word on
//! where the request came from (`Sec-Fetch-Site`, `Origin`) must be this listener.
//! [`check`]: the form carries the session's CSRF token, an HMAC of the session token
//! under a key of this process, which a page of another site cannot read (the cookie is
//! `HttpOnly`, the page is same-origin only) and cannot compute.
//!
//! ```text
//! token(session) = hex(HMAC-SHA256(process key, "cloakroom console csrf\0" || session))
//! ```
//!
//! The key is drawn once per process: a restart ends every open form (the person
//! reloads the page), which is the safe side.

use std::sync::OnceLock;

use cloakroom_core::{Error, ErrorCode};
use hmac::{Hmac, Mac};
use http::{header, HeaderMap};
use sha2::Sha256;
use subtle::ConstantTimeEq;

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        use rand::RngCore;
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k
    })
}

/// The CSRF token of the session whose token is `session`.
pub(super) fn token(session: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key()).expect("HMAC takes a key of any length");
    mac.update(b"cloakroom console csrf\0");
    mac.update(session.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Refuses a `POST` whose `csrf` field is missing or is not `session`'s token
/// (compared in constant time).
pub(super) fn check(session: &str, presented: Option<&str>) -> Result<(), Error> {
    let expected = token(session);
    match presented {
        Some(p) if bool::from(p.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => {
            tracing::info!("console request refused: missing or wrong CSRF token");
            Err(Error::new(ErrorCode::Forbidden, "the form's CSRF token is missing or stale: reload the page"))
        }
    }
}

/// Refuses a request a browser says came from another site: `Sec-Fetch-Site` other than
/// `same-origin`, or an `Origin` that is not this listener (`Host`). `Origin: null` is
/// what a browser sends for a same-origin form under `Referrer-Policy: no-referrer`, so
/// it passes only with `Sec-Fetch-Site: same-origin`. A request with neither header
/// (not a browser) still needs the CSRF token.
pub(super) fn check_origin(headers: &HeaderMap) -> Result<(), Error> {
    let refuse = |why: &str| {
        tracing::info!(why, "console request refused as cross-site");
        Err(Error::new(ErrorCode::Forbidden, "cross-site requests to the console are refused"))
    };
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin") {
        return refuse("Sec-Fetch-Site is not same-origin");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if origin == "null" {
            if site.is_none() {
                return refuse("Origin is null and Sec-Fetch-Site is missing");
            }
        } else {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            let same = !host.is_empty()
                && (origin.strip_prefix("http://") == Some(host) || origin.strip_prefix("https://") == Some(host));
            if !same {
                return refuse("Origin is not this listener");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_token_is_accepted_only_for_its_own_session() {
        let t = token("session-a");
        assert!(check("session-a", Some(&t)).is_ok());
        assert!(check("session-b", Some(&t)).is_err());
        assert!(check("session-a", None).is_err());
        assert!(check("session-a", Some("")).is_err());
        assert!(check("session-a", Some(&t[..t.len() - 1])).is_err());
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8081"));
        assert!(check_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8081"));
        assert!(check_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_origin(&h).is_ok(), "a same-origin form under no-referrer");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(check_origin(&h).is_err(), "Sec-Fetch-Site does not excuse a foreign Origin");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8081"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(check_origin(&h).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_origin(&h).is_ok());
    }
}
