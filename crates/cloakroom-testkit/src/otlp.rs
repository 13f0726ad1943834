//! A real OTLP trace receiver on loopback, built on the collector's own protobuf
//! messages (`opentelemetry-proto`): OTLP/HTTP with protobuf bodies (`POST /v1/traces`)
//! or OTLP/gRPC (the `TraceService/Export` method, served by tonic).
//!
//! It keeps every byte it was sent (to prove what never appears in an export) and the
//! decoded spans, or, started with [`OtlpReceiver::counting`], only counts them (the load
//! benchmark's sink, `otlp-sink`).

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::{any_value::Value, AnyValue, KeyValue},
    trace::v1::Span,
};
use prost::Message;

/// How spans reach an [`OtlpReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP, protobuf bodies posted to `/v1/traces`.
    Http,
    /// OTLP/gRPC.
    Grpc,
}

impl OtlpProtocol {
    /// As `[telemetry] protocol` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Http => "http",
            OtlpProtocol::Grpc => "grpc",
        }
    }
}

/// One received span with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service_name: Option<String>,
    /// The span as exported.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The trace id, lowercase hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id, lowercase hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id, lowercase hex (empty for a root span).
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// The attribute `key` as a string (numbers and booleans formatted), if present.
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
}

#[derive(Debug, Default)]
struct Received {
    /// Every byte of every export request (the gRPC messages as encoded on the wire).
    raw: Vec<u8>,
    spans: Vec<ReceivedSpan>,
    count: u64,
    requests: u64,
}

/// An OTLP trace receiver on 127.0.0.1; stopped on drop.
#[derive(Debug)]
pub struct OtlpReceiver {
    /// Its address.
    pub addr: SocketAddr,
    /// How it receives.
    pub protocol: OtlpProtocol,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Starts a receiver on a free port that keeps what it receives. Needs a tokio runtime.
    pub async fn start(protocol: OtlpProtocol) -> Self {
        Self::bind(protocol, SocketAddr::from(([127, 0, 0, 1], 0)), true).await.expect("bind OTLP receiver")
    }

    /// Starts a receiver on `addr` that only counts spans and requests (for load tests).
    pub async fn counting(protocol: OtlpProtocol, addr: SocketAddr) -> std::io::Result<Self> {
        Self::bind(protocol, addr, false).await
    }

    async fn bind(protocol: OtlpProtocol, addr: SocketAddr, keep: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received::default()));
        let sink = Sink { received: received.clone(), keep };
        let task = match protocol {
            OtlpProtocol::Http => tokio::spawn(serve_http(listener, sink)),
            OtlpProtocol::Grpc => tokio::spawn(async move {
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(sink))
                    .serve_with_incoming(incoming)
                    .await;
            }),
        };
        Ok(Self { addr, protocol, received, task })
    }

    /// The URL for `[telemetry] otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Every byte received so far.
    pub fn raw(&self) -> Vec<u8> {
        self.lock().raw.clone()
    }

    /// How many spans were received.
    pub fn span_count(&self) -> u64 {
        self.lock().count
    }

    /// How many export requests were received.
    pub fn request_count(&self) -> u64 {
        self.lock().requests
    }

    /// Waits (up to `within`) until `done` holds for the spans received, and returns them;
    /// panics naming what was received otherwise.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
                panic!("the OTLP receiver did not get the expected spans within {within:?}; it got {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct Sink {
    received: Arc<Mutex<Received>>,
    keep: bool,
}

impl Sink {
    fn take(&self, raw: &[u8], request: ExportTraceServiceRequest) {
        let mut r = self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.requests += 1;
        for rs in request.resource_spans {
            let service_name = rs.resource.as_ref().and_then(|res| attr(&res.attributes, "service.name"));
            for ss in rs.scope_spans {
                r.count += ss.spans.len() as u64;
                if self.keep {
                    for span in ss.spans {
                        r.spans.push(ReceivedSpan { service_name: service_name.clone(), span });
                    }
                }
            }
        }
        if self.keep {
            r.raw.extend_from_slice(raw);
        }
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let raw = if self.keep { request.encode_to_vec() } else { Vec::new() };
        self.take(&raw, request);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn serve_http(listener: tokio::net::TcpListener, sink: Sink) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sink = sink.clone();
                async move { Ok::<_, Infallible>(export_http(&sink, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn export_http(sink: &Sink, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: Vec<u8>| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf"));
        res
    };
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" {
        return answer(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(request) => {
            sink.take(&body, request);
            answer(StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(_) => answer(StatusCode::BAD_REQUEST, Vec::new()),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(any_value)
}

fn any_value(v: &AnyValue) -> Option<String> {
    Some(match v.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => hex(b),
        Value::ArrayValue(a) => a.values.iter().filter_map(any_value).collect::<Vec<_>>().join(","),
        Value::KvlistValue(l) => l
            .values
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value.as_ref().and_then(any_value).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(","),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
