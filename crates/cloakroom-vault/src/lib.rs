//! Placeholders, secret bindings, the embedded and OpenBao secret stores, and the detokenizer.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
