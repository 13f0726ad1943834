//! Request and response helpers shared by the admin listener's surfaces.

use crate::admin::AdminBody;
use bytes::Bytes;
use cloakroom_core::{Error, ErrorCode};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use crate::{
    forward::{boxed, GatewayBody},
    Gateway,
};

/// Largest admin request body.
pub(super) const MAX_ADMIN_BODY: usize = 1024 * 1024;

/// `v` as a JSON answer with `status`: a wire type of [`cloakroom_api`], or a `Value`
/// on the surfaces that have no wire type.
pub(super) fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Response<GatewayBody> {
    let body = match serde_json::to_vec(v) {
        Ok(body) => body,
        // The wire types have no map keys that are not strings: this is a bug, said so.
        Err(_) => {
            return crate::forward::error_response(
                &Error::new(ErrorCode::Internal, "the answer could not be serialized"),
                None,
            )
        }
    };
    let mut res = Response::new(boxed(Full::new(Bytes::from(body))));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The cookie that carries a person's session (a session token of
/// [`cloakroom_identity::SessionKeys::mint`]) for the console.
pub(super) const SESSION_COOKIE: &str = "cloakroom_session";

/// `Set-Cookie` for a person's session: readable by the admin listener only (`HttpOnly`,
/// `Path=/`), never sent on cross-site subrequests or POSTs (`SameSite=Lax`: a sign-in
/// arrives by a cross-site POST or redirect from the IdP, after which a `Strict` cookie
/// would be withheld from the redirect to the console; state changes are POSTs with a
/// CSRF token besides), `Secure` when the listener is reached over TLS, gone when the
/// session expires.
pub(super) fn session_cookie(session: &cloakroom_identity::Session, secure: bool) -> HeaderValue {
    let max_age = session.expires_at.duration_since(std::time::SystemTime::now()).map(|d| d.as_secs()).unwrap_or(0);
    session_cookie_with(&session.token, max_age, secure).expect("a base64url token is a valid header value")
}

/// The session cookie holding `token` for `max_age` seconds, with the attributes of
/// [`session_cookie`] (the one place they are written); `None` when `token` cannot be
/// a header value. An empty `token` with `max_age` 0 removes the cookie.
pub(super) fn session_cookie_with(token: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The value of cookie `name` in the request's `Cookie` headers, if any.
pub(super) fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The session token in the request's `cloakroom_session` cookie, if any.
pub(super) fn session_from_cookie(headers: &http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// A redirect (`status` 302 or 303) to `location`, never cached. A location that is not
/// a valid header value is refused as an internal error, never answered with a redirect
/// to somewhere else or to nowhere.
pub(super) fn redirect(status: StatusCode, location: &str) -> Result<Response<GatewayBody>, Error> {
    let location = HeaderValue::from_str(location)
        .map_err(|_| Error::new(ErrorCode::Internal, "the redirect target is not a valid header value"))?;
    let mut res = Response::new(boxed(Full::new(Bytes::new())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::LOCATION, location);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub(super) fn not_found() -> Error {
    Error::new(ErrorCode::NotFound, "no such admin endpoint")
}

/// The body's error as an `std::error::Error` (what [`crate::server::DeadlineBody`] reports).
fn body_error(e: tower::BoxError) -> std::io::Error {
    std::io::Error::other(e)
}

pub(super) async fn read_body(gateway: &Gateway, req: Request<AdminBody>) -> Result<Bytes, Error> {
    // The same deadline as call bodies (server.body_read_timeout): a slow body must not
    // hold an admin connection either.
    let server = &gateway.config().server;
    let body = crate::server::DeadlineBody::new(
        req.into_body().map_err(body_error),
        server.body_read_timeout,
        server.body_min_rate,
    );
    match Limited::new(body, MAX_ADMIN_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::new(
            ErrorCode::PayloadTooLarge,
            format!("admin request bodies are limited to {MAX_ADMIN_BODY} bytes"),
        )),
        Err(_) => Err(Error::new(ErrorCode::BadRequest, "the request body could not be read")),
    }
}

pub(super) fn body_json(body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| Error::new(ErrorCode::BadRequest, format!("the body is not JSON: {e}")))
}

/// The value of query parameter `name` (form-urlencoded: `%XX` and `+` decoded).
pub(super) fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(param("state=pending&limit=5", "limit").as_deref(), Some("5"));
        assert_eq!(param("since=2026-11-25T10%3A00%3A00Z", "since").as_deref(), Some("2026-11-25T10:00:00Z"));
        assert_eq!(param("a=1", "b"), None);
        assert_eq!(param("a=%zz%4", "a").as_deref(), Some("%zz%4"));
        assert_eq!(param("a=x+y%2B", "a").as_deref(), Some("x y+"));
    }
}
