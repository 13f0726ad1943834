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
use cloakroom_core::{AuditNote, Error, ErrorCode};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::decode::BoxError;
use crate::event_stream::EventFramer;
use crate::head::mask_fields;
use crate::{Matcher, StreamReplacer};

pin_project! {
    /// A body whose data frames and trailers are masked by a [`Matcher`]. Trailers come
    /// after the held-back bytes, masked field by field like headers (a trailer whose
    /// name holds a secret is dropped). An error of the inner body passes through as it
    /// is, and the bytes held back at that point are dropped, never sent unmasked.
    ///
    /// With [`event_stream`](MaskBody::event_stream), the body is read as server-sent
    /// events and each event's data is masked as the client assembles it (see
    /// `event_stream.rs`) before the bytes are masked as a stream.
    pub struct MaskBody<B> {
        #[pin]
        inner: B,
        matcher: Arc<Matcher>,
        stream: Option<StreamReplacer>,
        events: Option<EventFramer>,
        queue: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        done: bool,
        note: Option<AuditNote>,
        // Replacements in trailers.
        in_trailers: u64,
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
        let stream = (!matcher.is_empty()).then(|| StreamReplacer::new(matcher.clone()));
        Self {
            inner,
            matcher,
            stream,
            events: None,
            queue: VecDeque::new(),
            trailers: None,
            done: false,
            note: None,
            in_trailers: 0,
            reported: 0,
        }
    }

    /// Reads the body as server-sent events (`text/event-stream`) when `yes`: each
    /// event's data, joined from its `data:` lines as a client joins them, is masked too.
    pub fn event_stream(mut self, yes: bool) -> Self {
        self.events = (yes && self.stream.is_some()).then(|| EventFramer::new(self.matcher.clone()));
        self
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
            + self.events.as_ref().map_or(0, EventFramer::masked)
            + self.in_trailers
    }
}

impl<B> Body for MaskBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
                    Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                    None => {
                        *this.done = true;
                        Poll::Ready(None)
                    }
                };
            };
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        let data = data.copy_to_bytes(data.remaining());
                        let events = match this.events.as_mut() {
                            None => vec![data],
                            Some(framer) => match framer.push(&data) {
                                Ok(events) => events,
                                Err(too_long) => {
                                    *this.done = true;
                                    this.queue.clear();
                                    if let Some(note) = this.note.as_ref() {
                                        note.set_error(&Error::new(
                                            ErrorCode::UpstreamUnavailable,
                                            too_long.to_string(),
                                        ));
                                    }
                                    return Poll::Ready(Some(Err(Box::new(too_long))));
                                }
                            },
                        };
                        for event in events {
                            this.queue.extend(stream.push(event).into_iter().filter(|b| !b.is_empty()));
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            finish(stream, this.events.as_mut(), this.queue);
                            let (trailers, n) = mask_fields(this.matcher, trailers, |_| false);
                            *this.in_trailers += n;
                            *this.trailers = Some(trailers);
                            *this.done = true;
                        }
                    }
                },
                Some(Err(e)) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    finish(stream, this.events.as_mut(), this.queue);
                    *this.done = true;
                }
            }
            let masked = stream.masked() + this.events.as_ref().map_or(0, EventFramer::masked) + *this.in_trailers;
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
            Some(s) => {
                self.done
                    || (self.inner.is_end_stream()
                        && s.held_back() == 0
                        && self.events.as_ref().is_none_or(|e| e.held_back() == 0))
            }
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

/// The end of the body: the unfinished event, then what the stream held back.
fn finish(stream: &mut StreamReplacer, events: Option<&mut EventFramer>, queue: &mut VecDeque<Bytes>) {
    if let Some(framer) = events {
        let rest = framer.finish();
        if !rest.is_empty() {
            queue.extend(stream.push(rest).into_iter().filter(|b| !b.is_empty()));
        }
    }
    queue.extend(stream.finish().into_iter().filter(|b| !b.is_empty()));
}
