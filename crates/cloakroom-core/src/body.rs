//! [`ResponseBody`]: the one short-circuit body every Cloakroom layer answers with — the
//! inner service's body, or the layer's own refusal (a JSON error, a `202` pending
//! approval) — as tower-http's layers do (`ResponseBody::{PayloadTooLarge, Body}`).
//!
//! ```
//! use bytes::Bytes;
//! use cloakroom_core::{Error, ErrorCode, ResponseBody};
//! use http_body_util::{Empty, Full};
//!
//! let refused: ResponseBody<Empty<Bytes>> =
//!     ResponseBody::refused(Full::new(Bytes::from_static(b"{\"error\":{}}")));
//! assert!(refused.is_refusal());
//! let passed = ResponseBody::inner(Empty::<Bytes>::new());
//! assert!(!passed.is_refusal());
//! # let _ = Error::new(ErrorCode::Forbidden, "x");
//! ```

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's body, or a layer's own short answer.
    #[project = ResponseBodyProj]
    // pin-project-lite takes no docs on enum fields; each variant is documented.
    #[allow(missing_docs)]
    pub enum ResponseBody<B> {
        /// An answer the layer made itself (a refusal, a pending approval).
        Refused { #[pin] body: Full<Bytes> },
        /// The inner service's body.
        Inner { #[pin] body: B },
    }
}

impl<B> ResponseBody<B> {
    /// The layer's own answer.
    pub fn refused(body: Full<Bytes>) -> Self {
        Self::Refused { body }
    }

    /// The inner service's body.
    pub fn inner(body: B) -> Self {
        Self::Inner { body }
    }

    /// Whether this is the layer's own answer.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            ResponseBodyProj::Refused { body } => body.poll_frame(cx).map_err(|never| match never {}),
            ResponseBodyProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Refused { body } => body.is_end_stream(),
            Self::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Refused { body } => body.size_hint(),
            Self::Inner { body } => body.size_hint(),
        }
    }
}
