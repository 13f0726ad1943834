//! Arbitrary requests — method, path, headers, credential, body, raw HTTP/1.1 bytes —
//! through the whole gateway stack (hyper's parser, the body deadline, audit,
//! identity, the CallLayer's request parsing, policy, detokenization, masking) built
//! in-process with two recording upstreams from `cloakroom-testkit`.
//!
//! What must hold, for every input:
//! - no panic;
//! - nothing is forwarded on a refusal: a response the upstream did not write (no
//!   `x-upstream-reply` header) leaves both upstreams' request counts unchanged;
//! - no secret in any response (refusal or not: the echo upstream reflects the request,
//!   the masker must catch it), in any header or byte of it;
//! - the secret reaches only the function it is bound to (`echo`), and there only in its
//!   bound locations: the `x-api-key` header and the JSON string at `/key`;
//! - with `CALL_FUZZ_POLICY=1`: no request reaches `echo` whose body any JSON parser
//!   would read as carrying a `/sql` string matching the deny rule (`drop`), whatever
//!   its Content-Type (issue 18's fail-closed property; off by default until that fix
//!   is merged, so the target keeps exploring the other properties).
//!
//! The input is structured (`arbitrary`); `{P}` in any string becomes the secret's
//! placeholder and `{S}` the secret itself.
#![no_main]

use std::{sync::OnceLock, time::Duration};

