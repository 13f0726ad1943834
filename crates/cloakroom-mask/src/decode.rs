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
use http_body_util::BodyDataStream;
use tokio::io::AsyncRead;
use tokio_util::io::{poll_read_buf, StreamReader};

pub(crate) use tower::BoxError;

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

/// A response body with one content coding undone. Passing an identity body through and
/// answering a refusal instead are [`UpstreamBody`](crate::UpstreamBody)'s; this is only
/// the decoder it stacks, one per coding.
pub struct DecodeBody {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    buf: BytesMut,
    done: bool,
}

impl fmt::Debug for DecodeBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeBody").field("done", &self.done).finish_non_exhaustive()
    }
}

impl DecodeBody {
    /// Decodes `inner` from `coding`.
    pub fn decoding<B>(inner: B, coding: ContentCoding) -> Self
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
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
        Self { reader, buf: BytesMut::new(), done: false }
    }
}

impl Body for DecodeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        this.buf.reserve(READ_CHUNK);
        match ready!(poll_read_buf(this.reader.as_mut(), cx, &mut this.buf)) {
            Ok(0) => {
                this.done = true;
                Poll::Ready(None)
            }
            Ok(_) => Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze())))),
            Err(e) => {
                this.done = true;
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

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            SizeHint::new()
        }
    }
}
