//! End-to-end: an `https://` upstream that speaks only HTTP/2 (Node's `http2` secure
//! server with `allowHTTP1: false`) is reached: the forwarder offers h2 by ALPN.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk_live_h2_upstream_0123456789";

fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl").args(&args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 signed by it (`server.pem`, `server.key`).
fn make_certs(dir: &Path) {
    openssl(dir, "ecparam -name prime256v1 -genkey -noout -out ca.key");
    openssl(dir, "req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=cloakroom-h2-test-CA");
    openssl(dir, "ecparam -name prime256v1 -genkey -noout -out server.key");
    openssl(dir, "req -new -key server.key -out server.csr -subj /CN=127.0.0.1");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
}

/// Answers every stream with what it received, as JSON.
const SERVER: &str = r#"
const http2 = require("node:http2");
const fs = require("node:fs");
const [port, cert, key] = process.argv.slice(1);
const server = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), allowHTTP1: false });
server.on("stream", (stream, headers) => {
  stream.respond({ ":status": 200, "content-type": "application/json" });
  stream.end(JSON.stringify({
    alpn: stream.session.alpnProtocol,
    path: headers[":path"],
    authority: headers[":authority"] ?? null,
    apiKey: headers["x-api-key"] ?? null,
  }));
});
server.listen(Number(port), "127.0.0.1");
"#;

struct Upstream(Child);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_https_upstream_that_speaks_only_http2_is_reached_over_alpn_h2() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = cloakroom_testkit::free_port();
    let _up = Upstream(
        Command::new("node")
            .arg("-e")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node"),
    );
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let rest = format!(
        "{}{}ca_file = \"{}\"\n{}",
        identity_section(),
        function("h2", "http", &format!("https://127.0.0.1:{port}/base"), "/fn/h2"),
        dir.path().join("ca.pem").display(),
        allow("agents", &["h2"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();
    let res = c
        .post(gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "h2_key", "value": SECRET, "binding": {"functions": ["h2"], "locations": ["header:x-api-key"]}}))
        .send()
        .await
        .unwrap();
    let p = res.json::<Value>().await.unwrap()["placeholder"].as_str().unwrap().to_owned();
    let res = c.get(gw.url("/fn/h2/hello?x=1")).bearer_auth(AGENT_KEY).header("x-api-key", &p).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    let id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["alpn"], "h2", "{v}");
    assert_eq!(v["path"], "/base/hello?x=1", "{v}");
    assert_eq!(v["authority"], format!("127.0.0.1:{port}"), "{v}");
    // The upstream echoed the secret it received; the caller sees the placeholder.
    assert_eq!(v["apiKey"], p.as_str(), "{v}");
    let record = gw.admin_get(&format!("/v1/audit/{id}")).await;
    assert_eq!(record["secrets_used"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["response"]["masked"], 1, "{record}");
}
