//! `cloakroomd --check`, reloads (SIGHUP and `POST /v1/reload`) and `--dev`, as a user
//! runs them.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use cloakroom_testkit::{RecordingUpstream, Reply};
use common::*;
use serde_json::Value;

#[test]
fn check_accepts_a_valid_file_and_names_file_line_and_key_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[server]\nlisten = \"127.0.0.1:18080\"\nadmin_listen = \"127.0.0.1:18081\"\n\n[[functions]]\nname = \"echo\"\nupstream = \"http://127.0.0.1:9\"\nroute = \"/fn/echo\"\n",
    )
    .unwrap();
    let out = Command::new(binary()).arg("--config").arg(&good).arg("--check").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"127.0.0.1:18080\"\n\n[[functions]]\nname = \"echo\"\nupstream = \"http://127.0.0.1:9\"\nroute = \"/fn/echo\"\nretries = 3\n").unwrap();
    let out = Command::new(binary()).arg("--config").arg(&bad).arg("--check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:8: functions[0].retries:", bad.display())), "{err}");
    assert!(err.contains("unknown field"), "{err}");
    let out =
        Command::new(binary()).arg("--config").arg(dir.path().join("missing.toml")).arg("--check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

fn allow_echo_for(group: &str) -> String {
    allow("echo rule", &["echo"], &[group])
}

#[tokio::test]
async fn sighup_and_post_reload_apply_a_new_policy_and_a_bad_file_keeps_the_running_one() {
    let up = RecordingUpstream::echo().await;
    let base = format!("{}{}", identity_section(), function("echo", "http", &up.url(), "/fn/echo"));
    let gw = Cloakroomd::start("", &format!("{base}{}", allow_echo_for("agents"))).await;
    let c = reqwest::Client::new();
    let call = || c.get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).send();
    assert_eq!(call().await.unwrap().status(), 200);
    let server_head = std::fs::read_to_string(&gw.config_path).unwrap();
    let server_part = &server_head[..server_head.find("\n[identity]").unwrap()];

    // Agents lose access: SIGHUP.
    std::fs::write(&gw.config_path, format!("{server_part}\n{base}{}", allow_echo_for("nobody"))).unwrap();
    gw.sighup();
    let mut status = 0;
    for _ in 0..200 {
        status = call().await.unwrap().status().as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, 403, "SIGHUP did not apply the new policy");

    // A broken file: SIGHUP and POST /v1/reload refuse it, the running config stays.
    std::fs::write(&gw.config_path, format!("{server_part}\n{base}\n[[policy.rules]]\nname = 5\n")).unwrap();
    gw.sighup();
    // The SIGHUP is handled asynchronously: wait for its reload to be over, else it can
    // still be reading the file while it is rewritten below, and a half-written (say,
    // empty) file is a valid configuration without any API key.
    gw.wait_for_log("SIGHUP: reload refused", 1).await;
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 400, "{}", gw.stderr());
    let v: Value = res.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("policy.rules[0].name"), "{v}");
    assert_eq!(call().await.unwrap().status(), 403);

    // Agents get access back through the admin API.
    std::fs::write(&gw.config_path, format!("{server_part}\n{base}{}", allow_echo_for("agents"))).unwrap();
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 403, "{}", gw.stderr());
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    assert_eq!(call().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_reload_applies_new_masking_settings_to_the_next_response() {
    use base64::Engine as _;
    const SECRET: &str = "tok_reload_masking_0123456789x"; // 30 bytes: base64 without padding
    const LATER: &str = "tok_put_after_the_reload_9876543210";
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let leaked = format!("raw={SECRET} b64={b64} later={LATER}");
    let up = RecordingUpstream::start(move |_| Reply::chunks(vec![bytes::Bytes::from(leaked.clone())])).await;
    let base = format!(
        "{}{}{}",
        identity_section(),
        function("leaky", "http", &up.url(), "/fn/leaky"),
        allow("leaky rule", &["leaky"], &["agents"])
    );
    let gw = Cloakroomd::start("", &format!("{base}\n[masking]\nencodings = [\"raw\"]\n")).await;
    let placeholder =
        gw.put_secret("leaky_key", SECRET, serde_json::json!({"functions": ["leaky"], "locations": ["body"]})).await;
    let c = reqwest::Client::new();
    let call = || async {
        let res = c.get(gw.url("/fn/leaky/x")).bearer_auth(AGENT_KEY).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    // Only the raw form is searched: the base64 form passes.
    assert_eq!(call().await, format!("raw={placeholder} b64={b64} later={LATER}"));

    // Every encoding, and a redaction instead of the placeholder.
    let server_head = std::fs::read_to_string(&gw.config_path).unwrap();
    let server_part = &server_head[..server_head.find("\n[identity]").unwrap()];
    std::fs::write(&gw.config_path, format!("{server_part}\n{base}\n[masking]\nreplacement = \"redact\"\n")).unwrap();
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    assert_eq!(call().await, format!("raw=[REDACTED:leaky_key] b64=[REDACTED:leaky_key] later={LATER}"));
    assert!(!gw.stderr().contains("next restart"), "[masking] is applied, not deferred: {}", gw.stderr());

    // A secret put after the reload is masked with the new settings too.
    gw.put_secret("later_key", LATER, serde_json::json!({"functions": ["leaky"], "locations": ["body"]})).await;
    assert_eq!(call().await, "raw=[REDACTED:leaky_key] b64=[REDACTED:leaky_key] later=[REDACTED:later_key]");

    // A key a reload cannot apply is named in the warning, and the rest still applies:
    // here the masking and audit.record_bodies.
    let recorded_body = |c: &reqwest::Client| {
        let c = c.clone();
        let gw = &gw;
        async move {
            let res = c.get(gw.url("/fn/leaky/x")).bearer_auth(AGENT_KEY).send().await.unwrap();
            let id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
            res.bytes().await.unwrap();
            gw.admin_get(&format!("/v1/audit/{id}")).await["response"]["body"].clone()
        }
    };
    assert!(!recorded_body(&c).await.is_null(), "bodies are recorded by default");
    let text = format!(
        "{server_part}\nupstream_timeout = \"7s\"\n{base}\n[masking]\nreplacement = \"placeholder\"\n\n[audit]\nrecord_bodies = false\n"
    );
    std::fs::write(&gw.config_path, text).unwrap();
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    gw.wait_for_log("server.upstream_timeout", 1).await;
    assert!(gw.stderr().contains("take effect at the next restart"), "{}", gw.stderr());
    assert!(!gw.stderr().contains("audit.record_bodies"), "applied, not deferred: {}", gw.stderr());
    assert!(call().await.starts_with(&format!("raw={placeholder} ")), "the masking change still applied");
    assert!(recorded_body(&c).await.is_null(), "audit.record_bodies = false applied by the reload");
}

#[tokio::test]
async fn a_reload_applies_new_approval_webhooks() {
    let up = RecordingUpstream::echo().await;
    let hook = RecordingUpstream::start(|_| Reply::json(serde_json::json!({"ok": true}))).await;
    let base = format!(
        "{}{}\n[[policy.rules]]\nname = \"echo needs a lead\"\neffect = \"approve\"\nfunctions = [\"echo\"]\ngroups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
    );
    let gw = Cloakroomd::start("", &base).await;
    let c = &reqwest::Client::new();
    let gw = &gw;
    let request_approval = |amount: u32| async move {
        let res = c
            .post(gw.url("/fn/echo/refund"))
            .bearer_auth(AGENT_KEY)
            .header("content-type", "application/json")
            .body(format!(r#"{{"amount": {amount}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned()
    };
    request_approval(1).await;

    let server_head = std::fs::read_to_string(&gw.config_path).unwrap();
    let server_part = &server_head[..server_head.find("\n[identity]").unwrap()];
    let hooked = format!("{server_part}\n{base}\n[approvals]\nwebhooks = [\"{}/hook\"]\n", hook.url());
    std::fs::write(&gw.config_path, hooked).unwrap();
    let res = c.post(gw.admin_url("/v1/reload")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    let id = request_approval(2).await;
    let mut got = Vec::new();
    for _ in 0..200 {
        got = hook.requests();
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(got.len(), 1, "only the approval requested after the reload is announced");
    assert!(got[0].body_text().contains(&id), "{}", got[0].body_text());
    assert!(!gw.stderr().contains("next restart"), "[approvals] webhooks are applied: {}", gw.stderr());
}

#[tokio::test]
async fn dev_mode_prints_tokens_and_the_demo_works_as_printed() {
    let addr = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    let admin = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    // Killed on drop, also when an assertion fails.
    struct Dev(std::process::Child);
    impl Drop for Dev {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Dev(Command::new(binary())
        .args(["--dev", "--listen", &addr, "--admin-listen", &admin])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let stdout = child.0.stdout.take().unwrap();
    // Keep stderr too: when cloakroomd exits before its banner, the failure says why.
    let stderr = child.0.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    // Keep reading stdout to the end: a closed pipe would fail cloakroomd's next print.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("/v1/audit?limit=5");
            lines.push(line);
            if done {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(lines.join("\n"));
                }
            }
        }
    });
    let banner = match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(banner)) => banner,
        outcome => {
            let status = child.0.try_wait();
            std::thread::sleep(Duration::from_millis(200));
            panic!("no banner ({outcome:?}); cloakroomd {status:?}, stderr:\n{}", log.lock().unwrap())
        }
    };
    let export = |name: &str| -> String {
        let line = banner
            .lines()
            .find(|l| l.contains(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} in {banner}"));
        line.split('\'').nth(1).unwrap().to_owned()
    };
    let (admin_token, agent_token, demo) =
        (export("CLOAKROOM_ADMIN_TOKEN"), export("CLOAKROOM_AGENT_TOKEN"), export("DEMO_API_KEY"));
    assert!(demo.starts_with("cloak_"));
    assert!(banner.contains(&format!("curl -s http://{addr}/fn/echo/hello")), "{banner}");
    let c = reqwest::Client::new();
    // Line 1: hand in a secret.
    let res = c
        .post(format!("http://{admin}/v1/secrets"))
        .bearer_auth(&admin_token)
        .body(r#"{"name":"my_key","value":"sk_live_my_real_secret_value","binding":{"functions":["echo"],"locations":["header:x-api-key"]}}"#)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let mine = body["placeholder"].as_str().unwrap().to_owned();
    // Line 2: the echo function gets the secret, the caller the placeholder.
    let res = c
        .get(format!("http://{addr}/fn/echo/hello"))
        .bearer_auth(&agent_token)
        .header("x-api-key", &mine)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let echo: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-api-key"], mine.as_str());
    assert_eq!(echo["headers_sha256"]["x-api-key"], sha256_hex("sk_live_my_real_secret_value"));
    let res = c
        .get(format!("http://{addr}/fn/echo/hello"))
        .bearer_auth(&agent_token)
        .header("x-api-key", &demo)
        .send()
        .await
        .unwrap();
    let echo: Value = res.json().await.unwrap();
    assert_eq!(echo["headers"]["x-api-key"], demo.as_str());
    // Line 3: the audit record names the secrets used, never their values.
    let audit: Value = c
        .get(format!("http://{admin}/v1/audit?limit=5"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = audit.to_string();
    assert!(text.contains("\"name\":\"my_key\"") && text.contains("\"name\":\"demo_api_key\""), "{text}");
    assert!(!text.contains("sk_live_my_real_secret_value"));
    // The agent is not an admin.
    let res = c.get(format!("http://{admin}/v1/audit")).bearer_auth(&agent_token).send().await.unwrap();
    assert_eq!(res.status(), 403);
}
