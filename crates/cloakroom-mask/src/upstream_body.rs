//! [`UpstreamBody`]: the upstream's body as the masker reads it — in the identity
//! coding, or the gate's refusal in its place.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use pin_project_lite::pin_project;

use crate::decode::{BoxError, ContentCoding, DecodeBody};

pin_project! {
    /// The body behind a [`MaskBody`](crate::MaskBody) in a [`Mask`](crate::Mask)
    /// response: the upstream's bytes as they came, the upstream's bytes with every
    /// content coding undone, or the refusal that replaced them.
    pub struct UpstreamBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Identity { #[pin] inner: B },
        Decoded { inner: UnsyncBoxBody<Bytes, BoxError> },
        Refused { body: Full<Bytes> },
    }
}

impl<B> std::fmt::Debug for UpstreamBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Identity { .. } => "UpstreamBody::Identity",
            Kind::Decoded { .. } => "UpstreamBody::Decoded",
            Kind::Refused { .. } => "UpstreamBody::Refused",
        })
    }
}

impl<B> UpstreamBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// `inner` as it is.
    pub fn identity(inner: B) -> Self {
        Self { kind: Kind::Identity { inner } }
    }

    /// `inner` with `codings` (in the order the upstream applied them) undone.
    pub fn decoding(inner: B, codings: &[ContentCoding]) -> Self {
        let mut body =
            inner.map_frame(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))).map_err(Into::into).boxed_unsync();
        for coding in codings.iter().rev() {
            body = DecodeBody::decoding(body, *coding).boxed_unsync();
        }
        Self { kind: Kind::Decoded { inner: body } }
    }

    /// A refusal's body, in place of the upstream's.
    pub fn refused(body: Full<Bytes>) -> Self {
        Self { kind: Kind::Refused { body } }
    }
}

impl<B> Body for UpstreamBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Identity { inner } => match ready!(inner.poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))))),
                Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                None => Poll::Ready(None),
            },
            KindProj::Decoded { inner } => Pin::new(inner).poll_frame(cx),
            KindProj::Refused { body } => match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(Err(never)) => match never {},
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Identity { inner } => inner.is_end_stream(),
            Kind::Decoded { inner } => inner.is_end_stream(),
            Kind::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Identity { inner } => inner.size_hint(),
            Kind::Decoded { inner } => inner.size_hint(),
            Kind::Refused { body } => body.size_hint(),
        }
    }
}
