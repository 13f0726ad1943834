//! A real `cloakroomd` for the CLI to talk to: Biscuit tokens minted by this CLI, keys
//! made by `cloakroom keygen`, functions in front of a real upstream.
//!
//! `cloakroomd` is the workspace's binary, found next to this package's binary
//! (`cargo test --workspace` builds both); when only this package was built, it is
//! built first with the same cargo.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cloakroom_api::VerifyReport;
use serde_json::{json, Value};

use super::{run, run_with, Run};

fn cloakroomd_binary() -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_cloakroom"));
    let path = me.with_file_name(format!("cloakroomd{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "cloakroomd", "--bin", "cloakroomd"])
            .current_dir(cloakroom_testkit::workspace_root())
            .status()
            .expect("run cargo build -p cloakroomd");
        assert!(status.success(), "cargo build -p cloakroomd failed");
    }
    path
}

/// Three callers' tokens.
pub struct Tokens {
    /// `ops-admin`, in `admins` (`identity.admin_groups`).
    pub admin: String,
    /// `fin-lead`, in `finance-leads` (the refunds' approvers).
    pub approver: String,
    /// `agent-7`, in `agents`.
    pub agent: String,
}

/// A root key and three tokens, all made with this CLI.
pub fn tokens() -> (String, Tokens) {
    let keys: Value = serde_json::from_str(&run(&["biscuit", "keygen", "-o", "json"]).ok().stdout).unwrap();
    let private = keys["private_key"].as_str().unwrap().to_owned();
    let mint = |subject: &str, group: &str| {
        run_with(
            &["biscuit", "mint", "--private-key-env", "ROOT", "--subject", subject, "--group", group, "--ttl", "1h"],
            &[("ROOT", &private)],
            None,
        )
        .ok()
        .stdout
        .trim()
        .to_owned()
    };
    let t = Tokens {
        admin: mint("ops-admin", "admins"),
        approver: mint("fin-lead", "finance-leads"),
        agent: mint("agent-7", "agents"),
    };
    (keys["public_key"].as_str().unwrap().to_owned(), t)
}

