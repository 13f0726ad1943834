use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, ClientAddr};
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::{AuditLayer, BodyCapture, BoxError, RequestBody, ResponseBody, ResponseFuture, Sealer};
use crate::{record::record_headers, AuditRecord, OnFailure};

/// The service [`AuditLayer`] builds.
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
    layer: AuditLayer,
}

impl<S> Audit<S> {
    /// Wraps `inner`, recording into `log` as `config` says (see [`AuditLayer::new`]).
    pub fn new(inner: S, log: crate::AuditLog, config: &crate::AuditConfig) -> Self {
        Self::from_layer(inner, AuditLayer::new(log, config))
    }

    pub(crate) fn from_layer(inner: S, layer: AuditLayer) -> Self {
        Self { inner, layer }
    }

    /// A layer for this service.
    pub fn layer(log: crate::AuditLog, config: &crate::AuditConfig) -> AuditLayer {
        AuditLayer::new(log, config)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Audit<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ReqB: Body,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let layer = &self.layer;
        let call_id = *req.extensions_mut().get_or_insert_with(CallId::new);
        let note = req.extensions().get::<AuditNote>().cloned().unwrap_or_else(|| AuditNote::new(call_id));
        req.extensions_mut().insert(note.clone());

        let mut record = AuditRecord::new(call_id, time::OffsetDateTime::now_utc());
        record.source_ip = req.extensions().get::<ClientAddr>().map(|a| a.0.ip().to_string());
        record.request.method = req.method().as_str().to_owned();
        record.request.path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
        record.request.headers = record_headers(req.headers());

        let max = layer.max_body_record_bytes;
        let request_body = Arc::new(Mutex::new(BodyCapture::new(layer.record_bodies, max)));
        let sealer = Sealer::new(
            layer.log.clone(),
            note.clone(),
            record,
            request_body.clone(),
            BodyCapture::new(layer.record_bodies, max),
            layer.on_seal.clone(),
        );

        let log = &layer.log;
        if !log.is_available() && log.options().on_failure == OnFailure::Refuse {
            // An unrecorded call must not happen: refuse before anything else runs.
            log.count_refused();
            let error = cloakroom_core::Error::new(
                cloakroom_core::ErrorCode::AuditUnavailable,
                "the audit log cannot record calls right now",
            );
            note.set_error(&error);
            return ResponseFuture::refused(error.to_response(Some(&call_id)), sealer);
        }

        let req = req.map(|body| RequestBody::new(body, request_body));
        ResponseFuture::new(self.inner.call(req), sealer)
    }
}
