//! [`MaskLayer`]: masks every response (headers and streamed body) with the current
//! matcher of a [`MaskHandle`].
//!
//! What it does, per call:
//! - removes `Accept-Encoding`, `Range`, `If-Range` and `Request-Range` from the request,
//!   so the upstream answers whole representations in the identity encoding;
//! - loads the current matcher once (a swap during a long stream does not affect it);
//! - passes the response head through the gate (`head.rs`, docs/masking.md "Invariant:
//!   every upstream byte"): the status without its reason phrase, every value of every
//!   header masked (a value that is no longer valid after masking becomes `[REDACTED]`,
//!   a header whose name holds a secret is dropped), hop-by-hop headers dropped, and
//!   `502 upstream_unavailable` for a final 1xx, a `206`, a transfer coding other than
//!   `chunked`, or a content coding it cannot undo — never the unmasked bytes;
//! - decodes every `Content-Encoding` coding (gzip, deflate, br, zstd) and drops the
//!   header;
//! - removes `Content-Length` (masking changes the length) and wraps the body in a
//!   [`MaskBody`](crate::MaskBody), reading a `text/event-stream` event by event;
//! - puts [`MaskedWith`](crate::MaskedWith) in the response extensions;
//! - adds the number of replacements to the [`AuditNote`](cloakroom_core::AuditNote) in
//!   the request extensions, if there is one, and records a refusal as its error.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{MaskEntry, MaskHandle, MaskLayer, MaskOptions, Matcher};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let handle = MaskHandle::new(
//!     Matcher::build([MaskEntry::new("k", Secret::from("hunter2hunter2"), "cloak_k")], &MaskOptions::default())
//!         .unwrap(),
//! );
//! let svc = ServiceBuilder::new().layer(MaskLayer::new(handle)).service(service_fn(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(b"pw=hunter2hunter2"))))
//! }));
//! let res = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "pw=cloak_k");
//! # });
//! ```

use tower::Layer;

use crate::{Mask, MaskHandle};

/// Layer that applies [`Mask`] to a service.
#[derive(Debug, Clone)]
pub struct MaskLayer {
    handle: MaskHandle,
}

impl MaskLayer {
    /// Masks responses with whatever matcher `handle` holds when each response arrives.
    pub fn new(handle: MaskHandle) -> Self {
        Self { handle }
    }
}

impl<S> Layer<S> for MaskLayer {
    type Service = Mask<S>;

    fn layer(&self, inner: S) -> Mask<S> {
        Mask::new(inner, self.handle.clone())
    }
}
