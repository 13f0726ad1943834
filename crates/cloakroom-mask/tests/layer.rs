//! `MaskLayer` and `MaskBody` against a real HTTP upstream and hand-made bodies.

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliEncoder, ZlibEncoder, ZstdEncoder};
use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Secret};
use cloakroom_mask::{MaskBody, MaskEntry, MaskHandle, MaskLayer, MaskOptions, Matcher};
use cloakroom_testkit::{RecordingUpstream, Reply};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;
use tower::{service_fn, Layer, ServiceExt};

const SECRET: &str = "sk_test_51Hxyz0123456789abcdef";

fn handle() -> MaskHandle {
    MaskHandle::new(
        Matcher::build([MaskEntry::new("stripe", Secret::from(SECRET), "cloak_stripe")], &MaskOptions::default())
            .unwrap(),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => out = gzip(data),
        "deflate" => drop(ZlibEncoder::new(data).read_to_end(&mut out).await.unwrap()),
        "br" => drop(BrotliEncoder::new(data).read_to_end(&mut out).await.unwrap()),
        "zstd" => drop(ZstdEncoder::new(data).read_to_end(&mut out).await.unwrap()),
        _ => unreachable!(),
    }
    out
}

/// A forwarder to `upstream` wrapped in the mask layer, called once.
async fn through_layer(upstream: &RecordingUpstream, note: Option<AuditNote>) -> Response<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = MaskLayer::new(handle()).layer(service_fn(move |req| client.request(req)));
    let mut req = Request::get(format!("{}/x", upstream.url()))
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(Empty::<Bytes>::new())
        .unwrap();
    if let Some(note) = note {
        req.extensions_mut().insert(note);
    }
    let res = svc.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_gzip_encoded_upstream_body_is_decoded_and_masked() {
    let body = format!("{{\"key\":\"{SECRET}\",\"pad\":\"{}\"}}", "x".repeat(100_000));
    let gz = Bytes::from(gzip(body.as_bytes()));
    // Split the compressed bytes so the decoder sees partial input.
    let (a, b) = (gz.slice(..gz.len() / 2), gz.slice(gz.len() / 2..));
    let upstream = RecordingUpstream::start(move |_| Reply {
        headers: vec![("content-encoding".into(), "gzip".into()), ("content-length".into(), gz.len().to_string())],
        ..Reply::chunks(vec![a.clone(), b.clone()])
    })
    .await;
    let res = through_layer(&upstream, None).await;
    assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
    assert!(res.headers().get(header::CONTENT_LENGTH).is_none());
    let text = String::from_utf8(res.body().to_vec()).unwrap();
    assert!(text.starts_with("{\"key\":\"cloak_stripe\""), "{}", &text[..40]);
    assert!(!text.contains(SECRET));
    assert_eq!(text.len(), body.len() - SECRET.len() + "cloak_stripe".len());
}

#[tokio::test]
async fn the_upstream_is_asked_for_identity_encoding() {
    let upstream = RecordingUpstream::echo().await;
    let res = through_layer(&upstream, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("accept-encoding"), None);
}

#[tokio::test]
async fn response_headers_are_masked_and_counted_in_the_audit_note() {
    let upstream = RecordingUpstream::start(|_| Reply {
        headers: vec![("x-echo-key".into(), format!("Bearer {SECRET}"))],
        ..Reply::chunks(vec![Bytes::from(format!("a {SECRET} b {SECRET}"))])
    })
    .await;
    let note = AuditNote::new(CallId::new());
    let res = through_layer(&upstream, Some(note.clone())).await;
    assert_eq!(res.headers()["x-echo-key"], "Bearer cloak_stripe");
    assert_eq!(res.body(), "a cloak_stripe b cloak_stripe");
    assert_eq!(note.snapshot().masked, 3);
}

