//! OIDC sign-in for people: the authorization code flow with PKCE (docs/identity.md).
//!
//! - `GET /v1/oidc/login?issuer=<index or URL>&return_to=/console` starts a sign-in:
//!   a fresh `state`, `nonce` and PKCE verifier are kept server-side ([`pending`]) under
//!   the state, a random browser-binding cookie is set, and the browser is sent (302)
//!   to the issuer's authorization endpoint. With `cli_redirect=http://127.0.0.1:<port>/…`
//!   and `cli_challenge=<S256 of a verifier the CLI keeps>` the session goes to
//!   `cloakroom login` instead of a cookie.
//! - `GET /v1/oidc/callback?code&state` takes the sign-in (once, unexpired), checks the
//!   browser-binding cookie (a callback URL sent to someone else's browser does not sign
//!   them in as the sender: login CSRF), exchanges the code with the verifier, verifies
//!   the ID token and mints a session: a `cloakroom_session` cookie and 303 to the local
//!   `return_to`, or 303 to the CLI's loopback listener with a one-time hand-off code.
//! - `POST /v1/oidc/session` `{"code", "code_verifier"}`: the CLI collects its session
//!   with the hand-off code and the verifier of the challenge it sent (so a hand-off code
//!   that leaks from the browser or another local process is useless).
//!
//! Every answer is `Cache-Control: no-store` and `Referrer-Policy: no-referrer`; codes,
//! states and tokens are never logged.

mod pending;
mod redirect;

use std::{net::SocketAddr, time::SystemTime};

use crate::admin::AdminBody;
use cloakroom_core::{Error, ErrorCode};
use cloakroom_identity::{pkce_challenge, SignInError};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

pub(crate) use self::pending::OidcSignIns;
use self::{
    pending::{Destination, Handoff, Started, LOGIN_TTL},
    redirect::{local_return_to, loopback_redirect, DEFAULT_RETURN_TO},
};
use super::respond::{self, body_json, cookie, json_response, not_found, param, read_body, session_cookie};
use crate::{forward::GatewayBody, Gateway};

/// The cookie that binds a started sign-in to the browser that started it.
const BROWSER_COOKIE: &str = "cloakroom_oidc";

/// `/v1/oidc/…`; `segments` is the path after it.
pub(super) async fn handle(
    gateway: &Gateway,
    _peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    let res = match (method, segments) {
        (&Method::GET, ["login"]) => login(gateway, &req).await,
        (&Method::GET, ["callback"]) => callback(gateway, &req).await,
        (&Method::POST, ["session"]) => collect(gateway, req).await,
        _ => Err(not_found()),
    };
    res.map(|mut r| {
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        r
    })
}

fn sign_in_error(e: SignInError) -> Error {
    let code = match &e {
        SignInError::NotConfigured(_) => ErrorCode::BadRequest,
        SignInError::IssuerUnavailable(_) => ErrorCode::UpstreamUnavailable,
        SignInError::Refused(_) | SignInError::InvalidIdToken(_) => ErrorCode::Unauthenticated,
    };
    Error::new(code, format!("OIDC sign-in failed: {e}"))
}

/// `GET /v1/oidc/login`.
async fn login(gateway: &Gateway, req: &Request<AdminBody>) -> Result<Response<GatewayBody>, Error> {
    let query = req.uri().query().unwrap_or_default();
    let destination = match param(query, "cli_redirect") {
        Some(cli) => {
            let redirect = loopback_redirect(&cli)?;
            let challenge = param(query, "cli_challenge").unwrap_or_default();
            if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::new(
                    ErrorCode::BadRequest,
                    "cli_redirect needs cli_challenge: the base64url SHA-256 of a verifier the CLI keeps",
                ));
            }
            Destination::Cli { redirect, challenge }
        }
        None => Destination::Local(local_return_to(
            param(query, "return_to").as_deref().filter(|r| !r.is_empty()).unwrap_or(DEFAULT_RETURN_TO),
        )?),
    };
    let config = gateway.config();
    let default_redirect = format!("http://{}/v1/oidc/callback", config.server.admin_listen);
    let selector = param(query, "issuer");
    let started = gateway
        .authenticator()
        .start_oidc_login(selector.as_deref(), &default_redirect)
        .await
        .map_err(sign_in_error)?;
    let browser = cloakroom_identity::random_token();
    gateway.shared.oidc_sign_ins.start(
        started.state,
        Started {
            login: started.pending,
            browser: Sha256::digest(browser.as_bytes()).into(),
            destination,
            secure: started.secure,
        },
    );
    let mut res = respond::redirect(StatusCode::FOUND, &started.authorize_url)?;
    // Lax, not Strict: the callback is a top-level navigation from the issuer's site.
    let secure = if started.secure { "; Secure" } else { "" };
    let set = format!(
        "{BROWSER_COOKIE}={browser}; Path=/v1/oidc/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        LOGIN_TTL.as_secs()
    );
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&set).expect("base64url is a header value"));
    Ok(res)
}

