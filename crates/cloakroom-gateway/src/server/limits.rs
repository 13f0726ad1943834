//! The limits a listener puts on its connections and calls (`[server]`), and the hyper
//! connection builder that enforces the protocol-level ones.

use std::time::Duration;

use hyper_util::{
    rt::{TokioExecutor, TokioTimer},
    server::conn::auto,
};

use crate::config::ServerConfig;

/// What one listener allows its clients: how many connections and calls at once, how
/// long a request head may take, how long a connection may idle, how large a head may
/// be, and the HTTP/2 stream limits. Built from `[server]`; the [`Default`] is the
/// default `[server]`, safe to face hostile clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; beyond it a connection is answered 503 and closed.
    pub max_connections: usize,
    /// Most connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// Time to send a complete request head (from the accept for a connection's first
    /// request; for HTTP/1.1 also from the end of the previous response).
    pub header_read_timeout: Duration,
    /// Time a connection may stay open with no call in flight.
    pub idle_timeout: Duration,
    /// Largest request head in bytes (HTTP/1.1 head; HTTP/2 decoded header list).
    pub max_header_bytes: u32,
    /// Most header fields in an HTTP/1.1 request.
    pub max_headers: usize,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before being accepted, before `GOAWAY`.
    pub http2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams reset by the gateway for protocol errors, before `GOAWAY`.
    pub http2_max_local_error_reset_streams: usize,
    /// Most calls served at once over all the listener's connections; beyond it a call
    /// is answered 503 `overloaded` at once.
    pub max_concurrent_calls: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from(&ServerConfig::default())
    }
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(s: &ServerConfig) -> Self {
        Self {
            max_connections: s.max_connections.get(),
            max_connections_per_ip: s.max_connections_per_ip.get(),
            header_read_timeout: s.header_read_timeout,
            idle_timeout: s.idle_timeout,
            max_header_bytes: s.max_header_bytes.get(),
            max_headers: s.max_headers.get(),
            http2_max_concurrent_streams: s.http2_max_concurrent_streams.get(),
            http2_max_pending_accept_reset_streams: s.http2_max_pending_accept_reset_streams.get(),
            http2_max_local_error_reset_streams: s.http2_max_local_error_reset_streams.get(),
            max_concurrent_calls: s.max_concurrent_calls.get(),
        }
    }
}

pub use crate::config::MIN_HEADER_BYTES;

impl ConnectionLimits {
    /// An HTTP/1.1 + h2c connection builder enforcing the protocol-level limits with
    /// hyper's own knobs.
    pub(super) fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            // The read buffer bounds the head (431 beyond it) and what one connection
            // buffers of a body; hyper refuses less than 8 KiB (so does the config).
            .max_buf_size((self.max_header_bytes as usize).max(MIN_HEADER_BYTES))
            .max_headers(self.max_headers);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.max_header_bytes)
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(self.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.http2_max_local_error_reset_streams);
        builder
    }
}
