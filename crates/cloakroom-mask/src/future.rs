//! The response future of [`Mask`](crate::Mask).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use cloakroom_core::{AuditNote, CallId, Error, ErrorCode};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Body;
use pin_project_lite::pin_project;

use crate::decode::{BoxError, ContentCoding, DecodeBody};
use crate::{MaskBody, Matcher};

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
    type Output = Result<Response<MaskBody<DecodeBody<B>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let (mut parts, body) = res.into_parts();
        let matcher = this.matcher.clone();
        let note = this.note.take();

        let coding = match parts.headers.get(CONTENT_ENCODING) {
            None => Ok(None),
            Some(v) => ContentCoding::from_header(v),
        };
        let body = match coding {
            Ok(None) => DecodeBody::identity(body),
            Ok(Some(coding)) => {
                parts.headers.remove(CONTENT_ENCODING);
                parts.headers.remove(CONTENT_LENGTH);
                DecodeBody::decoding(body, coding)
            }
            Err(_unsupported) => {
                // Never pass on bytes the masker cannot read.
                let error = Error::new(
                    ErrorCode::UpstreamUnavailable,
                    "the upstream answered with a content encoding the gateway cannot decode, so the response could not be masked",
                );
                if let Some(note) = &note {
                    note.set_error(&error);
                }
                let (err_parts, err_body) = error.to_response(this.call_id.as_ref()).into_parts();
                parts = err_parts;
                DecodeBody::refused(err_body)
            }
        };
        let masked_headers = mask_headers(&matcher, &mut parts.headers);
        if masked_headers > 0 {
            if let Some(note) = &note {
                note.add_masked(masked_headers);
            }
        }
        if !matcher.is_empty() {
            parts.headers.remove(CONTENT_LENGTH);
        }
        let body = MaskBody::new(body, matcher).with_audit_note(note);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

/// Masks every header value in place; returns the number of replacements.
fn mask_headers(matcher: &Matcher, headers: &mut HeaderMap) -> u64 {
    if matcher.is_empty() {
        return 0;
    }
    let mut total = 0;
    for value in headers.values_mut() {
        let replaced = matcher.replace(value.as_bytes());
        let n = replaced.total();
        if n > 0 {
            total += n;
            *value =
                HeaderValue::from_bytes(&replaced.output).unwrap_or_else(|_| HeaderValue::from_static("[REDACTED]"));
        }
    }
    total
}
