//! A deadline on the arrival of a request body, against slow-body (slowloris) clients.
//!
//! A body must arrive within `timeout` of its request head, extended by one second for
//! every `min_rate` bytes received (the rule of Apache's `mod_reqtimeout`): a caller on
//! a slow link sending a large body keeps going, a caller trickling a few bytes a second
//! to hold a connection and a call slot does not. Past the deadline the body fails with
//! [`BodyReadError::TooSlow`]; the layer that reads it (the `CallLayer`) refuses the call
//! with 400 `bad_request`, which is recorded in the audit note, and hyper closes the
//! connection, since the rest of the body was never read.
//!
//! ```
//! use std::time::Duration;
//! use cloakroom_gateway::server::BodyDeadlineLayer;
//!
//! let layer = BodyDeadlineLayer::new(Duration::from_secs(30), 4096);
//! let svc = tower::ServiceBuilder::new().layer(layer).service_fn(|req: http::Request<_>| async move {
//!     let _: &cloakroom_gateway::server::DeadlineBody<String> = req.body();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! # let _ = svc;
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Buf;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Wraps every request body in a [`DeadlineBody`]. A reload rebuilds it from
/// `server.body_read_timeout` and `server.body_min_rate`.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadlineLayer {
    timeout: Duration,
    min_rate: u64,
}

impl BodyDeadlineLayer {
    /// Bodies get `timeout` from their head, plus one second per `min_rate` bytes
    /// received (`0`: no extension).
    pub fn new(timeout: Duration, min_rate: u64) -> Self {
        Self { timeout, min_rate }
    }
}

impl<S> tower::Layer<S> for BodyDeadlineLayer {
    type Service = BodyDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyDeadline { inner, layer: *self }
    }
}

/// The service of [`BodyDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    layer: BodyDeadlineLayer,
}

impl<S> BodyDeadline<S> {
    /// Wraps `inner` (see [`BodyDeadlineLayer::new`]).
    pub fn new(inner: S, timeout: Duration, min_rate: u64) -> Self {
        Self { inner, layer: BodyDeadlineLayer::new(timeout, min_rate) }
    }

    /// A layer (same as [`BodyDeadlineLayer::new`]).
    pub fn layer(timeout: Duration, min_rate: u64) -> BodyDeadlineLayer {
        BodyDeadlineLayer::new(timeout, min_rate)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> tower::Service<Request<B>> for BodyDeadline<S>
where
    S: tower::Service<Request<DeadlineBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let layer = self.layer;
        self.inner.call(req.map(|body| DeadlineBody::new(body, layer.timeout, layer.min_rate)))
    }
}

pin_project! {
    /// A request body that fails with [`BodyReadError::TooSlow`] once it has taken longer
    /// than its allowance (see the module documentation).
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        started: Instant,
        timeout: Duration,
        min_rate: u64,
        received: u64,
        // Made on the first wait only: a body that is already buffered costs no timer.
        sleep: Option<Pin<Box<Sleep>>>,
        failed: bool,
    }
}

impl<B> DeadlineBody<B> {
    /// `inner`, due within `timeout` from now plus one second per `min_rate` bytes.
    pub fn new(inner: B, timeout: Duration, min_rate: u64) -> Self {
        Self { inner, started: Instant::now(), timeout, min_rate, received: 0, sleep: None, failed: false }
    }
}

impl<B> fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineBody").field("received", &self.received).field("timeout", &self.timeout).finish()
    }
}

/// When a body that has received `received` bytes is due.
fn due(started: Instant, timeout: Duration, min_rate: u64, received: u64) -> Instant {
    let earned = match min_rate {
        0 => Duration::ZERO,
        rate => Duration::from_millis(received.saturating_mul(1000) / rate),
    };
    // A huge count (u64::MAX bytes at 1 B/s) must not overflow the clock.
    let allowance = timeout.saturating_add(earned);
    started.checked_add(allowance).unwrap_or_else(|| started + FAR)
}

/// Later than any body could take (what tokio itself uses for "never": 30 years).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

impl<B> Body for DeadlineBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = BodyReadError<B::Error>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received = this.received.saturating_add(data.remaining() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyReadError::Inner(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = due(*this.started, *this.timeout, *this.min_rate, *this.received);
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        *this.failed = true;
                        Poll::Ready(Some(Err(BodyReadError::TooSlow)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a [`DeadlineBody`] could not be read.
#[derive(Debug)]
pub enum BodyReadError<E> {
    /// The body did not arrive in time.
    TooSlow,
    /// Reading the body failed (the client went away, a protocol error).
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for BodyReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSlow => f.write_str("the request body arrived too slowly (server.body_read_timeout)"),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BodyReadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooSlow => None,
            Self::Inner(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_min_rate_bytes_received_earn_a_second() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        assert_eq!(due(t0, timeout, 4096, 0), t0 + timeout);
        assert_eq!(due(t0, timeout, 4096, 8192), t0 + timeout + Duration::from_secs(2));
        assert_eq!(due(t0, timeout, 0, 1 << 30), t0 + timeout, "a rate of 0 makes the timeout fixed");
        // No overflow whatever the count.
        let _ = due(t0, timeout, 1, u64::MAX);
    }
}
