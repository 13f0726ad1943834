//! An upstream that holds every call open until the test releases it: the call stays
//! in flight (its redemption credential valid) while the test acts as the function.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, oneshot};

/// A call held open at the function: the headers it arrived with, and the switch that
/// lets the function answer (the call is in flight until then).
pub struct Held {
    pub headers: HeaderMap,
    pub release: oneshot::Sender<()>,
}

impl Held {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn call_id(&self) -> String {
        self.header("cloakroom-call-id").expect("the gateway sends the call id")
    }

    pub fn token(&self) -> String {
        self.header("cloakroom-redeem-token").expect("the function may redeem: it gets a token")
    }
}

/// An upstream that holds every call until the test releases it. It answers with the
/// token it was given reflected in two response headers, as a careless function might.
pub async fn holding_upstream() -> (String, mpsc::UnboundedReceiver<Held>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let (release, released) = oneshot::channel();
                        let headers = req.headers().clone();
                        let token = headers.get("cloakroom-redeem-token").cloned();
                        let _ = tx.send(Held { headers, release });
                        let _ = released.await;
                        let mut res = Response::new(Full::new(Bytes::from_static(b"done")));
                        if let Some(t) = token {
                            res.headers_mut().insert("x-echo-token", t.clone());
                            res.headers_mut().insert("cloakroom-redeem-token", t);
                        }
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, rx)
}
