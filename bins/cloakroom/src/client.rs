//! A small client for the admin API (SPEC §5): JSON in, JSON out, errors mapped to
//! [`CliError`].
//!
//! The token comes from `CLOAKROOM_TOKEN` (else the file `cloakroom login` wrote) and is sent as `Authorization: Bearer`; it is
//! never printed, not even in errors (reqwest errors are rendered without the request
//! headers, and the URL never carries it).

use reqwest::{header, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::error::CliError;

/// A connection to one admin listener.
pub(crate) struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl AdminClient {
    /// A client for the admin API at `base` (`http://127.0.0.1:8081`).
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed =
            reqwest::Url::parse(&base).map_err(|e| CliError::Input(format!("--admin {base:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CliError::Input(format!("--admin {base:?} must be an http:// or https:// URL")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("cloakroom-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| CliError::Protocol(format!("cannot build HTTP client: {e}")))?;
        // A token read from a file often ends in a newline, which no header may carry.
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(Self { base, token, http })
    }

    /// The admin API's base URL (`http://127.0.0.1:8081`).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` -> JSON.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.send(Method::GET, path, query, None::<&()>).await
    }

    /// `POST path` with a JSON body -> JSON.
    pub(crate) async fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value, CliError> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    /// `DELETE path` -> JSON (`null` for an empty answer).
    pub(crate) async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, &[], None::<&()>).await
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Value, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).header(header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            // Serialized here rather than with `.json()` so a serialization failure can
            // never echo the body (which may hold a secret value) into an error.
            let bytes =
                serde_json::to_vec(body).map_err(|_| CliError::Input("request body cannot be encoded".into()))?;
            req = req.header(header::CONTENT_TYPE, "application/json").body(bytes);
        }
        let res = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .map_err(|e| CliError::Protocol(format!("{path}: response is not JSON ({e})")));
        }
        Err(api_error(status, &bytes))
    }

    fn transport_error(&self, e: &reqwest::Error) -> CliError {
        // The error's source chain says why (refused, DNS, timeout) without headers.
        // reqwest's own line repeats the URL; its sources say what went wrong.
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let mut reason = if causes.is_empty() { e.to_string() } else { causes.join(": ") };
        if e.is_timeout() {
            reason = format!("timed out ({reason})");
        }
        CliError::Connect { url: self.base.clone(), reason }
    }
}

/// Reads `{"error": {"code", "message"}}`; anything else becomes a bare status error.
fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let code = err.and_then(|e| e.get("code")).and_then(Value::as_str).map(str::to_owned);
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| err.and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.chars().take(300).collect()
            }
        });
    CliError::Api { status: status.as_u16(), code, message }
}

/// Percent-encodes one path segment (names and ids are user input).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The items of a list answer: a bare array, or the first array-valued field of an
/// object (`{"secrets": […]}`, `{"items": […]}`, …).
pub(crate) fn items(v: Value, preferred: &[&str]) -> Result<Vec<Value>, CliError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(mut m) => {
            for key in preferred.iter().copied().chain(["items", "data", "results"]) {
                if let Some(Value::Array(a)) = m.remove(key) {
                    return Ok(a);
                }
            }
            match m.into_iter().find(|(_, v)| v.is_array()) {
                Some((_, Value::Array(a))) => Ok(a),
                _ => Err(CliError::Protocol("expected a list".into())),
            }
        }
        Value::Null => Ok(Vec::new()),
        _ => Err(CliError::Protocol("expected a list".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_read() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"error":{"code":"not_found","message":"no secret x"}}"#);
        match e {
            CliError::Api { status, code, message } => {
                assert_eq!(status, 404);
                assert_eq!(code.as_deref(), Some("not_found"));
                assert_eq!(message, "no secret x");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_error_body_keeps_status() {
        let e = api_error(StatusCode::BAD_GATEWAY, b"");
        assert!(matches!(e, CliError::Api { status: 502, code: None, .. }));
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("stripe_key"), "stripe_key");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn lists_come_bare_or_wrapped() {
        let a = items(serde_json::json!([1, 2]), &[]).unwrap();
        assert_eq!(a.len(), 2);
        let b = items(serde_json::json!({"secrets": [1], "count": 1}), &["secrets"]).unwrap();
        assert_eq!(b.len(), 1);
        assert!(items(serde_json::json!("x"), &[]).is_err());
    }
}
