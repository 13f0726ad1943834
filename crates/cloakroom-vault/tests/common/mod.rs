//! Shared test support: a real forwarder to a real upstream, and request builders.
#![allow(dead_code, unreachable_pub)]

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use cloakroom_core::{AuditNote, AuthMethod, Call, CallId, Identity, Protocol};
use cloakroom_vault::{Detokenize, DetokenizeLayer};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{service_fn, Layer, ServiceExt};

pub type Forward = tower::util::BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

/// A minimal forwarder: sends the (detokenized) request to `upstream` with a hyper client
/// and buffers the answer. 502 when the upstream cannot be reached.
pub fn forwarder(upstream: String) -> Forward {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let client = Arc::new(client);
    tower::util::BoxCloneService::new(service_fn(move |req: Request<Full<Bytes>>| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            let pq = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
            parts.uri = format!("{upstream}{pq}").parse().unwrap();
            let res = match client.request(Request::from_parts(parts, body)).await {
                Ok(r) => r,
                Err(_) => {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"upstream down")));
                    *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                    return Ok(r);
                }
            };
            let (parts, body) = res.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Ok::<_, Infallible>(Response::from_parts(parts, Full::new(bytes)))
        }
    }))
}

/// The layer around the forwarder.
pub fn gateway(layer: &DetokenizeLayer, upstream: String) -> Detokenize<Forward> {
    layer.layer(forwarder(upstream))
}

pub fn identity(groups: &[&str]) -> Identity {
    Identity::new("alice".into(), "api_key".into(), AuthMethod::ApiKey)
        .with_groups(groups.iter().map(|g| g.to_string()).collect())
}

pub fn call(function: &str) -> Call {
    Call::new(function.into(), Protocol::Http)
        .with_arguments(serde_json::Value::Null)
        .with_method("POST".into())
        .with_digest(String::new())
}

/// Puts the extensions outer layers would have put: call id, audit note, identity, call.
pub fn with_context<B>(mut req: Request<B>, function: &str, groups: &[&str]) -> (Request<B>, AuditNote, CallId) {
    let id = CallId::new();
    let note = AuditNote::new(id);
    req.extensions_mut().insert(id);
    req.extensions_mut().insert(note.clone());
    req.extensions_mut().insert(identity(groups));
    req.extensions_mut().insert(call(function));
    (req, note, id)
}

/// Sends through the service and returns status, body.
pub async fn send<B>(svc: &Detokenize<Forward>, req: Request<B>) -> (u16, serde_json::Value)
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}
