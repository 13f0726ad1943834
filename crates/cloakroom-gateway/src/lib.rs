//! The tower layers composed into the Cloakroom gateway: configuration, routing, the
//! `CallLayer`, MCP handling, the forwarder, the server and the admin API.
//!
//! `cloakroomd` is a thin binary over this crate. docs/gateway.md describes the running
//! gateway, docs/mcp.md the MCP specifics.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod body;
pub mod builder;
pub mod call;
pub mod config;
pub mod dev;
pub mod echo;
pub mod embed;
pub mod forward;
pub mod gateway;
pub mod json;
pub mod mcp;
pub mod metrics;
pub mod route;
pub mod secrets;
pub mod server;
pub mod upstream;

pub use builder::GatewayBuilder;
pub use config::{Config, ConfigError};
pub use embed::{Cloakroom, CloakroomLayer};
pub use gateway::{Gateway, GatewayError, GatewayService};