#[tokio::test]
async fn deflate_br_and_zstd_bodies_are_decoded_before_masking() {
    for coding in ["gzip", "deflate", "br", "zstd"] {
        let plain = format!("token={SECRET}&more={}", "y".repeat(5000));
        let encoded = encode(coding, plain.as_bytes()).await;
        let svc = MaskLayer::new(handle()).layer(service_fn(move |_req: Request<()>| {
            let encoded = encoded.clone();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(header::CONTENT_ENCODING, coding)
                        .body(Full::new(Bytes::from(encoded)))
                        .unwrap(),
                )
            }
        }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none(), "{coding}");
        let out = res.into_body().collect().await.unwrap().to_bytes();
        assert!(out.starts_with(b"token=cloak_stripe&more=yyy"), "{coding}");
    }
}

#[tokio::test]
async fn an_unknown_content_encoding_is_refused_not_passed_unmasked() {
    let svc = MaskLayer::new(handle()).layer(service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header(header::CONTENT_ENCODING, "compress")
                .body(Full::new(Bytes::from(SECRET)))
                .unwrap(),
        )
    }));
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let out = res.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&out).contains(SECRET));
    assert!(String::from_utf8_lossy(&out).contains("upstream_unavailable"));
}

type Chan = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

fn channel_body() -> (Chan, StreamBody<tokio_stream_shim::Receiver>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, StreamBody::new(tokio_stream_shim::Receiver(rx)))
}

/// A minimal `Stream` over an mpsc receiver (no extra crate needed).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    pub(crate) struct Receiver(pub(crate) tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

    impl futures_core::Stream for Receiver {
        type Item = Result<Frame<Bytes>, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

async fn next_data<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Bytes
where
    B::Error: std::fmt::Debug,
{
    // The timeout only turns a hang (an event held back) into a failure.
    let frame = tokio::time::timeout(Duration::from_secs(20), body.frame()).await.expect("frame was held back");
    frame.unwrap().unwrap().into_data().unwrap()
}

#[tokio::test]
async fn server_sent_events_are_not_delayed() {
    let (tx, inner) = channel_body();
    let mut body = MaskBody::new(inner, handle().load());
    tx.send(Ok(Frame::data(Bytes::from_static(b"data: {\"n\":1}\n\n")))).await.unwrap();
    assert_eq!(next_data(&mut body).await, "data: {\"n\":1}\n\n");
    tx.send(Ok(Frame::data(Bytes::from(format!("data: {SECRET}\n\n"))))).await.unwrap();
    assert_eq!(next_data(&mut body).await, "data: cloak_stripe\n\n");
}

#[tokio::test]
async fn trailers_pass_through_after_the_held_back_bytes() {
    let (tx, inner) = channel_body();
    let mut body = MaskBody::new(inner, handle().load());
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    tx.send(Ok(Frame::data(Bytes::from_static(b"tail sk_test_51H")))).await.unwrap();
    tx.send(Ok(Frame::trailers(trailers.clone()))).await.unwrap();
    drop(tx);
    let mut data = Vec::new();
    let mut got_trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(f) => got_trailers = Some(f.into_trailers().unwrap()),
        }
    }
    assert_eq!(data, b"tail sk_test_51H");
    assert_eq!(got_trailers, Some(trailers));
}

#[tokio::test]
async fn an_inner_error_passes_through_and_held_bytes_are_not_sent() {
    let (tx, inner) = channel_body();
    let mut body = MaskBody::new(inner, handle().load());
    tx.send(Ok(Frame::data(Bytes::from_static(b"ok sk_test_51Hxyz")))).await.unwrap();
    tx.send(Err(std::io::Error::other("upstream reset"))).await.unwrap();
    assert_eq!(next_data(&mut body).await, "ok ");
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "upstream reset");
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn size_hint_is_honest() {
    let body = MaskBody::new(Full::new(Bytes::from_static(b"0123456789")), handle().load());
    assert_eq!(body.size_hint().lower(), 0);
    assert_eq!(body.size_hint().upper(), None);
    let passthrough = MaskBody::new(Full::new(Bytes::from_static(b"0123456789")), MaskHandle::empty().load());
    assert_eq!(passthrough.size_hint().exact(), Some(10));
    let collected = body.collect().await.unwrap().to_bytes();
    assert_eq!(collected, "0123456789");
}
