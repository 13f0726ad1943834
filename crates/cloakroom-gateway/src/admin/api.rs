//! The JSON admin API under `/v1/` (docs/reference.md): secrets, approvals, audit, reload, redeem.
//!
//! Every body read or written here is a wire type of [`cloakroom_api`], the crate the
//! CLI reads them with; [`super::wire`] converts the stores' types to them.

use std::net::SocketAddr;

use super::{
    caller::Caller,
    respond::{body_json, json_response, not_found, param, read_body},
    wire,
};
use crate::admin::AdminBody;
use crate::{
    forward::{boxed, GatewayBody},
    Gateway,
};
use bytes::Bytes;
use cloakroom_api as wire_api;
use cloakroom_audit::{RecordQuery, Since};
use cloakroom_core::{CallId, Error, ErrorCode};
use cloakroom_identity::Operation;
use cloakroom_policy::ApprovalState;
use cloakroom_vault::REDEEM_TOKEN_HEADER;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

/// Default and largest `limit` of `GET /v1/audit`.
const DEFAULT_AUDIT_LIMIT: usize = 100;
const MAX_AUDIT_LIMIT: usize = 10_000;

/// An endpoint under `/v1/`; `segments` is the path after `v1`.
pub(super) async fn handle(
    gateway: &Gateway,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    if let (&Method::POST, ["redeem"]) = (method, segments) {
        // Authenticated by the call's redemption credential, not by a caller identity.
        let token = req.headers().get(REDEEM_TOKEN_HEADER).cloned();
        let body = read_body(gateway, req).await?;
        return redeem(gateway, token.as_ref(), &body).await;
    }
    let caller = Caller::authenticate(gateway, req.headers(), peer).await?;
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = read_body(gateway, req).await?;
    match (method, segments) {
        (&Method::GET, ["approvals"]) => {
            let identity = caller.authorize(Operation::new(Operation::APPROVALS_LIST))?;
            let is_admin = caller.is_admin();
            let state = match param(&query, "state") {
                None => None,
                Some(s) => Some(
                    ApprovalState::parse(&s)
                        .ok_or_else(|| Error::new(ErrorCode::BadRequest, format!("unknown approval state {s:?}")))?,
                ),
            };
            let list = gateway.approvals().list(state).await.map_err(|e| e.to_error())?;
            let visible = list
                .into_iter()
                .filter(|a| is_admin || identity.in_any_group(&a.approvers))
                .map(wire::approval)
                .collect();
            Ok(json_response(StatusCode::OK, &wire_api::ApprovalList::new(visible)))
        }
        (&Method::GET, ["approvals", id]) => {
            let (a, identity) = caller.authorize_approval(Operation::APPROVALS_READ, id).await?;
            let is_admin = caller.is_admin();
            if !(is_admin || identity.in_any_group(&a.approvers) || a.requester.subject == identity.subject) {
                return Err(Error::new(ErrorCode::Forbidden, "not an approver of this approval"));
            }
            Ok(json_response(StatusCode::OK, &wire::approval(a)))
        }
        (&Method::POST, ["approvals", id, verb @ ("approve" | "deny")]) => {
            let approvals = gateway.approvals();
            let operation = if *verb == "approve" { Operation::APPROVALS_APPROVE } else { Operation::APPROVALS_DENY };
            let (_, identity) = caller.authorize_approval(operation, id).await?;
            let reason = decision(&body)?.reason;
            let result = if *verb == "approve" {
                approvals.approve(id, identity, reason).await
            } else {
                approvals.deny(id, identity, reason).await
            };
            let a = result.map_err(|e| e.to_error())?;
            Ok(json_response(StatusCode::OK, &wire::approval(a)))
        }
        (&Method::GET, ["audit"]) => {
            caller.authorize_admin(Operation::new(Operation::AUDIT_READ))?;
            audit_list(gateway, &query).await
        }
        (&Method::GET, ["audit", "verify"]) => {
            caller.authorize_admin(Operation::new(Operation::AUDIT_VERIFY))?;
            let report = gateway.audit().verify().await.map_err(|e| e.to_core())?;
            Ok(json_response(StatusCode::OK, &wire::verify_report(report)))
        }
        (&Method::GET, ["audit", id]) => {
            caller.authorize_admin(Operation::new(Operation::AUDIT_READ).on(*id))?;
            let id: CallId =
                id.parse().map_err(|_| Error::new(ErrorCode::BadRequest, "an audit id is a call id (UUID)"))?;
            match gateway.audit().record(&id).await.map_err(|e| e.to_core())? {
                // An `AuditRecord` on the wire: the audit crate's record, as it serializes it.
                Some(r) => Ok(json_response(StatusCode::OK, &r)),
                None => Err(Error::new(ErrorCode::NotFound, "no audit record with this id")),
            }
        }
        (&Method::POST, ["reload"]) => {
            caller.authorize_admin(Operation::new(Operation::RELOAD))?;
            gateway.reload().await.map_err(|e| Error::new(ErrorCode::BadRequest, format!("reload refused: {e}")))?;
            Ok(json_response(StatusCode::OK, &wire_api::Reloaded::new()))
        }
        (&Method::POST, ["secrets"]) => put_secret(gateway, &caller, &body).await,
        (&Method::GET, ["secrets"]) => {
            caller.authorize_admin(Operation::new(Operation::SECRETS_LIST))?;
            let list = secret_list(gateway).await?;
            Ok(json_response(StatusCode::OK, &wire_api::SecretList::new(list)))
        }
        (&Method::DELETE, ["secrets", name]) => {
            caller.authorize_admin(Operation::new(Operation::SECRETS_DELETE).secret(name))?;
            let existed = gateway.catalog().delete(name).await.map_err(|e| e.to_error())?;
            if !existed {
                return Err(Error::new(ErrorCode::NotFound, format!("no value is stored for secret {name:?}")));
            }
            Ok(json_response(StatusCode::OK, &wire_api::SecretDeleted::new(*name)))
        }
        _ => Err(not_found()),
    }
}

