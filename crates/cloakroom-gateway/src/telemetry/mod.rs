//! Trace spans of the data path (docs/operations.md, "Traces").
//!
//! One `call` span per call with a child per layer: `identity`, `policy` (the policy
//! decision and the approval check, one layer, whose approval work is also the
//! `approvals` span made in cloakroom-policy), `detokenize`, `upstream`, `mask` and
//! `audit seal`. They are plain `tracing` spans at `debug` level with the target
//! [`TARGET`], which the default log filter does not enable: with no subscriber
//! interested in them (no `[telemetry]`), creating one is a disabled-callsite check and
//! nothing here allocates. With the `otel` feature, [`otel`] exports them over OTLP.
//!
//! Attributes come from the call's [`AuditNote`], the same facts the audit record holds:
//! function and secret *names*, the decision, its rule, the approval id, statuses and
//! error codes. Never a value, an argument, a header value or a credential.
//!
//! Request-side layers (identity, policy, detokenize) are timed by a pair of services
//! around the layer: [`Stage`] before it opens the span, [`StageEnd`] after it closes the
//! span when the layer passes the request on; a layer that refuses closes it with the
//! refusal. The response side is timed by bodies: `upstream` ends with the upstream's
//! body, `mask` (from the upstream's head to the end of the masked body) with the masked
//! body, and `call` with the body the caller reads.

#[cfg(feature = "otel")]
pub mod otel;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, AuditNoteSnapshot, CallId, Error};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{field::Empty, Span};

use crate::body::{boxed, GatewayBody};

/// The target of every trace span of the data path (`debug` level).
pub const TARGET: &str = "cloakroom::trace";

/// The call's spans, in the request's extensions while the call span is enabled.
#[derive(Clone, Debug)]
struct CallSpan {
    span: Span,
    /// The request-side stage span that is open (at most one at a time); then the
    /// `mask` span, from the upstream's response head until the masker answers.
    open: Arc<Mutex<Option<Span>>>,
}

impl CallSpan {
    fn put(&self, span: Span) {
        *self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(span);
    }

    fn take(&self) -> Option<Span> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// Creates the `call` span, the parent of every other, continuing the caller's trace
/// (`traceparent`, with the `otel` feature and an OpenTelemetry subscriber). Outermost
/// in the stack; the span ends with the response body.
#[derive(Clone, Debug)]
pub(crate) struct CallSpanService<S> {
    inner: S,
}

impl<S> CallSpanService<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<Request<B>> for CallSpanService<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = CallFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let span = tracing::debug_span!(
            target: TARGET,
            "call",
            otel.kind = "server",
            cloakroom.call_id = Empty,
            http.request.method = %req.method(),
            cloakroom.function = Empty,
            cloakroom.decision = Empty,
            cloakroom.rule = Empty,
            cloakroom.approval_id = Empty,
            cloakroom.secrets = Empty,
            cloakroom.masked = Empty,
            cloakroom.upstream.status_code = Empty,
            http.response.status_code = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
        );
        if span.is_disabled() {
            return CallFuture { inner: self.inner.call(req), span: None };
        }
        if let Some(id) = req.extensions().get::<CallId>() {
            span.record("cloakroom.call_id", tracing::field::display(id));
        }
        #[cfg(feature = "otel")]
        otel::continue_trace(&span, req.headers());
        let note = req.extensions().get::<AuditNote>().cloned();
        req.extensions_mut().insert(CallSpan { span: span.clone(), open: Arc::default() });
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        CallFuture { inner, span: Some((span, note)) }
    }
}

pin_project! {
    /// The response future of [`CallSpanService`].
    pub(crate) struct CallFuture<F> {
        #[pin]
        inner: F,
        span: Option<(Span, Option<AuditNote>)>,
    }
}

