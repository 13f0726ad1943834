//! The forwarder: the innermost service, sending the call to the function's upstream.
//!
//! It uses hyper-util's pooled client with a connect timeout and a response-head
//! timeout: a refused or unreachable upstream gives 502 `upstream_unavailable`, one that
//! does not answer in time 504 `upstream_timeout`. It removes hop-by-hop headers from
//! the request, replaces every `Cloakroom-*` header the caller sent with its own
//! `Cloakroom-Call-Id`, `Cloakroom-Subject` and, when the function may redeem for the
//! call, `Cloakroom-Redeem-Token` (docs/reference.md), sets `Host` to the upstream's
//! authority unless the function preserves the caller's, and never follows redirects
//! (a 3xx goes back to the caller, masked like any response; a `Location` at the
//! upstream's own URL is rewritten to the gateway route, see [`gateway_location`]).
//! The response goes back as hyper read it: the [`MaskLayer`](cloakroom_mask::MaskLayer)
//! around the forwarder is the one gate that checks and rebuilds its head (hop-by-hop
//! headers, transfer and content codings, status line) and masks it, so the forwarder
//! must not strip what that gate needs to see (a `Transfer-Encoding` it must refuse).
//! `https://` upstreams are offered HTTP/2 and HTTP/1.1 by ALPN. Dropping the response
//! future or body (the caller went away) drops the upstream request.

mod headers;
mod redirect;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Identity};
use http::{header, HeaderValue, Request, Response};
use http_body::Body;

pub use crate::{
    body::{boxed, error_response, GatewayBody},
    upstream::{TlsError, Upstream, UpstreamClient, UpstreamError},
};
pub use headers::{remove_cloakroom_headers, remove_hop_by_hop, CALL_ID_HEADER, SUBJECT_HEADER};
pub use redirect::gateway_location;

use crate::route::Routed;

pub(crate) use tower::BoxError;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends requests to the upstream of the function in their [`Routed`] extension.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: UpstreamClient,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Forwarder {
    /// A forwarder with `connect_timeout` for new connections and `timeout` for the
    /// upstream's response head. `https://` upstreams are verified against the public
    /// (webpki) roots.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Self {
        let client = UpstreamClient::public(connect_timeout);
        Self { client, connect_timeout, timeout }
    }

    /// A client like this forwarder's that also trusts the PEM CA certificates in the
    /// file at `ca_file` (for upstreams with a private CA).
    pub fn client_trusting(&self, ca_file: &std::path::Path) -> Result<UpstreamClient, TlsError> {
        UpstreamClient::trusting(self.connect_timeout, ca_file)
    }
}

impl<B> tower::Service<Request<B>> for Forwarder
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move { Ok(forward(client, timeout, req).await) })
    }
}

async fn forward<B>(client: UpstreamClient, timeout: Duration, req: Request<B>) -> Response<GatewayBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let call_id = req.extensions().get::<CallId>().copied();
    let note = req.extensions().get::<AuditNote>().cloned();
    let fail = |err: Error| {
        if let Some(note) = &note {
            note.set_error(&err);
        }
        error_response(&err, call_id.as_ref())
    };
    let Some(routed) = req.extensions().get::<Routed>().cloned() else {
        return fail(Error::new(ErrorCode::NotFound, "no function at this path"));
    };
    let subject = req.extensions().get::<Identity>().map(|i| i.subject.clone());
    let client = routed.function.client.clone().unwrap_or(client);
    let (mut parts, body) = req.into_parts();
    // The path and query as they are now: inner layers (the detokenizer) may have
    // rewritten the query since routing.
    let current = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let rest = current.strip_prefix(routed.function.config.route.as_str()).unwrap_or(&routed.rest);
    let uri = match routed.function.upstream.uri_for(rest) {
        Ok(uri) => uri,
        Err(_) => return fail(Error::new(ErrorCode::BadRequest, "the request path cannot be forwarded")),
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers);
    // The length may have changed (placeholders substituted); hyper sets it from the body.
    parts.headers.remove(header::CONTENT_LENGTH);
    remove_cloakroom_headers(&mut parts.headers);
    if !routed.function.config.preserve_host || !parts.headers.contains_key(header::HOST) {
        match HeaderValue::from_str(routed.function.upstream.authority().as_str()) {
            Ok(v) => {
                parts.headers.insert(header::HOST, v);
            }
            Err(_) => return fail(Error::new(ErrorCode::Internal, "upstream authority is not a valid Host")),
        }
    }
    if let Some(id) = call_id {
        if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
            parts.headers.insert(CALL_ID_HEADER, v);
        }
    }
    if let Some(subject) = subject {
        if let Ok(v) = HeaderValue::from_str(&subject) {
            parts.headers.insert(SUBJECT_HEADER, v);
        }
    }
    let redeem_token = parts.extensions.get::<cloakroom_vault::RedeemToken>().cloned();
    if let Some(token) = &redeem_token {
        if let Ok(mut v) = HeaderValue::from_str(token.expose()) {
            v.set_sensitive(true);
            parts.headers.insert(cloakroom_vault::REDEEM_TOKEN_HEADER, v);
        }
    }
    let upstream_req = Request::from_parts(parts, boxed(body));
    let started = Instant::now();
    let res = match tokio::time::timeout(timeout, client.request(upstream_req)).await {
        Err(_) => {
            return fail(Error::new(
                ErrorCode::UpstreamTimeout,
                format!("function {} did not answer within {}s", routed.function.name(), timeout.as_secs_f64()),
            ))
        }
        Ok(Err(e)) => {
            tracing::warn!(function = routed.function.name(), error = %e, "upstream request failed");
            return fail(Error::new(
                ErrorCode::UpstreamUnavailable,
                format!("function {} could not be reached", routed.function.name()),
            ));
        }
        Ok(Ok(res)) => res,
    };
    let elapsed = started.elapsed().as_millis() as u64;
    if let Some(note) = &note {
        note.set_upstream(res.status().as_u16(), elapsed);
    }
    let (mut parts, body) = res.into_parts();
    if let Some(token) = &redeem_token {
        // A function that reflects request headers must not hand the caller the call's
        // redemption credential (the body is the function's responsibility, docs/vault.md).
        let reflected: Vec<_> = parts
            .headers
            .iter()
            .filter(|(n, v)| {
                *n == cloakroom_vault::REDEEM_TOKEN_HEADER || contains(v.as_bytes(), token.expose().as_bytes())
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in reflected {
            parts.headers.remove(name);
        }
    }
    let location = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok());
    if let Some(rewritten) =
        location.and_then(|l| gateway_location(&routed.function.upstream, &routed.function.config.route, l))
    {
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            parts.headers.insert(header::LOCATION, v);
        }
    }
    Response::from_parts(parts, boxed(body))
}
