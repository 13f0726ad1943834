//! Credentials to verified identities: OIDC JWTs, Biscuit tokens and API keys, as a tower layer.
//!
//! Built by its own issue; see ../../../docs/ and SPEC §1.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
