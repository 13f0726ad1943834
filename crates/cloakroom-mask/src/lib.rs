//! The streaming masker: every known secret, in every common encoding, replaced as
//! bodies stream.
//!
//! Cloakroom hands callers placeholders instead of secrets; this crate makes sure a
//! secret that comes back in a response leaves as its placeholder. It is a streaming
//! leftmost-longest replace engine over bytes:
//!
//! - [`MaskEntry`]: (secret name, value as [`Secret`](cloakroom_core::Secret), replacement).
//! - [`Encoding`]: each value is also searched base64 and base64url (all three
//!   alignments, line breaks anywhere), hex (any case), and through the escape grammars
//!   of JSON strings, percent-encoding and HTML character references, in any mix of
//!   escapes ([`MaskOptions::encodings`], docs/masking.md "Escape grammars").
//! - [`Matcher`]: the compiled set (Aho-Corasick behind a sampled q-gram prefilter,
//!   see docs/masking.md). [`Matcher::replace`] masks a slice in one go and counts;
//!   [`Matcher::find_iter`] lists matches; [`Matcher::stream`] gives a
//!   [`StreamReplacer`] for bodies (push chunks, finish).
//! - [`MaskHandle`]: the current matcher behind `arc-swap`; the vault stores a new one on
//!   every secret change, readers never block.
//! - Built-in detectors for secrets the vault does not know (AWS, GitHub, Slack, Stripe,
//!   PEM private keys, JWTs) replace them by `[REDACTED:<kind>]`.
//! - [`MaskBody`] and [`MaskLayer`]: the tower middleware every upstream response
//!   crosses: its head rebuilt and masked (or refused), its body decoded
//!   (gzip/deflate/br/zstd) and masked as it streams (server-sent events as events),
//!   its trailers masked, the count recorded into the
//!   [`AuditNote`](cloakroom_core::AuditNote).
//! - [`MaskingConfig`]: the `[masking]` section of `cloakroom.toml`.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{MaskEntry, MaskHandle, MaskOptions, Matcher};
//!
//! let entries = vec![
//!     MaskEntry::new("stripe_key", Secret::from("sk_test_4eC39HqLyjWDarjtT1zdp7dc"), "cloak_stripe"),
//!     MaskEntry::new("db_password", Secret::from("correct horse battery"), "cloak_db"),
//! ];
//! let matcher = Matcher::build(entries, &MaskOptions::default()).unwrap();
//!
//! // One shot, with counts per secret name.
//! let replaced = matcher.replace(br#"{"url":"postgres://app:correct%20horse%20battery@db"}"#);
//! assert_eq!(replaced.output, br#"{"url":"postgres://app:cloak_db@db"}"#);
//! assert_eq!(replaced.counts["db_password"], 1);
//!
//! // Streaming: a secret split across chunks is still found.
//! let handle = MaskHandle::new(matcher);
//! let mut stream = handle.load().stream();
//! let mut body = Vec::new();
//! body.extend(stream.push(Bytes::from_static(b"Authorization: Bearer sk_test_4eC39Hq")).concat());
//! body.extend(stream.push(Bytes::from_static(b"LyjWDarjtT1zdp7dc\n")).concat());
//! body.extend(stream.finish().concat());
//! assert_eq!(body, b"Authorization: Bearer cloak_stripe\n");
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod body;
mod config;
mod decode;
mod detect;
mod encoding;
mod entry;
mod error;
mod event_stream;
mod future;
mod grammar;
mod handle;
mod head;
mod layer;
mod matcher;
#[doc(hidden)]
pub mod oracle;
mod prefilter;
mod service;
mod stream;
mod upstream_body;

pub use body::MaskBody;
pub use config::{Detectors, MaskingConfig, Replacement};
pub use decode::{ContentCoding, DecodeBody, UnsupportedCoding};
pub use detect::DETECTOR_KINDS;
pub use encoding::{Encoding, MIN_ENCODED_SECRET_LEN};
pub use entry::MaskEntry;
pub use error::MaskError;
pub use event_stream::{mask_event_stream, EventTooLong, MAX_EVENT_BYTES};
pub use future::ResponseFuture;
pub use handle::MaskHandle;
pub use head::{MaskedWith, Refusal};
pub use layer::MaskLayer;
#[doc(hidden)]
pub use matcher::{BuildTuning, MatcherMemory};
pub use matcher::{FindIter, MaskOptions, Matcher, Replaced, SecretMatch};
pub use service::Mask;
pub use stream::{Ready, StreamReplacer};
pub use upstream_body::{DecompressionBomb, UpstreamBody};
