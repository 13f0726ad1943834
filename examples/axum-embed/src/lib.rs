//! Cloakroom's layers inside an existing axum service.
//!
//! The gateway (`cloakroomd`) is one way to run Cloakroom; this crate shows the other:
//! an axum application that keeps its own handlers and routing and puts the library
//! layers in front of them, in the order of SPEC §2:
//!
//! ```text
//! AuditLayer → IdentityLayer → NameCall (this crate) → PolicyLayer → DetokenizeLayer → MaskLayer → your handler
//! ```
//!
//! - [`AuditLayer`](cloakroom_audit::AuditLayer) records every request, denials
//!   included, with the response as the caller received it (masked);
//! - [`IdentityLayer`](cloakroom_identity::IdentityLayer) turns `Authorization: Bearer
//!   <api key>` into an [`Identity`](cloakroom_core::Identity) or answers 401;
//! - [`NameCall`] is the one piece an embedding writes itself: it says which function
//!   a request is (here: the first path segment) — the gateway's `CallLayer` does the
//!   same from its `[[functions]]` routes;
//! - [`PolicyLayer`](cloakroom_policy::PolicyLayer) applies `[[policy.rules]]`
//!   (deny by default);
//! - [`DetokenizeLayer`](cloakroom_vault::DetokenizeLayer) swaps placeholders for
//!   secrets where their binding allows and refuses the call otherwise;
//! - [`MaskLayer`](cloakroom_mask::MaskLayer) replaces every known secret in the
//!   response by its placeholder.
//!
//! The handler of the example, `GET /weather`, calls a (pretend) weather provider with
//! the API key it finds in `X-Api-Key` and — carelessly — echoes that key back in its
//! answer. The caller only ever holds the key's placeholder: the handler receives the
//! real key, the caller gets the placeholder back. `tests/embed.rs` runs it on
//! 127.0.0.1 and checks exactly that, plus a denial and the audit chain.
//!
//! What this embedding leaves out compared with `cloakroomd`: the admin API, approvals
//! with a waiting period and webhooks, OIDC discovery, MCP parsing, reloads, metrics.
//! Each is available from the same crates (`Approvals`, `Authenticator`, `Policies::store`…).
#![deny(unsafe_code)]

use std::{
    path::Path,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};
use cloakroom_audit::{AuditConfig, AuditLayer, AuditLog, Redactor};
use cloakroom_core::{Call, Placeholder, Protocol, Secret};
use cloakroom_identity::{Authenticator, IdentityConfig, IdentityLayer};
use cloakroom_mask::{MaskHandle, MaskLayer, MaskingConfig, Matcher};
use cloakroom_policy::{Approvals, ApprovalsConfig, Policies, PolicyConfig, PolicyLayer, PolicySet, SledApprovalStore};
use cloakroom_vault::{BindingSpec, Catalog, DetokenizeLayer, EmbeddedVault, Keys};
use tower::{Layer, Service, ServiceBuilder};

/// Any error while setting the example up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the embedding is made of: the axum router with the layers on, and the parts an
/// application keeps a handle on (to add secrets, read the audit log, close it).
pub struct Embedded {
    /// The application's router, every Cloakroom layer applied.
    pub router: Router,
    /// The secret catalog (values in an embedded, encrypted sled store).
    pub catalog: Arc<Catalog>,
    /// The response masker, rebuilt from the catalog.
    pub mask: MaskHandle,
    /// The audit log (sled, hash-chained).
    pub audit: AuditLog,
    masking: MaskingConfig,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded").finish_non_exhaustive()
    }
}

/// The configuration an embedding supplies: the same serde structs as the `[identity]`,
/// `[policy]` and `[audit]` sections of `cloakroom.toml`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Who may call (API keys, OIDC issuers, Biscuit root key).
    pub identity: IdentityConfig,
    /// `[[policy.rules]]`.
    pub policy: PolicyConfig,
    /// The audit sink and durability.
    pub audit: AuditConfig,
}

/// The audit log's redactor: the response masker once more over what is recorded.
struct MaskRedactor(MaskHandle);

impl Redactor for MaskRedactor {
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        self.0.load().replace(bytes).output
    }
}

impl Embedded {
    /// Opens the stores under `data_dir` (vault, approvals, audit) with `keys` and
    /// builds the router.
    pub async fn build(data_dir: &Path, keys: &Keys, settings: &Settings) -> Result<Self, BoxError> {
        let vault_key = keys.vault_key().ok_or("the embedded vault needs a vault key")?;
        let store = EmbeddedVault::open(&data_dir.join("vault"), vault_key)?;
        let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await?;
        let masking = MaskingConfig::default();
        let mask = MaskHandle::empty();
        catalog.attach_masker(mask.clone(), masking.clone());

        let audit = AuditLog::open(&settings.audit, data_dir, Arc::new(MaskRedactor(mask.clone()))).await?;
        let authenticator = Arc::new(Authenticator::new(&settings.identity)?);
        let policies = Policies::new(PolicySet::builder().config(&settings.policy).build()?);
        let approvals =
            Approvals::new(Arc::new(SledApprovalStore::open(&data_dir.join("approvals"))?), ApprovalsConfig::default());

        let cloakroom = ServiceBuilder::new()
            .layer(AuditLayer::new(audit.clone(), &settings.audit))
            .layer(IdentityLayer::new(authenticator))
            .layer(NameCallLayer)
            .layer(PolicyLayer::new(policies, approvals))
            .layer(DetokenizeLayer::new(catalog.clone()))
            .layer(MaskLayer::new(mask.clone()));
        let router = Router::new()
            .route("/weather", get(weather))
            .route("/payroll", get(|| async { "payroll: nobody may call this" }))
            .layer(cloakroom);
        Ok(Self { router, catalog, mask, audit, masking })
    }

    /// Stores a secret with its binding and returns its placeholder; the response masker
    /// knows it when this returns.
    pub async fn put_secret(&self, name: &str, value: Secret, binding: BindingSpec) -> Result<Placeholder, BoxError> {
        let placeholder = self.catalog.put(name, value, Some(binding)).await?;
        // attach_masker rebuilds on a blocking thread; build now so the very next
        // response is masked too.
        let entries = self.catalog.snapshot().mask_entries(&self.masking);
        self.mask.store(Matcher::build(entries, &self.masking.options())?);
        Ok(placeholder)
    }
}

/// The application's handler: calls the weather provider with the key it was given and
/// (a bug on purpose) echoes the key in its answer.
async fn weather(headers: HeaderMap) -> (StatusCode, Json<serde_json::Value>) {
    let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "X-Api-Key is missing"})));
    };
    let provider_accepts = !key.starts_with("cloak_");
    (
        StatusCode::OK,
        Json(serde_json::json!({
            "forecast": if provider_accepts { "sunny" } else { "provider refused the key" },
            "debug": { "api_key_used": key },
        })),
    )
}

/// Names the function a request calls: the first path segment (`/weather` →
/// `weather`). This is the part of the gateway's `CallLayer` an embedding supplies
/// itself; JSON arguments could be parsed here too for `arguments` rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameCallLayer;

impl<S> Layer<S> for NameCallLayer {
    type Service = NameCall<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NameCall { inner }
    }
}

/// The service of [`NameCallLayer`]: inserts a [`Call`] into the request extensions.
#[derive(Debug, Clone)]
pub struct NameCall<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for NameCall<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let function = req.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
        let call = Call::new(function, Protocol::Http)
            .with_arguments(serde_json::Value::Null)
            .with_method(req.method().to_string())
            .with_digest(String::new());
        req.extensions_mut().insert(call);
        self.inner.call(req)
    }
}
