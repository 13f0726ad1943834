//! [`MaskBody`]: any `http_body::Body`, masked as it streams.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use cloakroom_core::Secret;
//! use cloakroom_mask::{MaskBody, MaskEntry, MaskOptions, Matcher};
//! use http_body_util::{BodyExt, Full};
//!
//! let matcher = Arc::new(
//!     Matcher::build([MaskEntry::new("k", Secret::from("s3cr3t-value-123"), "cloak_k")], &MaskOptions::default())
//!         .unwrap(),
//! );
//! let body = MaskBody::new(Full::new(Bytes::from_static(b"key=s3cr3t-value-123")), matcher);
//! let out = body.collect().await.unwrap().to_bytes();
//! assert_eq!(out, "key=cloak_k");
//! # });
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use cloakroom_core::AuditNote;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::{Matcher, StreamReplacer};

pin_project! {
    /// A body whose data frames are masked by a [`Matcher`]. Trailers pass through
    /// unchanged (after the held-back bytes); an error of the inner body passes through
    /// as it is, and the bytes held back at that point are dropped, never sent unmasked.
    pub struct MaskBody<B> {
        #[pin]
        inner: B,
        stream: Option<StreamReplacer>,
        queue: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        done: bool,
        note: Option<AuditNote>,
        reported: u64,
    }
}

impl<B> fmt::Debug for MaskBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskBody").field("stream", &self.stream).field("done", &self.done).finish_non_exhaustive()
    }
}

impl<B> MaskBody<B> {
    /// Masks `inner` with `matcher`. An empty matcher passes the body through untouched
    /// (size hint included).
    pub fn new(inner: B, matcher: Arc<Matcher>) -> Self {
        let stream = (!matcher.is_empty()).then(|| StreamReplacer::new(matcher));
        Self { inner, stream, queue: VecDeque::new(), trailers: None, done: false, note: None, reported: 0 }
    }

    /// Adds the number of replacements to `note` as they happen (so a stream the client
    /// abandons still reports what was masked so far).
    pub fn with_audit_note(mut self, note: Option<AuditNote>) -> Self {
        self.note = note;
        self
    }

    /// Replacements made so far.
    pub fn masked(&self) -> u64 {
        self.stream.as_ref().map_or(0, StreamReplacer::masked)
    }
}

impl<B> Body for MaskBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            if let Some(b) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if let Some(t) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let Some(stream) = this.stream.as_mut() else {
                // Nothing to mask: pass frames through.
                return match ready!(this.inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => Poll::Ready(Some(Ok(frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))))),
                    Some(Err(e)) => Poll::Ready(Some(Err(e))),
                    None => {
                        *this.done = true;
                        Poll::Ready(None)
                    }
                };
            };
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let ready = stream.push(data.copy_to_bytes(data.remaining()));
                        this.queue.extend(ready.into_iter().filter(|b| !b.is_empty()));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.queue.extend(stream.finish().into_iter().filter(|b| !b.is_empty()));
                            *this.trailers = Some(trailers);
                            *this.done = true;
                        }
                    }
                },
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.queue.extend(stream.finish().into_iter().filter(|b| !b.is_empty()));
                    *this.done = true;
                }
            }
            let masked = stream.masked();
            if masked > *this.reported {
                if let Some(note) = this.note.as_ref() {
                    note.add_masked(masked - *this.reported);
                }
                *this.reported = masked;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if !self.queue.is_empty() || self.trailers.is_some() {
            return false;
        }
        match &self.stream {
            None => self.done || self.inner.is_end_stream(),
            Some(s) => self.done || (self.inner.is_end_stream() && s.held_back() == 0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.stream.is_none() {
            return self.inner.size_hint();
        }
        if self.is_end_stream() {
            return SizeHint::with_exact(0);
        }
        // Replacements change the length: no promise beyond what is already queued.
        let mut hint = SizeHint::new();
        hint.set_lower(self.queue.iter().map(|b| b.len() as u64).sum());
        hint
    }
}
