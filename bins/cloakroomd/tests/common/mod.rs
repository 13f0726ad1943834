//! Test harness: the real `cloakroomd` binary as a subprocess on free ports, with a
//! generated configuration, driven over HTTP.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use sha2::{Digest, Sha256};

pub mod held;
pub mod mcp;
pub mod tls;

/// How long [`Cloakroomd::stderr`] lets the log's buffer be written out: five times its
/// 20 ms interval.
const LOG_SETTLE: Duration = Duration::from_millis(100);

/// API keys the generated configurations accept: (key, subject, groups).
pub const AGENT_KEY: &str = "ck_test_agent_key_0123456789";
pub const ADMIN_KEY: &str = "ck_test_admin_key_0123456789";
pub const APPROVER_KEY: &str = "ck_test_approver_key_012345";
pub const OUTSIDER_KEY: &str = "ck_test_outsider_key_012345";

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The `[identity]` part shared by the tests' configurations.
pub fn identity_section() -> String {
    format!(
        r#"
[identity]
admin_groups = ["admins"]

[[identity.api_keys]]
subject = "agent"
groups = ["agents"]
sha256 = "{}"

[[identity.api_keys]]
subject = "admin"
groups = ["admins"]
sha256 = "{}"

[[identity.api_keys]]
subject = "approver"
groups = ["leads"]
sha256 = "{}"

[[identity.api_keys]]
subject = "outsider"
groups = ["outsiders"]
sha256 = "{}"
"#,
        sha256_hex(AGENT_KEY),
        sha256_hex(ADMIN_KEY),
        sha256_hex(APPROVER_KEY),
        sha256_hex(OUTSIDER_KEY)
    )
}

/// A running `cloakroomd`.
pub struct Cloakroomd {
    child: Child,
    /// `127.0.0.1:<port>` of the gateway.
    pub addr: String,
    /// `127.0.0.1:<port>` of the admin API.
    pub admin: String,
    /// Temporary directory holding the config and the data dir.
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Drop for Cloakroomd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the gateway logged (its last lines), so that a failure
        // seen once in CI can be understood from CI's output alone.
        if std::thread::panicking() {
            eprintln!(
                "--- cloakroomd {} logged:\n{}",
                self.addr,
                cloakroom_testkit::last_lines(&self.stderr_now(), 200)
            );
        }
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloakroomd"))
}

impl Cloakroomd {
    /// Starts `cloakroomd` with `[server]` (free ports, a temporary data dir, and
    /// `server_extra` lines) followed by `rest` of the configuration.
    pub async fn start(server_extra: &str, rest: &str) -> Self {
        Self::start_with_env(server_extra, rest, &[]).await
    }

