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
    /// The body of responses from [`crate::DetokenizeService`]: the layer's own refusal
    /// (`secret_not_bound`, `vault_unavailable`, …) or the inner service's body. While an
    /// inner body is alive its call stays registered as in flight (for redemption).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Error {
            #[pin]
            body: Full<Bytes>,
        },
        Inner {
            #[pin]
            body: B,
            guard: Option<InFlightGuard>,
        },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn error(body: Full<Bytes>) -> Self {
        Self { kind: Kind::Error { body } }
    }

    pub(crate) fn inner(body: B, guard: Option<InFlightGuard>) -> Self {
        Self { kind: Kind::Inner { body, guard } }
    }

    /// Whether this is a refusal made by the layer.
    pub fn is_refusal(&self) -> bool {
        matches!(self.kind, Kind::Error { .. })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Error { body } => body.poll_frame(cx).map(|f| f.map(|r| Ok(r.unwrap_or_else(|e| match e {})))),
            KindProj::Inner { body, guard } => {
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
        match &self.kind {
            Kind::Error { body } => body.is_end_stream(),
            Kind::Inner { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Error { body } => body.size_hint(),
            Kind::Inner { body, .. } => body.size_hint(),
        }
    }
}
