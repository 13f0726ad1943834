//! Policies (rules, Biscuit Datalog, custom crates) and just-in-time approvals.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
