//! The pooled HTTP/HTTPS client calls go upstream through.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client, ResponseFuture},
    rt::TokioExecutor,
};

use crate::body::GatewayBody;

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
    /// A client that verifies `https://` upstreams against the public (webpki) roots,
    /// with `connect_timeout` for new connections.
    pub fn public(connect_timeout: Duration) -> Self {
        build_client(connect_timeout, &[]).expect("the public roots always make a TLS configuration")
    }

    /// Like [`UpstreamClient::public`], also trusting the PEM CA certificates in the
    /// file at `ca_file` (for upstreams with a private CA).
    pub fn trusting(connect_timeout: Duration, ca_file: &std::path::Path) -> Result<Self, TlsError> {
        let pem =
            std::fs::read(ca_file).map_err(|source| TlsError::Read { path: ca_file.display().to_string(), source })?;
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::Pem(ca_file.display().to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::Pem(ca_file.display().to_string()));
        }
        build_client(connect_timeout, &certs)
    }

    fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Self(std::sync::Arc::new(PerThread { connector, pools: thread_local::ThreadLocal::new() }))
    }

    /// Sends `req` on the calling thread's pool, created on first use. The pool's client
    /// is borrowed: hyper's `request` clones what its future needs, and a second clone
    /// per call, of our own, cost ~0.5 % of cloakroomd's CPU in the profile.
    pub(crate) fn request(&self, req: http::Request<GatewayBody>) -> ResponseFuture {
        self.0
            .pools
            .get_or(|| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(self.0.connector.clone())
            })
            .request(req)
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
