//! End-to-end: an `https://` upstream with a private CA (`ca_file`), served by Python's
//! `ssl` module with a certificate made by the `openssl` command.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk_live_tls_upstream_0123456789";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cloakroom test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

const SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "x-api-key": self.headers.get("x-api-key")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

struct Upstream(Child);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_gets_the_secret_and_an_untrusted_one_is_502() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = cloakroom_testkit::free_port();
    let _up = Upstream(
        Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    );
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let url = format!("https://127.0.0.1:{port}");
    let rest = format!(
        "{}{}ca_file = \"{}\"\n{}{}",
        identity_section(),
        function("tls", "http", &url, "/fn/tls"),
        dir.path().join("ca.pem").display(),
        function("untrusted", "http", &url, "/fn/untrusted"),
        allow("agents", &["tls", "untrusted"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();
    let res = c
        .post(gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "tls_key", "value": SECRET, "binding": {"functions": ["tls"], "locations": ["header:x-api-key"]}}))
        .send()
        .await
        .unwrap();
    let p = res.json::<Value>().await.unwrap()["placeholder"].as_str().unwrap().to_owned();
    let res = c.get(gw.url("/fn/tls/hello")).bearer_auth(AGENT_KEY).header("x-api-key", &p).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    let v: Value = res.json().await.unwrap();
    // The upstream echoed the secret it received over TLS; the caller sees the placeholder.
    assert_eq!(v["path"], "/hello");
    assert_eq!(v["x-api-key"], p.as_str());
    // It was the secret on the wire: substituted once, masked once on the way back.
    let record = gw.admin_get(&format!("/v1/audit/{id}")).await;
    assert_eq!(record["secrets_used"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["response"]["masked"], 1, "{record}");
    let res = c.get(gw.url("/fn/untrusted/hello")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unavailable");
}
