//! The running gateway: the layers of docs/reference.md (data path) composed over the forwarder, behind an
//! `arc-swap` so that a reload swaps routes, identity and policies without dropping
//! in-flight calls. The listener's service is in [`service`].

#[cfg(feature = "bench-layers")]
mod bench_layers;
mod budgets;
mod service;

pub use service::GatewayService;

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use cloakroom_audit::{AuditLayer, AuditLog};
use cloakroom_core::CallId;
use cloakroom_identity::{Authenticator, IdentityLayer, SessionKeys};
use cloakroom_mask::{MaskHandle, MaskLayer};
use cloakroom_policy::{Approvals, Policies, Policy, PolicyInput, PolicyLayer};
use cloakroom_vault::{Catalog, DetokenizeLayer, InFlight, Keys};
use http::{header, Request, Response};
use http_body::Body;
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt};
use tower_http::{sensitive_headers::SetSensitiveRequestHeadersLayer, trace::TraceLayer};

use crate::{
    call::{CallLayer, ToolVisibility},
    config::{Config, ConfigError},
    forward::{boxed, BoxError, Forwarder, GatewayBody},
    mcp::session::{McpSessionLayer, McpSessions},
    metrics::Metrics,
    route::Routes,
    secrets::{ApproverRedactor, MaskRedactor, SecretApprovers},
    telemetry::{seal_span, CallSpanService, MaskSpan, Stage, StageEnd, StageName, UpstreamSpan},
};

/// The path prefix of RFC 9728 protected-resource metadata documents.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A component could not be built from a valid configuration.
    #[error("{component}: {message}")]
    Component {
        /// Which part (`audit`, `identity`, `policy`, `approvals`, `budgets`, `data_dir`).
        component: &'static str,
        /// Why.
        message: String,
    },
}

fn component(component: &'static str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Component { component, message: e.to_string() }
}

/// Creates `data_dir` (and missing parents) readable by this user only: it holds the
/// audit records and the embedded vault. An existing directory others can read is used
/// as it is, with a warning.
fn create_data_dir(data_dir: &Path) -> Result<(), GatewayError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |e: std::io::Error| component("data_dir", format!("{}: {e}", data_dir.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(err)?;
    let mode = std::fs::metadata(data_dir).map_err(err)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            data_dir = %data_dir.display(),
            mode = format_args!("{mode:o}"),
            "server.data_dir can be read by other users; it holds the audit records and the vault (chmod 700)"
        );
    }
    Ok(())
}

/// The session signing key: from `identity.sessions.signing_key_env` when set (replicas
/// share it), else kept in `data_dir/session.key`.
async fn open_session_keys(config: &Config, data_dir: &Path) -> Result<SessionKeys, GatewayError> {
    if let Some(var) = &config.identity.sessions.signing_key_env {
        let text = std::env::var(var).map_err(|_| {
            component("identity", format!("identity.sessions.signing_key_env names {var}, which is not set"))
        })?;
        return SessionKeys::from_private(&text).map_err(|e| component("identity", format!("{var}: {e}")));
    }
    let path = data_dir.join("session.key");
    tokio::task::spawn_blocking(move || SessionKeys::load_or_create(&path))
        .await
        .map_err(|e| component("identity", e))?
        .map_err(|e| component("identity", e))
}

/// The Slack app `[approvals.slack]` describes, its credentials read from the
/// environment; a variable that is not set stops the gateway from starting.
#[cfg(feature = "webhooks")]
fn slack_app(config: &cloakroom_policy::ApprovalsConfig) -> Result<Option<cloakroom_policy::SlackApp>, GatewayError> {
    config
        .slack
        .as_ref()
        .map(|c| cloakroom_policy::SlackApp::from_env(c).map_err(|e| component("approvals", e)))
        .transpose()
}

/// The SAML service provider of `[identity.saml]`, with the IdP metadata read (or fetched)
/// now: a gateway that cannot trust its IdP does not start.
async fn open_saml(config: &Config) -> Result<Option<Arc<cloakroom_identity::saml::ServiceProvider>>, GatewayError> {
    let Some(saml) = &config.identity.saml else { return Ok(None) };
    let acs_url = saml.acs_url.clone().unwrap_or_else(|| format!("http://{}/v1/saml/acs", config.server.admin_listen));
    let sp = cloakroom_identity::saml::ServiceProvider::load(saml.clone(), acs_url)
        .await
        .map_err(|e| component("identity", format!("identity.saml: {e}")))?;
    tracing::info!(idp = %sp.idp().entity_id, acs_url = %sp.acs_url(), "SAML sign-in enabled");
    Ok(Some(Arc::new(sp)))
}

