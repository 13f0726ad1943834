//! Undoing a response's `Content-Encoding` so the masker never sees compressed bytes.
//!
//! The [`MaskLayer`](crate::MaskLayer) removes `Accept-Encoding` from requests, so a
//! well-behaved upstream answers in the identity encoding. One that compresses anyway
//! (gzip, deflate, br, zstd) is decoded here before masking; any other coding is refused
//! rather than passed on unmasked.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::TryStreamExt;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyDataStream, Full};
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio_util::io::{poll_read_buf, StreamReader};

/// A boxed error, as tower-http bodies use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const READ_CHUNK: usize = 64 * 1024;

/// A `Content-Encoding` the layer can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    /// `gzip` (and `x-gzip`).
    Gzip,
    /// `deflate` (zlib-wrapped, as HTTP specifies).
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl ContentCoding {
    /// Reads a `Content-Encoding` header value: `Ok(None)` for identity, `Err` for a
    /// coding (or a list of codings) this crate cannot undo.
    pub fn from_header(value: &HeaderValue) -> Result<Option<Self>, UnsupportedCoding> {
        let v = value.to_str().map_err(|_| UnsupportedCoding)?.trim().to_ascii_lowercase();
        match v.as_str() {
            "" | "identity" => Ok(None),
            "gzip" | "x-gzip" => Ok(Some(Self::Gzip)),
            "deflate" => Ok(Some(Self::Deflate)),
            "br" => Ok(Some(Self::Brotli)),
            "zstd" => Ok(Some(Self::Zstd)),
            _ => Err(UnsupportedCoding),
        }
    }
}

/// A `Content-Encoding` that cannot be undone (unknown, or several codings stacked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported content encoding")]
pub struct UnsupportedCoding;

pin_project! {
    /// A response body in the identity encoding: passed through, decoded, or (for a
    /// coding that cannot be undone) replaced by an error body.
    pub struct DecodeBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Identity { #[pin] inner: B },
        Decoding { reader: Pin<Box<dyn AsyncRead + Send>>, buf: BytesMut, done: bool },
        Refused { #[pin] body: Full<Bytes> },
    }
}

impl<B> fmt::Debug for DecodeBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Identity { .. } => "DecodeBody::Identity",
            Kind::Decoding { .. } => "DecodeBody::Decoding",
            Kind::Refused { .. } => "DecodeBody::Refused",
        })
    }
}

impl<B> DecodeBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Passes `inner` through.
    pub fn identity(inner: B) -> Self {
        Self { kind: Kind::Identity { inner } }
    }

    /// Decodes `inner` from `coding`.
    pub fn decoding(inner: B, coding: ContentCoding) -> Self {
        let stream = BodyDataStream::new(Box::pin(inner))
            .map_ok(|mut d| d.copy_to_bytes(d.remaining()))
            .map_err(|e| io::Error::other(e.into()));
        let reader = StreamReader::new(stream);
        let reader: Pin<Box<dyn AsyncRead + Send>> = match coding {
            ContentCoding::Gzip => {
                let mut d = GzipDecoder::new(reader);
                d.multiple_members(true);
                Box::pin(d)
            }
            ContentCoding::Deflate => Box::pin(ZlibDecoder::new(reader)),
            ContentCoding::Brotli => Box::pin(BrotliDecoder::new(reader)),
            ContentCoding::Zstd => Box::pin(ZstdDecoder::new(reader)),
        };
        Self { kind: Kind::Decoding { reader, buf: BytesMut::new(), done: false } }
    }

    /// An error reply in place of a body that cannot be decoded.
    pub fn refused(body: Full<Bytes>) -> Self {
        Self { kind: Kind::Refused { body } }
    }
}

impl<B> Body for DecodeBody<B>
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
            KindProj::Decoding { reader, buf, done } => {
                if *done {
                    return Poll::Ready(None);
                }
                buf.reserve(READ_CHUNK);
                match ready!(poll_read_buf(reader.as_mut(), cx, buf)) {
                    Ok(0) => {
                        *done = true;
                        Poll::Ready(None)
                    }
                    Ok(_) => Poll::Ready(Some(Ok(Frame::data(buf.split().freeze())))),
                    Err(e) => {
                        *done = true;
                        // Hand back the inner body's own error when that is what failed.
                        let err: BoxError = if e.get_ref().is_some() {
                            e.into_inner().unwrap_or_else(|| "decode error".into())
                        } else {
                            Box::new(e)
                        };
                        Poll::Ready(Some(Err(err)))
                    }
                }
            }
            KindProj::Refused { body } => match ready!(body.poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(Err(never)) => match never {},
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Identity { inner } => inner.is_end_stream(),
            Kind::Decoding { done, .. } => *done,
            Kind::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Identity { inner } => inner.size_hint(),
            Kind::Decoding { done: true, .. } => SizeHint::with_exact(0),
            Kind::Decoding { .. } => SizeHint::new(),
            Kind::Refused { body } => body.size_hint(),
        }
    }
}
