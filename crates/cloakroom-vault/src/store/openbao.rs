//! The OpenBao backend: the KV v2 HTTP API (also spoken by HashiCorp Vault).
//!
//! Secret `NAME` lives at `{mount}/data/{path}/NAME` as the data object
//! `{"value": "<UTF-8 value>"}` (or `{"value_base64": "…"}` for bytes that are not UTF-8)
//! plus, when a binding was given with it, `"cloakroom_binding": {functions, locations, …}`.
//! Keeping the binding inside the same versioned data object makes value and binding
//! change together in one check-and-set write, and lets every replica see it.
//!
//! Authentication is a token (from `token_env`) or an AppRole login
//! (`/v1/auth/{approle_mount}/login`). A background task renews the token
//! (`auth/token/renew-self`) when two thirds of its TTL have passed, and logs in again
//! with AppRole when renewal is refused. It stops when the vault is dropped.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock, Weak,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::Engine;
use cloakroom_core::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{StoredSecret, Vault, VaultError};
use crate::{binding::BindingSpec, config::OpenBaoConfig, BackendKind};

/// A KV v2 client for OpenBao / HashiCorp Vault.
#[derive(Clone)]
pub struct OpenBaoVault {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    mount: String,
    path: String,
    auth: Auth,
    token: RwLock<TokenState>,
    renewals: AtomicU64,
    logins: AtomicU64,
}

enum Auth {
    Token,
    AppRole { mount: String, role_id: Secret, secret_id: Secret },
}

#[derive(Clone, Default)]
struct TokenState {
    token: Secret,
    /// When the token expires; `None` for a token without TTL (root tokens).
    expires: Option<Instant>,
    renewable: bool,
}

impl std::fmt::Debug for OpenBaoVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoVault")
            .field("address", &self.inner.base)
            .field("mount", &self.inner.mount)
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: reqwest::Error) -> VaultError {
    // reqwest errors carry the URL, never headers: safe to show.
    VaultError::Unavailable(format!("OpenBao request failed: {}", e.without_url()))
}

impl OpenBaoVault {
    /// Connects with credentials from the process environment, logs in (AppRole) or
    /// looks the token up, and starts the renewal task. Needs a tokio runtime.
    pub async fn connect(config: &OpenBaoConfig) -> Result<Self, VaultError> {
        Self::connect_with(config, |v| std::env::var(v).ok()).await
    }

