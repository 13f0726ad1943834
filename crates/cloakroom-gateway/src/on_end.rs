//! A body wrapper that runs a callback once, when the body ends, fails or is dropped.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Runs `on_end` exactly once: at the end of the stream, on its first error, or when
    /// dropped early (the caller went away).
    pub struct OnEnd<B, F: FnOnce()> {
        #[pin]
        inner: B,
        on_end: Option<F>,
    }

    impl<B, F: FnOnce()> PinnedDrop for OnEnd<B, F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().on_end.take() {
                f();
            }
        }
    }
}

impl<B, F: FnOnce()> OnEnd<B, F> {
    /// Wraps `inner`.
    pub fn new(inner: B, on_end: F) -> Self {
        Self { inner, on_end: Some(on_end) }
    }
}

impl<B: Body, F: FnOnce()> Body for OnEnd<B, F> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            if let Some(f) = this.on_end.take() {
                f();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // Never exact: with an exact length hyper stops polling once that many bytes are
        // written and drops the body before its end is seen, which would make every
        // complete response look like an aborted one to the audit layer inside.
        let mut hint = SizeHint::new();
        hint.set_lower(self.inner.size_hint().lower());
        hint
    }
}
