//! A real HTTP upstream that records what reaches it.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body as (lossy) UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, sent as these chunks (with `delay` between them).
    pub chunks: Vec<Bytes>,
    /// Pause before the response and between chunks.
    pub delay: Duration,
}

impl Reply {
    /// A 200 with a JSON body.
    pub fn json(value: serde_json::Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![Bytes::from(value.to_string())],
            delay: Duration::ZERO,
        }
    }

    /// A 200 with a body sent in the given chunks.
    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        Self { status: 200, headers: Vec::new(), chunks, delay: Duration::ZERO }
    }

    /// The default reply: a JSON echo of the request (method, uri, headers, body as text).
    pub fn echo(req: &RecordedRequest) -> Self {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (k.as_str().to_owned(), serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            })
            .collect();
        Self::json(serde_json::json!({
            "method": req.method,
            "uri": req.uri,
            "headers": headers,
            "body": req.body_text(),
        }))
    }
}

type Handler = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 that records every request; stopped on drop.
pub struct RecordingUpstream {
    /// Its address.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RecordingUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingUpstream").field("addr", &self.addr).finish()
    }
}

impl RecordingUpstream {
    /// Starts an upstream that answers with [`Reply::echo`]. Needs a tokio runtime.
    pub async fn echo() -> Self {
        Self::start(Reply::echo).await
    }

    /// Starts an upstream that answers each request with `handler`.
    pub async fn start(handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (recorded, handler) = (recorded.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (recorded, handler) = (recorded.clone(), handler.clone());
                        async move { Ok::<_, Infallible>(serve(req, recorded, handler).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, requests, task }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("recorded requests").clone()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ReplyBody = StreamBody<futures_channel_like::Receiver>;

async fn serve(
    req: Request<Incoming>,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
    handler: Arc<Handler>,
) -> Response<ReplyBody> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let rec =
        RecordedRequest { method: parts.method.to_string(), uri: parts.uri.to_string(), headers: parts.headers, body };
    recorded.lock().expect("recorded requests").push(rec.clone());
    let reply = handler(&rec);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let delay = reply.delay;
    let chunks = reply.chunks.clone();
    tokio::spawn(async move {
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
        }
    });
    let mut res = Response::new(StreamBody::new(futures_channel_like::Receiver(rx)));
    *res.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    for (k, v) in reply.headers {
        res.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(&v).expect("header value"),
        );
    }
    res
}

/// A tiny `Stream` over a tokio mpsc receiver (keeps this crate free of tokio-stream).
mod futures_channel_like {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::Bytes;
    use hyper::body::Frame;

    pub(crate) struct Receiver(pub(crate) tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::convert::Infallible>>);

    impl futures_core::Stream for Receiver {
        type Item = Result<Frame<Bytes>, std::convert::Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}
