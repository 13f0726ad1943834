//! Signing in and out of the console.
//!
//! `GET /console/login` shows the sign-in page: paste a Biscuit token or an API key
//! (verified by the same authenticator as `Authorization: Bearer`, then stored as the
//! `cloakroom_session` cookie as it is: nothing is minted for it), or follow "Sign in
//! with SAML" / "Sign in with OIDC" when those are configured (they end by setting the
//! same cookie). In dev mode (`cloakroomd --dev`) the printed link
//! `/console/login?token=…` signs the dev admin in and redirects to `/console`, so the
//! token leaves the address bar; any other process refuses a token in the URL.
//! `POST /console/logout` clears the cookie.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use crate::admin::AdminBody;
use cloakroom_core::{Error, ErrorCode};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{form::Form, layout, see_other, Caller, LOGIN};
use crate::{
    admin::respond::{param, session_cookie_with},
    forward::GatewayBody,
    Gateway,
};

/// SHA-256 of the dev admin token, set only by `cloakroomd --dev`: the one token the
/// sign-in link may carry in its URL.
static DEV_TOKEN: OnceLock<[u8; 32]> = OnceLock::new();

/// Lets `/console/login?token=<token>` sign in with `token` (dev mode only: the token
/// is printed in the banner anyway, and the link saves pasting it).
pub(crate) fn allow_dev_sign_in(token: &str) {
    let _ = DEV_TOKEN.set(Sha256::digest(token.as_bytes()).into());
}

fn is_dev_token(token: &str) -> bool {
    DEV_TOKEN.get().is_some_and(|d| bool::from(d.ct_eq(&<[u8; 32]>::from(Sha256::digest(token.as_bytes())))))
}

/// `GET /console/login` (and the dev-mode link with `?token=`).
pub(super) async fn login_page(gateway: &Gateway, req: &Request<AdminBody>) -> Result<Response<GatewayBody>, Error> {
    if let Some(token) = param(req.uri().query().unwrap_or(""), "token") {
        if !is_dev_token(&token) {
            // Never a credential in a URL outside dev mode (logs, history, Referer).
            return Err(Error::new(ErrorCode::Forbidden, "a token in the sign-in URL is accepted in dev mode only"));
        }
        gateway.authenticator().verify_token(&token).await.map_err(|e| e.to_error())?;
        return Ok(signed_in(gateway, token));
    }
    Ok(layout::html(StatusCode::OK, login_markup(gateway, None)))
}

/// `POST /console/login` with the field `token`.
pub(super) async fn sign_in(
    gateway: &Gateway,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    form: &Form,
) -> Result<Response<GatewayBody>, Error> {
    let Some(token) = form.text("token") else {
        return Ok(refused(gateway, "Paste a token or an API key."));
    };
    if !token.bytes().all(is_cookie_safe) {
        return Ok(refused(gateway, "This credential cannot be kept in a cookie; use a Biscuit token."));
    }
    match Caller::from_token(gateway, token, headers, peer).await {
        Ok(_) => Ok(signed_in(gateway, token.to_owned())),
        Err(e) if e.code == ErrorCode::Unauthenticated => {
            tracing::info!(reason = %e.message, "console sign-in refused");
            // The message names why (expired, unknown key, …), never the credential.
            Ok(refused(gateway, &format!("Sign-in refused: {}", e.message)))
        }
        Err(e) => Err(e),
    }
}

/// `POST /console/logout`: the cookie is cleared and the person is back at sign-in.
pub(super) fn sign_out(_gateway: &Gateway) -> Response<GatewayBody> {
    let mut res = see_other(LOGIN);
    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    res
}

/// `Set-Cookie` that removes the session cookie.
pub(super) fn clear_cookie() -> HeaderValue {
    session_cookie_with("", 0, false).expect("an empty cookie is a valid header value")
}

/// The verified `token` as the session cookie (for `identity.sessions.ttl` at most: a
/// pasted API key is forgotten by the browser then), and on to the inbox.
fn signed_in(gateway: &Gateway, token: String) -> Response<GatewayBody> {
    let ttl = gateway.config().identity.sessions.ttl;
    let max_age = ttl.max(Duration::from_secs(60)).as_secs();
    let mut res = see_other("/console");
    // The attributes of `respond::session_cookie`; the admin listener speaks plain HTTP
    // on 127.0.0.1, so no `Secure`. `is_cookie_safe` held for `token`, so the header
    // value is valid.
    match session_cookie_with(&token, max_age, false) {
        Some(v) => {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        None => return refused(gateway, "This credential cannot be kept in a cookie."),
    }
    res
}

/// Cookie-value characters (RFC 6265 `cookie-octet`), which every base64url token is.
fn is_cookie_safe(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\')
}

fn refused(gateway: &Gateway, message: &str) -> Response<GatewayBody> {
    layout::html(StatusCode::UNAUTHORIZED, login_markup(gateway, Some(message)))
}

fn login_markup(gateway: &Gateway, message: Option<&str>) -> maud::Markup {
    let (saml, oidc) = sign_in_links(gateway);
    layout::page(
        "Sign in",
        None,
        html! {
            @if let Some(m) = message { p.error { (m) } }
            form.card method="post" action=(LOGIN) {
                label for="token" { "Biscuit token or API key" }
                // type=password: the credential is not shown on screen or kept by autofill.
                input #token type="password" name="token" autocomplete="off" required;
                button type="submit" { "Sign in" }
            }
            @if saml || oidc.is_some() {
                p.alternatives {
                    @if saml { a.button href="/v1/saml/login?return_to=/console" { "Sign in with SAML" } }
                    @if let Some(i) = oidc {
                        a.button href={ "/v1/oidc/login?issuer=" (i) "&return_to=/console" } { "Sign in with OIDC" }
                    }
                }
            }
        },
    )
}

/// Whether `[identity.saml]` is configured, and the index of the first OIDC issuer
/// with sign-in settings (a `client_id`). Read from the configuration as it serializes,
/// so the page follows whatever the sign-in surfaces add there.
fn sign_in_links(gateway: &Gateway) -> (bool, Option<usize>) {
    let identity = serde_json::to_value(&gateway.config().identity).unwrap_or_default();
    let saml = identity.get("saml").is_some_and(|s| !s.is_null());
    let oidc = identity
        .get("oidc")
        .and_then(|o| o.as_array())
        .and_then(|issuers| issuers.iter().position(|i| i.get("client_id").is_some_and(|c| !c.is_null())));
    (saml, oidc)
}
