//! The forwarder: the innermost service, sending the call to the function's upstream.
//!
//! It uses hyper-util's pooled client with a connect timeout and a response-head
//! timeout: a refused or unreachable upstream gives 502 `upstream_unavailable`, one that
//! does not answer in time 504 `upstream_timeout`. It removes hop-by-hop headers from
//! the request, replaces every `Cloakroom-*` header the caller sent with its own
//! `Cloakroom-Call-Id`, `Cloakroom-Subject` and, when the function may redeem for the
//! call, `Cloakroom-Redeem-Token` (SPEC §5), sets `Host` to the upstream's
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
mod upstream;

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
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

pub use headers::{remove_cloakroom_headers, remove_hop_by_hop, CALL_ID_HEADER, SUBJECT_HEADER};
pub use redirect::gateway_location;
pub use upstream::{Upstream, UpstreamError};

use crate::route::Routed;

pub(crate) use tower::BoxError;

/// The response body the forwarder (and the composed gateway) answers with.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Turns a body of any type into a [`GatewayBody`].
pub fn boxed<B>(body: B) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An error response as a [`GatewayBody`] response.
pub fn error_response(err: &Error, call_id: Option<&CallId>) -> Response<GatewayBody> {
    err.to_response(call_id).map(boxed)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// hyper-util's pooled client over the forwarder's connector.
type PoolClient = Client<HttpsConnector<HttpConnector>, GatewayBody>;

/// The pooled HTTP/HTTPS client of the forwarder, with one connection pool per thread.
///
/// A pooled connection is driven by a task on the runtime that opened it. With one pool
/// shared by the [`ServingThreads`](crate::server::ServingThreads),
/// a call served on one thread would often be sent through a connection driven by
/// another, paying two cross-thread wake-ups per call; with a pool per thread each call
/// stays on its thread. Clones share the TLS configuration and the pools.
#[derive(Clone)]
pub struct UpstreamClient(std::sync::Arc<PerThread>);

struct PerThread {
    connector: HttpsConnector<HttpConnector>,
    pools: thread_local::ThreadLocal<PoolClient>,
}

impl UpstreamClient {
    fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Self(std::sync::Arc::new(PerThread { connector, pools: thread_local::ThreadLocal::new() }))
    }

    /// The client of the calling thread's pool, created on first use.
    fn here(&self) -> PoolClient {
        self.0
            .pools
            .get_or(|| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(self.0.connector.clone())
            })
            .clone()
    }
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient").finish_non_exhaustive()
    }
}

/// Why a TLS trust configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("CA file {0}: expected PEM certificates")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
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
        let client = build_client(connect_timeout, &[]).expect("the public roots always make a TLS configuration");
        Self { client, connect_timeout, timeout }
    }

    /// A client like this forwarder's that also trusts the PEM CA certificates in the
    /// file at `ca_file` (for upstreams with a private CA).
    pub fn client_trusting(&self, ca_file: &std::path::Path) -> Result<UpstreamClient, TlsError> {
        let pem =
            std::fs::read(ca_file).map_err(|source| TlsError::Read { path: ca_file.display().to_string(), source })?;
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::Pem(ca_file.display().to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::Pem(ca_file.display().to_string()));
        }
        build_client(self.connect_timeout, &certs)
    }
}

fn build_client(
    connect_timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<UpstreamClient, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| TlsError::Rustls(e.to_string()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        // ALPN offers h2 and http/1.1 on https upstreams; plain http stays HTTP/1.1.
        .enable_all_versions()
        .wrap_connector(connector);
    Ok(UpstreamClient::new(https))
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
    let res = match tokio::time::timeout(timeout, client.here().request(upstream_req)).await {
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
