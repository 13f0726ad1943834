//! [`GatewayService`]: the gateway listener's service — the one normalization of the
//! request target, routing, the call id, and the data path of the configuration in force.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Protocol};
use cloakroom_identity::ResourceMetadata;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::ServiceExt;

use super::{Gateway, Stack, RESOURCE_METADATA_PATH};
use crate::{
    body::{boxed, error_response, GatewayBody},
    route::{normalize_target, RefusedTarget, Routed, TargetError},
};

/// The service of the gateway listener: routes, adds the call id and audit note, runs
/// the data path and counts the call.
#[derive(Clone)]
pub struct GatewayService {
    gateway: Gateway,
    peer: Option<std::net::SocketAddr>,
}

impl GatewayService {
    pub(super) fn new(gateway: Gateway, peer: Option<std::net::SocketAddr>) -> Self {
        Self { gateway, peer }
    }
}

impl std::fmt::Debug for GatewayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayService").field("peer", &self.peer).finish()
    }
}

impl tower::Service<Request<hyper::body::Incoming>> for GatewayService {
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<hyper::body::Incoming>) -> Self::Future {
        let stack = self.gateway.shared.stack.load_full();
        // The one normalization of the target (route::normalize): from here on routing,
        // the layers, the audit record and the upstream see only the canonical one.
        let target = normalize_target(req.uri().path(), req.uri().query());
        let target = match target.and_then(|pq| {
            // Scheme and authority (HTTP/2, absolute form) stay as they were.
            let mut uri = http::Uri::builder();
            if let (Some(scheme), Some(authority)) = (req.uri().scheme(), req.uri().authority()) {
                uri = uri.scheme(scheme.clone()).authority(authority.clone());
            }
            uri.path_and_query(pq.as_str()).build().map(|uri| (pq, uri)).map_err(|_| TargetError::BadEscape)
        }) {
            Ok((pq, uri)) => {
                *req.uri_mut() = uri;
                Some(pq)
            }
            Err(e) => {
                req.extensions_mut().insert(RefusedTarget(e));
                None
            }
        };
        let path = req.uri().path().to_owned();
        if let Some(resource) = path.strip_prefix(RESOURCE_METADATA_PATH).filter(|_| target.is_some()) {
            let res = resource_metadata(&stack, &req, resource);
            return Box::pin(async move { Ok(res) });
        }
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(cloakroom_core::ClientAddr(peer));
        }
        let call_id = CallId::new();
        let note = AuditNote::new(call_id);
        req.extensions_mut().insert(call_id);
        req.extensions_mut().insert(note.clone());
        if let Some((f, rest)) = target.as_deref().and_then(|pq| stack.routes.find(pq)) {
            if f.protocol() == Protocol::Mcp {
                if let Some(url) = metadata_url(&req, &f.config.route) {
                    req.extensions_mut().insert(ResourceMetadata(url));
                }
            }
            let routed = Routed { function: f.clone(), rest: rest.to_owned() };
            req.extensions_mut().insert(routed);
        }
        let service = stack.service.clone();
        Box::pin(async move {
            let res = service.oneshot(req).await.unwrap_or_else(|e| match e {});
            let (mut parts, body) = res.into_parts();
            if let Ok(v) = HeaderValue::from_str(&call_id.to_string()) {
                parts.headers.insert(crate::forward::CALL_ID_HEADER, v);
            }
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// `http://<host>/.well-known/oauth-protected-resource<route>` for the request's host.
fn metadata_url<B>(req: &Request<B>, route: &str) -> Option<String> {
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    if host.is_empty() || host.contains(['/', ' ', '"', '\\']) {
        return None;
    }
    Some(format!("http://{host}{RESOURCE_METADATA_PATH}{route}"))
}

/// RFC 9728 metadata for the MCP function whose route is `resource`.
fn resource_metadata<B>(stack: &Stack, req: &Request<B>, resource: &str) -> Response<GatewayBody> {
    let not_found = || error_response(&Error::new(ErrorCode::NotFound, "no protected resource at this path"), None);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return not_found();
    }
    let Some((f, rest)) = stack.routes.find(resource) else { return not_found() };
    if f.protocol() != Protocol::Mcp || !rest.is_empty() {
        return not_found();
    }
    let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) else { return not_found() };
    let issuers: Vec<&str> = stack.config.identity.oidc.iter().map(|o| o.issuer.as_str()).collect();
    let doc = serde_json::json!({
        "resource": format!("http://{host}{}", f.config.route),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": f.name(),
    });
    let mut res = Response::new(boxed(Full::new(Bytes::from(doc.to_string()))));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *res.status_mut() = StatusCode::OK;
    res
}