/// The approval store `[approvals]` names: sled under `data_dir/approvals`, PostgreSQL
/// from the environment variable `approvals.postgres_url_env` (migrated on open), which
/// several replicas share, or this process's memory. One this build was compiled without
/// is refused, naming its cargo feature.
#[cfg_attr(not(feature = "sled"), allow(unused_variables))]
type StackService = BoxCloneSyncService<Request<hyper::body::Incoming>, Response<GatewayBody>, Infallible>;

/// What a reload replaces.
pub(crate) struct Stack {
    pub(crate) config: Arc<Config>,
    pub(crate) routes: Routes,
    pub(crate) authenticator: Arc<Authenticator>,
    service: StackService,
}

pub(crate) struct Shared {
    config_path: Option<PathBuf>,
    pub(crate) stack: ArcSwap<Stack>,
    /// Held while a configuration is read and applied, so that overlapping reloads
    /// (SIGHUP and `POST /v1/reload`) apply in the order their files were read.
    reloading: tokio::sync::Mutex<()>,
    pub(crate) audit: AuditLog,
    pub(crate) policies: Policies,
    /// The custom policies of [`crate::GatewayBuilder::policy`], in every set built.
    custom: Vec<Arc<dyn Policy>>,
    pub(crate) approvals: Approvals,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) mask: MaskHandle,
    pub(crate) inflight: InFlight,
    sessions: McpSessions,
    forwarder: Forwarder,
    pub(crate) metrics: Arc<Metrics>,
    /// The key people's sessions are signed with (SAML, OIDC sign-in, the console).
    session_keys: Arc<SessionKeys>,
    /// The SAML service provider of `[identity.saml]` (built at start; changes need a restart).
    pub(crate) saml: Option<Arc<cloakroom_identity::saml::ServiceProvider>>,
    /// OIDC sign-ins in progress and sessions waiting for `cloakroom login`.
    pub(crate) oidc_sign_ins: crate::admin::OidcSignIns,
}

/// The gateway: cheap to clone, shared by the listeners.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config_path", &self.shared.config_path).finish_non_exhaustive()
    }
}

