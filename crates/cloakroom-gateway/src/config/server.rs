//! The `[server]` table.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
