//! `cloakroomd --dev`: a gateway with no configuration file, like `vault server -dev`.
//!
//! A temporary data directory, a fresh Biscuit root key with two tokens (an admin in
//! group `admins`, an agent in group `agents`), a built-in `echo` function at
//! `/fn/echo` that answers with what it received, and a policy letting `agents` call
//! it. Nothing here is meant for production: the keys live only in this process.

use std::{net::SocketAddr, path::PathBuf};

use cloakroom_identity::{BiscuitConfig, IdentityConfig};
use cloakroom_policy::biscuit_auth::{Biscuit, KeyPair};
use cloakroom_vault::{BindingSpec, Keys};

use crate::{
    config::{Config, FunctionConfig},
    echo::EchoServer,
};

/// What `--dev` set up, to print and to tear down.
#[derive(Debug)]
pub struct DevSetup {
    /// The configuration to run.
    pub config: Config,
    /// The admin's Biscuit token (group `admins`).
    pub admin_token: String,
    /// The agent's Biscuit token (group `agents`).
    pub agent_token: String,
    /// The Biscuit root public key.
    pub root_public_key: String,
    /// The temporary data directory (removed on drop).
    pub data_dir: PathBuf,
    /// The built-in echo function.
    pub echo: EchoServer,
    /// Fresh placeholder and vault keys.
    pub keys: Keys,
    /// The placeholder of `demo_api_key`, once stored by [`DevSetup::store_demo_secret`].
    pub demo_placeholder: Option<String>,
}

/// The name of the secret dev mode stores and binds to `echo`.
pub const DEMO_SECRET: &str = "demo_api_key";

impl Drop for DevSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Why dev mode could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("dev mode: {0}")]
pub struct DevError(String);

impl DevSetup {
    /// Sets up dev mode with the gateway on `listen` and the admin API on `admin_listen`.
    pub async fn create(listen: SocketAddr, admin_listen: SocketAddr) -> Result<Self, DevError> {
        let data_dir = std::env::temp_dir().join(format!("cloakroom-dev-{}", cloakroom_core::CallId::new()));
        std::fs::create_dir_all(&data_dir).map_err(|e| DevError(format!("{}: {e}", data_dir.display())))?;
        let echo = EchoServer::start().await.map_err(|e| DevError(format!("echo function: {e}")))?;
        let root = KeyPair::new();
        let mint = |user: &str, group: &str| -> Result<String, DevError> {
            Biscuit::builder()
                .code(format!("user({user:?}); group({group:?});").as_str())
                .and_then(|b| b.build(&root))
                .and_then(|t| t.to_base64())
                .map_err(|e| DevError(format!("minting a token: {e}")))
        };
        let admin_token = mint("dev-admin", "admins")?;
        let agent_token = mint("dev-agent", "agents")?;
        // The banner's console link signs the dev admin in with this token (dev only).
        crate::admin::allow_dev_sign_in(&admin_token);
        let root_public_key = root.public().to_string();
        let mut config = Config::default();
        config.server.listen = listen;
        config.server.admin_listen = admin_listen;
        config.server.data_dir = data_dir.clone();
        if !cfg!(feature = "sled") {
            // Built without the embedded stores: the data directory is thrown away on exit
            // anyway, so dev mode loses nothing by keeping secrets and approvals in memory.
            config.vault.backend = cloakroom_vault::BackendKind::Memory;
            config.approvals.store = cloakroom_policy::ApprovalStoreKind::Memory;
        }
        config.identity = IdentityConfig {
            biscuit: Some(BiscuitConfig { root_public_key: root_public_key.clone() }),
            admin_groups: vec!["admins".into()],
            ..IdentityConfig::default()
        };
        config.functions.push(FunctionConfig {
            name: "echo".into(),
            protocol: cloakroom_core::Protocol::Http,
            upstream: format!("http://{}", echo.addr),
            route: "/fn/echo".into(),
            preserve_host: false,
            ca_file: None,
        });
        config.policy = toml::from_str(
            r#"
            [[rules]]
            name = "agents and admins may call echo"
            effect = "allow"
            functions = ["echo", "echo/**"]
            groups = ["agents", "admins"]
            "#,
        )
        .map_err(|e| DevError(format!("built-in policy: {e}")))?;
        Ok(Self {
            config,
            admin_token,
            agent_token,
            root_public_key,
            data_dir,
            echo,
            keys: Keys::generate(),
            demo_placeholder: None,
        })
    }

    /// Stores `demo_api_key` (a random value nobody is shown) bound to `echo` in the
    /// `X-Api-Key` header, the `api_key` query parameter and JSON bodies.
    pub async fn store_demo_secret(&mut self, gateway: &crate::Gateway) -> Result<(), DevError> {
        let mut raw = [0u8; 24];
        rand_bytes(&mut raw);
        let value = format!("sk_demo_{}", hex::encode(raw));
        let binding = BindingSpec {
            functions: vec!["echo".into(), "echo/**".into()],
            locations: vec!["header:x-api-key".into(), "query:api_key".into(), "body".into()],
            ..BindingSpec::default()
        };
        let p = gateway
            .catalog()
            .put(DEMO_SECRET, value.into(), Some(binding))
            .await
            .map_err(|e| DevError(format!("storing {DEMO_SECRET}: {e}")))?;
        // `put` returned only once the catalog had stored the masker that knows the demo
        // secret: responses are masked from here on.
        self.demo_placeholder = Some(p.to_string());
        Ok(())
    }

    /// The banner printed on start: keys, tokens and copy-paste `curl` lines.
    pub fn banner(&self) -> String {
        let gw = self.config.server.listen;
        let admin = self.config.server.admin_listen;
        let demo = self.demo_placeholder.as_deref().unwrap_or("(not stored)");
        format!(
            r#"
Cloakroom is running in DEV MODE: fresh in-memory keys, a temporary data directory
({data_dir}), a built-in echo function at /fn/echo. Do not use it for anything real.

Biscuit root public key: {root}

    export CLOAKROOM_ADMIN_TOKEN='{admin_token}'
    export CLOAKROOM_AGENT_TOKEN='{agent_token}'
    export DEMO_API_KEY='{demo}'   # the placeholder of the stored secret {secret}

1. Hand in a secret, get its placeholder (the ticket) back:

    curl -s http://{admin}/v1/secrets -H "Authorization: Bearer $CLOAKROOM_ADMIN_TOKEN" -d '{{"name":"my_key","value":"sk_live_my_real_secret_value","binding":{{"functions":["echo"],"locations":["header:x-api-key"]}}}}'

2. Call the echo function with a placeholder: the function receives the real secret
   (compare its headers_sha256 with `printf %s VALUE | sha256sum`), you get only the
   placeholder back:

    curl -s http://{gw}/fn/echo/hello -H "Authorization: Bearer $CLOAKROOM_AGENT_TOKEN" -H "X-Api-Key: $DEMO_API_KEY"

3. Read the audit record: who called what, which secret was used where, never its value:

    curl -s "http://{admin}/v1/audit?limit=5" -H "Authorization: Bearer $CLOAKROOM_ADMIN_TOKEN"

4. Or open the web console (approvals, audit, secrets), signed in as the dev admin:

    http://{admin}/console/login?token={admin_token}
"#,
            data_dir = self.data_dir.display(),
            root = self.root_public_key,
            admin_token = self.admin_token,
            agent_token = self.agent_token,
            secret = DEMO_SECRET,
        )
    }
}

fn rand_bytes(out: &mut [u8]) {
    use rand::RngCore;
    rand::rngs::OsRng.fill_bytes(out);
}
