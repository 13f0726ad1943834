//! `cloakroom.toml`: the whole file, loaded and validated.
//!
//! Each crate owns the serde structs of its own section; this module owns `[server]`
//! and `[[functions]]` and composes the rest. Unknown keys are errors, and every error
//! names the file, the line and the dotted key, and says what was expected:
//!
//! ```
//! use cloakroom_gateway::config::Config;
//! let err = Config::from_toml_str("cloakroom.toml", "[server]\nlisten = 8080\n").unwrap_err();
//! let msg = err.to_string();
//! assert!(msg.starts_with("cloakroom.toml:2: server.listen:"), "{msg}");
//!
//! let cfg = Config::from_toml_str("cloakroom.toml", r#"
//! [server]
//! listen = "127.0.0.1:9080"
//! admin_listen = "127.0.0.1:9081"
//! upstream_timeout = "5s"
//!
//! [[functions]]
//! name = "payments"
//! upstream = "http://127.0.0.1:9000"
//! route = "/fn/payments"
//! "#).unwrap();
//! assert_eq!(cfg.server.upstream_timeout, std::time::Duration::from_secs(5));
//! assert_eq!(cfg.functions[0].name, "payments");
//! ```

mod function;
mod keys;
mod locate;
mod server;
mod telemetry;
mod warnings;

use std::{collections::HashMap, path::Path};

use cloakroom_audit::AuditConfig;
use cloakroom_identity::IdentityConfig;
use cloakroom_mask::MaskingConfig;
use cloakroom_policy::{ApprovalsConfig, PolicyConfig};
use cloakroom_vault::{SecretConfig, VaultConfig};
use serde::Deserialize;

pub use function::FunctionConfig;
pub use server::{ServerConfig, MIN_HEADER_BYTES};
pub use telemetry::{OtlpProtocol, TelemetryConfig};

use locate::PathPart;

/// The whole `cloakroom.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[[functions]]`: the functions the gateway routes to.
    #[serde(default)]
    pub functions: Vec<FunctionConfig>,
    /// `[identity]`: who may call and how they prove it (cloakroom-identity).
    #[serde(default)]
    pub identity: IdentityConfig,
    /// `[vault]`: where secret values live (cloakroom-vault).
    #[serde(default)]
    pub vault: VaultConfig,
    /// `[[secrets]]`: secret bindings declared in the configuration (cloakroom-vault).
    #[serde(default)]
    pub secrets: Vec<SecretConfig>,
    /// `[masking]`: how secrets in responses are replaced (cloakroom-mask).
    #[serde(default)]
    pub masking: MaskingConfig,
    /// `[policy]`: rules and Datalog policies (cloakroom-policy).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[approvals]`: just-in-time approvals (cloakroom-policy).
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// `[audit]`: the audit log (cloakroom-audit).
    #[serde(default)]
    pub audit: AuditConfig,
    /// `[telemetry]`: OpenTelemetry traces over OTLP; absent, none are exported.
    #[serde(default)]
    pub telemetry: Option<TelemetryConfig>,
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid, or a value is not what was expected.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// Dotted key path, e.g. `functions[1].route`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },
}

impl ConfigError {
    /// The line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            ConfigError::Read { .. } => None,
        }
    }

    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Builds [`ConfigError::Invalid`] for the value at a path of the document.
