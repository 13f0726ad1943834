use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::{BodyCapture, BoxError, Outcome, SealFuture, Sealer};
use crate::OnFailure;

pin_project! {
    /// The request body inner services see: the caller's body, copied (up to the record
    /// limit) as it streams past.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        capture: Arc<Mutex<BodyCapture>>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, capture: Arc<Mutex<BodyCapture>>) -> Self {
        Self { inner, capture }
    }

    /// The caller's body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(data) = f.data_ref() {
                this.capture.lock().unwrap_or_else(|p| p.into_inner()).push(data);
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

pin_project! {
    /// The response body callers receive: the inner body (or the audit layer's own
    /// refusal), copied as it streams; the record is sealed when it ends, fails, or is
    /// dropped.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
        sealer: Option<Sealer>,
        sealing: Option<SealFuture>,
        pending_error: Option<BoxError>,
        // The last data frame, held back until the record is sealed.
        pending_frame: Option<Frame<Bytes>>,
        done: bool,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Error { #[pin] body: Full<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
            sealer: None,
            sealing: None,
            pending_error: None,
            pending_frame: None,
            done: false,
        }
    }

    pub(crate) fn error(body: Full<Bytes>) -> Self {
        Self {
            kind: Kind::Error { body },
            sealer: None,
            sealing: None,
            pending_error: None,
            pending_frame: None,
            done: false,
        }
    }

    pub(crate) fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }
}

/// The error a response body ends with when its record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit_unavailable: the audit log could not record this call")]
pub struct AuditWriteFailed;

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(fut) = this.sealing.as_mut() {
                let res = ready!(fut.as_mut().poll(cx));
                *this.sealing = None;
                *this.done = true;
                if let Some(e) = this.pending_error.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                let refusing = matches!(this.kind.as_mut().project(), KindProj::Inner { .. });
                return match res {
                    // Fail closed: a caller must not see a clean end of a call that
                    // was not recorded (with `on_failure = "continue"` it does).
                    Err(_) if refusing && on_failure(this.sealer) == OnFailure::Refuse => {
                        *this.pending_frame = None;
                        Poll::Ready(Some(Err(Box::new(AuditWriteFailed))))
                    }
                    _ => Poll::Ready(this.pending_frame.take().map(Ok)),
                };
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let (frame, ended) = match this.kind.as_mut().project() {
                KindProj::Inner { mut body } => {
                    let f = ready!(body.as_mut().poll_frame(cx)).map(|r| r.map_err(Into::into));
                    (f, body.is_end_stream())
                }
                KindProj::Error { mut body } => {
                    let f = ready!(body.as_mut().poll_frame(cx)).map(|r| r.map_err(|never| match never {}));
                    (f, body.is_end_stream())
                }
            };
            let outcome = match frame {
                Some(Ok(frame)) => {
                    if let (Some(data), Some(s)) = (frame.data_ref(), this.sealer.as_mut()) {
                        s.capture(data);
                    }
                    if !ended || this.sealer.is_none() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame: hyper may drop the body right after writing it
                    // (content-length reached), so seal now and release the frame once
                    // the record is written.
                    *this.pending_frame = Some(frame);
                    Outcome::Complete
                }
                Some(Err(e)) => {
                    let msg = e.to_string();
                    *this.pending_error = Some(e);
                    Outcome::BodyError(msg)
                }
                None => Outcome::Complete,
            };
            match this.sealer.as_mut().and_then(|s| s.finish(outcome)) {
                Some(fut) => *this.sealing = Some(fut),
                None => {
                    *this.done = true;
                    if let Some(e) = this.pending_error.take() {
                        return Poll::Ready(Some(Err(e)));
                    }
                    if let Some(f) = this.pending_frame.take() {
                        return Poll::Ready(Some(Ok(f)));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Until the record is sealed the body is not over: the end must be polled so
        // that the seal happens in line (and, with `sync`, before the caller sees it).
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Error { body } => body.size_hint(),
        }
    }
}

fn on_failure(sealer: &Option<Sealer>) -> OnFailure {
    sealer.as_ref().map(|s| s.on_failure).unwrap_or_default()
}
