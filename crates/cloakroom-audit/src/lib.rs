//! The tamper-evident audit record: hash chain, sinks, verify and replay.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