impl Gateway {
    /// Opens the stores under `server.data_dir` and builds the data path. `config_path`
    /// is the file [`Gateway::reload`] reads again (and Datalog files are relative to).
    /// [`Gateway::builder`] does the same and takes custom policies.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Self, GatewayError> {
        Self::start_with_keys(config, config_path, None).await
    }

    /// Like [`Gateway::start`], with the placeholder and vault keys given instead of read
    /// from the environment or `vault.keys_file` (dev mode).
    pub async fn start_with_keys(
        config: Config,
        config_path: Option<PathBuf>,
        keys: Option<Keys>,
    ) -> Result<Self, GatewayError> {
        Self::launch(config, config_path, keys, Vec::new()).await
    }

    /// What [`crate::GatewayBuilder::start`] runs.
    pub(crate) async fn launch(
        config: Config,
        config_path: Option<PathBuf>,
        keys: Option<Keys>,
        custom: Vec<Arc<dyn Policy>>,
    ) -> Result<Self, GatewayError> {
        let data_dir = config.server.data_dir.clone();
        create_data_dir(&data_dir)?;
        let catalog = match &keys {
            Some(keys) => Catalog::open_with_keys(&config.vault, &config.secrets, &data_dir, keys).await,
            None => Catalog::open(&config.vault, &config.secrets, &data_dir).await,
        }
        .map_err(|e| component("vault", e))?;
        let mask = MaskHandle::empty();
        catalog.attach_masker(mask.clone(), config.masking.clone());
        let inflight = InFlight::new(catalog.clone());
        let audit = AuditLog::open(&config.audit, &data_dir, Arc::new(MaskRedactor(mask.clone())))
            .await
            .map_err(|e| component("audit", e))?;
        let approvals = Approvals::open(&config.approvals, &data_dir)
            .await
            .map_err(|e| component("approvals", e))?
            .with_redactor(Arc::new(ApproverRedactor(mask.clone())));
        #[cfg(feature = "webhooks")]
        approvals.set_slack(slack_app(&config.approvals)?);
        catalog.set_budget_store(budgets::open(&config.approvals, &data_dir).await?);
        let base = base_dir(config_path.as_deref());
        let set = policy_set(&config, &base, &catalog, &custom)?;
        let policies = Policies::new(set);
        let forwarder = Forwarder::new(config.server.connect_timeout, config.server.upstream_timeout);
        let metrics = Arc::new(Metrics::default());
        metrics.set_known_from(&config);
        let sessions = McpSessions::default();
        let session_keys = Arc::new(open_session_keys(&config, &data_dir).await?);
        let saml = open_saml(&config).await?;
        let parts = Parts {
            audit: &audit,
            policies: &policies,
            approvals: &approvals,
            catalog: &catalog,
            mask: &mask,
            inflight: &inflight,
            sessions: &sessions,
            forwarder: &forwarder,
            session_keys: &session_keys,
            metrics: &metrics,
        };
        let stack = build_stack(Arc::new(config), &parts)?;
        Ok(Self {
            shared: Arc::new(Shared {
                config_path,
                stack: ArcSwap::from_pointee(stack),
                reloading: tokio::sync::Mutex::new(()),
                audit,
                policies,
                custom,
                approvals,
                catalog,
                mask,
                inflight,
                sessions,
                forwarder,
                metrics,
                session_keys,
                saml,
                oidc_sign_ins: crate::admin::OidcSignIns::default(),
            }),
        })
    }

    /// Reads the configuration file again and applies it (see [`Gateway::apply`]).
    /// On any error the running configuration stays in force.
    pub async fn reload(&self) -> Result<(), GatewayError> {
        let Some(path) = &self.shared.config_path else {
            return Err(component("reload", "this gateway was not started from a configuration file"));
        };
        let _order = self.shared.reloading.lock().await;
        // Reading the file is blocking I/O; the reload runs on a serving runtime.
        let path = path.clone();
        let config =
            tokio::task::spawn_blocking(move || Config::load(&path)).await.map_err(|e| component("reload", e))??;
        self.apply_locked(config).await
    }

    /// Applies `config`; in-flight calls finish on the configuration they started
    /// with, their responses masked by the masker in force when they arrived. The keys
    /// [`Config::restart_changes`] names need a restart (a warning names them).
    ///
    /// A configuration that accepts no credential at all (no API key, OIDC issuer or
    /// Biscuit root key) is refused when the running one accepts some: that is what an
    /// empty or cut-off file looks like (a file rewritten in place while the gateway
    /// reads it), and applying it would lock every caller and admin out. Start the
    /// gateway with such a file if that is really meant.
    pub async fn apply(&self, config: Config) -> Result<(), GatewayError> {
        let _order = self.shared.reloading.lock().await;
        self.apply_locked(config).await
    }

    async fn apply_locked(&self, config: Config) -> Result<(), GatewayError> {
        let shared = &self.shared;
        let current = shared.stack.load();
        if !config.identity.accepts_any_credential() && current.config.identity.accepts_any_credential() {
            return Err(component(
                "identity",
                "the new configuration accepts no credential at all (no [identity] api_keys, oidc or biscuit); \
                 refusing to lock every caller out (an empty or cut-off file?). Restart with it if that is meant",
            ));
        }
        let deferred = current.config.restart_changes(&config);
        if !deferred.is_empty() {
            tracing::warn!(keys = %deferred.join(", "), "these changes take effect at the next restart");
        }
        // Read the Slack credentials before anything is applied: a variable that is not
        // set refuses the reload.
        #[cfg(feature = "webhooks")]
        let slack = if config.approvals.slack != current.config.approvals.slack {
            Some(slack_app(&config.approvals)?)
        } else {
            None
        };
        // Building reads files (Datalog policies, CA certificates of `ca_file`): on the
        // blocking pool, not on the runtime thread that serves calls.
        let owned = self.shared.clone();
        let (set, stack) = tokio::task::spawn_blocking(move || {
            let shared = &*owned;
            let base = base_dir(shared.config_path.as_deref());
            let set = policy_set(&config, &base, &shared.catalog, &shared.custom)?;
            let parts = Parts {
                audit: &shared.audit,
                policies: &shared.policies,
                approvals: &shared.approvals,
                catalog: &shared.catalog,
                mask: &shared.mask,
                inflight: &shared.inflight,
                sessions: &shared.sessions,
                forwarder: &shared.forwarder,
                session_keys: &shared.session_keys,
                metrics: &shared.metrics,
            };
            Ok::<_, GatewayError>((set, build_stack(Arc::new(config), &parts)?))
        })
        .await
        .map_err(|e| component("reload", e))??;
        shared.catalog.apply_config(&stack.config.secrets).await.map_err(|e| component("secrets", e))?;
        // After the last step that can fail, so a refused reload changes nothing.
        if stack.config.masking != current.config.masking {
            shared.catalog.set_masking(stack.config.masking.clone()).await;
        }
        if stack.config.approvals != current.config.approvals {
            shared.approvals.apply_config(&stack.config.approvals);
        }
        #[cfg(feature = "webhooks")]
        if let Some(slack) = slack {
            shared.approvals.set_slack(slack);
        }
        shared.policies.store(set);
        shared.metrics.set_known_from(&stack.config);
        shared.stack.store(Arc::new(stack));
        tracing::info!("configuration reloaded");
        Ok(())
    }

    /// The SAML service provider, when `[identity.saml]` is configured.
    pub fn saml(&self) -> Option<&cloakroom_identity::saml::ServiceProvider> {
        self.shared.saml.as_deref()
    }

    /// The key people's sessions are minted with ([`cloakroom_identity::SessionKeys::mint`]).
    pub fn session_keys(&self) -> &SessionKeys {
        &self.shared.session_keys
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.shared.stack.load().config.clone()
    }

    /// The authenticator in force (for the admin API).
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.shared.stack.load().authenticator.clone()
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.shared.audit
    }

    /// The approvals.
    pub fn approvals(&self) -> &Approvals {
        &self.shared.approvals
    }

    /// The secret catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.shared.catalog
    }

    /// The in-flight call registry (function-side redemption).
    pub fn inflight(&self) -> &InFlight {
        &self.shared.inflight
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Flushes and closes the audit log (at shutdown).
    pub async fn close(&self) {
        self.shared.audit.close().await;
    }

    /// The service of the gateway listener, for a connection from `peer`.
    pub fn service(&self, peer: Option<std::net::SocketAddr>) -> GatewayService {
        GatewayService::new(self.clone(), peer)
    }
}

