//! `cloakroomd --dev`: a gateway with no configuration file, like `vault server -dev`.
//!
//! A temporary data directory, a fresh Biscuit root key with two tokens (an admin in
//! group `admins`, an agent in group `agents`), a built-in `echo` function at
//! `/fn/echo` that answers with what it received, and a policy letting `agents` call
//! it. Nothing here is meant for production: the keys live only in this process.

use std::{net::SocketAddr, path::PathBuf};

use cloakroom_identity::{BiscuitConfig, IdentityConfig};
use cloakroom_policy::biscuit_auth::{Biscuit, KeyPair};

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
}

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
        let root_public_key = root.public().to_string();
        let mut config = Config::default();
        config.server.listen = listen;
        config.server.admin_listen = admin_listen;
        config.server.data_dir = data_dir.clone();
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
        Ok(Self { config, admin_token, agent_token, root_public_key, data_dir, echo })
    }

    /// The banner printed on start: keys, tokens and copy-paste `curl` lines.
    pub fn banner(&self) -> String {
        let gw = self.config.server.listen;
        let admin = self.config.server.admin_listen;
        format!(
            r#"
Cloakroom is running in DEV MODE: in-memory keys, a temporary data directory
({data_dir}), a built-in echo function. Do not use it for anything real.

Biscuit root public key: {root}

    export CLOAKROOM_ADMIN_TOKEN='{admin_token}'
    export CLOAKROOM_AGENT_TOKEN='{agent_token}'

Call the echo function as the agent (it answers with what it received):

    curl -s http://{gw}/fn/echo/hello -H "Authorization: Bearer $CLOAKROOM_AGENT_TOKEN" -H 'content-type: application/json' -d '{{"msg":"hi"}}'

Look at the audit record as the admin:

    curl -s http://{admin}/v1/audit -H "Authorization: Bearer $CLOAKROOM_ADMIN_TOKEN"
    curl -s http://{admin}/v1/audit/verify -H "Authorization: Bearer $CLOAKROOM_ADMIN_TOKEN"
"#,
            data_dir = self.data_dir.display(),
            root = self.root_public_key,
            admin_token = self.admin_token,
            agent_token = self.agent_token,
        )
    }
}