/// A running `cloakroomd` (killed on drop) with two functions in front of `upstream`:
/// `payments` (agents may call it) and `refunds` (each call needs a finance lead), and
/// one config-declared secret, `declared_key` (payments, `header:X-Declared`, agents).
pub struct Gateway {
    child: Option<Child>,
    addr: String,
    admin: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    stderr: PathBuf,
    http: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Gateway {
    /// A gateway with the embedded stores in a temporary directory.
    pub async fn start(root_public_key: &str, upstream: &str) -> Self {
        Self::start_with(root_public_key, upstream, "", &[]).await
    }

    /// A gateway whose configuration ends with `extra` (e.g. an `[audit]` section), with
    /// the extra environment variables `env`.
    pub async fn start_with(root_public_key: &str, upstream: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
        let admin = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
        let config = format!(
            r#"
[server]
listen = "{addr}"
admin_listen = "{admin}"
data_dir = "{data}"

[identity]
admin_groups = ["admins"]

[identity.biscuit]
root_public_key = "{root_public_key}"

[[functions]]
name = "payments"
protocol = "http"
upstream = "{upstream}"
route = "/fn/payments"

[[functions]]
name = "refunds"
protocol = "http"
upstream = "{upstream}"
route = "/fn/refunds"

[[secrets]]
name = "declared_key"
functions = ["payments"]
locations = ["header:X-Declared"]
groups = ["agents"]

[[policy.rules]]
name = "agents may call payments"
effect = "allow"
functions = ["payments"]
groups = ["agents"]

[[policy.rules]]
name = "refunds need a finance lead"
effect = "approve"
functions = ["refunds"]
groups = ["agents"]
approvers = ["finance-leads"]

# A debug build in a parallel test run can take longer than the 20 ms default to check a
# Biscuit token; these tests are not about the limit.
[policy.datalog_limits]
max_time = "5s"
{extra}"#,
            data = dir.path().join("data").display()
        );
        let config_path = dir.path().join("cloakroom.toml");
        std::fs::write(&config_path, config).unwrap();
        // The placeholder and vault keys, as an operator would make them.
        let keys: Value = serde_json::from_str(&run(&["keygen", "-o", "json"]).ok().stdout).unwrap();
        let mut all_env: Vec<(String, String)> = ["CLOAKROOM_PLACEHOLDER_KEY", "CLOAKROOM_VAULT_KEY"]
            .iter()
            .map(|k| (k.to_string(), keys[k].as_str().unwrap().to_owned()))
            .collect();
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let stderr = dir.path().join("stderr.log");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let mut gw = Self { child: None, addr, admin, dir, config: config_path, env: all_env, stderr, http };
        gw.start_again().await;
        gw
    }

    /// Starts the gateway (again, after [`stop`](Self::stop)) with the same
    /// configuration, keys, ports and data directory; returns once it is healthy.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr).unwrap();
        let child = Command::new(cloakroomd_binary())
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cloakroomd");
        self.child = Some(child);
        for _ in 0..600 {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("cloakroomd exited with {status}: {}", self.log());
            }
            if let Ok(r) = self.http.get(format!("http://{}/healthz", self.admin)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cloakroomd did not become healthy: {}", self.log());
    }

    /// Kills the gateway (its data directory stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `server.data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What cloakroomd wrote on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The admin listener's URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// A call through the gateway as `token`; returns status, call id and JSON body.
    pub async fn call(&self, token: &str, path: &str, body: Value, approval: Option<&str>) -> (u16, String, Value) {
        self.call_with(token, path, body, &[], approval).await
    }

    /// [`call`](Self::call) with extra headers.
    pub async fn call_with(
        &self,
        token: &str,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
        approval: Option<&str>,
    ) -> (u16, String, Value) {
        let mut req = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("Proxy-Authorization", format!("Bearer {token}"))
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = approval {
            req = req.header("Cloakroom-Approval", a);
        }
        let res = req.send().await.expect("gateway call");
        let status = res.status().as_u16();
        let call_id =
            res.headers().get("cloakroom-call-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, call_id, body)
    }

    /// A call with extra headers and an empty JSON body; returns status, call id and the
    /// body as text.
    pub async fn call_with_headers(&self, token: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let (status, id, body) = self.call_with(token, path, json!({}), headers, None).await;
        (status, id, body.to_string())
    }

    /// `n` allowed calls to `payments`, `parallel` at a time, each with body `{"n": i}`
    /// (i from 1) and `headers`; panics unless each is answered 200.
    pub async fn calls(&self, token: &str, n: usize, parallel: usize, headers: &[(&str, &str)]) {
        let mut next = 1;
        while next <= n {
            let mut batch = tokio::task::JoinSet::new();
            for i in next..=n.min(next + parallel - 1) {
                let mut req = self
                    .http
                    .post(format!("http://{}/fn/payments/{i}", self.addr))
                    .header("Proxy-Authorization", format!("Bearer {token}"))
                    .json(&json!({ "n": i }));
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                // Each answer is read to its end, as a client does: the call's audit record
                // is sealed when its body ends.
                batch.spawn(async move {
                    let res = req.send().await?;
                    let status = res.status().as_u16();
                    res.text().await.map(|body| (status, body))
                });
            }
            while let Some(answer) = batch.join_next().await {
                let (status, body) = answer.unwrap().expect("gateway call");
                assert_eq!(status, 200, "{body}");
            }
            next += parallel;
        }
    }

    /// How many audit records the chains hold, read with the admin API.
    pub async fn record_count(&self, admin_token: &str) -> u64 {
        let res = self.http.get(format!("{}/v1/audit/verify", self.admin_url())).bearer_auth(admin_token).send().await;
        let report: VerifyReport = res.unwrap().json().await.unwrap();
        report.chains.iter().map(|c| c.records).sum()
    }

    /// Waits until the chains hold at least `n` records (a record is sealed when the
    /// response body ends, which can be just after the client has read it).
    pub async fn wait_for_records(&self, admin_token: &str, n: u64) {
        for _ in 0..600 {
            if self.record_count(admin_token).await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} audit records ({}): {}", self.record_count(admin_token).await, self.log());
    }

    /// Runs the CLI against this gateway's admin API as `token`.
    pub async fn cli(&self, args: &[&str], token: Option<&str>) -> Run {
        self.cli_stdin(args, token, None).await
    }

    /// Runs the CLI with `stdin` piped in.
    pub async fn cli_stdin(&self, args: &[&str], token: Option<&str>, stdin: Option<&[u8]>) -> Run {
        cli_at(&self.admin_url(), args, token, stdin).await
    }

    /// The audit records, once there are at least `n`, read with `audit tail`.
    pub async fn records_at_least(&self, admin_token: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let out =
                self.cli(&["audit", "tail", "--no-follow", "-n", "1000", "-o", "json"], Some(admin_token)).await.ok();
            let recs: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            if recs.len() >= n {
                return recs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} audit records: {}", self.log());
    }
}

/// Runs the CLI (off the runtime's threads) against the admin API at `url` as `token`.
pub async fn cli_at(url: &str, args: &[&str], token: Option<&str>, stdin: Option<&[u8]>) -> Run {
    let mut argv: Vec<String> = vec!["--admin".into(), url.to_owned()];
    argv.extend(args.iter().map(|s| s.to_string()));
    let token = token.map(str::to_owned);
    let stdin = stdin.map(<[u8]>::to_vec);
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = token.as_deref().map(|t| vec![("CLOAKROOM_TOKEN", t)]).unwrap_or_default();
        run_with(&argv, &env, stdin.as_deref())
    })
    .await
    .unwrap()
}
