//! SAML 2.0 service provider: metadata, SP-initiated login, assertion consumer (docs/identity.md).
//!
//! - `GET /v1/saml/metadata`: our SP metadata (entity id, ACS URL, NameID formats).
//! - `GET /v1/saml/login?return_to=/console`: 303 to the IdP with an `AuthnRequest`
//!   (HTTP-Redirect binding); `return_to` must be a local path.
//! - `POST /v1/saml/acs`: the IdP's `SAMLResponse` (HTTP-POST binding). A verified
//!   assertion becomes a session: a `Set-Cookie` and a 303 to `return_to`, or with
//!   `Accept: application/json` the token itself (`{"token", "expires_at", "subject",
//!   "groups"}`) for the CLI.
//!
//! All verification is in [`cloakroom_identity::saml`]; this file only speaks HTTP.

use std::{net::SocketAddr, time::SystemTime};

use crate::admin::AdminBody;
use bytes::Bytes;
use cloakroom_core::{Error, ErrorCode};
use cloakroom_identity::saml::{SamlError, ServiceProvider};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::respond::{json_response, not_found, param, read_body, redirect, session_cookie};
use crate::{
    forward::{boxed, GatewayBody},
    Gateway,
};

/// `/v1/saml/…`; `segments` is the path after it.
pub(super) async fn handle(
    gateway: &Gateway,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    let Some(sp) = gateway.saml() else {
        return Err(Error::new(ErrorCode::NotFound, "SAML sign-in is not configured ([identity.saml])"));
    };
    match (method, segments) {
        (&Method::GET, ["metadata"]) => {
            let mut res = Response::new(boxed(Full::new(Bytes::from(sp.metadata_xml()))));
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
            Ok(res)
        }
        (&Method::GET, ["login"]) => {
            let return_to = param(req.uri().query().unwrap_or(""), "return_to");
            let url = sp.login(return_to.as_deref(), SystemTime::now()).map_err(to_error)?;
            redirect(StatusCode::SEE_OTHER, &url)
        }
        (&Method::POST, ["acs"]) => acs(gateway, sp, peer, req).await,
        _ => Err(not_found()),
    }
}

async fn acs(
    gateway: &Gateway,
    sp: &ServiceProvider,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
) -> Result<Response<GatewayBody>, Error> {
    let wants_json =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"));
    let body = read_body(gateway, req).await?;
    let form = std::str::from_utf8(&body).map_err(|_| Error::new(ErrorCode::BadRequest, "the form is not UTF-8"))?;
    let saml_response = param(form, "SAMLResponse")
        .ok_or_else(|| Error::new(ErrorCode::BadRequest, "the form has no SAMLResponse field"))?;
    let relay_state = param(form, "RelayState");
    let now = SystemTime::now();
    let signed_in = match sp.consume(&saml_response, relay_state.as_deref(), now) {
        Ok(s) => s,
        Err(e) => {
            // The reason names what was wrong with the message, never its content.
            tracing::info!(peer = ?peer, reason = %e, "SAML sign-in refused");
            return Err(to_error(e));
        }
    };
    let session = gateway
        .session_keys()
        .mint(&signed_in.sign_in, signed_in.ttl, now)
        .map_err(|e| Error::new(ErrorCode::Internal, format!("the session could not be minted: {e}")))?;
    tracing::info!(
        subject = %signed_in.sign_in.subject,
        issuer = %signed_in.sign_in.issuer,
        groups = ?signed_in.sign_in.groups,
        "signed in with SAML"
    );
    if wants_json {
        let expires_at = time::OffsetDateTime::from(session.expires_at)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "token": session.token,
                "expires_at": expires_at,
                "subject": signed_in.sign_in.subject,
                "groups": signed_in.sign_in.groups,
            }),
        ));
    }
    let mut res = redirect(StatusCode::SEE_OTHER, &signed_in.return_to)?;
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&session, sp.acs_url().starts_with("https://")));
    Ok(res)
}

fn to_error(e: SamlError) -> Error {
    let code = match e {
        SamlError::ReturnTo | SamlError::Malformed(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Unauthenticated,
    };
    Error::new(code, e.to_string())
}
