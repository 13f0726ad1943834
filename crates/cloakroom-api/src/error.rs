//! The refusal body of every endpoint: `{"error": {"code", "message", "call_id"}}`.

use serde::{Deserialize, Serialize};

wire_enum! {
    /// An error code of docs/reference.md ("Errors"). The code says which side failed;
    /// [`status`](Self::status) is the HTTP status that goes with it.
    ///
    /// ```
    /// use cloakroom_api::ErrorCode;
    ///
    /// assert_eq!(ErrorCode::from("secret_not_bound"), ErrorCode::SecretNotBound);
    /// assert_eq!(ErrorCode::from("teapot"), ErrorCode::Other("teapot".into()));
    /// assert_eq!(ErrorCode::AuditUnavailable.status(), Some(503));
    /// ```
    pub enum ErrorCode {
        /// 401: no credential, or one that does not verify.
        Unauthenticated = "unauthenticated",
        /// 403: policy denied, or the credential's own checks refuse this operation.
        Forbidden = "forbidden",
        /// 403: a placeholder used outside its binding.
        SecretNotBound = "secret_not_bound",
        /// 403: the approval is unknown, expired, used, or for another call.
        ApprovalInvalid = "approval_invalid",
        /// 404: no such function, endpoint or record.
        NotFound = "not_found",
        /// 409: the change conflicts with the configuration or a concurrent change.
        Conflict = "conflict",
        /// 413: a body, header block or decoded size over its limit.
        PayloadTooLarge = "payload_too_large",
        /// 400: a request the gateway cannot read unambiguously.
        BadRequest = "bad_request",
        /// 429: a secret's use budget is spent (`Retry-After` says when it refills).
        BudgetExhausted = "budget_exhausted",
        /// 502: the function's upstream could not be reached or failed mid-answer.
        UpstreamUnavailable = "upstream_unavailable",
        /// 504: the upstream did not answer in time.
        UpstreamTimeout = "upstream_timeout",
        /// 503: the vault could not be read.
        VaultUnavailable = "vault_unavailable",
        /// 503: the audit sink is not writing.
        AuditUnavailable = "audit_unavailable",
        /// 503: `server.max_concurrent_calls` calls are already in flight.
        Overloaded = "overloaded",
        /// 500: a bug in the gateway, never a condition a caller can cause.
        Internal = "internal",
    }
}

impl ErrorCode {
    /// The HTTP status that goes with a known code; `None` for [`ErrorCode::Other`].
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden | ErrorCode::SecretNotBound | ErrorCode::ApprovalInvalid => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::BadRequest => 400,
            ErrorCode::BudgetExhausted => 429,
            ErrorCode::UpstreamUnavailable => 502,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::VaultUnavailable | ErrorCode::AuditUnavailable | ErrorCode::Overloaded => 503,
            ErrorCode::Internal => 500,
            ErrorCode::Other(_) => return None,
        })
    }
}

/// A refusal: `{"error": {"code", "message", "call_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// What was refused and why.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// A refusal with `code` and `message`, not tied to a call.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code, message: message.into(), call_id: None } }
    }

    /// The same refusal tied to the call `call_id`.
    pub fn with_call_id(mut self, call_id: impl Into<String>) -> Self {
        self.error.call_id = Some(call_id.into());
        self
    }
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorDetail {
    /// Which kind of refusal.
    pub code: ErrorCode,
    /// A human-readable explanation; never a secret or a credential.
    pub message: String,
    /// The call refused, for refusals of a call through the gateway (the admin API's
    /// own refusals carry none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_and_write_as_their_wire_names() {
        for code in ErrorCode::KNOWN {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(&serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!(code.status().is_some(), "{code}");
        }
    }

    #[test]
    fn an_unknown_code_is_kept() {
        let code: ErrorCode = serde_json::from_str("\"quota_spent\"").unwrap();
        assert_eq!(code, ErrorCode::Other("quota_spent".into()));
        assert!(!code.is_known());
        assert_eq!(code.status(), None);
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"quota_spent\"");
    }

    #[test]
    fn the_body_has_the_wire_shape() {
        let body = ErrorBody::new(ErrorCode::NotFound, "no such admin endpoint");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"no such admin endpoint"}}"#
        );
        let body = body.with_call_id("0193a000-0000-7000-8000-000000000001");
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"]["call_id"], "0193a000-0000-7000-8000-000000000001");
    }
}
