//! The response future of [`Mask`](crate::Mask): where every upstream response crosses
//! the gate (`head.rs`) before anything outside the layer sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use cloakroom_core::{AuditNote, CallId, Error, ErrorCode};
use http::header::CONTENT_LENGTH;
use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use crate::decode::BoxError;
use crate::head::{admit, MaskedWith};
use crate::{MaskBody, Matcher, UpstreamBody};

pin_project! {
    /// Future returned by [`Mask`](crate::Mask): the inner response, masked.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        matcher: Arc<Matcher>,
        note: Option<AuditNote>,
        call_id: Option<CallId>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, matcher: Arc<Matcher>, note: Option<AuditNote>, call_id: Option<CallId>) -> Self {
        Self { inner, matcher, note, call_id }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<MaskBody<UpstreamBody<B>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let (parts, body) = res.into_parts();
        let matcher = this.matcher.clone();
        let note = this.note.take();
        let (mut parts, body, event_stream) = match admit(parts, &matcher) {
            Ok(admitted) => {
                if admitted.masked > 0 {
                    if let Some(note) = &note {
                        note.add_masked(admitted.masked);
                    }
                }
                let body = if admitted.codings.is_empty() {
                    UpstreamBody::identity(body)
                } else {
                    UpstreamBody::decoding(body, &admitted.codings)
                };
                (admitted.parts, body, admitted.event_stream)
            }
            Err(refusal) => {
                // Never pass on what the masker cannot read; dropping `body` drops the
                // upstream exchange.
                drop(body);
                tracing::warn!(reason = %refusal, "upstream response refused");
                let error = Error::new(ErrorCode::UpstreamUnavailable, refusal.to_string());
                if let Some(note) = &note {
                    note.set_error(&error);
                }
                let (mut parts, body) = error.to_response(this.call_id.as_ref()).into_parts();
                parts.headers.remove(CONTENT_LENGTH);
                (parts, UpstreamBody::refused(body), false)
            }
        };
        parts.extensions.insert(MaskedWith(matcher.clone()));
        let body = MaskBody::new(body, matcher).event_stream(event_stream).with_audit_note(note);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}
