//! End-to-end: an `https://` upstream that speaks only HTTP/2 (Node's `http2` secure
//! server with `allowHTTP1: false`) is reached: the forwarder offers h2 by ALPN.

mod common;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "sk_live_h2_upstream_0123456789";

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

#[tokio::test]
async fn an_https_upstream_that_speaks_only_http2_is_reached_over_alpn_h2() {
    let up = tls::TlsUpstream::start("node", "-e", SERVER).await;
    let port = up.port;
    let rest = format!(
        "{}{}ca_file = \"{}\"\n{}",
        identity_section(),
        function("h2", "http", &format!("https://127.0.0.1:{port}/base"), "/fn/h2"),
        up.ca_file().display(),
        allow("agents", &["h2"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();
    let p = gw.put_secret("h2_key", SECRET, json!({"functions": ["h2"], "locations": ["header:x-api-key"]})).await;
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