impl<F, E> Future for CallFuture<F>
where
    F: Future<Output = Result<Response<GatewayBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some((span, _)) = this.span.as_ref() else { return this.inner.poll(cx) };
        let res = {
            let _entered = span.enter();
            ready!(this.inner.poll(cx))
        };
        let (span, note) = this.span.take().expect("CallFuture polled after completion");
        Poll::Ready(res.map(|res| {
            span.record("http.response.status_code", res.status().as_u16());
            res.map(|body| boxed(CallBody { inner: Some(body), span, note }))
        }))
    }
}

/// The caller's response body: the `call` span is entered while it is polled and
/// dropped (so the audit seal is its child) and ends with it, with the call's facts.
struct CallBody {
    inner: Option<GatewayBody>,
    span: Span,
    note: Option<AuditNote>,
}

impl Body for CallBody {
    type Data = Bytes;
    type Error = crate::forward::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let _entered = this.span.enter();
        Pin::new(inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(|b| b.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for CallBody {
    fn drop(&mut self) {
        {
            let _entered = self.span.enter();
            drop(self.inner.take());
        }
        // After the inner body: the audit record is sealed by now.
        if let Some(note) = &self.note {
            record_call(&self.span, &note.snapshot());
        }
    }
}

/// The call's facts on the `call` span: names, the decision, statuses, never a value.
fn record_call(span: &Span, s: &AuditNoteSnapshot) {
    if let Some(call) = &s.call {
        span.record("cloakroom.function", call.function.as_str());
    }
    record_decision(span, s);
    record_secrets(span, s);
    if let Some((status, _)) = s.upstream {
        span.record("cloakroom.upstream.status_code", status);
    }
    span.record("cloakroom.masked", s.masked);
    if let Some(e) = &s.error {
        record_error(span, e);
    }
}

fn record_decision(span: &Span, s: &AuditNoteSnapshot) {
    if let Some(d) = &s.decision {
        span.record("cloakroom.decision", d.effect.as_str());
        if let Some(rule) = &d.rule {
            span.record("cloakroom.rule", rule.as_str());
        }
    }
    if let Some(a) = &s.approval {
        span.record("cloakroom.approval_id", a.id.as_str());
    }
}

fn record_secrets(span: &Span, s: &AuditNoteSnapshot) {
    if !s.secrets_used.is_empty() {
        let mut names: Vec<&str> = s.secrets_used.iter().map(|u| u.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        span.record("cloakroom.secrets", names.join(",").as_str());
    }
}

fn record_error(span: &Span, e: &Error) {
    span.record("error.type", e.code.as_str());
    span.record("otel.status_code", "error");
}

/// A request-side layer whose work a stage span times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StageName {
    /// The identity layer: who is calling.
    Identity,
    /// The policy layer: the decision and the approval check.
    Policy,
    /// The detokenizer: placeholders replaced by secret values.
    Detokenize,
}

impl StageName {
    fn span(self, parent: &Span) -> Span {
        match self {
            StageName::Identity => {
                tracing::debug_span!(target: TARGET, parent: parent, "identity", "error.type" = Empty, otel.status_code = Empty)
            }
            StageName::Policy => tracing::debug_span!(
                target: TARGET,
                parent: parent,
                "policy",
                cloakroom.function = Empty,
                cloakroom.decision = Empty,
                cloakroom.rule = Empty,
                cloakroom.approval_id = Empty,
                "error.type" = Empty,
                otel.status_code = Empty,
            ),
            StageName::Detokenize => tracing::debug_span!(
                target: TARGET,
                parent: parent,
                "detokenize",
                cloakroom.secrets = Empty,
                "error.type" = Empty,
                otel.status_code = Empty,
            ),
        }
    }

    /// Records what the layer decided, from the call's note, as its span closes;
    /// `refused`: the layer answered itself, with this refusal if it rendered one.
    fn record(self, span: &Span, note: Option<&AuditNote>, refused: Option<Option<&Error>>) {
        let s = note.map(AuditNote::snapshot).unwrap_or_default();
        if let Some(refusal) = refused {
            if let Some(e) = refusal.or(s.error.as_ref()) {
                record_error(span, e);
            }
        }
        match self {
            StageName::Identity => {}
            StageName::Policy => {
                if let Some(call) = &s.call {
                    span.record("cloakroom.function", call.function.as_str());
                }
                record_decision(span, &s);
            }
            StageName::Detokenize => record_secrets(span, &s),
        }
    }
}

/// Opens a stage span around the layer it is placed before ([`StageEnd`] after it
/// closes it). Passes requests through untouched when the call span is disabled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stage {
    name: StageName,
}

impl Stage {
    pub(crate) fn new(name: StageName) -> Self {
        Self { name }
    }
}

impl<S> Layer<S> for Stage {
    type Service = StageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StageService { inner, name: self.name }
    }
}

/// The service of [`Stage`].
#[derive(Clone, Debug)]
pub(crate) struct StageService<S> {
    inner: S,
    name: StageName,
}

impl<S, B, RB> Service<Request<B>> for StageService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = StageFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let open = req.extensions().get::<CallSpan>().map(|call| {
            call.put(self.name.span(&call.span));
            (call.clone(), req.extensions().get::<AuditNote>().cloned())
        });
        StageFuture { inner: self.inner.call(req), open, name: self.name }
    }
}