use cloakroom_gateway::{Config, Gateway};
use cloakroom_testkit::{RecordedRequest, RecordingUpstream, Reply};
use cloakroom_vault::{BindingSpec, Keys};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use libfuzzer_sys::{arbitrary, arbitrary::Arbitrary, fuzz_target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AGENT_KEY: &str = "ck_fuzz_agent_key_0123456789";
const SECRET: &str = "sk_fuzz_SECRET_6e1c2a9f4b7d";

struct World {
    rt: tokio::runtime::Runtime,
    gateway: Gateway,
    echo: RecordingUpstream,
    mcp: RecordingUpstream,
    placeholder: String,
    policy_check: bool,
    _dir: tempfile::TempDir,
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn marked(mut reply: Reply) -> Reply {
    reply.headers.push(("x-upstream-reply".into(), "1".into()));
    reply
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (gateway, echo, mcp, placeholder) = rt.block_on(async {
            let echo = RecordingUpstream::start(|r: &RecordedRequest| marked(Reply::echo(r))).await;
            let mcp = RecordingUpstream::start(|r: &RecordedRequest| {
                marked(Reply::json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {"echo": r.body_text()}})))
            })
            .await;
            let toml = format!(
                r#"
[server]
data_dir = "{data}"
max_body_bytes = 65536

[identity]
[[identity.api_keys]]
subject = "agent"
groups = ["agents"]
sha256 = "{key}"

[[functions]]
name = "echo"
upstream = "{echo}"
route = "/fn/echo"

[[functions]]
name = "tools"
protocol = "mcp"
upstream = "{mcp}"
route = "/fn/tools"

[[policy.rules]]
name = "agents call everything"
effect = "allow"
functions = ["echo", "tools", "tools/**"]
groups = ["agents"]

[[policy.rules]]
name = "no dropping"
effect = "deny"
functions = ["echo"]
arguments = {{ "/sql" = "(?i)drop" }}
"#,
                data = dir.path().join("data").display(),
                key = sha256_hex(AGENT_KEY),
                echo = echo.url(),
                mcp = mcp.url(),
            );
            let config = Config::from_toml_str("fuzz.toml", &toml).expect("config");
            let gateway = Gateway::builder(config).keys(Keys::generate()).start().await.expect("gateway");
            let binding = BindingSpec {
                functions: vec!["echo".into()],
                locations: vec!["header:x-api-key".into(), "json:/key".into()],
                ..BindingSpec::default()
            };
            let p = gateway.catalog().put("fuzz_key", SECRET.to_owned().into(), Some(binding)).await.expect("secret");
            (gateway, echo, mcp, p.to_string())
        });
        let policy_check = std::env::var_os("CALL_FUZZ_POLICY").is_some_and(|v| v == "1");
        World { rt, gateway, echo, mcp, placeholder, policy_check, _dir: dir }
    })
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Route {
    Echo,
    Tools,
    Other,
    Raw,
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    ApiKey,
    ContentType,
    Authorization,
    McpMethod,
    McpName,
    ContentLength,
    TransferEncoding,
    MethodOverride,
    Host,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Credential {
    Agent,
    AgentInProxyAuthorization,
    Wrong(String),
    None,
}

#[derive(Arbitrary, Debug)]
enum BodyShape {
    Raw(Vec<u8>),
    Text(String),
    Json { sql: String, key: String, extra: String },
    ToolCall { name: String, args: String },
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    route: Route,
    path: String,
    credential: Credential,
    headers: Vec<(HeaderName, String)>,
    body: BodyShape,
    /// Let the fuzzer's own Content-Length / framing stand (request smuggling shapes).
    raw_framing: bool,
}

fn expand(s: &str, placeholder: &str) -> String {
    s.replace("{P}", placeholder).replace("{S}", SECRET)
}

fn request_bytes(input: &Input, placeholder: &str) -> Vec<u8> {
    let x = |s: &str| expand(s, placeholder);
    let method = match &input.method {
        Method::Get => "GET".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Raw(m) => x(m),
    };
    let path = match input.route {
        Route::Echo => format!("/fn/echo{}", x(&input.path)),
        Route::Tools => format!("/fn/tools{}", x(&input.path)),
        Route::Other => format!("/fn/{}", x(&input.path)),
        Route::Raw => x(&input.path),
    };
    let body: Vec<u8> = match &input.body {
        BodyShape::Raw(b) => b.clone(),
        BodyShape::Text(t) => x(t).into_bytes(),
        BodyShape::Json { sql, key, extra } => {
            let mut v = serde_json::json!({ "sql": x(sql), "key": x(key) });
            if !extra.is_empty() {
                v["extra"] = serde_json::Value::String(x(extra));
            }
            v.to_string().into_bytes()
        }
        BodyShape::ToolCall { name, args } => serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": x(name), "arguments": { "q": x(args) } }
        })
        .to_string()
        .into_bytes(),
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    match &input.credential {
        Credential::Agent => head.push_str(&format!("authorization: Bearer {AGENT_KEY}\r\n")),
        Credential::AgentInProxyAuthorization => head.push_str(&format!("proxy-authorization: Bearer {AGENT_KEY}\r\n")),
        Credential::Wrong(t) => head.push_str(&format!("authorization: Bearer {}\r\n", x(t))),
        Credential::None => {}
    }
    for (name, value) in input.headers.iter().take(16) {
        let name = match name {
            HeaderName::ApiKey => "x-api-key".to_owned(),
            HeaderName::ContentType => "content-type".to_owned(),
            HeaderName::Authorization => "authorization".to_owned(),
            HeaderName::McpMethod => "mcp-method".to_owned(),
            HeaderName::McpName => "mcp-name".to_owned(),
            HeaderName::ContentLength => "content-length".to_owned(),
            HeaderName::TransferEncoding => "transfer-encoding".to_owned(),
            HeaderName::MethodOverride => "x-http-method-override".to_owned(),
            HeaderName::Host => "host".to_owned(),
            HeaderName::Raw(n) => x(n),
        };
        head.push_str(&format!("{name}: {}\r\n", x(value)));
    }
    if !input.raw_framing {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// One exchange over an in-memory connection served like a real one; the raw response.
async fn exchange(gateway: &Gateway, request: &[u8]) -> Vec<u8> {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let service = TowerToHyperService::new(gateway.service(None));
    let serving = tokio::spawn(async move {
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let _ = builder.serve_connection(TokioIo::new(server), service).await;
    });
    let mut response = Vec::new();
    let talk = async {
        client.write_all(request).await?;
        client.read_to_end(&mut response).await
    };
    // A request whose own framing promises more bytes than it sends waits for them.
    let _ = tokio::time::timeout(Duration::from_millis(500), talk).await;
    serving.abort();
    response
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn check_forwarded_to_echo(r: &RecordedRequest, policy_check: bool) {
    let secret = SECRET.as_bytes();
    assert!(!r.uri.contains(SECRET), "the secret reached echo in the URI: {}", r.uri);
    for (name, value) in &r.headers {
        if name != "x-api-key" {
            assert!(!contains(value.as_bytes(), secret), "the secret reached echo in header {name}");
        }
    }
    let in_body = r.body.windows(secret.len()).filter(|w| *w == secret).count();
    if in_body > 0 {
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).expect("the secret reached echo in a body that is not JSON");
        let at_key = v.get("key").and_then(|k| k.as_str()).map_or(0, |k| k.matches(SECRET).count());
        assert_eq!(in_body, at_key, "the secret reached echo outside /key: {}", r.body_text());
    }
    if policy_check {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            if let Some(sql) = v.get("sql").and_then(|s| s.as_str()) {
                assert!(!sql.to_ascii_lowercase().contains("drop"), "a denied /sql reached echo: {}", r.body_text());
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let w = world();
    let request = request_bytes(&input, &w.placeholder);
    let (echo_before, mcp_before) = (w.echo.requests().len(), w.mcp.requests().len());
    let response = w.rt.block_on(exchange(&w.gateway, &request));
    let echo_new: Vec<RecordedRequest> = w.echo.requests().split_off(echo_before);
    let mcp_new: Vec<RecordedRequest> = w.mcp.requests().split_off(mcp_before);

    assert!(!contains(&response, SECRET.as_bytes()), "the secret is in a response");
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    if !response.is_empty() && !head.contains("x-upstream-reply: 1") {
        assert!(echo_new.is_empty() && mcp_new.is_empty(), "a refused call was forwarded: {head}");
    }
    for r in &echo_new {
        check_forwarded_to_echo(r, w.policy_check);
    }
    for r in &mcp_new {
        assert!(!contains(&r.body, SECRET.as_bytes()), "the secret reached an unbound function's body");
        assert!(!r.uri.contains(SECRET), "the secret reached an unbound function's URI");
        for (name, value) in &r.headers {
            assert!(!contains(value.as_bytes(), SECRET.as_bytes()), "the secret reached an unbound function in {name}");
        }
    }
});
