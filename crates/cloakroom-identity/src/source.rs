//! The caller's source address: the connection's peer, or what a trusted proxy says.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The name of the header proxies append the client address to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Decides the source address of a request.
///
/// `X-Forwarded-For` is believed only when the connection's peer is in one of the
/// trusted networks. Then the list is read from the right (each proxy appends the
/// address it saw) and the first address that is not itself a trusted proxy is the
/// caller: addresses to its left were written by the caller and prove nothing. When
/// every hop is trusted the left-most one is taken; an unreadable entry stops the walk
/// at the last address a trusted proxy vouched for.
///
/// ```
/// use cloakroom_identity::SourceAddress;
/// use http::HeaderMap;
///
/// let source = SourceAddress::new(vec!["10.0.0.0/8".parse().unwrap()]);
/// let mut h = HeaderMap::new();
/// h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
/// let peer = "10.0.0.1:4242".parse().unwrap();
/// assert_eq!(source.resolve(&h, Some(peer)), Some("203.0.113.7".parse().unwrap()));
/// let untrusted = "198.51.100.9:4242".parse().unwrap();
/// assert_eq!(source.resolve(&h, Some(untrusted)), Some("198.51.100.9".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SourceAddress {
    trusted: Vec<IpNet>,
}

impl SourceAddress {
    /// Believes `X-Forwarded-For` from peers in `trusted_proxies`.
    pub fn new(trusted_proxies: Vec<IpNet>) -> Self {
        Self { trusted: trusted_proxies }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The source address for a request from `peer` with `headers`.
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(value) = value.to_str() else {
                // Unreadable header: believe nothing beyond the trusted peer.
                return Some(peer);
            };
            hops.extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
        let mut current = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { return Some(current) };
            current = canonical(ip);
            if !self.is_trusted(current) {
                return Some(current);
            }
        }
        Some(current)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip())
        .or_else(|| hop.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in v {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn source() -> SourceAddress {
        SourceAddress::new(vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()])
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn untrusted_peer_is_the_source_whatever_it_claims() {
        let peer = "192.0.2.1:1".parse().ok();
        assert_eq!(source().resolve(&xff(&["10.0.0.5"]), peer), ip("192.0.2.1"));
    }

    #[test]
    fn trusted_peer_right_most_untrusted_hop_wins() {
        let peer = "10.1.1.1:1".parse().ok();
        assert_eq!(source().resolve(&xff(&["1.1.1.1", "2.2.2.2, 10.9.9.9"]), peer), ip("2.2.2.2"));
        assert_eq!(source().resolve(&xff(&["10.2.2.2, 10.3.3.3"]), peer), ip("10.2.2.2"));
        assert_eq!(source().resolve(&HeaderMap::new(), peer), ip("10.1.1.1"));
        assert_eq!(source().resolve(&xff(&["1.1.1.1, garbage, 10.3.3.3"]), peer), ip("10.3.3.3"));
        assert_eq!(source().resolve(&xff(&["[2001:db8::1]:443"]), peer), ip("2001:db8::1"));
        assert_eq!(source().resolve(&xff(&["203.0.113.1:8080"]), peer), ip("203.0.113.1"));
    }

    #[test]
    fn mapped_ipv4_peer_and_no_peer() {
        let peer = "[::ffff:10.0.0.1]:1".parse().ok();
        assert_eq!(source().resolve(&xff(&["198.51.100.1"]), peer), ip("198.51.100.1"));
        assert_eq!(source().resolve(&xff(&["198.51.100.1"]), None), None);
    }
}