pin_project! {
    /// The response future of [`StageService`]: closes the stage span if the layer
    /// answered without passing the request on (a refusal).
    pub(crate) struct StageFuture<F> {
        #[pin]
        inner: F,
        open: Option<(CallSpan, Option<AuditNote>)>,
        name: StageName,
    }
}

impl<F, RB, E> Future for StageFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        if let Some((call, note)) = this.open.take() {
            // Still open: the layer answered without passing the request on.
            if let Some(span) = call.take() {
                let refusal = res.as_ref().ok().and_then(|r| r.extensions().get::<Error>());
                this.name.record(&span, note.as_ref(), Some(refusal));
            }
        }
        Poll::Ready(res)
    }
}

/// Closes the open stage span: the layer before it passed the request on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StageEnd {
    name: StageName,
}

impl StageEnd {
    pub(crate) fn new(name: StageName) -> Self {
        Self { name }
    }
}

impl<S> Layer<S> for StageEnd {
    type Service = StageEndService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StageEndService { inner, name: self.name }
    }
}

/// The service of [`StageEnd`].
#[derive(Clone, Debug)]
pub(crate) struct StageEndService<S> {
    inner: S,
    name: StageName,
}

impl<S, B> Service<Request<B>> for StageEndService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(span) = req.extensions().get::<CallSpan>().and_then(CallSpan::take) {
            self.name.record(&span, req.extensions().get::<AuditNote>(), None);
        }
        self.inner.call(req)
    }
}

/// The `upstream` span around the forwarder (innermost), and the start of the `mask`
/// span when the upstream's response head is back. With the `otel` feature the upstream
/// request carries the `upstream` span's `traceparent`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UpstreamSpan;

impl<S> Layer<S> for UpstreamSpan {
    type Service = UpstreamSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UpstreamSpanService { inner }
    }
}

/// The service of [`UpstreamSpan`].
#[derive(Clone, Debug)]
pub(crate) struct UpstreamSpanService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for UpstreamSpanService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<SpanBody<RB>>;
    type Error = S::Error;
    type Future = UpstreamFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[allow(unused_mut)] // mutated with the `otel` feature only
    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(call) = req.extensions().get::<CallSpan>().cloned() else {
            return UpstreamFuture { inner: self.inner.call(req), spans: None };
        };
        let span = tracing::debug_span!(
            target: TARGET,
            parent: &call.span,
            "upstream",
            otel.kind = "client",
            http.request.method = %req.method(),
            cloakroom.function = Empty,
            http.response.status_code = Empty,
            "error.type" = Empty,
            otel.status_code = Empty,
        );
        if let Some(routed) = req.extensions().get::<crate::route::Routed>() {
            span.record("cloakroom.function", routed.function.name());
        }
        #[cfg(feature = "otel")]
        otel::propagate(&span, req.headers_mut());
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        UpstreamFuture { inner, spans: Some((span, call)) }
    }
}

