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
//! - [`ServerProcess`]: a test's own server script (Python, Node) on a free port.
//!
//! Missing dependencies panic with a message saying how to get them: the README's test
//! command installs and starts everything, and a test never silently skips.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod oidc_issuer;
mod openbao;
mod otlp;
mod postgres_db;
mod server_process;
mod upstream;

pub use oidc_issuer::{unix_now, OidcIssuer, OidcTestKey, OIDC_TEST_AUDIENCE};
pub use openbao::OpenBao;
pub use otlp::{OtlpProtocol, OtlpReceiver, ReceivedSpan};
pub use postgres_db::PgDatabase;
pub use server_process::ServerProcess;
pub use upstream::{RecordedRequest, RecordingUpstream, Reply};

use std::net::{SocketAddr, TcpListener};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test server).
///
/// Never the same port twice in one test process: the kernel may hand a just-released
/// port out again, and two calls in a row (a gateway's listener and its admin listener)
/// then got the same one.
///
/// Never a port of the kernel's ephemeral range either
/// (`/proc/sys/net/ipv4/ip_local_port_range`), where it picks the local port of every
/// outgoing connection: a port taken from there (by binding port 0) was free when it was
/// taken and could be the local end of some client's connection by the time the server
/// meant for it bound it ("Address already in use", seen in CI). Below that range only
/// another explicit bind competes, so the port is drawn at random from the 16,384 ports
/// under it and checked by binding it.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive free ports, all reserved as [`free_port`] reserves one
/// (for a server that binds a second port next to the one it is given, as `bao server
/// -dev` binds its cluster listener on the port after its API's).
pub fn free_ports(n: u16) -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (low, _) = ephemeral_ports();
    let below = low.saturating_sub(16_384).max(1_024)..low.saturating_sub(n.saturating_sub(1));
    let mut rng = rand::thread_rng();
    for _ in 0..10_000 {
        let first = if below.is_empty() {
            // An ephemeral range that starts at the bottom leaves nothing under it.
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
        } else {
            rng.gen_range(below.clone())
        };
        let Some(ports) = first.checked_add(n).map(|end| first..end) else { continue };
        let free = ports.clone().all(|p| !given.contains(&p) && TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            given.extend(ports);
            return first;
        }
    }
    panic!("no {n} free port(s) on 127.0.0.1 in {below:?}");
}

/// The kernel's ephemeral port range (Linux's default where it cannot be read).
fn ephemeral_ports() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut ports = text.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
    match (ports.next(), ports.next()) {
        (Some(low), Some(high)) if low <= high => (low, high),
        _ => (32_768, 60_999),
    }
}

/// The last `n` lines of `text` (a log shown in a failing test's output).
pub fn last_lines(text: &str, n: usize) -> &str {
    match text.trim_end().rmatch_indices('\n').nth(n.saturating_sub(1)) {
        Some((i, _)) => &text[i + 1..],
        None => text,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() {
        let (low, high) = ephemeral_ports();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        for &port in &ports {
            assert!(!(low..=high).contains(&port), "{port} is in the ephemeral range {low}-{high}");
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{port}: {e}"));
        }
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        // Outgoing connections take their local ports from the ephemeral range, so a
        // client's connection cannot already hold a port handed out here.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let clients: Vec<_> =
            (0..50).map(|_| std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap()).collect();
        for client in &clients {
            let local = client.local_addr().unwrap().port();
            assert!((low..=high).contains(&local), "a client's local port {local} outside {low}-{high}");
        }
    }
}

#[cfg(test)]
mod last_lines_tests {
    use super::last_lines;

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb", 5), "a\nb");
        assert_eq!(last_lines("", 3), "");
    }
}