/// The body of `POST /v1/approvals/{id}/approve|deny`; an empty body is `{}`.
fn decision(body: &[u8]) -> Result<wire_api::DecideApproval, Error> {
    serde_json::from_value(body_json(body)?)
        .map_err(|_| Error::new(ErrorCode::BadRequest, "expected {\"reason\"?: string}"))
}

async fn put_secret(gateway: &Gateway, caller: &Caller<'_>, body: &[u8]) -> Result<Response<GatewayBody>, Error> {
    // Read strictly (an unknown field, at the top or in the binding, is refused). The
    // message of a serde error can quote the input: never echo it, it may hold the value.
    let req: wire_api::PutSecret<'static> = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(_) => {
            // Refused as the operation on nothing first: no shape hints for the unauthorized.
            caller.authorize_admin(Operation::new(Operation::SECRETS_PUT))?;
            return Err(Error::new(
                ErrorCode::BadRequest,
                "expected {\"name\": string, \"value\": string, \"binding\"?: {functions, locations, groups?, approvers?, expires?, max_uses?, max_uses_per?: {count, period}, budget_scope?}}",
            ));
        }
    };
    caller.authorize_admin(Operation::new(Operation::SECRETS_PUT).secret(&req.name))?;
    let value = cloakroom_core::Secret::from(req.value.into_owned());
    let binding = req.binding.map(wire::binding_spec).transpose()?;
    let placeholder = gateway.catalog().put(&req.name, value, binding).await.map_err(|e| e.to_error())?;
    Ok(json_response(StatusCode::OK, &wire_api::SecretStored::new(req.name, placeholder.as_str())))
}

/// Every secret of `GET /v1/secrets`, with the uses of those whose binding has a budget
/// (read from the budget store; one that cannot be read is `vault_unavailable`).
async fn secret_list(gateway: &Gateway) -> Result<Vec<wire_api::SecretSummary>, Error> {
    let catalog = gateway.catalog();
    let snap = catalog.snapshot();
    let store = catalog.budget_store();
    let now = cloakroom_vault::budget::unix_now();
    let mut out = Vec::new();
    for info in catalog.list() {
        let budget = snap.by_name(&info.name).and_then(|e| e.binding()).and_then(|b| b.budget().cloned());
        let uses = match budget {
            Some(b) => Some(cloakroom_vault::budget::read_uses(&*store, &info.name, &b, now).await.map_err(|e| {
                tracing::warn!(error = %e, "use budget store unavailable");
                Error::new(ErrorCode::VaultUnavailable, "the use budget store is unavailable")
            })?),
            None => None,
        };
        out.push(wire::secret(info, uses));
    }
    Ok(out)
}