fn base_dir(config_path: Option<&Path>) -> PathBuf {
    config_path.and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn policy_set(
    config: &Config,
    base: &Path,
    catalog: &Arc<Catalog>,
    custom: &[Arc<dyn Policy>],
) -> Result<cloakroom_policy::PolicySet, GatewayError> {
    let mut builder = cloakroom_policy::PolicySet::builder()
        .config(&config.policy)
        .base_dir(base)
        .custom(Arc::new(SecretApprovers::new(catalog.clone())));
    for policy in custom {
        builder = builder.custom(policy.clone());
    }
    if let Some(b) = &config.identity.biscuit {
        builder = builder.biscuit_root_key_str(&b.root_public_key).map_err(|e| component("policy", e))?;
    }
    builder.build().map_err(|e| component("policy", e))
}

/// The long-lived parts a stack is built over.
struct Parts<'a> {
    audit: &'a AuditLog,
    policies: &'a Policies,
    approvals: &'a Approvals,
    catalog: &'a Arc<Catalog>,
    mask: &'a MaskHandle,
    inflight: &'a InFlight,
    sessions: &'a McpSessions,
    forwarder: &'a Forwarder,
    session_keys: &'a SessionKeys,
    metrics: &'a Arc<Metrics>,
}

fn build_stack(config: Arc<Config>, p: &Parts<'_>) -> Result<Stack, GatewayError> {
    let routes = Routes::new(&config.functions)
        .map_err(|e| component("functions", e))?
        .with_clients(config.server.connect_timeout)
        .map_err(|e| component("functions", e))?;
    let authenticator = Arc::new(
        Authenticator::new(&config.identity)
            .map_err(|e| component("identity", e))?
            .with_session_key(p.session_keys.public()),
    );
    let visible_policies = p.policies.clone();
    let visibility: ToolVisibility = Arc::new(move |identity, call| {
        let policies = visible_policies.clone();
        Box::pin(async move {
            let Some(identity) = identity else { return false };
            let input = PolicyInput::new(&identity, &call).with_source_ip(identity.source_ip);
            policies.evaluate(&input).await.effect != cloakroom_core::Effect::Deny
        })
    });
    let scanner = crate::secrets::scanner(p.catalog);
    let max_body = config.server.max_body_bytes;
    let call = CallLayer::new(max_body).tool_visibility(visibility).secret_scanner(scanner);
    #[cfg(feature = "bench-layers")]
    if let Some(step) = bench_layers::step() {
        let service = bench_layers::stack(step, p, &authenticator, call, max_body);
        return Ok(Stack { config, routes, authenticator, service });
    }
    let service = ServiceBuilder::new()
        // Layer 1 of docs/reference.md (data path): credentials never reach a log line, every call gets a span
        // carrying its call id (the request id, echoed as Cloakroom-Call-Id).
        .layer(sensitive_headers())
        .layer(trace_layer())
        // Slow bodies (slowloris) fail here, inside the audit layer, so the refusal is recorded.
        .layer(crate::server::BodyDeadlineLayer::new(config.server.body_read_timeout, config.server.body_min_rate))
        .layer(AuditLayer::new(p.audit.clone(), &config.audit).on_seal(seal_span(p.metrics.on_seal())))
        // Stage / StageEnd time the layer between them (docs/operations.md, "Traces").
        .layer(Stage::new(StageName::Identity))
        .layer(IdentityLayer::new(authenticator.clone()))
        .layer(StageEnd::new(StageName::Identity))
        .layer(McpSessionLayer::new(p.sessions.clone()))
        .layer(call)
        .layer(Stage::new(StageName::Policy))
        .layer(PolicyLayer::new(p.policies.clone(), p.approvals.clone()))
        .layer(StageEnd::new(StageName::Policy))
        .layer(Stage::new(StageName::Detokenize))
        .layer(detokenize_layer(p.catalog, p.inflight, p.approvals, max_body))
        .layer(StageEnd::new(StageName::Detokenize))
        .layer(MaskSpan)
        .layer(MaskLayer::new(p.mask.clone()))
        .layer(UpstreamSpan)
        .service(p.forwarder.clone());
    let service = ServiceExt::<Request<hyper::body::Incoming>>::map_response(service, box_response);
    // The call span, parent of every span of the call: outermost, so it ends last.
    let service = CallSpanService::new(service);
    Ok(Stack { config, routes, authenticator, service: BoxCloneSyncService::new(service) })
}