    /// Waits until the admin listener answers `/healthz`; the log if the process exits
    /// first.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("cloakroomd exited with {status}: {}", self.stderr()));
            }
            if let Ok(r) = client.get(format!("http://{}/healthz", self.admin)).send().await {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cloakroomd did not become healthy: {}", self.stderr());
    }

    /// What cloakroomd has logged. Its `info` lines reach stderr up to 20 ms after their
    /// event (bins/cloakroomd/src/log.rs): this first waits that out, with margin, so a
    /// test that looks for what must *not* be in the log sees the lines of the calls it
    /// has made.
    pub fn stderr(&self) -> String {
        std::thread::sleep(LOG_SETTLE);
        self.stderr_now()
    }

    /// The log as it is on disk now (for polling).
    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until cloakroomd has logged `needle` at least `count` times (at most 30 s).
    /// A SIGHUP is handled asynchronously: this is how a test knows its reload is over.
    pub async fn wait_for_log(&self, needle: &str, count: usize) {
        for _ in 0..1500 {
            if self.stderr_now().matches(needle).count() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cloakroomd did not log {needle:?} {count} time(s): {}", self.stderr());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (via the `kill` command: no unsafe in tests either).
    pub fn sighup(&self) {
        let ok = Command::new("kill").arg("-HUP").arg(self.pid().to_string()).status().expect("kill -HUP");
        assert!(ok.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends raw bytes to the gateway and returns the raw answer (until the server
    /// closes or 5 s pass).
    pub async fn raw(&self, request: &[u8]) -> String {
        let (addr, request) = (self.addr.clone(), request.to_vec());
        // Blocking I/O off the test's runtime, which also runs the upstreams.
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&request).expect("write");
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .expect("raw request task")
    }

    /// GET on the admin API as the admin, as JSON.
    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .get(self.admin_url(path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("admin request");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("admin json")
    }

    /// Stores secret `name` with `value` and `binding` through the admin API, as the
    /// admin, and returns its placeholder.
    pub async fn put_secret(&self, name: &str, value: &str, binding: serde_json::Value) -> String {
        let r = reqwest::Client::new()
            .post(self.admin_url("/v1/secrets"))
            .bearer_auth(ADMIN_KEY)
            .json(&serde_json::json!({"name": name, "value": value, "binding": binding}))
            .send()
            .await
            .expect("admin request");
        assert_eq!(r.status(), 200, "POST /v1/secrets {name}");
        let v: serde_json::Value = r.json().await.expect("admin json");
        v["placeholder"].as_str().expect("a placeholder").to_owned()
    }
}

impl Cloakroomd {
    /// Like [`Cloakroomd::start`], with `env` set for the process after the random keys,
    /// so a given `CLOAKROOM_PLACEHOLDER_KEY` wins (replicas sharing one key), and with
    /// the OpenBao token or PostgreSQL URL variables the configuration names.
    ///
    /// A port another process bound between [`cloakroom_testkit::free_port`] and the
    /// gateway's bind is a race of the test, not the gateway's failure: the gateway is
    /// started again on other ports, at most twice.
    pub async fn start_with_env(server_extra: &str, rest: &str, env: &[(&str, &str)]) -> Self {
        let mut attempt = 0;
        loop {
            let mut me = Self::spawn(server_extra, rest, env);
            match me.wait_ready().await {
                Ok(()) => return me,
                Err(log) if attempt < 2 && log.contains("Address already in use") => attempt += 1,
                Err(log) => panic!("{log}"),
            }
        }
    }

    fn spawn(server_extra: &str, rest: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
        let admin = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
        let config = format!(
            "[server]\nlisten = \"{addr}\"\nadmin_listen = \"{admin}\"\ndata_dir = \"{}\"\n{server_extra}\n{rest}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("cloakroom.toml");
        std::fs::write(&config_path, config).expect("write config");
        let stderr_path = dir.path().join("stderr.log");
        let mut command = Command::new(binary());
        command
            .arg("--config")
            .arg(&config_path)
            .env("CLOAKROOM_LOG", "info")
            .env("CLOAKROOM_PLACEHOLDER_KEY", sha256_hex(&cloakroom_testkit::random_name(32)))
            .env("CLOAKROOM_VAULT_KEY", sha256_hex(&cloakroom_testkit::random_name(32)));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn cloakroomd");
        Self { child, addr, admin, dir, config_path, stderr_path }
    }

    /// Kills the process with SIGKILL (no graceful shutdown, no flush) and reaps it.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("SIGKILL cloakroomd");
        let _ = self.child.wait();
    }
}

/// Runs `sql` with `psql` on the database of `conninfo`; its unaligned output.
pub fn psql(conninfo: &str, sql: &str) -> String {
    let out = Command::new("psql").arg(conninfo).arg("-XAtc").arg(sql).output().expect("run psql");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A function entry.
pub fn function(name: &str, protocol: &str, upstream: &str, route: &str) -> String {
    format!("\n[[functions]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\nupstream = \"{upstream}\"\nroute = \"{route}\"\n")
}

/// An allow rule.
pub fn allow(name: &str, functions: &[&str], groups: &[&str]) -> String {
    format!(
        "\n[[policy.rules]]\nname = \"{name}\"\neffect = \"allow\"\nfunctions = {functions:?}\ngroups = {groups:?}\n"
    )
}

/// `secret` in every encoding the masker knows: raw, JSON-escaped, percent-encoded,
/// base64, base64url, hex.
pub fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    let json = serde_json::to_string(secret).unwrap();
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![
        ("raw", secret.to_owned()),
        ("json", json[1..json.len() - 1].to_owned()),
        ("url", percent),
        ("base64", base64::engine::general_purpose::STANDARD.encode(secret)),
        ("base64url", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)),
        ("hex", hex::encode(secret)),
    ]
}

/// Panics if any file below `dir` holds `secret` in any encoding.
pub fn assert_no_secret_in_files(dir: &std::path::Path, secret: &str) {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    assert!(!files.is_empty(), "no files below {}", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for (enc, form) in encodings(secret) {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{} contains the secret ({enc} encoded)",
                file.display()
            );
        }
    }
}
