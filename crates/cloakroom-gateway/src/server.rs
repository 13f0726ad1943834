//! Accepting connections: HTTP/1.1 and HTTP/2 (h2c) on a TCP listener, the peer address
//! as a [`ClientAddr`](cloakroom_core::ClientAddr), graceful shutdown.

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

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;

use crate::forward::GatewayBody;

/// Serves `listener` until `shutdown` resolves, then waits up to `grace` for open
/// connections to finish their in-flight requests. `make` builds the service of each
/// connection from its peer address. Every connection is served on the runtime that
/// runs this future; [`ServingThreads`] spreads them over several threads.
pub async fn serve<S, F>(listener: TcpListener, make: F, shutdown: impl Future<Output = ()>, grace: Duration)
where
    F: Fn(SocketAddr) -> S,
    S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connections = Connections::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = accept(&listener) => {
                let (stream, peer) = accepted;
                connections.serve(stream, peer, make(peer), || ());
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
}

/// One serving thread: where its connections are sent, and how many it has open.
struct Worker {
    tx: tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
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
    /// its runtime cannot be started; the threads started until then end.
    pub fn start<S, F>(threads: usize, make: F, grace: Duration) -> std::io::Result<Self>
    where
        F: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let make = Arc::new(make);
        let mut workers = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            let open = Arc::new(AtomicUsize::new(0));
            let (make, open_here) = (make.clone(), open.clone());
            let thread = std::thread::Builder::new().name(format!("cloakroom-serve-{i}")).spawn(move || {
                runtime.block_on(async move {
                    let connections = Connections::new();
                    while let Some((stream, peer)) = rx.recv().await {
                        let open = open_here.clone();
                        let ended = move || {
                            open.fetch_sub(1, Ordering::Relaxed);
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
        Ok(Self { workers })
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
        let workers = self.workers;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = accept(&listener) => {
                    let (stream, peer) = accepted;
                    let stream = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, %peer, "cannot hand an accepted connection on");
                            continue;
                        }
                    };
                    hand_on(&workers, stream, peer);
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
fn hand_on(workers: &[Worker], stream: std::net::TcpStream, peer: SocketAddr) {
    let mut job = (stream, peer);
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

/// The connections served on one runtime: HTTP/1.1 or h2c per connection, a header read
/// timeout against slow-loris clients, and graceful shutdown.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new() -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A slow-loris client must not hold a connection open forever before its head.
        builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
        Self { builder, graceful: GracefulShutdown::new() }
    }

    /// Serves `stream` with `service` on a task of the current runtime; `ended` runs when
    /// the connection has closed.
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
        let conn = self.builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).into_owned();
        let conn = self.graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
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