    /// Like [`OpenBaoVault::connect`] with a custom environment lookup.
    pub async fn connect_with(
        config: &OpenBaoConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VaultError> {
        let read = |var: &str| -> Result<Secret, VaultError> {
            env(var)
                .filter(|v| !v.is_empty())
                .map(Secret::from)
                .ok_or_else(|| VaultError::Config(format!("environment variable {var} is not set")))
        };
        let (auth, token) = match (&config.approle_role_id_env, &config.approle_secret_id_env, &config.token_env) {
            (Some(r), Some(s), _) => {
                (Auth::AppRole { mount: config.approle_mount.clone(), role_id: read(r)?, secret_id: read(s)? }, None)
            }
            (None, None, Some(t)) => (Auth::Token, Some(read(t)?)),
            _ => {
                return Err(VaultError::Config(
                    "[vault.openbao] needs token_env, or both approle_role_id_env and approle_secret_id_env".into(),
                ))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| VaultError::Config(format!("HTTP client: {e}")))?;
        let inner = Arc::new(Inner {
            http,
            base: config.address.trim_end_matches('/').to_owned(),
            mount: config.mount.trim_matches('/').to_owned(),
            path: config.path.trim_matches('/').to_owned(),
            auth,
            token: RwLock::new(TokenState { token: token.unwrap_or_default(), ..Default::default() }),
            renewals: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        });
        match &inner.auth {
            Auth::AppRole { .. } => inner.login().await?,
            Auth::Token => inner.lookup_self().await?,
        }
        tokio::spawn(renew_loop(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// How many times the token was renewed (for operators' metrics and tests).
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// How many AppRole logins happened.
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// Reads a given version of `name` (KV v2 `?version=`).
    pub async fn get_version(&self, name: &str, version: u64) -> Result<Option<StoredSecret>, VaultError> {
        self.inner.read(name, Some(version)).await
    }
}

impl Inner {
    fn token(&self) -> Secret {
        self.token.read().unwrap_or_else(|p| p.into_inner()).token.clone()
    }

    fn set_token(&self, state: TokenState) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    fn data_url(&self, name: &str) -> String {
        format!("{}/v1/{}/data/{}/{}", self.base, self.mount, self.path, name)
    }

    fn metadata_url(&self, name: &str) -> String {
        format!("{}/v1/{}/metadata/{}/{}", self.base, self.mount, self.path, name)
    }

    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<(StatusCode, Value), VaultError> {
        let mut attempt = 0;
        loop {
            let token = self.token();
            let mut req = self.http.request(method.clone(), url);
            if let Some(t) = token.expose_str() {
                req = req.header("X-Vault-Token", t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let res = req.send().await.map_err(unavailable)?;
            let status = res.status();
            let bytes = res.bytes().await.map_err(unavailable)?;
            let json =
                if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
            // A refused token under AppRole: log in again once and retry.
            if status == StatusCode::FORBIDDEN && attempt == 0 && matches!(self.auth, Auth::AppRole { .. }) {
                attempt += 1;
                self.login().await?;
                continue;
            }
            return Ok((status, json));
        }
    }

    async fn login(&self) -> Result<(), VaultError> {
        let Auth::AppRole { mount, role_id, secret_id } = &self.auth else { return Ok(()) };
        let body = json!({
            "role_id": role_id.expose_str().unwrap_or_default(),
            "secret_id": secret_id.expose_str().unwrap_or_default(),
        });
        let url = format!("{}/v1/auth/{}/login", self.base, mount.trim_matches('/'));
        let res = self.http.post(&url).json(&body).send().await.map_err(unavailable)?;
        let status = res.status();
        let json: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(VaultError::Unavailable(format!("AppRole login refused with HTTP {}", status.as_u16())));
        }
        let auth = &json["auth"];
        let token = auth["client_token"]
            .as_str()
            .ok_or_else(|| VaultError::Unavailable("AppRole login returned no client_token".into()))?;
        let ttl = auth["lease_duration"].as_u64().unwrap_or(0);
        self.set_token(TokenState {
            token: Secret::from(token),
            expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        });
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ttl, "logged in to OpenBao with AppRole");
        Ok(())
    }

    async fn lookup_self(&self) -> Result<(), VaultError> {
        let url = format!("{}/v1/auth/token/lookup-self", self.base);
        let (status, json) = self.send(Method::GET, &url, None).await?;
        if !status.is_success() {
            return Err(VaultError::Unavailable(format!("OpenBao refused the token (HTTP {})", status.as_u16())));
        }
        let ttl = json["data"]["ttl"].as_u64().unwrap_or(0);
        let token = self.token();
        self.set_token(TokenState {
            token,
            expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
            renewable: json["data"]["renewable"].as_bool().unwrap_or(false),
        });
        Ok(())
    }

    async fn renew(&self) -> Result<(), VaultError> {
        let url = format!("{}/v1/auth/token/renew-self", self.base);
        let (status, json) = self.send(Method::POST, &url, Some(&json!({}))).await?;
        if !status.is_success() {
            return Err(VaultError::Unavailable(format!("token renewal refused (HTTP {})", status.as_u16())));
        }
        let ttl = json["auth"]["lease_duration"].as_u64().unwrap_or(0);
        let token = self.token();
        self.set_token(TokenState {
            token,
            expires: (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl)),
            renewable: json["auth"]["renewable"].as_bool().unwrap_or(false),
        });
        self.renewals.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ttl, "renewed OpenBao token");
        Ok(())
    }

    async fn read(&self, name: &str, version: Option<u64>) -> Result<Option<StoredSecret>, VaultError> {
        let mut url = self.data_url(name);
        if let Some(v) = version {
            url.push_str(&format!("?version={v}"));
        }
        let (status, json) = self.send(Method::GET, &url, None).await?;
        match status {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => {
                return Err(VaultError::Unavailable(format!("reading a secret failed with HTTP {}", s.as_u16())))
            }
            _ => {}
        }
        let data = &json["data"]["data"];
        if data.is_null() {
            return Ok(None);
        }
        let malformed = |reason: &str| VaultError::Malformed { name: name.to_owned(), reason: reason.to_owned() };
        let value = if let Some(s) = data["value"].as_str() {
            Secret::from(s)
        } else if let Some(b) = data["value_base64"].as_str() {
            Secret::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| malformed("value_base64 is not base64"))?,
            )
        } else {
            return Err(malformed("no \"value\" field"));
        };
        let binding = match data.get("cloakroom_binding") {
            None | Some(Value::Null) => None,
            Some(b) => Some(serde_json::from_value(b.clone()).map_err(|_| malformed("cloakroom_binding is invalid"))?),
        };
        let version = json["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        Ok(Some(StoredSecret { value, binding, version }))
    }
}

async fn renew_loop(inner: Weak<Inner>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            let state = inner.token.read().unwrap_or_else(|p| p.into_inner()).clone();
            match state.expires {
                // Renew when two thirds of the remaining TTL have passed.
                Some(exp) => exp.saturating_duration_since(Instant::now()) * 2 / 3,
                None => Duration::from_secs(60),
            }
        };
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
        let Some(inner) = inner.upgrade() else { return };
        let state = inner.token.read().unwrap_or_else(|p| p.into_inner()).clone();
        if state.expires.is_none() {
            continue;
        }
        let renewed = if state.renewable { inner.renew().await } else { Err(VaultError::Unavailable(String::new())) };
        if renewed.is_err() {
            match inner.auth {
                Auth::AppRole { .. } => {
                    if let Err(e) = inner.login().await {
                        tracing::warn!(error = %e, "OpenBao AppRole login failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                Auth::Token => {
                    tracing::warn!(
                        "OpenBao token could not be renewed; calls needing secrets will fail closed when it expires"
                    );
                    // Nothing more to do for this token; check again later.
                    let mut s = inner.token.write().unwrap_or_else(|p| p.into_inner());
                    s.renewable = false;
                    if s.expires.is_some_and(|e| e <= Instant::now()) {
                        s.expires = None;
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Vault for OpenBaoVault {
    fn kind(&self) -> BackendKind {
        BackendKind::Openbao
    }

    async fn get(&self, name: &str) -> Result<Option<StoredSecret>, VaultError> {
        self.inner.read(name, None).await
    }

    async fn put(
        &self,
        name: &str,
        value: &Secret,
        binding: Option<&BindingSpec>,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let mut data = serde_json::Map::new();
        match value.expose_str() {
            Some(s) => data.insert("value".into(), Value::String(s.to_owned())),
            None => data.insert(
                "value_base64".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(value.expose())),
            ),
        };
        if let Some(b) = binding {
            data.insert("cloakroom_binding".into(), serde_json::to_value(b).expect("binding serializes"));
        }
        let mut body = json!({ "data": Value::Object(data) });
        if let Some(v) = cas {
            body["options"] = json!({ "cas": v });
        }
        let sent = self.inner.send(Method::POST, &self.inner.data_url(name), Some(&body)).await;
        drop(body);
        let (status, json) = sent?;
        match status {
            s if s.is_success() => Ok(json["data"]["version"].as_u64().unwrap_or(0)),
            StatusCode::BAD_REQUEST
                if json["errors"].to_string().contains("check-and-set")
                    || json["errors"].to_string().contains("cas") =>
            {
                Err(VaultError::Conflict { name: name.to_owned() })
            }
            s => Err(VaultError::Unavailable(format!("writing a secret failed with HTTP {}", s.as_u16()))),
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, VaultError> {
        let existed = self.inner.read(name, None).await?.is_some();
        let (status, _) = self.inner.send(Method::DELETE, &self.inner.metadata_url(name), None).await?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            return Err(VaultError::Unavailable(format!("deleting a secret failed with HTTP {}", status.as_u16())));
        }
        Ok(existed)
    }

    async fn list(&self) -> Result<Vec<String>, VaultError> {
        let url = format!("{}/v1/{}/metadata/{}?list=true", self.inner.base, self.inner.mount, self.inner.path);
        let (status, json) = self.inner.send(Method::GET, &url, None).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            s if !s.is_success() => {
                Err(VaultError::Unavailable(format!("listing secrets failed with HTTP {}", s.as_u16())))
            }
            _ => Ok(json["data"]["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter().filter_map(|k| k.as_str()).filter(|k| !k.ends_with('/')).map(str::to_owned).collect()
                })
                .unwrap_or_default()),
        }
    }
}
