//! Accepting connections: HTTP/1.1 and HTTP/2 (h2c) on a TCP listener, the peer address
//! as a [`ClientAddr`](cloakroom_core::ClientAddr), graceful shutdown, and the limits
//! that keep hostile clients from exhausting the gateway ([`ConnectionLimits`]):
//!
//! - at most `max_connections` open per listener; one more is answered 503 and closed
//!   before anything is read from it;
//! - a request head within `header_read_timeout` (hyper's HTTP/1.1 timer, plus a
//!   deadline from the accept that also covers the protocol sniffing and HTTP/2);
//!   a connection idle for `idle_timeout` is closed ([`activity`]);
//! - heads bounded in bytes and fields (431), HTTP/2 streams bounded, rapid-reset and
//!   error-reset floods answered with `GOAWAY` (hyper's and h2's knobs);
//! - at most `max_concurrent_calls` calls at once per listener, the rest shed with 503
//!   `overloaded` (tower's `GlobalConcurrencyLimit` and `LoadShed`);
//! - request bodies due within `body_read_timeout` ([`BodyDeadlineLayer`], in the
//!   gateway's stack, where the refusal is audited).

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::{limit::GlobalConcurrencyLimitLayer, ServiceBuilder};

use crate::forward::{boxed, BoxError, GatewayBody};

mod activity;
mod admission;
mod body_deadline;
mod limits;

use admission::{Admission, Place};

pub use body_deadline::{BodyDeadline, BodyDeadlineLayer, BodyReadError, DeadlineBody};
pub use limits::{ConnectionLimits, MIN_HEADER_BYTES};

/// Serves `listener` until `shutdown` resolves, then waits up to `grace` for open
/// connections to finish their in-flight requests. `make` builds the service of each
/// connection from its peer address. Every connection is served on the runtime that
/// runs this future; [`ServingThreads`] spreads them over several threads. The default
/// [`ConnectionLimits`] apply; [`serve_with`] takes others.
pub async fn serve<S, F>(listener: TcpListener, make: F, shutdown: impl Future<Output = ()>, grace: Duration)
where
    F: Fn(SocketAddr) -> S,
    S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    serve_with(listener, make, shutdown, grace, ConnectionLimits::default()).await
}

/// [`serve`] with the given limits (`ConnectionLimits::from(&config.server)`).
pub async fn serve_with<S, F>(
    listener: TcpListener,
    make: F,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) where
    F: Fn(SocketAddr) -> S,
    S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let admission = Admission::new(&limits);
    let connections = Connections::new(Arc::new(limits), Arc::new(Semaphore::new(admission.calls())));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = accept(&listener) => {
                let (stream, peer) = accepted;
                if let Some(permit) = admission.admit(&stream, peer) {
                    connections.serve(stream, peer, make(peer), move || drop(permit));
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    connections.shutdown(grace).await;
}

/// Serving threads: `threads` OS threads that each run a single-threaded tokio runtime
/// and serve the connections handed to them (the shape of nginx's worker processes).
///
/// [`ServingThreads::serve`] accepts on a listener and gives each new connection to the
/// thread serving the fewest; the connection stays there with all of its calls. A call
/// then never hops between threads on its way through the layers and to its upstream
/// (the forwarder keeps a connection pool per thread), which on a busy machine costs more
/// than the layers do (docs/performance.md). Shared state (vault, policy, audit log) is
/// shared as before; tasks a call hands work to (the audit writer) run where they were
/// started. [`serve`] is the single-runtime alternative.
pub struct ServingThreads {
    workers: Vec<Worker>,
    admission: Admission,
}

/// A connection handed to a serving thread, with its place under `max_connections`.
type Handed = (std::net::TcpStream, SocketAddr, Place);

/// One serving thread: where its connections are sent, and how many it has open.
struct Worker {
    tx: tokio::sync::mpsc::UnboundedSender<Handed>,
    open: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for ServingThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingThreads").field("threads", &self.workers.len()).finish()
    }
}

