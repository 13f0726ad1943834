//! Accepting connections: HTTP/1.1 and HTTP/2 (h2c) on a TCP listener, the peer address
//! as a [`ClientAddr`](cloakroom_core::ClientAddr), graceful shutdown.

use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};

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
/// connection from its peer address.
pub async fn serve<S, F>(listener: TcpListener, make: F, shutdown: impl Future<Output = ()>, grace: Duration)
where
    F: Fn(SocketAddr) -> S,
    S: tower::Service<Request<Incoming>, Response = Response<GatewayBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A slow-loris client must not hold a connection open forever before its head.
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(make(peer));
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period ended with calls still in flight");
    }
}
