//! The tower layers composed into the Cloakroom gateway: configuration, routing, the
//! `CallLayer`, MCP handling, the forwarder, the server and the admin API.
//!
//! `cloakroomd` is a thin binary over this crate. docs/gateway.md describes the running
//! gateway, docs/mcp.md the MCP specifics.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod call;
pub mod config;
pub mod forward;
pub mod mcp;
pub mod route;
