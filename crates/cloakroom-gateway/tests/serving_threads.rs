//! `ServingThreads`: connections spread over the serving threads, least-loaded first;
//! every call of a connection is served on the thread that took the connection; graceful
//! shutdown lets in-flight calls finish and then ends every thread.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use cloakroom_gateway::{
    config::ServerConfig,
    forward::{boxed, GatewayBody},
    server::ServingThreads,
};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::oneshot};

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("unnamed").to_owned()
}

/// A service answering with the name of the thread that served the call, after `delay`.
fn answer_thread(
    delay: Duration,
    arrived: Arc<tokio::sync::Notify>,
) -> impl Fn(SocketAddr) -> tower::util::BoxCloneSyncService<Request<Incoming>, Response<GatewayBody>, Infallible>
       + Send
       + Sync
       + 'static {
    move |_peer| {
        let arrived = arrived.clone();
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |_req: Request<Incoming>| {
            // A permit is stored when nobody waits yet: no arrival is missed.
            arrived.notify_one();
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(Response::new(boxed(Full::new(Bytes::from(thread_name())))))
            }
        }))
    }
}

/// One client connection on which calls can be made one after another.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(conn);
        Self { sender }
    }

    /// Makes a call and returns the body: the serving thread's name.
    async fn call(&mut self) -> String {
        let res = self.send().await.expect("call answered");
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    /// Makes a call; an error when the connection closed before an answer.
    async fn send(&mut self) -> hyper::Result<Response<Incoming>> {
        self.sender.ready().await?;
        let req = Request::builder().uri("/").header("host", "gateway").body(Full::new(Bytes::new())).unwrap();
        self.sender.send_request(req).await
    }
}

/// Starts `threads` serving threads answering after `delay`, makes one call, and signals
/// shutdown while it is in flight: the call's outcome, the serve task, and the address.
async fn shut_down_during_a_call(
    threads: usize,
    delay: Duration,
    grace: Duration,
) -> (tokio::task::JoinHandle<hyper::Result<Response<Incoming>>>, tokio::task::JoinHandle<()>, SocketAddr) {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let serving =
        Serving::start(ServingThreads::start(threads, answer_thread(delay, arrived.clone()), grace).unwrap()).await;
    let addr = serving.addr;
    let mut conn = Conn::open(addr).await;
    let in_flight = tokio::spawn(async move { conn.send().await });
    // Shut down once the service has the call, not after a guess at how long that takes.
    tokio::time::timeout(Duration::from_secs(30), arrived.notified()).await.expect("the call reached the service");
    (in_flight, serving.shut_down(), addr)
}

/// Serving threads on a fresh 127.0.0.1 port, serving until `stop` is sent.
struct Serving {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Serving {
    async fn start(threads: ServingThreads) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(threads.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self { addr, stop, served }
    }

    /// Signals shutdown; the returned handle resolves when `serve` has ended.
    fn shut_down(self) -> tokio::task::JoinHandle<()> {
        self.stop.send(()).unwrap();
        self.served
    }
}

#[tokio::test]
async fn connections_go_to_the_least_loaded_thread_and_their_calls_stay_there() {
    let made_on: Arc<Mutex<Vec<String>>> = Arc::default();
    let made = made_on.clone();
    let answer = answer_thread(Duration::ZERO, Arc::default());
    let threads = ServingThreads::start(
        2,
        move |peer| {
            made.lock().unwrap().push(thread_name());
            answer(peer)
        },
        Duration::from_secs(5),
    )
    .expect("threads start");
    assert_eq!(threads.len(), 2);
    let serving = Serving::start(threads).await;

    let mut conns = Vec::new();
    let mut served_on = Vec::new();
    for _ in 0..4 {
        let mut conn = Conn::open(serving.addr).await;
        let first = conn.call().await;
        for _ in 0..3 {
            assert_eq!(conn.call().await, first, "a connection's calls all run on the thread that took it");
        }
        served_on.push(first);
        conns.push(conn);
    }
    // Open connections 0 and 1 went to the two idle threads, 2 and 3 to the one with fewer.
    assert!(served_on.iter().all(|t| t.starts_with("cloakroom-serve-")), "{served_on:?}");
    assert_ne!(served_on[0], served_on[1], "{served_on:?}");
    assert_eq!(served_on[2], served_on[0], "{served_on:?}");
    assert_eq!(served_on[3], served_on[1], "{served_on:?}");
    assert_eq!(*made_on.lock().unwrap(), served_on, "each connection's service is built on its thread");

    drop(conns);
    let served = serving.shut_down();
    tokio::time::timeout(Duration::from_secs(10), served).await.expect("serve ends after shutdown").unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_call_in_flight_finish_then_stops_accepting() {
    let (in_flight, served, addr) =
        shut_down_during_a_call(2, Duration::from_millis(400), Duration::from_secs(10)).await;
    let res = tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("call ends").unwrap();
    let body = res.expect("call answered").into_body().collect().await.expect("body").to_bytes();
    assert!(body.starts_with(b"cloakroom-serve-"), "{body:?}");
    tokio::time::timeout(Duration::from_secs(10), served).await.expect("serve ends").unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens after shutdown");
}

#[tokio::test]
async fn a_call_beyond_the_grace_period_is_cut_and_serve_still_ends() {
    let (in_flight, served, _) = shut_down_during_a_call(1, Duration::from_secs(60), Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), served).await.expect("serve ends after the grace period").unwrap();
    let cut = tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("the call ends").unwrap();
    assert!(cut.is_err(), "the call was cut, not answered");
}

#[tokio::test]
async fn a_thread_that_ended_gets_no_more_connections() {
    // The first service built on cloakroom-serve-0 panics, which ends that thread.
    let answer = answer_thread(Duration::ZERO, Arc::default());
    let threads = ServingThreads::start(
        2,
        move |peer| {
            assert!(thread_name() != "cloakroom-serve-0", "a service constructor that panics");
            answer(peer)
        },
        Duration::from_secs(5),
    )
    .unwrap();
    let serving = Serving::start(threads).await;
    // Connection 0 goes to thread 0, which dies with it.
    let mut first = Conn::open(serving.addr).await;
    assert!(first.send().await.is_err(), "the connection on the thread that panicked is closed");
    // Every later connection is served by thread 1, including the ones that would have
    // gone to thread 0 by its count of open connections.
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut conn = Conn::open(serving.addr).await;
        assert_eq!(conn.call().await, "cloakroom-serve-1");
        conns.push(conn);
    }
    drop(conns);
    tokio::time::timeout(Duration::from_secs(10), serving.shut_down()).await.expect("serve ends").unwrap();
}

#[test]
fn workers_zero_means_one_thread_per_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(ServerConfig::default().workers, 0);
    assert_eq!(ServerConfig::default().serving_threads(), cpus);
    assert_eq!(ServerConfig { workers: 3, ..ServerConfig::default() }.serving_threads(), 3);
}
