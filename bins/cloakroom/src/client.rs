//! A small client for the admin API (docs/reference.md): wire types of [`cloakroom_api`] in and
//! out, errors mapped to [`CliError`].
//!
//! Every answer is read twice over: as the JSON the server sent (what `--output json`
//! prints, unchanged, so a field added by a newer gateway still reaches a script) and as
//! its wire type (what the human output is made from). An answer that is not JSON, or
//! not of the endpoint's type, is a [`CliError::Protocol`] naming the endpoint.
//!
//! The token comes from `CLOAKROOM_TOKEN` (else the file `cloakroom login` wrote) and is sent as `Authorization: Bearer`; it is
//! never printed, not even in errors (reqwest errors are rendered without the request
//! headers, and the URL never carries it).

use cloakroom_api::{ErrorBody, ErrorCode};
use reqwest::{header, Method, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
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

/// An answer of the admin API: its wire type, and the JSON it was read from. Not
/// `Debug`: the JSON of a sign-in answer holds a session token.
pub(crate) struct Answer<T> {
    /// The answer as its wire type.
    pub(crate) body: T,
    /// The answer as the server sent it.
    pub(crate) json: Value,
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

    /// `GET path?query` -> a `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer<T>, CliError> {
        self.send(Method::GET, path, query, None::<&()>).await
    }

    /// `POST path` with a JSON body -> a `T`.
    pub(crate) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer<T>, CliError> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    /// `DELETE path` -> a `T`.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, CliError> {
        self.send(Method::DELETE, path, &[], None::<&()>).await
    }

    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Answer<T>, CliError> {
        let url = format!("{}{}", self.base, path);
        let endpoint = format!("{method} {path}");
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
            return read_answer(&endpoint, &bytes);
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

/// A success answer as JSON and as `T`; anything else is a protocol error naming the
/// endpoint.
fn read_answer<T: DeserializeOwned>(endpoint: &str, bytes: &[u8]) -> Result<Answer<T>, CliError> {
    let json: Value = serde_json::from_slice(bytes).map_err(|e| {
        let what = if bytes.iter().all(u8::is_ascii_whitespace) { "empty" } else { "not JSON" };
        CliError::Protocol(format!("{endpoint}: the answer is {what} ({})", syntax_kind(&e)))
    })?;
    let body = T::deserialize(&json).map_err(|e| {
        CliError::Protocol(format!(
            "{endpoint}: the answer is not what this version of the admin API sends: {}",
            without_quoted(&e.to_string())
        ))
    })?;
    Ok(Answer { body, json })
}

/// A serde message with its quoted input values cut out: an answer can hold a session
/// token or a recorded body, which an error message must not repeat. Field names (in
/// backticks) stay.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

/// The kind of a JSON syntax error in a few words.
fn syntax_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "malformed",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "cut short",
    }
}

/// Reads `{"error": {"code", "message"}}`; anything else (a proxy's page, a bare
/// status) becomes an error with the status and a short excerpt.
fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    if let Ok(ErrorBody { error, .. }) = serde_json::from_slice::<ErrorBody>(body) {
        return CliError::Api { status: status.as_u16(), code: Some(error.code), message: error.message };
    }
    // `{"error": "text"}`, as some proxies answer.
    #[derive(Deserialize)]
    struct Bare {
        error: String,
    }
    let message = match serde_json::from_slice::<Bare>(body) {
        Ok(b) => b.error,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text.chars().take(300).collect()
            }
        }
    };
    CliError::Api { status: status.as_u16(), code: None::<ErrorCode>, message }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_read() {
        let e = api_error(StatusCode::NOT_FOUND, br#"{"error":{"code":"not_found","message":"no secret x"}}"#);
        match e {
            CliError::Api { status, code, message } => {
                assert_eq!(status, 404);
                assert_eq!(code, Some(ErrorCode::NotFound));
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
    fn an_answer_of_the_wrong_shape_names_the_endpoint_and_hides_values() {
        let e = read_answer::<cloakroom_api::SecretStored>("POST /v1/secrets", br#"{"name":"k"}"#).err().unwrap();
        assert!(matches!(e, CliError::Protocol(_)));
        let msg = e.to_string();
        assert!(msg.contains("POST /v1/secrets") && msg.contains("placeholder"), "{msg}");
        let e = read_answer::<cloakroom_api::Session>(
            "POST /v1/oidc/session",
            br#"{"token":"tok-secret-123","subject":5,"expires_at":"x"}"#,
        )
        .err()
        .unwrap();
        assert!(!e.to_string().contains("tok-secret-123"), "{e}");
        let e = read_answer::<cloakroom_api::SecretList>("GET /v1/secrets", b"<html>").err().unwrap();
        assert!(e.to_string().contains("not JSON"), "{e}");
        let e = read_answer::<cloakroom_api::SecretList>("GET /v1/secrets", b"").err().unwrap();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn an_answer_keeps_the_json_the_server_sent() {
        let a = read_answer::<cloakroom_api::SecretDeleted>(
            "DELETE /v1/secrets/k",
            br#"{"name":"k","deleted":true,"at":1}"#,
        )
        .unwrap();
        assert_eq!(a.body.name, "k");
        assert_eq!(a.json["at"], 1);
    }

    #[test]
    fn quoted_values_are_cut_from_messages() {
        assert_eq!(
            without_quoted(r#"invalid type: string "tok", expected u64"#),
            r#"invalid type: string "…", expected u64"#
        );
        assert_eq!(without_quoted("missing field `placeholder`"), "missing field `placeholder`");
    }
}
