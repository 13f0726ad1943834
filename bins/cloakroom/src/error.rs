//! What can go wrong in the CLI, and the exit status each failure maps to.
//!
//! The exit statuses are part of the CLI's interface (scripts branch on them), so they
//! are listed in docs/cli.md; keep the two in step.

use std::process::ExitCode;

use cloakroom_api::ErrorCode;

/// A failure of one CLI invocation. Messages never contain a secret value or the
/// admin token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The admin API answered with an error body (or a bare error status).
    #[error("{}", api_message(.status, .code, .message))]
    Api {
        /// HTTP status.
        status: u16,
        /// The wire code of docs/reference.md (`forbidden`, `not_found`, …), when the body had one.
        code: Option<ErrorCode>,
        /// The server's message.
        message: String,
    },
    /// The admin API could not be reached at all.
    #[error("cannot reach the admin API at {url}: {reason}")]
    Connect {
        /// The admin URL tried.
        url: String,
        /// Why (connection refused, DNS, TLS, timeout).
        reason: String,
    },
    /// The admin API answered something the CLI cannot read.
    #[error("unexpected answer from the admin API: {0}")]
    Protocol(String),
    /// `audit verify` found a broken chain (the report is already printed).
    #[error("audit chain verification failed: {0}")]
    ChainBroken(String),
    /// Bad input to a verb (a file that does not parse, a malformed key, …).
    #[error("{0}")]
    Input(String),
    /// A local I/O failure (reading stdin, writing the export file).
    #[error("{context}: {source}")]
    Io {
        /// What the CLI was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn api_message(status: &u16, code: &Option<ErrorCode>, message: &str) -> String {
    let hint = match code {
        Some(ErrorCode::Unauthenticated) => " (set CLOAKROOM_TOKEN to an admin credential)",
        Some(ErrorCode::Forbidden) if *status == 403 => "",
        _ if *status == 401 => " (set CLOAKROOM_TOKEN to an admin credential)",
        _ => "",
    };
    match code {
        Some(code) => format!("admin API refused the request: {code} (HTTP {status}): {message}{hint}"),
        None => format!("admin API refused the request: HTTP {status}: {message}{hint}"),
    }
}

/// Exit statuses, documented in docs/cli.md.
pub(crate) mod exit {
    /// Something else failed: bad input, local I/O.
    pub(crate) const FAILURE: u8 = 1;
    /// `audit verify`: a chain is broken.
    pub(crate) const CHAIN_BROKEN: u8 = 3;
    /// 401 `unauthenticated`.
    pub(crate) const UNAUTHENTICATED: u8 = 4;
    /// 403 `forbidden`, `secret_not_bound`, `approval_invalid`.
    pub(crate) const FORBIDDEN: u8 = 5;
    /// 404 `not_found`.
    pub(crate) const NOT_FOUND: u8 = 6;
    /// 409 `conflict`.
    pub(crate) const CONFLICT: u8 = 7;
    /// 400 `bad_request`, 413 `payload_too_large`.
    pub(crate) const BAD_REQUEST: u8 = 8;
    /// 502/503/504: the gateway or one of its stores is unavailable.
    pub(crate) const UNAVAILABLE: u8 = 9;
    /// The admin API could not be reached.
    pub(crate) const CONNECT: u8 = 10;
    /// 500 or an answer the CLI cannot read.
    pub(crate) const PROTOCOL: u8 = 11;
}

impl CliError {
    /// The process exit status for this failure.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    /// The exit status as a number (see [`exit`]).
    pub(crate) fn exit_status(&self) -> u8 {
        match self {
            CliError::Api { status, code, .. } => match (code, status) {
                (Some(ErrorCode::Unauthenticated), _) | (None, 401) => exit::UNAUTHENTICATED,
                (Some(ErrorCode::Forbidden | ErrorCode::SecretNotBound | ErrorCode::ApprovalInvalid), _)
                | (None, 403) => exit::FORBIDDEN,
                (Some(ErrorCode::NotFound), _) | (None, 404) => exit::NOT_FOUND,
                (Some(ErrorCode::Conflict), _) | (None, 409) => exit::CONFLICT,
                (Some(ErrorCode::BadRequest | ErrorCode::PayloadTooLarge), _) | (None, 400 | 413 | 422) => {
                    exit::BAD_REQUEST
                }
                (
                    Some(
                        ErrorCode::UpstreamUnavailable
                        | ErrorCode::UpstreamTimeout
                        | ErrorCode::VaultUnavailable
                        | ErrorCode::AuditUnavailable
                        | ErrorCode::Overloaded,
                    ),
                    _,
                )
                | (None, 502..=504) => exit::UNAVAILABLE,
                (Some(ErrorCode::Internal), _) => exit::PROTOCOL,
                // Any other code (`budget_exhausted`, or one this version does not
                // know): fall back on the status class.
                (Some(_), 401) => exit::UNAUTHENTICATED,
                (Some(_), 403) => exit::FORBIDDEN,
                (Some(_), 404) => exit::NOT_FOUND,
                (Some(_), 409) => exit::CONFLICT,
                (Some(_), 400..=499) => exit::BAD_REQUEST,
                (Some(_), 502..=504) => exit::UNAVAILABLE,
                _ => exit::PROTOCOL,
            },
            CliError::Connect { .. } => exit::CONNECT,
            CliError::Protocol(_) => exit::PROTOCOL,
            CliError::ChainBroken(_) => exit::CHAIN_BROKEN,
            CliError::Input(_) | CliError::Io { .. } => exit::FAILURE,
        }
    }

