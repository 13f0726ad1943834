//! Test support for Cloakroom's own tests: real components, not mocks.
//!
//! - [`OpenBao`]: a `bao server -dev` on a free loopback port, stopped on drop.
//! - [`PgDatabase`]: a throwaway PostgreSQL database, dropped on drop.
//! - [`OidcIssuer`]: an OIDC discovery + JWKS server on loopback, with [`OidcTestKey`]s
//!   that sign tokens, for identity tests and benches.
//! - [`RecordingUpstream`]: an HTTP server on loopback that records every request it
//!   receives, so a test can prove what did (or did not) reach a function.
//! - [`OtlpReceiver`]: an OTLP trace receiver (HTTP/protobuf or gRPC) on loopback that
//!   keeps every span and byte it is sent; `otlp-sink`, a binary over it, counts them.
//!
//! Missing dependencies panic with a message saying how to get them: the README's test
//! command installs and starts everything, and a test never silently skips.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod oidc_issuer;
mod openbao;
mod otlp;
mod postgres_db;
mod upstream;

pub use oidc_issuer::{unix_now, OidcIssuer, OidcTestKey, OIDC_TEST_AUDIENCE};
pub use openbao::OpenBao;
pub use otlp::{OtlpProtocol, OtlpReceiver, ReceivedSpan};
pub use postgres_db::PgDatabase;
pub use upstream::{RecordedRequest, RecordingUpstream, Reply};

use std::net::{SocketAddr, TcpListener};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test server).
///
/// Never the same port twice in one test process: the kernel may hand a just-released
/// port out again, and two calls in a row (a gateway's listener and its admin listener)
/// then got the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The workspace root (where `Cargo.lock` is), found from this crate's manifest dir.
pub fn workspace_root() -> std::path::PathBuf {
    let mut dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            panic!("workspace root not found above {}", env!("CARGO_MANIFEST_DIR"));
        }
    }
    dir
}

/// A random lowercase alphanumeric string of `n` characters (for names and tokens).
pub fn random_name(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}