pin_project! {
    /// The response future of [`UpstreamSpanService`].
    pub(crate) struct UpstreamFuture<F> {
        #[pin]
        inner: F,
        spans: Option<(Span, CallSpan)>,
    }
}

impl<F, RB, E> Future for UpstreamFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<SpanBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = match this.spans.as_ref() {
            Some((span, _)) => {
                let _entered = span.enter();
                ready!(this.inner.poll(cx))
            }
            None => ready!(this.inner.poll(cx)),
        };
        let Some((span, call)) = this.spans.take() else {
            return Poll::Ready(res.map(|r| r.map(|body| SpanBody { inner: body, span: Span::none() })));
        };
        Poll::Ready(res.map(|r| {
            match r.extensions().get::<Error>() {
                // The forwarder's own refusal (unreachable, timeout): no upstream status.
                Some(e) => record_error(&span, e),
                None => {
                    span.record("http.response.status_code", r.status().as_u16());
                    if r.status().is_server_error() {
                        span.record("otel.status_code", "error");
                    }
                }
            }
            call.put(tracing::debug_span!(target: TARGET, parent: &call.span, "mask", "error.type" = Empty, otel.status_code = Empty));
            r.map(|body| SpanBody { inner: body, span })
        }))
    }
}

/// Ends the `mask` span with the masked body. Placed before the masker.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MaskSpan;

impl<S> Layer<S> for MaskSpan {
    type Service = MaskSpanService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MaskSpanService { inner }
    }
}

/// The service of [`MaskSpan`].
#[derive(Clone, Debug)]
pub(crate) struct MaskSpanService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for MaskSpanService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<SpanBody<RB>>;
    type Error = S::Error;
    type Future = MaskFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = req.extensions().get::<CallSpan>().cloned();
        MaskFuture { inner: self.inner.call(req), call }
    }
}

pin_project! {
    /// The response future of [`MaskSpanService`].
    pub(crate) struct MaskFuture<F> {
        #[pin]
        inner: F,
        call: Option<CallSpan>,
    }
}

impl<F, RB, E> Future for MaskFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<SpanBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let span = this.call.take().and_then(|c| c.take()).unwrap_or_else(Span::none);
        Poll::Ready(res.map(|r| {
            if let Some(e) = r.extensions().get::<Error>() {
                record_error(&span, e);
            }
            r.map(|body| SpanBody { inner: body, span })
        }))
    }
}

pin_project! {
    /// A body that holds a span: the span ends when the body ends, fails or is dropped.
    pub(crate) struct SpanBody<B> {
        #[pin]
        inner: B,
        span: Span,
    }
}

impl<B: Body> Body for SpanBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                this.span.record("error.type", "body_error");
                this.span.record("otel.status_code", "error");
                *this.span = Span::none();
            }
            None => *this.span = Span::none(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The audit layer's seal hook `hook` inside an `audit seal` span: the call's record is
/// built and handed to the audit writer. A child of the `call` span, which is entered
/// wherever the record is sealed (the response future or body, or its drop).
pub(crate) fn seal_span(hook: cloakroom_audit::OnSeal) -> cloakroom_audit::OnSeal {
    Arc::new(move |sealed: &cloakroom_audit::SealedCall<'_>| {
        let span = tracing::debug_span!(target: TARGET, "audit seal", cloakroom.audit.record_id = Empty);
        if !span.is_disabled() {
            span.record("cloakroom.audit.record_id", sealed.record.id.as_str());
        }
        let _entered = span.enter();
        hook(sealed)
    })
}
