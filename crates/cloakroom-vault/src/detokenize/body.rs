//! [`ResponseBody`]: core's short-circuit body over [`InFlightBody`], the inner response
//! body that keeps its call registered as in flight (for redemption) while it is alive.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::InFlightGuard;

/// The body of responses from [`crate::Detokenize`]: the layer's own refusal
/// (`secret_not_bound`, `vault_unavailable`, …) or the inner service's body.
pub type ResponseBody<B> = cloakroom_core::ResponseBody<InFlightBody<B>>;

pin_project! {
    /// The inner service's body; while it is alive its call stays registered as in
    /// flight, so the function can still redeem the call's placeholders.
    pub struct InFlightBody<B> {
        #[pin]
        body: B,
        guard: Option<InFlightGuard>,
    }
}

impl<B> InFlightBody<B> {
    pub(crate) fn new(body: B, guard: Option<InFlightGuard>) -> Self {
        Self { body, guard }
    }
}

impl<B> Body for InFlightBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if let Poll::Ready(None) = &polled {
            // The response is complete: the call is no longer in flight.
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
