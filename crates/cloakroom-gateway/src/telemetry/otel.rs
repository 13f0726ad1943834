//! OpenTelemetry export of the data path's spans (`[telemetry]`, feature `otel`;
//! docs/operations.md, "Traces").
//!
//! [`Telemetry::start`] builds the OTLP exporter (HTTP/protobuf or gRPC) behind a batch
//! span processor with a bounded queue on the tokio runtime: exporting never blocks a
//! call, and when the receiver is down or slow the queue fills and further spans are
//! dropped, never the call. [`Telemetry::layer`] is the `tracing` layer that turns the
//! spans of target [`super::TARGET`] (and only those) into OpenTelemetry spans.
//!
//! W3C trace context: [`continue_trace`] makes a caller's valid `traceparent` the parent
//! of the call span (an invalid one is ignored: a new trace); [`propagate`] replaces the
//! `traceparent` of the upstream request with the `upstream` span's and passes the
//! caller's `tracestate` on.

use std::time::Duration;

use http::HeaderMap;
use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    runtime::Tokio,
    trace::{span_processor_with_async_runtime::BatchSpanProcessor, BatchConfigBuilder, Sampler, SdkTracerProvider},
    Resource,
};
use tracing::{Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{filter::Targets, registry::LookupSpan, Layer};

use crate::config::{OtlpProtocol, TelemetryConfig};

/// Spans waiting for export at most; beyond, new spans are dropped (docs/operations.md).
pub const MAX_QUEUED_SPANS: usize = 4096;
/// How often queued spans are exported.
const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// How long one export may take before it is given up (its spans are dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why `[telemetry]` could not be started.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: cannot start the OTLP exporter for {endpoint}: {message}")]
pub struct TelemetryError {
    endpoint: String,
    message: String,
}

/// The running trace pipeline: keep it for the life of the process and call
/// [`Telemetry::shutdown`] at the end to flush the spans still queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Starts exporting to `config.otlp_endpoint`. Must be called within a tokio runtime,
    /// which runs the exporter until [`Telemetry::shutdown`].
    pub fn start(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let fail = |message: String| TelemetryError { endpoint: config.otlp_endpoint.clone(), message };
        let exporter = match config.protocol {
            OtlpProtocol::Http => {
                let base = config.otlp_endpoint.trim_end_matches('/');
                let url = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(url)
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()
            }
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.otlp_endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .map_err(|e| fail(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_scheduled_delay(EXPORT_DELAY)
            .with_max_export_timeout(EXPORT_TIMEOUT)
            .build();
        let processor = BatchSpanProcessor::builder(exporter, Tokio).with_batch_config(batch).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
            .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
            .build();
        Ok(Self { provider })
    }

    /// The `tracing` layer exporting the spans of target [`super::TARGET`]; no other span
    /// or event (log lines) reaches the exporter.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("cloakroom"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(super::TARGET, tracing::Level::DEBUG))
    }

    /// Exports the spans still queued (bounded by the export timeout) and stops. Call it
    /// outside the runtime's worker threads, while the runtime still runs.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: flushing the last spans failed");
        }
    }
}

/// Makes the caller's `traceparent` (and `tracestate`), when valid, the parent of `span`.
pub(crate) fn continue_trace(span: &Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Sends `span`'s trace context upstream in place of the caller's. Without an
/// OpenTelemetry subscriber the span has no context and the headers stay as they are.
pub(crate) fn propagate(span: &Span, headers: &mut HeaderMap) {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}
