//! [`UpstreamBody`]: the upstream's body as the masker reads it — in the identity
//! coding, or the gate's refusal in its place.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use pin_project_lite::pin_project;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use cloakroom_core::limits::{DECODE_SLACK_BYTES, MAX_DECODE_RATIO};

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
    ///
    /// The decoded answer may grow to [`MAX_DECODE_RATIO`] bytes per compressed byte
    /// past [`DECODE_SLACK_BYTES`]; a bomb that expands further ends with an error.
    pub fn decoding(inner: B, codings: &[ContentCoding]) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let mut body = inner
            .map_frame(move |f| {
                f.map_data(|mut d| {
                    counter.fetch_add(d.remaining() as u64, Ordering::Relaxed);
                    d.copy_to_bytes(d.remaining())
                })
            })
            .map_err(Into::into)
            .boxed_unsync();
        for coding in codings.iter().rev() {
            body = DecodeBody::decoding(body, *coding).boxed_unsync();
        }
        let bounded = RatioBound { inner: body, received, decoded: 0 };
        Self { kind: Kind::Decoded { inner: bounded.boxed_unsync() } }
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

/// A decoded body that ends with an error once it has grown past
/// [`MAX_DECODE_RATIO`] × the compressed bytes received + [`DECODE_SLACK_BYTES`].
struct RatioBound {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    received: Arc<AtomicU64>,
    decoded: u64,
}

/// Why a decoded answer was cut (never quotes the upstream's bytes).
#[derive(Debug, thiserror::Error)]
#[error("the upstream's compressed answer expands more than {MAX_DECODE_RATIO}:1; it was cut")]
pub struct DecompressionBomb;

impl Body for RatioBound {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(d) = f.data_ref() {
                self.decoded += d.len() as u64;
                let allowed = self
                    .received
                    .load(Ordering::Relaxed)
                    .saturating_mul(MAX_DECODE_RATIO)
                    .saturating_add(DECODE_SLACK_BYTES);
                if self.decoded > allowed {
                    return Poll::Ready(Some(Err(Box::new(DecompressionBomb))));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    async fn decode_all(compressed: Bytes) -> Result<usize, BoxError> {
        let body = UpstreamBody::decoding(Full::new(compressed), &[ContentCoding::Gzip]);
        let mut body = std::pin::pin!(body);
        let mut n = 0;
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Some(d) = frame?.data_ref() {
                n += d.len();
            }
        }
        Ok(n)
    }

    #[tokio::test]
    async fn an_ordinary_compressed_answer_decodes_in_full() {
        let text = br#"{"items": [1, 2, 3], "name": "ordinary"}"#.repeat(10_000);
        assert_eq!(decode_all(gzip(&text)).await.unwrap(), text.len());
    }

    #[tokio::test]
    async fn a_decompression_bomb_is_cut_past_the_ratio() {
        // 64 MiB of zeros gzip to about 64 KiB: a ratio of about 1000:1.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!((bomb.len() as u64) * MAX_DECODE_RATIO + DECODE_SLACK_BYTES < zeros.len() as u64);
        let err = decode_all(bomb).await.unwrap_err();
        assert!(err.is::<DecompressionBomb>(), "{err}");
    }
}
