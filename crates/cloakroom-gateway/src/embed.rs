//! [`CloakroomLayer`]: the whole data path as one tower layer, for an application that
//! keeps its own routing (an axum router, a tonic-less hyper service) and puts Cloakroom
//! in front of its handlers.
//!
//! ```text
//! AuditLayer → IdentityLayer → CallLayer (your naming closure) → PolicyLayer → DetokenizeLayer → MaskLayer → your service
//! ```
//!
//! The layer is made by a running [`Gateway`] ([`Gateway::layer`]): the gateway opens
//! the vault, the audit log and the approval store from a [`Config`](crate::Config),
//! keeps the response masker in step with the secrets, and serves the admin API on
//! whatever listener the application gives [`Gateway::admin_service`] — so approvers
//! decide held calls with `cloakroom approval approve` or the console as they would with
//! `cloakroomd`. Policy, secrets and the masker are the gateway's live ones: a
//! [`Gateway::reload`] applies to the embedded layers too; identity settings and the
//! body limit are read when [`Gateway::layer`] is called.
//!
//! Every answer carries `Cloakroom-Call-Id`, the id of its audit record.
//!
//! ```no_run
//! # async fn run() -> Result<(), tower::BoxError> {
//! use axum::{routing::get, Router};
//! use cloakroom_gateway::{call::CallName, Config, Gateway};
//!
//! let gateway = Gateway::start(Config::load("cloakroom.toml")?, None).await?;
//! let app = Router::new()
//!     .route("/weather", get(|| async { "sunny" }))
//!     .layer(gateway.layer().naming(|req, _body| {
//!         Some(CallName::new(req.uri.path().trim_start_matches('/')))
//!     }));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:3000").await?, app).await?;
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_audit::{Audit, AuditLayer};
use cloakroom_core::CallId;
use cloakroom_identity::{Authenticate, IdentityLayer};
use cloakroom_mask::{Mask, MaskLayer};
use cloakroom_policy::{Authorize, PolicyLayer};
use cloakroom_vault::{Detokenize, DetokenizeLayer};
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower::{BoxError, Layer, Service};

use crate::{
    call::{CallLayer, CallName, NameCall},
    forward::{boxed, GatewayBody, CALL_ID_HEADER},
    Gateway,
};

/// The data path as one layer; see the [module docs](self). Made by [`Gateway::layer`].
#[derive(Clone)]
pub struct CloakroomLayer {
    audit: AuditLayer,
    identity: IdentityLayer,
    call: CallLayer,
    policy: PolicyLayer,
    detokenize: DetokenizeLayer,
    mask: MaskLayer,
}

impl fmt::Debug for CloakroomLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloakroomLayer").field("call", &self.call).finish_non_exhaustive()
    }
}

impl Gateway {
    /// The data path of this gateway as one [`CloakroomLayer`] around a service of the
    /// application's. Name the calls with [`CloakroomLayer::naming`]; without it every
    /// request that is not routed by the gateway is 404 `not_found`.
    pub fn layer(&self) -> CloakroomLayer {
        let shared = &self.shared;
        let stack = shared.stack.load();
        let max_body = stack.config.server.max_body_bytes;
        CloakroomLayer {
            audit: AuditLayer::new(shared.audit.clone(), &stack.config.audit).on_seal(shared.metrics.on_seal()),
            identity: IdentityLayer::new(stack.authenticator.clone()),
            call: CallLayer::new(max_body).secret_scanner(crate::secrets::scanner(&shared.catalog)),
            policy: PolicyLayer::new(shared.policies.clone(), shared.approvals.clone()),
            detokenize: crate::gateway::detokenize_layer(
                &shared.catalog,
                &shared.inflight,
                &shared.approvals,
                max_body,
            ),
            mask: MaskLayer::new(shared.mask.clone()),
        }
    }
}

impl CloakroomLayer {
    /// Names each request's call with `name` (see [`CallLayer::naming`]): the function
    /// policy rules and secret bindings match, its detail, and optionally its arguments.
    /// `None` answers 404 `not_found`.
    pub fn naming<F>(mut self, name: F) -> Self
    where
        F: Fn(&http::request::Parts, &[u8]) -> Option<CallName> + Send + Sync + 'static,
    {
        self.call = self.call.naming(name);
        self
    }
}

/// The layers of [`CloakroomLayer`] in order, around `S`.
pub type Stack<S> = Audit<Authenticate<NameCall<Authorize<Detokenize<Mask<S>>>>>>;

impl<S> Layer<S> for CloakroomLayer {
    type Service = Cloakroom<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = self.mask.layer(inner);
        let inner = self.detokenize.layer(inner);
        let inner = self.policy.layer(inner);
        let inner = self.call.layer(inner);
        let inner = self.identity.layer(inner);
        Cloakroom { inner: self.audit.layer(inner) }
    }
}

/// The service of [`CloakroomLayer`]: the layers of [`Stack`], answers with a boxed body
/// and `Cloakroom-Call-Id`.
#[derive(Clone)]
pub struct Cloakroom<S> {
    inner: Stack<S>,
}

impl<S> fmt::Debug for Cloakroom<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cloakroom").finish_non_exhaustive()
    }
}

impl<S> Cloakroom<S> {
    /// The stack of layers.
    pub fn get_ref(&self) -> &Stack<S> {
        &self.inner
    }

    /// The stack of layers, mutably.
    pub fn get_mut(&mut self) -> &mut Stack<S> {
        &mut self.inner
    }

    /// The stack of layers.
    pub fn into_inner(self) -> Stack<S> {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Cloakroom<S>
where
    Stack<S>: Service<Request<B>, Response = Response<RB>>,
    <Stack<S> as Service<Request<B>>>::Future: Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = <Stack<S> as Service<Request<B>>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The audit layer would make one; made here so the answer can carry it.
        let call_id = *req.extensions_mut().get_or_insert_with(CallId::new);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if let Ok(v) = HeaderValue::from_str(&call_id.to_string()) {
                res.headers_mut().insert(CALL_ID_HEADER, v);
            }
            Ok(res.map(boxed))
        })
    }
}
