//! End-to-end: an `https://` upstream with a private CA (`ca_file`), served by Python's
//! `ssl` module with a certificate made by the `openssl` command.

mod common;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk_live_tls_upstream_0123456789";

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

#[tokio::test]
async fn an_https_upstream_with_a_private_ca_gets_the_secret_and_an_untrusted_one_is_502() {
    let up = tls::TlsUpstream::start("python3", "-c", SERVER).await;
    let port = up.port;
    let url = format!("https://127.0.0.1:{port}");
    let rest = format!(
        "{}{}ca_file = \"{}\"\n{}{}",
        identity_section(),
        function("tls", "http", &url, "/fn/tls"),
        up.ca_file().display(),
        function("untrusted", "http", &url, "/fn/untrusted"),
        allow("agents", &["tls", "untrusted"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();
    let p = gw.put_secret("tls_key", SECRET, json!({"functions": ["tls"], "locations": ["header:x-api-key"]})).await;
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
