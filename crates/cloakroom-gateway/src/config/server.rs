//! The `[server]` table.

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use serde::Deserialize;

/// `[server]`: where the gateway and its admin API listen, and limits of the data path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gateway listens on for calls. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the admin API. Must differ from `listen`. Default `127.0.0.1:8081`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Directory of the embedded stores (vault, approvals, audit). Default `./cloakroom-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes; larger bodies get 413 `payload_too_large`
    /// before anything is forwarded. Default 10485760 (10 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// How long an upstream may take to answer with its response head, e.g. `"30s"`;
    /// beyond it the caller gets 504 `upstream_timeout`. Streaming response bodies (SSE)
    /// are not cut by it. Default `"30s"`.
    #[serde(default = "default_upstream_timeout", with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// How long connecting to an upstream may take, e.g. `"5s"`; a refused or timed-out
    /// connection gives 502 `upstream_unavailable`. Default `"5s"`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a shutdown (SIGTERM, Ctrl-C) waits for in-flight calls. Default `"30s"`.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Threads serving calls in `cloakroomd`, each running its own single-threaded
    /// runtime; a connection stays on the thread that accepted it, with all of its calls.
    /// `0`, the default, means one per CPU the process may use. The admin API and the
    /// background work (audit writer, renewals) run on one further thread.
    #[serde(default)]
    pub workers: usize,
    /// Most connections open at once, per listener (the admin listener has its own
    /// count). A connection beyond it is answered `503` (HTTP/1.1) and closed at once,
    /// before anything is read from it. Restart to change. Default 4096 (leave room for
    /// it under the process's open-file limit, `ulimit -n`).
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    /// Most connections open at once from one client address (the TCP peer: behind a
    /// proxy, the proxy), per listener; beyond it a connection is refused like one
    /// beyond `max_connections`. Restart to change. Default 256.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: NonZeroUsize,
    /// How long a client has to send a complete request head: counted from the accept
    /// for the first request of a connection (HTTP/1.1 and HTTP/2 alike), and for
    /// HTTP/1.1 from the end of the previous response. Beyond it the connection is
    /// closed (slowloris). Restart to change. Default `"10s"`.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no call in flight before it is closed.
    /// Restart to change. Default `"60s"`.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive, counted from its head, extended by
    /// one second for every `body_min_rate` bytes received. A body still arriving
    /// beyond it is refused with 400 `bad_request` and its connection closed (slow
    /// body). A reload applies it. Default `"30s"`.
    #[serde(default = "default_body_read_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// The slowest rate, in bytes per second, that extends `body_read_timeout`; `0`
    /// makes `body_read_timeout` a fixed limit. A reload applies it. Default 4096.
    #[serde(default = "default_body_min_rate")]
    pub body_min_rate: u64,
    /// Largest request head, in bytes: the request line and every header (HTTP/1.1),
    /// or the decoded header list (HTTP/2). Beyond it: 431 (HTTP/1.1), or the stream is
    /// refused (HTTP/2). Restart to change. Default 32768 (32 KiB).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: NonZeroU32,
    /// Most header fields in an HTTP/1.1 request; beyond it: 431. (HTTP/2 header lists
    /// are bounded by `max_header_bytes`.) Restart to change. Default 100.
    #[serde(default = "default_max_headers")]
    pub max_headers: NonZeroUsize,
    /// Most HTTP/2 streams a client may have open at once on one connection
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`). Restart to change. Default 100.
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: NonZeroU32,
    /// Most HTTP/2 streams a client may open and reset before the gateway has accepted
    /// them; beyond it the connection is closed with `GOAWAY` (the "rapid reset" attack,
    /// CVE-2023-44487). Restart to change. Default 20.
    #[serde(default = "default_http2_max_pending_accept_reset_streams")]
    pub http2_max_pending_accept_reset_streams: NonZeroUsize,
    /// Most HTTP/2 streams the gateway may reset because of a client's protocol errors
    /// before it closes the connection with `GOAWAY` (RUSTSEC-2024-0003). Restart to
    /// change. Default 256.
    #[serde(default = "default_http2_max_local_error_reset_streams")]
    pub http2_max_local_error_reset_streams: NonZeroUsize,
    /// Most calls served at once, per listener, over all connections. A call beyond it
    /// is answered at once with 503 `overloaded` (load shedding) rather than queued.
    /// Restart to change. Default 1024.
    #[serde(default = "default_max_concurrent_calls")]
    pub max_concurrent_calls: NonZeroUsize,
}

impl ServerConfig {
    /// The number of serving threads `workers` asks for: itself, or for `0` the CPUs
    /// this process may use (at least one).
    pub fn serving_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            data_dir: default_data_dir(),
            max_body_bytes: default_max_body_bytes(),
            upstream_timeout: default_upstream_timeout(),
            connect_timeout: default_connect_timeout(),
            shutdown_grace: default_shutdown_grace(),
            workers: 0,
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            body_read_timeout: default_body_read_timeout(),
            body_min_rate: default_body_min_rate(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            http2_max_concurrent_streams: default_http2_max_concurrent_streams(),
            http2_max_pending_accept_reset_streams: default_http2_max_pending_accept_reset_streams(),
            http2_max_local_error_reset_streams: default_http2_max_local_error_reset_streams(),
            max_concurrent_calls: default_max_concurrent_calls(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./cloakroom-data")
}
fn default_max_body_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(4096).expect("non-zero")
}
fn default_max_connections_per_ip() -> NonZeroUsize {
    NonZeroUsize::new(256).expect("non-zero")
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_min_rate() -> u64 {
    4096
}
fn default_max_header_bytes() -> NonZeroU32 {
    NonZeroU32::new(32 * 1024).expect("non-zero")
}
fn default_max_headers() -> NonZeroUsize {
    NonZeroUsize::new(100).expect("non-zero")
}
fn default_http2_max_concurrent_streams() -> NonZeroU32 {
    NonZeroU32::new(100).expect("non-zero")
}
fn default_http2_max_pending_accept_reset_streams() -> NonZeroUsize {
    NonZeroUsize::new(20).expect("non-zero")
}
fn default_http2_max_local_error_reset_streams() -> NonZeroUsize {
    NonZeroUsize::new(256).expect("non-zero")
}
fn default_max_concurrent_calls() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("non-zero")
}

/// The smallest `max_header_bytes`: hyper's smallest HTTP/1.1 read buffer.
pub const MIN_HEADER_BYTES: usize = 8192;