/// `POST /v1/redeem {"placeholder", "call_id"}`: a function asks for the value behind a
/// placeholder of a call it is serving. It proves that with the call's redemption
/// credential, the `Cloakroom-Redeem-Token` the gateway sent it with that call (docs/reference.md, placeholders);
/// no caller identity is trusted for this.
async fn redeem(gateway: &Gateway, token: Option<&HeaderValue>, body: &[u8]) -> Result<Response<GatewayBody>, Error> {
    let token = token.and_then(|t| t.to_str().ok()).map(str::trim).unwrap_or("");
    if token.is_empty() {
        return Err(cloakroom_vault::RedeemError::MissingToken.to_error());
    }
    let req: wire_api::RedeemRequest = serde_json::from_slice(body)
        .map_err(|_| Error::new(ErrorCode::BadRequest, "expected {\"placeholder\": string, \"call_id\": string}"))?;
    let call_id: CallId =
        req.call_id.parse().map_err(|_| Error::new(ErrorCode::BadRequest, "call_id is a call id (UUID)"))?;
    let secret = gateway.inflight().redeem(&call_id, &req.placeholder, token).await.map_err(|e| {
        tracing::info!(call_id = %call_id, reason = %e, "redemption refused");
        e.to_error()
    })?;
    let v = match secret.expose_str() {
        Some(s) => wire_api::Redeemed::new(s.to_owned(), wire_api::ValueEncoding::Utf8),
        None => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret.expose());
            wire_api::Redeemed::new(encoded, wire_api::ValueEncoding::Base64)
        }
    };
    let mut res = json_response(StatusCode::OK, &v);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn audit_list(gateway: &Gateway, query: &str) -> Result<Response<GatewayBody>, Error> {
    let limit = match param(query, "limit") {
        None => DEFAULT_AUDIT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n))
            .ok_or_else(|| Error::new(ErrorCode::BadRequest, format!("limit must be 1..={MAX_AUDIT_LIMIT}")))?,
    };
    let since = match param(query, "since") {
        None => Since::Start,
        Some(s) if s.is_empty() => Since::Start,
        Some(s) => match s.parse::<u64>() {
            Ok(seq) => Since::Seq(seq),
            Err(_) => Since::Time(
                time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| Error::new(ErrorCode::BadRequest, "since is a sequence number or an RFC 3339 time"))?,
            ),
        },
    };
    let q = RecordQuery { chain_id: None, since, limit };
    let records = gateway.audit().records(&q).await.map_err(|e| e.to_core())?;
    Ok(json_response(StatusCode::OK, &wire_api::AuditPage::new(records)))
}

pub(super) async fn readyz(gateway: &Gateway) -> Response<GatewayBody> {
    // Each shared store is probed with a cheap read, so a replica whose PostgreSQL or
    // OpenBao is unreachable leaves the load balancer's rotation.
    let probe = std::time::Duration::from_secs(2);
    let audit = gateway.audit();
    let audit_store = audit.store().clone();
    let audit_ok = audit.is_available()
        && matches!(tokio::time::timeout(probe, audit_store.head(audit.chain_id())).await, Ok(Ok(_)));
    let vault = gateway.catalog().vault().clone();
    let vault_ok = matches!(tokio::time::timeout(probe, vault.list()).await, Ok(Ok(_)));
    let approvals = gateway.approvals().store().clone();
    let approvals_ok = matches!(tokio::time::timeout(probe, approvals.get("readyz-probe")).await, Ok(Ok(_)));
    use wire_api::CheckState;
    let readiness = wire_api::Readiness::new(wire_api::ReadinessChecks::new(
        CheckState::of(audit_ok),
        CheckState::of(vault_ok),
        CheckState::of(approvals_ok),
    ));
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &readiness)
}

pub(super) async fn metrics(gateway: &Gateway) -> Response<GatewayBody> {
    let a = gateway.audit().metrics().snapshot();
    let mut extra: Vec<crate::metrics::Sample> = vec![
        (
            "cloakroom_audit_records_total",
            "Audit records durably written.",
            "counter",
            vec![],
            a.records_written as f64,
        ),
        ("cloakroom_audit_failures_total", "Failed audit sink writes.", "counter", vec![], a.write_failures as f64),
        ("cloakroom_audit_records_lost_total", "Audit records given up on.", "counter", vec![], a.records_lost as f64),
        (
            "cloakroom_audit_available",
            "Whether the audit sinks are writing.",
            "gauge",
            vec![],
            f64::from(u8::from(a.available)),
        ),
    ];
    // Counted by the store without reading any approval's arguments: this endpoint
    // needs no credential.
    if let Ok(counts) = gateway.approvals().counts().await {
        for state in ApprovalState::ALL {
            extra.push((
                "cloakroom_approvals",
                "Approvals by state.",
                "gauge",
                vec![("state", state.as_str().to_owned())],
                counts.get(state) as f64,
            ));
        }
    }
    let text = gateway.metrics().render(&extra);
    let mut res = Response::new(boxed(Full::new(Bytes::from(text))));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::Metrics::CONTENT_TYPE));
    res
}