/// Marks the headers that carry credentials as sensitive, so no log line shows them.
fn sensitive_headers() -> SetSensitiveRequestHeadersLayer {
    SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::PROXY_AUTHORIZATION, header::COOKIE])
}

/// The tracing layer of [`trace_layer`].
type CallTraceLayer = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request<hyper::body::Incoming>) -> tracing::Span,
>;

/// A span per call carrying its call id (the request id, echoed as Cloakroom-Call-Id).
fn trace_layer() -> CallTraceLayer {
    fn span(req: &Request<hyper::body::Incoming>) -> tracing::Span {
        let call_id = req.extensions().get::<CallId>().map(|c| c.to_string()).unwrap_or_default();
        tracing::info_span!("call", %call_id, method = %req.method(), path = %cloakroom_core::quoted(req.uri().path()))
    }
    TraceLayer::new_for_http().make_span_with(span as fn(&Request<hyper::body::Incoming>) -> tracing::Span)
}

/// The detokenizer over the gateway's catalog, in-flight registry and approvals.
pub(crate) fn detokenize_layer(
    catalog: &Arc<Catalog>,
    inflight: &InFlight,
    approvals: &Approvals,
    max_body: u64,
) -> DetokenizeLayer {
    DetokenizeLayer::new(catalog.clone())
        .max_body_bytes(usize::try_from(max_body).unwrap_or(usize::MAX))
        .inflight(inflight.clone())
        .approvals(Arc::new(approvals.clone()))
}

fn box_response<B>(res: Response<B>) -> Response<GatewayBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    res.map(boxed)
}