    /// An I/O error with what the CLI was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io { context: context.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>) -> CliError {
        CliError::Api { status, code: code.map(ErrorCode::from), message: "m".into() }
    }

    #[test]
    fn every_wire_code_has_its_own_exit_status() {
        assert_eq!(api(401, Some("unauthenticated")).exit_status(), exit::UNAUTHENTICATED);
        assert_eq!(api(403, Some("forbidden")).exit_status(), exit::FORBIDDEN);
        assert_eq!(api(403, Some("secret_not_bound")).exit_status(), exit::FORBIDDEN);
        assert_eq!(api(403, Some("approval_invalid")).exit_status(), exit::FORBIDDEN);
        assert_eq!(api(404, Some("not_found")).exit_status(), exit::NOT_FOUND);
        assert_eq!(api(409, Some("conflict")).exit_status(), exit::CONFLICT);
        assert_eq!(api(400, Some("bad_request")).exit_status(), exit::BAD_REQUEST);
        assert_eq!(api(413, Some("payload_too_large")).exit_status(), exit::BAD_REQUEST);
        assert_eq!(api(503, Some("vault_unavailable")).exit_status(), exit::UNAVAILABLE);
        assert_eq!(api(503, Some("audit_unavailable")).exit_status(), exit::UNAVAILABLE);
        assert_eq!(api(503, Some("overloaded")).exit_status(), exit::UNAVAILABLE);
        assert_eq!(api(500, Some("internal")).exit_status(), exit::PROTOCOL);
        assert_eq!(api(429, Some("budget_exhausted")).exit_status(), exit::BAD_REQUEST);
    }

    #[test]
    fn bare_statuses_map_by_class() {
        assert_eq!(api(401, None).exit_status(), exit::UNAUTHENTICATED);
        assert_eq!(api(404, None).exit_status(), exit::NOT_FOUND);
        assert_eq!(api(418, Some("teapot")).exit_status(), exit::BAD_REQUEST);
        assert_eq!(api(502, None).exit_status(), exit::UNAVAILABLE);
        assert_eq!(api(500, None).exit_status(), exit::PROTOCOL);
    }

    #[test]
    fn docs_list_every_exit_status() {
        let doc = include_str!("../../../docs/cli.md");
        let documented = |n: u8, words: &str| {
            doc.lines().any(|l| l.starts_with(&format!("| {n} |")) && l.to_lowercase().contains(words))
        };
        for (n, words) in [
            (exit::FAILURE, "bad input"),
            (2, "usage"),
            (exit::CHAIN_BROKEN, "chain is broken"),
            (exit::UNAUTHENTICATED, "unauthenticated"),
            (exit::FORBIDDEN, "forbidden"),
            (exit::NOT_FOUND, "not_found"),
            (exit::CONFLICT, "conflict"),
            (exit::BAD_REQUEST, "bad_request"),
            (exit::UNAVAILABLE, "unavailable"),
            (exit::CONNECT, "could not be reached"),
            (exit::PROTOCOL, "internal"),
        ] {
            assert!(documented(n, words), "docs/cli.md does not document exit status {n} ({words})");
        }
    }

    #[test]
    fn unauthenticated_message_says_how_to_fix_it() {
        let msg = api(401, Some("unauthenticated")).to_string();
        assert!(msg.contains("CLOAKROOM_TOKEN"), "{msg}");
        assert!(msg.contains("unauthenticated"), "{msg}");
    }
}
