//! The `[telemetry]` table: OpenTelemetry traces over OTLP (docs/operations.md, "Traces").

use serde::Deserialize;

/// `[telemetry]`: where cloakroomd exports its traces. Absent: no traces are exported
/// and the per-layer spans cost nothing (their callsites stay disabled).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP receiver, e.g. `"http://127.0.0.1:4318"` (HTTP/protobuf; spans are posted
    /// to `/v1/traces` below it unless the URL already ends so) or
    /// `"http://127.0.0.1:4317"` (gRPC). Plain `http://` only. Required.
    pub otlp_endpoint: String,
    /// `"http"` (HTTP/protobuf, the default) or `"grpc"`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The share of new traces recorded, 0.0 to 1.0 (default 1.0). A call that carries a
    /// caller's `traceparent` follows the caller's sampling decision instead.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// The `service.name` resource attribute. Default `"cloakroomd"`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

/// How spans travel to the OTLP receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`).
    #[default]
    Http,
    /// OTLP/gRPC.
    Grpc,
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_service_name() -> String {
    "cloakroomd".to_owned()
}

impl TelemetryConfig {
    /// The first invalid key and why, if any.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("sample_ratio", format!("expected a number from 0.0 to 1.0, got {}", self.sample_ratio)));
        }
        match self.otlp_endpoint.parse::<http::Uri>() {
            Ok(uri)
                if uri.scheme_str() == Some("http")
                    && uri.host().is_some_and(|h| !h.is_empty())
                    && uri.query().is_none() => {}
            _ => {
                return Err((
                    "otlp_endpoint",
                    format!(
                        "expected an http:// URL without a query, like \"http://127.0.0.1:4318\" (TLS to the receiver \
                         is not supported: export to a collector on the host or its network), got {:?}",
                        self.otlp_endpoint
                    ),
                ))
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(("service_name", "expected a non-empty service name".to_owned()));
        }
        Ok(())
    }

    /// `Err` when this build has no `otel` feature (docs/configuration.md, "Cargo features").
    pub(crate) fn check_features(&self) -> Result<(), cloakroom_core::MissingFeature> {
        cloakroom_core::require_feature(cfg!(feature = "otel"), "otel", "[telemetry]")
    }
}