pub(crate) struct Locator<'a> {
    file: &'a str,
    source: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a str, source: &'a str) -> Self {
        Self { file, source }
    }

    /// An error about the value at `path`, e.g. `[Key("functions"), Index(1), Key("route")]`.
    pub(crate) fn error(&self, path: &[PathPart<'_>], message: impl Into<String>) -> ConfigError {
        let line = locate::span_of(self.source, path).map(|s| locate::line_of(self.source, s.start)).unwrap_or(1);
        let mut key = String::new();
        for p in path {
            match p {
                PathPart::Key(k) => {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(k);
                }
                PathPart::Index(i) => key.push_str(&format!("[{i}]")),
            }
        }
        ConfigError::Invalid { file: self.file.to_owned(), line, key, message: message.into() }
    }

    /// Turns a serde/TOML error into one naming the line and key.
    pub(crate) fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span();
        let line = span.as_ref().map(|s| locate::line_of(self.source, s.start)).unwrap_or(1);
        let key = span.as_ref().and_then(|s| locate::key_at(self.source, s)).unwrap_or_else(|| "(document)".to_owned());
        ConfigError::Invalid { file: self.file.to_owned(), line, key, message: err.message().trim().replace('\n', " ") }
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let source =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Self::from_toml_str(&file, &source)
    }

    /// Parses and validates `source`; `file` names it in error messages.
    pub fn from_toml_str(file: &str, source: &str) -> Result<Self, ConfigError> {
        let at = Locator::new(file, source);
        let config: Config = toml::from_str(source).map_err(|e| at.toml_error(&e))?;
        config.validate(&at)?;
        Ok(config)
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        use PathPart::{Index, Key};
        if self.server.listen == self.server.admin_listen {
            return Err(at.error(
                &[Key("server"), Key("admin_listen")],
                format!(
                    "the admin API must listen on another address than the gateway (both are {})",
                    self.server.listen
                ),
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(at.error(&[Key("server"), Key("max_body_bytes")], "expected a size in bytes greater than 0"));
        }
        if (self.server.max_header_bytes.get() as usize) < MIN_HEADER_BYTES {
            return Err(at.error(
                &[Key("server"), Key("max_header_bytes")],
                format!("expected at least {} bytes", MIN_HEADER_BYTES),
            ));
        }
        for (key, d) in [
            ("header_read_timeout", self.server.header_read_timeout),
            ("idle_timeout", self.server.idle_timeout),
            ("body_read_timeout", self.server.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(at.error(&[Key("server"), Key(key)], "expected a duration greater than 0"));
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut routes: HashMap<&str, usize> = HashMap::new();
        for (i, f) in self.functions.iter().enumerate() {
            let here = |k| [Key("functions"), Index(i), Key(k)];
            if let Err(why) = validate_name(&f.name) {
                return Err(at.error(&here("name"), why));
            }
            if let Some(first) = names.insert(&f.name, i) {
                return Err(at.error(
                    &here("name"),
                    format!("function name {:?} is already used by functions[{first}]; names must be unique", f.name),
                ));
            }
            if let Err(why) = validate_route(&f.route) {
                return Err(at.error(&here("route"), why));
            }
            if let Some(first) = routes.insert(&f.route, i) {
                return Err(at.error(
                    &here("route"),
                    format!("route {:?} is already used by functions[{first}]; routes must be unique", f.route),
                ));
            }
            if let Err(why) = crate::upstream::Upstream::parse(&f.upstream) {
                return Err(at.error(&here("upstream"), why.to_string()));
            }
        }
        let mut secret_names: HashMap<&str, usize> = HashMap::new();
        for (i, secret) in self.secrets.iter().enumerate() {
            let here = |k| [Key("secrets"), Index(i), Key(k)];
            if let Err(e) = cloakroom_vault::validate_name(&secret.name) {
                return Err(at.error(&here("name"), e.to_string()));
            }
            if let Some(first) = secret_names.insert(&secret.name, i) {
                return Err(at.error(
                    &here("name"),
                    format!("secret {:?} is already declared by secrets[{first}]; names must be unique", secret.name),
                ));
            }
            if let Err(e) = secret.binding() {
                return Err(at.error(&[Key("secrets"), Index(i)], e.to_string()));
            }
            if let Some(j) = self.unknown_function(&secret.functions) {
                return Err(at.error(
                    &[Key("secrets"), Index(i), Key("functions"), Index(j)],
                    format!("no [[functions]] entry is named {:?}", base_name(&secret.functions[j])),
                ));
            }
        }
        self.check_features(at)?;
        if let Some(t) = &self.telemetry {
            if let Err((key, why)) = t.validate() {
                return Err(at.error(&[Key("telemetry"), Key(key)], why));
            }
        }
        if self.vault.backend == cloakroom_vault::BackendKind::Openbao && self.vault.openbao.is_none() {
            return Err(
                at.error(&[Key("vault"), Key("backend")], "backend = \"openbao\" needs a [vault.openbao] table")
            );
        }
        if let Err(e) = cloakroom_identity::Authenticator::new(&self.identity) {
            return Err(at.error(&[Key("identity")], e.to_string()));
        }
        if let Some(saml) = &self.identity.saml {
            if let Err((key, why)) = saml.validate() {
                return Err(at.error(&[Key("identity"), Key("saml"), Key(key)], why));
            }
        }
        for (i, rule) in self.policy.rules.iter().enumerate() {
            if let Some(j) = self.unknown_function(&rule.functions) {
                return Err(at.error(
                    &[Key("policy"), Key("rules"), Index(i), Key("functions"), Index(j)],
                    format!("no [[functions]] entry is named {:?}", base_name(&rule.functions[j])),
                ));
            }
            if rule.name.trim().is_empty() {
                return Err(
                    at.error(&[Key("policy"), Key("rules"), Index(i), Key("name")], "expected a non-empty rule name")
                );
            }
        }
        Ok(())
    }
}

impl Config {
    /// Refuses a backend this build was compiled without (see docs/configuration.md,
    /// "Cargo features"), pointing at its key and naming the missing cargo feature.
    fn check_features(&self, at: &Locator<'_>) -> Result<(), ConfigError> {
        let telemetry = self.telemetry.as_ref().map_or(Ok(()), |t| t.check_features());
        let missing =
            [self.vault.check_features(), self.audit.check_features(), self.approvals.check_features(), telemetry];
        match missing.into_iter().find_map(Result::err) {
            Some(e) => Err(missing_feature(at, &e)),
            None => Ok(()),
        }
    }

    /// The keys changed from `self` to `new` that a reload cannot apply: they take
    /// effect at the next restart. Everything else — functions, identity, policy,
    /// secret bindings, masking, `server.max_body_bytes`, `server.body_read_timeout`,
    /// `server.body_min_rate`, `audit.record_bodies`, `audit.max_body_record_bytes`,
    /// `approvals.wait`/`ttl`/`webhooks` — a reload applies.
    pub fn restart_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut check = |changed: bool, key: &'static str| {
            if changed {
                out.push(key);
            }
        };
        let (s, n) = (&self.server, &new.server);
        check(s.listen != n.listen, "server.listen");
        check(s.admin_listen != n.admin_listen, "server.admin_listen");
        check(s.data_dir != n.data_dir, "server.data_dir");
        check(s.upstream_timeout != n.upstream_timeout, "server.upstream_timeout");
        check(s.connect_timeout != n.connect_timeout, "server.connect_timeout");
        check(s.shutdown_grace != n.shutdown_grace, "server.shutdown_grace");
        check(s.workers != n.workers, "server.workers");
        check(s.max_connections != n.max_connections, "server.max_connections");
        check(s.max_connections_per_ip != n.max_connections_per_ip, "server.max_connections_per_ip");
        check(s.header_read_timeout != n.header_read_timeout, "server.header_read_timeout");
        check(s.idle_timeout != n.idle_timeout, "server.idle_timeout");
        check(s.max_header_bytes != n.max_header_bytes, "server.max_header_bytes");
        check(s.max_headers != n.max_headers, "server.max_headers");
        check(s.http2_max_concurrent_streams != n.http2_max_concurrent_streams, "server.http2_max_concurrent_streams");
        check(
            s.http2_max_pending_accept_reset_streams != n.http2_max_pending_accept_reset_streams,
            "server.http2_max_pending_accept_reset_streams",
        );
        check(
            s.http2_max_local_error_reset_streams != n.http2_max_local_error_reset_streams,
            "server.http2_max_local_error_reset_streams",
        );
        check(s.max_concurrent_calls != n.max_concurrent_calls, "server.max_concurrent_calls");
        check(self.vault != new.vault, "[vault]");
        check(self.identity.saml != new.identity.saml, "[identity.saml]");
        check(
            self.identity.sessions.signing_key_env != new.identity.sessions.signing_key_env,
            "identity.sessions.signing_key_env",
        );
        let (a, n) = (&self.audit, &new.audit);
        check(a.sink != n.sink, "audit.sink");
        check(a.durability != n.durability, "audit.durability");
        check(a.postgres_url_env != n.postgres_url_env, "audit.postgres_url_env");
        check(a.export_jsonl != n.export_jsonl, "audit.export_jsonl");
        check(a.chain_id != n.chain_id, "audit.chain_id");
        check(a.on_failure != n.on_failure, "audit.on_failure");
        let (a, n) = (&self.approvals, &new.approvals);
        check(a.store != n.store, "approvals.store");
        check(a.postgres_url_env != n.postgres_url_env, "approvals.postgres_url_env");
        check(self.telemetry != new.telemetry, "[telemetry]");
        out
    }

    /// The index of the first pattern whose function part (before any `/`) is a literal
    /// name that no `[[functions]]` entry has: a typo that would never match.
    ///
    /// A configuration without `[[functions]]` is one for an application that embeds the
    /// layers ([`crate::CloakroomLayer`]) and names its calls in code: any name goes.
    fn unknown_function(&self, patterns: &[String]) -> Option<usize> {
        if self.functions.is_empty() {
            return None;
        }
        patterns.iter().position(|p| {
            let base = base_name(p);
            let literal = !base.contains(['*', '?', '[', '{', '\\']);
            literal && !self.functions.iter().any(|f| f.name == base)
        })
    }
}

/// The function part of a pattern (`payments` of `payments/refund`).
fn base_name(pattern: &str) -> &str {
    pattern.split('/').next().unwrap_or("")
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("expected a non-empty function name".into());
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!(
            "expected a function name of letters, digits, '-', '_' and '.', found {c:?} (MCP tools are named <function>/<tool>)"
        ));
    }
    Ok(())
}

