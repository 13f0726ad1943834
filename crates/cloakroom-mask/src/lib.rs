//! The streaming masker: every known secret, in every common encoding, replaced as bodies stream.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
