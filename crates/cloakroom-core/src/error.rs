//! The error codes of the wire interface and their HTTP statuses.
//!
//! Every refusal the gateway gives has one of these codes, rendered as
//! `{"error": {"code": "…", "message": "…", "call_id": "…"}}` for HTTP functions
//! (MCP functions get a JSON-RPC error carrying the same object as `data`).
//! Messages never contain a secret value or a credential.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};

use crate::CallId;

/// An error code of docs/reference.md. The code says which side failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 401: no credential, or one that did not verify.
    Unauthenticated,
    /// 403: policy denied the call, or the caller lacks a needed role.
    Forbidden,
    /// 403: a placeholder was sent where its secret is not bound.
    SecretNotBound,
    /// 403: the `Cloakroom-Approval` given is unknown, expired, used, or for another call.
    ApprovalInvalid,
    /// 404: no such route, function or object.
    NotFound,
    /// 413: the request body is larger than `server.max_body_bytes`.
    PayloadTooLarge,
    /// 400: the request is malformed.
    BadRequest,
    /// 502: the upstream could not be reached or broke the connection.
    UpstreamUnavailable,
    /// 504: the upstream did not answer within `server.upstream_timeout`.
    UpstreamTimeout,
    /// 503: the secret store cannot be reached; the call is refused (fail closed).
    VaultUnavailable,
    /// 503: the audit sink cannot write; the call is refused (fail closed).
    AuditUnavailable,
    /// 409: the request conflicts with existing state (e.g. a config-declared binding).
    Conflict,
    /// 429: a secret's use budget is spent (`Retry-After` says when it refills).
    BudgetExhausted,
    /// 500: a bug in the gateway. Never used for a condition a caller can cause.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::SecretNotBound,
        ErrorCode::ApprovalInvalid,
        ErrorCode::NotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::BadRequest,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::VaultUnavailable,
        ErrorCode::AuditUnavailable,
        ErrorCode::Conflict,
        ErrorCode::BudgetExhausted,
        ErrorCode::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SecretNotBound => "secret_not_bound",
            ErrorCode::ApprovalInvalid => "approval_invalid",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::VaultUnavailable => "vault_unavailable",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(&self) -> StatusCode {
        match self {
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::SecretNotBound | ErrorCode::ApprovalInvalid => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::VaultUnavailable | ErrorCode::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::BudgetExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal with its code and a message safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// A human-readable explanation; never contains a secret or a credential.
    pub message: String,
    /// Seconds until retrying may succeed, sent as `Retry-After` (`budget_exhausted`
    /// of a windowed budget; see docs/policy.md, "Use budgets").
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Payload<'a>,
}

#[derive(Serialize)]
struct Payload<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<String>,
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// The same error, telling the caller to retry after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The error as the JSON object of docs/reference.md (the inner `{"code","message","call_id"}`).
    pub fn to_json_value(&self, call_id: Option<&CallId>) -> serde_json::Value {
        serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
            "call_id": call_id.map(|c| c.to_string()),
        })
    }

    /// The JSON body `{"error": {...}}`.
    pub fn to_json_body(&self, call_id: Option<&CallId>) -> Bytes {
        let env = Envelope {
            error: Payload {
                code: self.code.as_str(),
                message: &self.message,
                call_id: call_id.map(|c| c.to_string()),
            },
        };
        Bytes::from(serde_json::to_vec(&env).expect("error envelope serializes"))
    }

    /// An HTTP response carrying this error as JSON with the code's status.
    ///
    /// The error itself is also put into the response extensions, so that one place in
    /// the gateway (the rescue step) can re-render it for the protocol of the call —
    /// a JSON-RPC error for MCP functions — and the audit layer can record it.
    pub fn to_response(&self, call_id: Option<&CallId>) -> http::Response<Full<Bytes>> {
        self.render(call_id)
    }

    /// The one refusal path of every layer: notes the error for the call's audit record
    /// (when the request carries an [`crate::AuditNote`]), then renders it as
    /// [`Error::to_response`] does.
    pub fn refuse(&self, call_id: Option<&CallId>, note: Option<&crate::AuditNote>) -> http::Response<Full<Bytes>> {
        if let Some(note) = note {
            note.set_error(self);
        }
        self.render(call_id)
    }

    fn render(&self, call_id: Option<&CallId>) -> http::Response<Full<Bytes>> {
        let mut res = http::Response::new(Full::new(self.to_json_body(call_id)));
        *res.status_mut() = self.code.status();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(seconds) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res.extensions_mut().insert(self.clone());
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_statuses() {
        let expected = [
            ("unauthenticated", 401),
            ("forbidden", 403),
            ("secret_not_bound", 403),
            ("approval_invalid", 403),
            ("not_found", 404),
            ("payload_too_large", 413),
            ("bad_request", 400),
            ("upstream_unavailable", 502),
            ("upstream_timeout", 504),
            ("vault_unavailable", 503),
            ("audit_unavailable", 503),
            ("conflict", 409),
            ("budget_exhausted", 429),
            ("internal", 500),
        ];
        for (code, (name, status)) in ErrorCode::ALL.iter().zip(expected) {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.status().as_u16(), status, "{name}");
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
        }
    }

    #[test]
    fn response_body_has_the_wire_shape() {
        let id = CallId::new();
        let err = Error::new(ErrorCode::SecretNotBound, "placeholder not bound to function echo");
        let res = err.to_response(Some(&id));
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(res.extensions().get::<Error>(), Some(&err));
        let v: serde_json::Value = serde_json::from_slice(&err.to_json_body(Some(&id))).unwrap();
        assert_eq!(v["error"]["code"], "secret_not_bound");
        assert_eq!(v["error"]["call_id"], id.to_string());
        let v: serde_json::Value = serde_json::from_slice(&err.to_json_body(None)).unwrap();
        assert!(v["error"].get("call_id").is_none());
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn a_retry_after_is_sent_as_the_header() {
        let err = Error::new(ErrorCode::BudgetExhausted, "spent").retry_after(42);
        let res = err.to_response(None);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "42");
    }
}