fn validate_route(route: &str) -> Result<(), String> {
    if !route.starts_with('/') {
        return Err(format!("expected a path prefix starting with '/', got {route:?}"));
    }
    if route.len() > 1 && route.ends_with('/') {
        return Err(format!("expected a path prefix without a trailing '/', got {route:?}"));
    }
    if route == "/" {
        return Err("expected a path prefix below '/', e.g. \"/fn/payments\"".into());
    }
    if route.contains(['?', '#', '%', '*']) || route.contains("//") || route.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "expected a plain path prefix without '?', '#', '%', '*', '//' or dot segments, got {route:?}"
        ));
    }
    Ok(())
}

/// The load error for a backend compiled out: at the key that names it, with the
/// in-memory alternative where there is one.
fn missing_feature(at: &Locator<'_>, missing: &cloakroom_core::MissingFeature) -> ConfigError {
    use PathPart::Key;
    let what = missing.what();
    let (table, key, keeps) = if what.starts_with("vault.backend") {
        ("vault", "backend", Some("secrets"))
    } else if what.starts_with("audit.sink") {
        ("audit", "sink", None)
    } else if what.starts_with("approvals.store") {
        ("approvals", "store", Some("approvals"))
    } else if what.starts_with("[telemetry]") {
        ("telemetry", "otlp_endpoint", None)
    } else if what.starts_with("approvals.webhooks") {
        ("approvals", "webhooks", None)
    } else {
        ("approvals", "slack", None)
    };
    let hint = match keeps {
        // The embedded stores are the only ones with an in-memory stand-in.
        Some(what) if missing.feature() == "sled" => {
            format!("; or set it to \"memory\" to keep {what} in this process only (not durable)")
        }
        _ => String::new(),
    };
    at.error(&[Key(table), Key(key)], format!("{missing}{hint}"))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
