//! Hop-by-hop headers and the headers the gateway adds upstream.

use http::{header, HeaderMap, HeaderName};

/// The call id header sent upstream.
pub const CALL_ID_HEADER: HeaderName = HeaderName::from_static("cloakroom-call-id");
/// The caller's subject, sent upstream.
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("cloakroom-subject");

const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes every `Cloakroom-*` header: on the way upstream these are the gateway's to
/// write (`Cloakroom-Call-Id`, `Cloakroom-Subject`, `Cloakroom-Redeem-Token`), so any a
/// caller sent — a forged redemption token or subject, `Cloakroom-Approval` — goes.
pub fn remove_cloakroom_headers(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> = headers.keys().filter(|n| n.as_str().starts_with("cloakroom-")).cloned().collect();
    for name in ours {
        headers.remove(name);
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including every header the
/// `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloakroom_header_goes() {
        let mut h = HeaderMap::new();
        for n in
            ["cloakroom-redeem-token", "Cloakroom-Subject", "cloakroom-call-id", "cloakroom-approval", "cloakroom-x"]
        {
            h.append(n, "forged".parse().unwrap());
        }
        h.append("cloakroom-redeem-token", "twice".parse().unwrap());
        h.insert("x-cloakroom-kept", "1".parse().unwrap());
        remove_cloakroom_headers(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-cloakroom-kept"]);
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("proxy-authorization", "Bearer x".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
