//! What a connection is doing, for the idle and first-request deadlines: how many of its
//! calls are in flight, whether it has made one yet, and since when it has been idle.
//!
//! hyper's own HTTP/1.1 header timeout starts only once hyper-util has read enough bytes
//! to tell HTTP/1.1 from HTTP/2, and HTTP/2 has no header or idle timeout at all: a
//! client that connects and sends nothing, or sends an HTTP/2 preface and then nothing,
//! would hold its connection forever. [`Activity::expiry`] gives every connection, of
//! either protocol, a deadline whenever no call is in flight on it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::ConnectionLimits;
use crate::forward::{BoxError, GatewayBody};

/// One connection's activity, shared by its service and its serving task.
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// Milliseconds from `accepted` to the end of the last call.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> CallGuard {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }

    /// When the connection must be closed if nothing changes: `None` while a call is
    /// in flight; `header_read_timeout` after the accept until its first call;
    /// `idle_timeout` after its last call ended.
    pub(super) fn expiry(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Relaxed) {
            return Some(self.accepted + limits.header_read_timeout);
        }
        let idle_since = std::time::Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.accepted + idle_since + limits.idle_timeout)
    }
}

/// A call in flight on a connection, from the service call until its response body has
/// ended or been dropped.
#[derive(Debug)]
pub(super) struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let since = self.0.accepted.elapsed().as_millis();
        self.0.idle_since_ms.store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts the calls of one connection in its [`Activity`], and turns the errors of the
/// service inside (only tower's load shedding has any) into responses with `refusal`.
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    refusal: fn(BoxError) -> Response<GatewayBody>,
    /// An error `poll_ready` met, answered by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for Tracked<S> {
    fn clone(&self) -> Self {
        // Readiness belongs to the service that was polled, not to its clones.
        Self { inner: self.inner.clone(), activity: self.activity.clone(), refusal: self.refusal, not_ready: None }
    }
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>, refusal: fn(BoxError) -> Response<GatewayBody>) -> Self {
        Self { inner, activity, refusal, not_ready: None }
    }
}

impl<S, Req> tower::Service<Request<Req>> for Tracked<S>
where
    S: tower::Service<Request<Req>, Response = Response<GatewayBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<TrackedBody<GatewayBody>>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match std::task::ready!(self.inner.poll_ready(cx)) {
            Ok(()) => self.not_ready = None,
            Err(e) => self.not_ready = Some(e.into()),
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Req>) -> Self::Future {
        let guard = self.activity.begin();
        let refusal = self.refusal;
        let inner = match self.not_ready.take() {
            Some(e) => Err(Some(refusal(e))),
            None => Ok(self.inner.call(req)),
        };
        TrackedFuture { inner: Inner::from(inner), refusal, guard: Some(guard) }
    }
}

pin_project! {
    #[project = InnerProj]
    pub(super) enum Inner<F> {
        Calling { #[pin] fut: F },
        Refused { res: Option<Response<GatewayBody>> },
    }
}

impl<F> From<Result<F, Option<Response<GatewayBody>>>> for Inner<F> {
    fn from(r: Result<F, Option<Response<GatewayBody>>>) -> Self {
        match r {
            Ok(fut) => Inner::Calling { fut },
            Err(res) => Inner::Refused { res },
        }
    }
}

pin_project! {
    /// The response future of [`Tracked`]: hands its guard to the response body.
    pub(super) struct TrackedFuture<F> {
        #[pin]
        inner: Inner<F>,
        refusal: fn(BoxError) -> Response<GatewayBody>,
        guard: Option<CallGuard>,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<GatewayBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<TrackedBody<GatewayBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.inner.project() {
            InnerProj::Calling { fut } => match std::task::ready!(fut.poll(cx)) {
                Ok(res) => res,
                Err(e) => (this.refusal)(e.into()),
            },
            InnerProj::Refused { res } => res.take().expect("TrackedFuture polled after completion"),
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(res.map(|inner| TrackedBody { inner, _guard: guard })))
    }
}

pin_project! {
    /// A response body holding its call's guard until it ends or is dropped.
    pub(super) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<CallGuard>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            // Ended: the connection is idle from now, even if hyper keeps the body.
            this._guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