/// `GET /v1/oidc/callback`.
async fn callback(gateway: &Gateway, req: &Request<AdminBody>) -> Result<Response<GatewayBody>, Error> {
    let query = req.uri().query().unwrap_or_default();
    let state = param(query, "state").unwrap_or_default();
    // Taken before anything else is looked at: whatever happens next, this state is spent.
    let started = gateway.shared.oidc_sign_ins.take_started(&state).ok_or_else(|| {
        Error::new(ErrorCode::BadRequest, "unknown, used or expired sign-in state: start again at /v1/oidc/login")
    })?;
    let browser = cookie(req.headers(), BROWSER_COOKIE).unwrap_or_default();
    let browser_hash: [u8; 32] = Sha256::digest(browser.as_bytes()).into();
    if !bool::from(browser_hash.ct_eq(&started.browser)) {
        return Err(Error::new(ErrorCode::BadRequest, "this sign-in was started in another browser"));
    }
    if let Some(error) = param(query, "error") {
        let word: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
        return Err(Error::new(ErrorCode::Unauthenticated, format!("the identity provider answered {word}")));
    }
    let code = param(query, "code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::new(ErrorCode::BadRequest, "the callback carries no authorization code"))?;
    let authenticator = gateway.authenticator();
    let who = authenticator.finish_oidc_login(&started.login, &code).await.map_err(|e| {
        tracing::warn!(issuer = %started.login.issuer, error = %e, "OIDC sign-in refused");
        sign_in_error(e)
    })?;
    let ttl = gateway.config().identity.sessions.ttl;
    let session = gateway
        .session_keys()
        .mint(&who, ttl, SystemTime::now())
        .map_err(|e| Error::new(ErrorCode::Internal, format!("the session could not be minted: {e}")))?;
    tracing::info!(subject = %who.subject, issuer = %who.issuer, groups = ?who.groups, "signed in with OIDC");
    let clear = format!("{BROWSER_COOKIE}=; Path=/v1/oidc/; HttpOnly; SameSite=Lax; Max-Age=0");
    let mut res = match started.destination {
        Destination::Local(path) => {
            let mut res = respond::redirect(StatusCode::SEE_OTHER, &path)?;
            res.headers_mut().append(header::SET_COOKIE, session_cookie(&session, started.secure));
            res
        }
        Destination::Cli { redirect: mut redirect_to, challenge } => {
            let handoff = cloakroom_identity::random_token();
            redirect_to.query_pairs_mut().append_pair("code", &handoff);
            gateway
                .shared
                .oidc_sign_ins
                .hand_off(handoff, Handoff { session, subject: who.subject, groups: who.groups, challenge });
            respond::redirect(StatusCode::SEE_OTHER, redirect_to.as_str())?
        }
    };
    res.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("a plain cookie"));
    Ok(res)
}

/// `POST /v1/oidc/session`: `cloakroom login` collects the session minted for it.
async fn collect(gateway: &Gateway, req: Request<AdminBody>) -> Result<Response<GatewayBody>, Error> {
    let body = body_json(&read_body(gateway, req).await?)?;
    let refused = || Error::new(ErrorCode::Unauthenticated, "unknown, used or expired sign-in code, or wrong verifier");
    let code = body["code"].as_str().unwrap_or_default();
    let verifier = body["code_verifier"].as_str().unwrap_or_default();
    let handoff = gateway.shared.oidc_sign_ins.take_handoff(code).ok_or_else(refused)?;
    if verifier.is_empty() || !bool::from(pkce_challenge(verifier).as_bytes().ct_eq(handoff.challenge.as_bytes())) {
        return Err(refused());
    }
    let expires_at = time::OffsetDateTime::from(handoff.session.expires_at);
    let session = cloakroom_api::Session::new(handoff.session.token, expires_at, handoff.subject, handoff.groups);
    Ok(json_response(StatusCode::OK, &session))
}
