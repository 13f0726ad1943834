//! Slack approvals: the interactions endpoint (docs/policy.md).

use std::net::SocketAddr;

use cloakroom_core::Error;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::respond::not_found;
use crate::{forward::GatewayBody, Gateway};

/// `/v1/slack/…`; `segments` is the path after it.
pub(super) async fn handle(
    _gateway: &Gateway,
    _peer: Option<SocketAddr>,
    _req: Request<Incoming>,
    _method: &Method,
    _segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    Err(not_found())
}
