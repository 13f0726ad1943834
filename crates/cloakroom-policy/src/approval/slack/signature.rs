//! Verifying that a request really comes from Slack, once.
//!
//! Slack signs every interaction: `X-Slack-Signature: v0=<hex>` is
//! HMAC-SHA256(signing secret, `v0:{X-Slack-Request-Timestamp}:{raw body}`). The
//! signature is checked over the raw bytes before anything in the body is decoded, with
//! a constant-time comparison (`hmac`'s `verify_slice`); the timestamp must be within
//! [`WINDOW`] of now either way; and a signature seen within the window is refused the
//! second time, so a captured request cannot be played again while its timestamp is
//! still accepted (the window bounds how long one must be remembered).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now (Slack's own recommendation).
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

/// Most signatures remembered at once. Past this (a flood of validly signed requests,
/// which only Slack or a holder of the secret can make) requests are refused rather
/// than forgotten, so that a replay can never slip through a full cache.
const MAX_REMEMBERED: usize = 100_000;

/// Why a request was refused. The messages name the check, never the secret or the
/// expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is absent or not text.
    #[error("the request has no {0} header")]
    Missing(&'static str),
    /// The timestamp is not a number of seconds.
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    /// The timestamp is more than [`WINDOW`] away from now.
    #[error("X-Slack-Request-Timestamp is more than 5 minutes from now")]
    Stale,
    /// Not `v0=<64 hex digits>`, or not the signature of this body.
    #[error("X-Slack-Signature does not match the request")]
    Mismatch,
    /// This exact signed request was already accepted.
    #[error("this request was already received (replay)")]
    Replayed,
    /// Too many requests within the window to remember them all.
    #[error("too many Slack requests to check for replays; try again")]
    Busy,
}

/// Checks Slack's request signatures with one signing secret and remembers the ones it
/// accepted within [`WINDOW`].
pub struct SignatureVerifier {
    secret: Vec<u8>,
    seen: Mutex<HashMap<[u8; 32], u64>>,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier").finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    /// A verifier for the app whose signing secret is `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { secret: secret.into(), seen: Mutex::new(HashMap::new()) }
    }

    /// Accepts `body` signed as `signature` at `timestamp` (the two headers' values, if
    /// present) when the signature is this body's, the timestamp within the window of
    /// `now`, and the signature not accepted before.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let timestamp = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
        let signature = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
        let ts: u64 = timestamp.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now.abs_diff(ts) > WINDOW.as_secs() {
            return Err(SignatureError::Stale);
        }
        let given = signature
            .strip_prefix("v0=")
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() == 32)
            .ok_or(SignatureError::Mismatch)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        // The timestamp exactly as sent: it is what Slack signed.
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&given).map_err(|_| SignatureError::Mismatch)?;
        self.remember(given.try_into().expect("32 bytes"), ts, now)
    }

    /// Records an accepted signature until its timestamp leaves the window; refuses
    /// one already recorded.
    fn remember(&self, signature: [u8; 32], ts: u64, now: u64) -> Result<(), SignatureError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&signature) {
            return Err(SignatureError::Replayed);
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, t| now.abs_diff(*t) <= WINDOW.as_secs());
            if seen.len() >= MAX_REMEMBERED {
                return Err(SignatureError::Busy);
            }
        }
        seen.insert(signature, ts);
        Ok(())
    }
}

/// The `X-Slack-Signature` value for `body` at `timestamp` (for tests and stand-ins).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // The example from Slack's "Verifying requests from Slack" page.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let v = SignatureVerifier::new(SECRET);
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(v.verify(Some("1531420618"), Some(sig), body.as_bytes(), at(1531420618 + 10)), Ok(()));
        assert_eq!(sign(SECRET, "1531420618", body.as_bytes()), sig);
    }

    #[test]
    fn a_signature_for_another_body_timestamp_or_secret_is_refused() {
        let v = SignatureVerifier::new(SECRET);
        let sig = sign(SECRET, "1000", b"payload=a");
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"payload=b", at(1000)), Err(SignatureError::Mismatch));
        assert_eq!(v.verify(Some("1001"), Some(&sig), b"payload=a", at(1000)), Err(SignatureError::Mismatch));
        let other = sign(b"another secret", "1000", b"payload=a");
        assert_eq!(v.verify(Some("1000"), Some(&other), b"payload=a", at(1000)), Err(SignatureError::Mismatch));
        for bad in ["", "v0=", "v1=00", &sig[3..], &format!("v0={}", "zz".repeat(32)), &sig[..sig.len() - 2]] {
            assert_eq!(
                v.verify(Some("1000"), Some(bad), b"payload=a", at(1000)),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"payload=a", at(1000)), Ok(()));
    }

    #[test]
    fn missing_headers_and_stale_or_future_timestamps_are_refused() {
        let v = SignatureVerifier::new(SECRET);
        let sig = sign(SECRET, "1000", b"x");
        assert_eq!(
            v.verify(None, Some(&sig), b"x", at(1000)),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(v.verify(Some("1000"), None, b"x", at(1000)), Err(SignatureError::Missing("X-Slack-Signature")));
        assert_eq!(v.verify(Some("ten"), Some(&sig), b"x", at(1000)), Err(SignatureError::BadTimestamp));
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"x", at(1000 + 301)), Err(SignatureError::Stale));
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"x", at(1000 - 301)), Err(SignatureError::Stale));
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"x", at(1000 + 300)), Ok(()));
    }

    #[test]
    fn a_request_is_accepted_once() {
        let v = SignatureVerifier::new(SECRET);
        let sig = sign(SECRET, "1000", b"x");
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"x", at(1000)), Ok(()));
        assert_eq!(v.verify(Some("1000"), Some(&sig), b"x", at(1001)), Err(SignatureError::Replayed));
        // The same signature in upper-case hex is the same request.
        let upper = format!("v0={}", sig[3..].to_uppercase());
        assert_eq!(v.verify(Some("1000"), Some(&upper), b"x", at(1001)), Err(SignatureError::Replayed));
        let next = sign(SECRET, "1001", b"x");
        assert_eq!(v.verify(Some("1001"), Some(&next), b"x", at(1001)), Ok(()));
    }
}