impl ServingThreads {
    /// Starts `threads` serving threads (at least one), named `cloakroom-serve-<n>`.
    /// `make` builds the service of each connection from its peer address, on the thread
    /// that serves it. Once [`serve`](Self::serve) stops accepting, each thread waits up
    /// to `grace` for its connections' in-flight calls and ends. Fails when a thread or
    /// its runtime cannot be started; the threads started until then end. The default
    /// [`ConnectionLimits`] apply; [`start_with`](Self::start_with) takes others.
    pub fn start<S, F>(threads: usize, make: F, grace: Duration) -> std::io::Result<Self>
    where
        F: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        Self::start_with(threads, make, grace, ConnectionLimits::default())
    }

    /// [`start`](Self::start) with the given limits; `max_connections` and
    /// `max_concurrent_calls` count over all the threads.
    pub fn start_with<S, F>(threads: usize, make: F, grace: Duration, limits: ConnectionLimits) -> std::io::Result<Self>
    where
        F: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let admission = Admission::new(&limits);
        let calls = Arc::new(Semaphore::new(admission.calls()));
        let limits = Arc::new(limits);
        let make = Arc::new(make);
        let mut workers = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handed>();
            let open = Arc::new(AtomicUsize::new(0));
            let (make, open_here) = (make.clone(), open.clone());
            let (limits, calls) = (limits.clone(), calls.clone());
            let thread = std::thread::Builder::new().name(format!("cloakroom-serve-{i}")).spawn(move || {
                runtime.block_on(async move {
                    let connections = Connections::new(limits, calls);
                    while let Some((stream, peer, permit)) = rx.recv().await {
                        let open = open_here.clone();
                        let ended = move || {
                            open.fetch_sub(1, Ordering::Relaxed);
                            drop(permit);
                        };
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => connections.serve(stream, peer, make(peer), ended),
                            Err(e) => {
                                ended();
                                tracing::warn!(error = %e, %peer, "cannot register an accepted connection");
                            }
                        }
                    }
                    connections.shutdown(grace).await;
                });
            })?;
            workers.push(Worker { tx, open, thread });
        }
        Ok(Self { workers, admission })
    }

    /// How many threads serve.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always `false`: [`start`](Self::start) starts at least one thread.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Accepts on `listener` until `shutdown` resolves, handing each connection to the
    /// thread with the fewest open; then stops accepting and resolves once every thread
    /// has finished its graceful shutdown.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Self { workers, admission } = self;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = accept(&listener) => {
                    let (stream, peer) = accepted;
                    let Some(permit) = admission.admit(&stream, peer) else { continue };
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, %peer, "cannot hand an accepted connection on");
                            continue;
                        }
                    };
                    hand_on(&workers, stream, peer, permit);
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let threads: Vec<_> = workers.into_iter().map(|w| w.thread).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("a serving thread panicked");
                }
            }
        })
        .await;
    }
}

/// Gives a connection to the live serving thread with the fewest open. A thread whose
/// channel is closed has ended (only a panic ends one early) and is passed over; one that
/// ends between the choice and the hand-off gives the connection back, with an error
/// logged, and the next is tried. With no thread left the connection is closed.
fn hand_on(workers: &[Worker], stream: std::net::TcpStream, peer: SocketAddr, permit: Place) {
    let mut job = (stream, peer, permit);
    loop {
        let Some(worker) = workers.iter().filter(|w| !w.tx.is_closed()).min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            tracing::error!(%peer, "no serving thread is left; connection closed");
            return;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        match worker.tx.send(job) {
            Ok(()) => return,
            Err(returned) => {
                tracing::error!(thread = %worker.thread.thread().name().unwrap_or("?"), "a serving thread has ended; its connections are closed");
                job = returned.0;
            }
        }
    }
}

/// A call shed by `max_concurrent_calls` becomes 503 `overloaded` (nothing was read of
/// it; it never reached identity, policy or the audit log).
fn overloaded(err: BoxError) -> Response<GatewayBody> {
    let (status, code, message) = if err.is::<tower::load_shed::error::Overloaded>() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the gateway is serving as many calls as it may at once (server.max_concurrent_calls); retry later",
        )
    } else {
        tracing::error!(error = %err, "a serving error that cannot happen");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut res = Response::new(boxed(http_body_util::Full::new(bytes::Bytes::from(body))));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

/// The next accepted connection, with `TCP_NODELAY` set. An accept error (too many open
/// files, a connection reset before it was accepted) is logged and retried after 50 ms.
async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The connections served on one runtime: HTTP/1.1 or h2c per connection under the
/// listener's [`ConnectionLimits`], and graceful shutdown.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    limits: Arc<ConnectionLimits>,
    /// `max_concurrent_calls`, shared by every connection of the listener.
    calls: Arc<Semaphore>,
}

impl Connections {
    fn new(limits: Arc<ConnectionLimits>, calls: Arc<Semaphore>) -> Self {
        Self { builder: limits.builder(), graceful: GracefulShutdown::new(), limits, calls }
    }

    /// Serves `stream` with `service` on a task of the current runtime; `ended` runs when
    /// the connection has closed. The connection is closed early when no call is in
    /// flight on it and its [`activity::Activity::expiry`] passes.
    fn serve<S>(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        service: S,
        ended: impl FnOnce() + Send + 'static,
    ) where
        S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let activity = activity::Activity::new();
        let service = ServiceBuilder::new()
            .layer_fn(|s| activity::Tracked::new(s, activity.clone(), overloaded))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(self.calls.clone()))
            .service(service);
        let conn = self.builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).into_owned();
        let conn = self.graceful.watch(conn);
        let limits = self.limits.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                let expiry = activity.expiry(&limits);
                let check = expiry.unwrap_or_else(|| tokio::time::Instant::now() + limits.idle_timeout);
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(check) => {
                        // Checked again: a call may have started since the deadline was taken.
                        if activity.expiry(&limits).is_some_and(|at| at <= tokio::time::Instant::now()) {
                            tracing::debug!(%peer, "connection closed: no request in time (server.header_read_timeout / idle_timeout)");
                            break;
                        }
                    }
                }
            }
            ended();
        });
    }

    /// Waits up to `grace` for the in-flight requests of every connection.
    async fn shutdown(self, grace: Duration) {
        if tokio::time::timeout(grace, self.graceful.shutdown()).await.is_err() {
            tracing::warn!("shutdown grace period ended with calls still in flight");
        }
    }
}
