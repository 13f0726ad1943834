//! The connection's peer address, as a request extension.

use std::net::SocketAddr;

/// The TCP peer address of the connection a request arrived on. The server that accepts
/// connections (the gateway, or an embedding axum service) inserts it into the request
/// extensions; the `IdentityLayer` reads it to set [`crate::Identity::source_ip`]
/// (believing `X-Forwarded-For` only from trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);
