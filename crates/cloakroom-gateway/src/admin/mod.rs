//! The admin listener: the admin API of docs/reference.md, people's sign-in and the console.
//!
//! `GET /healthz`, `GET /readyz` and `GET /metrics` are open; everything under `/v1/`
//! needs a credential the identity configuration accepts (the same verifiers as the
//! data path), checked in full: each endpoint states its operation (`secrets:list`,
//! `approvals:approve`, … with the secret, approval or record it acts on) and the
//! credential's own checks (a Biscuit token's TTL and attenuation blocks) must allow it
//! ([`cloakroom_identity::Operation`], docs/identity.md). Admin endpoints need a member of
//! `identity.admin_groups`; approval endpoints need a member of one of the approval's
//! approver groups (listing shows an approver the approvals they may decide; an admin
//! sees all). `POST /v1/redeem` is authenticated by the call's redemption credential
//! (`Cloakroom-Redeem-Token`) instead, and `POST /v1/slack/interactions` by Slack's
//! request signature (`approvals.slack.signing_secret_env`), checked before anything in the
//! body is decoded.

//!
//! One file per surface: [`api`] the JSON admin API under `/v1/`, [`caller`] who is
//! asking and what they may do, [`respond`] the shared request and response helpers;
//! [`wire`] the stores' types as the API's wire types (`cloakroom_api`); `saml`, `oidc`,
//! `console` and `slack` the people-facing surfaces.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Method, Request, Response, StatusCode};

use crate::{
    forward::{error_response, GatewayBody},
    Gateway,
};

mod api;
mod caller;
mod console;
pub(crate) use console::allow_dev_sign_in;
mod oidc;
mod respond;
mod saml;
#[cfg(feature = "webhooks")]
mod slack;
mod wire;

pub(crate) use self::oidc::OidcSignIns;
use self::respond::{json_response, not_found};

/// A request body on the admin listener: whatever body the server gave, boxed, so that
/// the admin API can be served by hyper (`cloakroomd`) or mounted in an axum router.
/// `Sync` (the handlers keep `&Request` across awaits) though axum's body is not: the
/// wrapper only ever hands out `&mut` access.
pub(crate) struct AdminBody(sync_wrapper::SyncWrapper<GatewayBody>);

impl http_body::Body for AdminBody {
    type Data = bytes::Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(self.get_mut().0.get_mut()).poll_frame(cx)
    }
}

/// The admin listener's service for a connection from `peer`.
#[derive(Clone, Debug)]
pub struct AdminService {
    gateway: Gateway,
    peer: Option<SocketAddr>,
}

impl Gateway {
    /// The service of the admin listener, for a connection from `peer`.
    pub fn admin_service(&self, peer: Option<SocketAddr>) -> AdminService {
        AdminService { gateway: self.clone(), peer }
    }
}

impl<B> tower::Service<Request<B>> for AdminService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = AdminFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = req.map(|body| AdminBody(sync_wrapper::SyncWrapper::new(crate::forward::boxed(body))));
        respond(self.gateway.clone(), self.peer, req)
    }
}

/// Not generic, unlike the `call` it serves: the compiler proves the future `Send` once.
fn respond(gateway: Gateway, peer: Option<SocketAddr>, req: Request<AdminBody>) -> AdminFuture {
    Box::pin(async move {
        Ok(match handle(&gateway, peer, req).await {
            Ok(res) => res,
            Err(e) => error_response(&e, None),
        })
    })
}

type AdminFuture = Pin<Box<dyn Future<Output = Result<Response<GatewayBody>, Infallible>> + Send>>;

async fn handle(
    gateway: &Gateway,
    peer: Option<SocketAddr>,
    req: Request<AdminBody>,
) -> Result<Response<GatewayBody>, cloakroom_core::Error> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(json_response(StatusCode::OK, &cloakroom_api::Health::ok())),
        (&Method::GET, ["readyz"]) => Ok(api::readyz(gateway).await),
        (&Method::GET, ["metrics"]) => Ok(api::metrics(gateway).await),
        (_, ["console", ..]) => console::handle(gateway, peer, req, &method, &segments[1..]).await,
        (_, ["v1", "saml", ..]) => saml::handle(gateway, peer, req, &method, &segments[2..]).await,
        (_, ["v1", "oidc", ..]) => oidc::handle(gateway, peer, req, &method, &segments[2..]).await,
        #[cfg(feature = "webhooks")]
        (_, ["v1", "slack", ..]) => slack::handle(gateway, peer, req, &method, &segments[2..]).await,
        // Built without the Slack app: nothing to answer Slack with.
        #[cfg(not(feature = "webhooks"))]
        (_, ["v1", "slack", ..]) => Err(not_found()),
        (_, ["v1", ..]) => api::handle(gateway, peer, req, &method, &segments[1..]).await,
        _ => Err(not_found()),
    }
}
