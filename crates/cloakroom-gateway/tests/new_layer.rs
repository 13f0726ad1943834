//! The new layer of docs/architecture.md ("One layer shape"), compiled and tested: it
//! follows the shape every Cloakroom layer has, and its refusal reaches the call's audit
//! note through the one refusal path.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, ResponseBody};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// Refuses calls outside `hours` (UTC).
#[derive(Clone, Debug)]
pub struct OfficeHoursLayer {
    hours: std::ops::Range<u8>,
}

impl OfficeHoursLayer {
    /// Calls are taken when the hour (UTC) is in `hours`.
    pub fn new(hours: std::ops::Range<u8>) -> Self {
        Self { hours }
    }
}

impl<S> tower::Layer<S> for OfficeHoursLayer {
    type Service = OfficeHours<S>;
    fn layer(&self, inner: S) -> OfficeHours<S> {
        OfficeHours { inner, hours: self.hours.clone() }
    }
}

/// The service of [`OfficeHoursLayer`].
#[derive(Clone, Debug)]
pub struct OfficeHours<S> {
    inner: S,
    hours: std::ops::Range<u8>,
}

impl<S, B, RB> tower::Service<Request<B>> for OfficeHours<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let hour = time::OffsetDateTime::now_utc().hour();
        if !self.hours.contains(&hour) {
            let refusal = Error::new(ErrorCode::Forbidden, "calls are taken in office hours only")
                .refuse(req.extensions().get::<CallId>(), req.extensions().get::<AuditNote>());
            return Box::pin(async move { Ok(refusal.map(ResponseBody::refused)) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { Ok(fut.await?.map(ResponseBody::inner)) })
    }
}

async fn call(hours: std::ops::Range<u8>) -> (u16, String, AuditNote) {
    let handler =
        service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(Response::new(Full::from("done"))) });
    let svc = ServiceBuilder::new().layer(OfficeHoursLayer::new(hours)).service(handler);
    let call_id = CallId::new();
    let note = AuditNote::new(call_id);
    let mut req = Request::new(Full::from(""));
    req.extensions_mut().insert(call_id);
    req.extensions_mut().insert(note.clone());
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), note)
}

#[tokio::test]
async fn a_layer_in_the_house_shape_refuses_through_the_one_path_and_the_audit_note_knows() {
    let (status, body, note) = call(0..0).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"forbidden\"") && body.contains("office hours"), "{body}");
    let noted = note.snapshot().error.expect("the refusal is noted for the audit record");
    assert_eq!(noted.code, ErrorCode::Forbidden);

    let (status, body, note) = call(0..24).await;
    assert_eq!((status, body.as_str()), (200, "done"));
    assert!(note.snapshot().error.is_none());
}
