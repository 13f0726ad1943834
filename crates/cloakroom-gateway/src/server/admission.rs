//! Admission of accepted connections: at most `max_connections` per listener, and at
//! most `max_connections_per_ip` from one client address, so one client cannot take
//! every place.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ConnectionLimits;

/// The places of one listener.
pub(super) struct Admission {
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    max_connections: usize,
    calls: usize,
    /// Whether the last connection was refused: only the first refusal of a run is
    /// logged as a warning, so a flood of connections does not flood the log as well.
    refusing: AtomicBool,
}

/// Open connections per client address.
struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's place; given back when dropped (when the connection has closed).
pub(super) struct Place {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy)]
enum Full {
    Listener,
    Address,
}

impl Admission {
    pub(super) fn new(limits: &ConnectionLimits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: Arc::new(PerIp { limit: limits.max_connections_per_ip, open: Mutex::new(HashMap::new()) }),
            max_connections: limits.max_connections,
            calls: limits.max_concurrent_calls,
            refusing: AtomicBool::new(false),
        }
    }

    /// `max_concurrent_calls` of the listener.
    pub(super) fn calls(&self) -> usize {
        self.calls
    }

    /// A place for the connection just accepted, or `None` when the listener, or the
    /// client's address, is full: then the client is told so (503, for HTTP/1.1 clients;
    /// best effort, never waiting) and the connection is closed before anything is read.
    pub(super) fn admit(&self, stream: &tokio::net::TcpStream, peer: SocketAddr) -> Option<Place> {
        match self.place(peer.ip()) {
            Ok(place) => {
                self.refusing.store(false, Ordering::Relaxed);
                Some(place)
            }
            Err(full) => {
                let limit = match full {
                    Full::Listener => "server.max_connections",
                    Full::Address => "server.max_connections_per_ip",
                };
                if !self.refusing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%peer, limit, max_connections = self.max_connections, "connection limit reached: refusing connections");
                } else {
                    tracing::debug!(%peer, limit, "connection refused");
                }
                let _ = stream.try_write(FULL_RESPONSE);
                None
            }
        }
    }

    fn place(&self, ip: IpAddr) -> Result<Place, Full> {
        {
            let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(ip).or_insert(0);
            if *n >= self.per_ip.limit {
                return Err(Full::Address);
            }
            *n += 1;
        }
        // From here the address count is taken: a Place (or the undo below) gives it back.
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(Place { _permit: permit, per_ip: self.per_ip.clone(), ip }),
            Err(_) => {
                let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = open.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        open.remove(&ip);
                    }
                }
                Err(Full::Listener)
            }
        }
    }
}

/// What a connection beyond the limits is sent before it is closed.
const FULL_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits { max_connections: total, max_connections_per_ip: per_ip, ..ConnectionLimits::default() }
    }

    #[test]
    fn one_address_gets_at_most_its_share_and_gives_it_back() {
        let a = Admission::new(&limits(10, 2));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let first = a.place(ip).unwrap();
        let _second = a.place(ip).unwrap();
        assert!(matches!(a.place(ip), Err(Full::Address)));
        assert!(a.place(other).is_ok(), "another address still gets in");
        drop(first);
        assert!(a.place(ip).is_ok(), "a closed connection gives its place back");
    }

    #[test]
    fn the_listener_limit_counts_every_address() {
        let a = Admission::new(&limits(2, 2));
        let _x = a.place([10, 0, 0, 1].into()).unwrap();
        let _y = a.place([10, 0, 0, 2].into()).unwrap();
        assert!(matches!(a.place([10, 0, 0, 3].into()), Err(Full::Listener)));
        // The refused address holds no count.
        assert!(a.per_ip.open.lock().unwrap().get(&[10, 0, 0, 3].into()).is_none());
    }
}
