//! [`ResponseBody`]: the inner response body, or the layer's own error reply.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::InFlightGuard;

pin_project! {
    /// The body of responses from [`crate::DetokenizeService`]. While an `Inner` body is
    /// alive its call stays registered as in flight (for redemption).
    #[project = BodyProj]
    pub enum ResponseBody<B> {
        /// A refusal made by the layer (`secret_not_bound`, `vault_unavailable`, …).
        Error {
            /// The JSON error body.
            #[pin]
            body: Full<Bytes>,
        },
        /// The inner service's body.
        Inner {
            /// The inner body.
            #[pin]
            body: B,
            /// Keeps the call registered as in flight.
            guard: Option<InFlightGuard>,
        },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn error(body: Full<Bytes>) -> Self {
        Self::Error { body }
    }

    pub(crate) fn inner(body: B, guard: Option<InFlightGuard>) -> Self {
        Self::Inner { body, guard }
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
            BodyProj::Error { body } => body.poll_frame(cx).map(|f| f.map(|r| Ok(r.unwrap_or_else(|e| match e {})))),
            BodyProj::Inner { body, guard } => {
                let polled = body.poll_frame(cx);
                if let Poll::Ready(None) = &polled {
                    // The response is complete: the call is no longer in flight.
                    guard.take();
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Error { body } => body.is_end_stream(),
            Self::Inner { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Error { body } => body.size_hint(),
            Self::Inner { body, .. } => body.size_hint(),
        }
    }
}
