//! The tower layers composed into the Cloakroom gateway: configuration, routing, the
//! `CallLayer`, MCP handling, the forwarder, the server and the admin API.
//!
//! `cloakroomd` is a thin binary over this crate. docs/gateway.md describes the running
//! gateway, docs/mcp.md the MCP specifics.
//!
//! An application embeds Cloakroom with [`Gateway::builder`] (or [`Gateway::start`]) and
//! [`Gateway::layer`] ([`CloakroomLayer`], the whole data path as one tower layer), and
//! serves the admin API with [`Gateway::admin_service`]; `examples/axum-embed` is a
//! whole application. The modules below are the pieces, for those who compose their own.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod body;
mod builder;
pub mod call;
pub mod config;
#[doc(hidden)]
pub mod dev;
#[doc(hidden)]
pub mod echo;
pub mod embed;
pub mod forward;
mod gateway;
pub mod json;
pub mod mcp;
pub mod metrics;
pub mod route;
mod secrets;
pub mod server;
pub mod telemetry;
pub mod upstream;

pub use builder::GatewayBuilder;
pub use config::{Config, ConfigError};
pub use embed::{Cloakroom, CloakroomLayer};
pub use gateway::{Gateway, GatewayError, GatewayService, RESOURCE_METADATA_PATH};
