//! The web console for people at `/console` on the admin listener: the approvals
//! inbox, the audit log with replay, and secrets (docs/console.md).
//!
//! Server-rendered HTML (maud escapes every interpolated value), htmx served from the
//! gateway itself for the inbox's live updates, no inline script or style, so the strict
//! CSP of [`layout::secure`] holds on every response. A person is signed in by the
//! `cloakroom_session` cookie, which holds the same credential `Authorization: Bearer`
//! would: every request verifies it again and authorizes each action through
//! [`Caller`], exactly as the JSON API does. Every change is a `POST` carrying the
//! session's CSRF token from a same-origin page ([`csrf`]); `GET`s change nothing.
//!
//! One file per page: [`approvals`], [`audit`] (with [`replay`]), [`secrets`];
//! [`session`] signs people in and out.

use std::net::SocketAddr;

use crate::admin::AdminBody;
use cloakroom_core::{Error, ErrorCode};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::{
    caller::Caller,
    respond::{read_body, session_from_cookie},
};
use crate::{forward::GatewayBody, Gateway};

mod approvals;
mod audit;
mod csrf;
mod form;
mod layout;
mod replay;
mod secrets;
mod session;

pub(crate) use session::allow_dev_sign_in;

/// The path of the sign-in page, where a missing or expired session is sent.
const LOGIN: &str = "/console/login";

/// `/console/…`; `segments` is the path after it.
pub(super) async fn handle(
    gateway: &Gateway,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    let htmx = req.headers().contains_key("hx-request");
    let mut res = match route(gateway, peer, req, method, segments).await {
        Ok(res) => res,
        Err(e) => layout::error_page(&e, htmx),
    };
    layout::secure(res.headers_mut());
    Ok(res)
}

/// What a signed-in request carries: the verified caller, their session token (for the
/// CSRF token) and, for a `POST`, its form.
pub(super) struct Signed<'a> {
    caller: Caller<'a>,
    session: String,
    query: String,
    form: form::Form,
}

impl Signed<'_> {
    /// What the page shell needs: who is signed in, whether to show admin pages, and
    /// the CSRF token the page's forms carry.
    fn nav(&self) -> layout::Nav {
        layout::Nav {
            subject: self.caller.subject().to_owned(),
            is_admin: self.caller.is_admin(),
            csrf: csrf::token(&self.session),
        }
    }
}

async fn route(
    gateway: &Gateway,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    match (method, segments) {
        (&Method::GET, ["static", file]) => return layout::static_file(file),
        (&Method::GET, ["login"]) => return session::login_page(gateway, &req).await,
        (&Method::POST, ["login"]) => {
            csrf::check_origin(req.headers())?;
            let headers = req.headers().clone();
            let body = read_body(gateway, req).await?;
            return session::sign_in(gateway, &headers, peer, &form::Form::parse(&body)).await;
        }
        _ => {}
    }
    let htmx = req.headers().contains_key("hx-request");
    let Some(token) = session_from_cookie(req.headers()) else {
        return Ok(to_login(htmx, false));
    };
    let caller = match Caller::from_token(gateway, &token, req.headers(), peer).await {
        Ok(c) => c,
        // Expired, revoked or forged: the cookie is dropped and the person signs in again.
        Err(e) if e.code == ErrorCode::Unauthenticated => return Ok(to_login(htmx, true)),
        Err(e) => return Err(e),
    };
    let query = req.uri().query().unwrap_or("").to_owned();
    let form = if method == Method::POST {
        // The origin is checked before the body is even read; the CSRF token after.
        csrf::check_origin(req.headers())?;
        let body = read_body(gateway, req).await?;
        let form = form::Form::parse(&body);
        csrf::check(&token, form.get("csrf"))?;
        form
    } else if method == Method::GET {
        form::Form::default()
    } else {
        return Err(Error::new(ErrorCode::BadRequest, "the console answers GET and POST only"));
    };
    let signed = Signed { caller, session: token, query, form };
    match (method, segments) {
        (&Method::POST, ["logout"]) => Ok(session::sign_out(gateway)),
        (&Method::GET, [] | [""] | ["approvals"]) => approvals::page(gateway, &signed).await,
        (&Method::GET, ["approvals", "list"]) => approvals::fragment(gateway, &signed).await,
        (&Method::POST, ["approvals", id, verb @ ("approve" | "deny")]) => {
            approvals::decide(gateway, &signed, id, verb).await
        }
        (&Method::GET, ["audit"]) => audit::search(gateway, &signed).await,
        (&Method::GET, ["audit", id]) => audit::call_view(gateway, &signed, id).await,
        (&Method::GET, ["secrets"]) => secrets::page(gateway, &signed, None).await,
        (&Method::POST, ["secrets"]) => secrets::put(gateway, &signed).await,
        (&Method::POST, ["secrets", name, "delete"]) => secrets::delete(gateway, &signed, name).await,
        _ => Err(Error::new(ErrorCode::NotFound, "no such console page")),
    }
}

/// Where a request without a valid session goes: the sign-in page (for an htmx
/// fragment, `HX-Redirect` so the whole page goes, not the fragment). `clear` drops a
/// cookie that no longer verifies.
fn to_login(htmx: bool, clear: bool) -> Response<GatewayBody> {
    let mut res = if htmx {
        let mut res = layout::html(StatusCode::UNAUTHORIZED, maud::html! { "Signed out." });
        res.headers_mut().insert("hx-redirect", HeaderValue::from_static(LOGIN));
        res
    } else {
        see_other(LOGIN)
    };
    if clear {
        res.headers_mut().insert(header::SET_COOKIE, session::clear_cookie());
    }
    res
}

/// `303 See Other` to `location` (a console path), the answer to a form's `POST`.
fn see_other(location: &str) -> Response<GatewayBody> {
    super::respond::redirect(StatusCode::SEE_OTHER, location).unwrap_or_else(|e| layout::error_page(&e, false))
}
