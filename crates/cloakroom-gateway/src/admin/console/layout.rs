//! The page shell, the security headers every console response carries, error pages
//! and the static files (htmx, the style sheet).

use bytes::Bytes;
use cloakroom_core::Error;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use maud::{html, Markup, DOCTYPE};

use crate::forward::{boxed, GatewayBody};

/// The console's Content-Security-Policy: nothing but this listener's own scripts,
/// styles and images; no inline code, no framing, forms post only here.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const HTMX: &str = include_str!("static/htmx.min.js");
const CONSOLE_JS: &str = include_str!("static/console.js");
const CSS: &str = include_str!("static/console.css");

/// htmx's own settings, read from a `<meta>` (not inline script): no `eval`, no
/// injected indicator `<style>` (the CSP would refuse it), no script tags in swapped
/// content.
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;

/// Sets the security headers on a console response (every one, errors and files too).
pub(super) fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// An HTML response.
pub(super) fn html(status: StatusCode, markup: Markup) -> Response<GatewayBody> {
    let mut res = Response::new(boxed(Full::new(Bytes::from(markup.into_string()))));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

/// What the shell shows of the signed-in person.
pub(super) struct Nav {
    pub(super) subject: String,
    pub(super) is_admin: bool,
    /// The session's CSRF token, for the sign-out form and the page's own forms.
    pub(super) csrf: String,
}

/// A whole page: head, navigation (when signed in), `body`.
pub(super) fn page(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · Cloakroom" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/htmx.min.js" defer {}
                script src="/console/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "Cloakroom" }
                    @if let Some(nav) = nav {
                        nav {
                            a href="/console/approvals" { "Approvals" }
                            @if nav.is_admin {
                                a href="/console/audit" { "Audit" }
                                a href="/console/secrets" { "Secrets" }
                            }
                        }
                        form.signout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            span.who { (nav.subject) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A refusal as a page: the docs/reference.md code and message, with the code's status.
pub(super) fn error_page(e: &Error, fragment: bool) -> Response<GatewayBody> {
    let body = html! {
        div.error {
            p { strong { (e.code.as_str()) } ": " (e.message) }
            @if !fragment { p { a href="/console" { "Back to the console" } } }
        }
    };
    let markup = if fragment { body } else { page("Refused", None, body) };
    html(e.code.status(), markup)
}

/// `/console/static/<file>`.
pub(super) fn static_file(file: &str) -> Result<Response<GatewayBody>, Error> {
    let (body, kind) = match file {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        _ => return Err(Error::new(cloakroom_core::ErrorCode::NotFound, "no such console file")),
    };
    let mut res = Response::new(boxed(Full::new(Bytes::from_static(body.as_bytes()))));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(res)
}
