//! The tower layers composed into the Cloakroom gateway: config, forwarding, MCP, admin API.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
