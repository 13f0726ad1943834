//! End-to-end: placeholders in, secrets to the bound function only, placeholders out,
//! and no secret in the audit log — through the real `cloakroomd`.

mod common;

use std::{io::Write, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use cloakroom_testkit::{RecordingUpstream, Reply};
use common::*;
use serde_json::{json, Value};

/// A secret with characters that every encoding treats differently.
const SECRET: &str = "sk_live_51Hx\"Q/9z+abc=&k\\end";
const OTHER_SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJklmn";

fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(secret).unwrap();
    vec![
        ("raw", secret.to_owned()),
        ("json", json[1..json.len() - 1].to_owned()),
        ("url", percent(secret)),
        ("base64", base64::engine::general_purpose::STANDARD.encode(secret)),
        ("base64url", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)),
        ("hex", hex::encode(secret)),
    ]
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

/// The upstream answers with the secret it received, in every way a function might.
fn leaky(req: &cloakroom_testkit::RecordedRequest) -> Reply {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let json = serde_json::to_string(&json!({ "echo": SECRET })).unwrap();
    let (first, second) = SECRET.split_at(10);
    let headers =
        vec![("x-echo-secret".to_owned(), SECRET.to_owned()), ("content-type".to_owned(), "text/plain".to_owned())];
    if req.uri.starts_with("/gz") {
        let body = gzip(format!("gz:{SECRET}\njson:{json}\nb64:{b64}\n").as_bytes());
        let mut headers = headers;
        headers.push(("content-encoding".into(), "gzip".into()));
        let mid = body.len() / 2;
        return Reply {
            status: 200,
            headers,
            chunks: vec![Bytes::copy_from_slice(&body[..mid]), Bytes::copy_from_slice(&body[mid..])],
            delay: Duration::from_millis(20),
        };
    }
    Reply {
        status: 200,
        headers,
        chunks: vec![
            Bytes::from(format!("plain:{first}")),
            Bytes::from(format!("{second}\njson:{json}\n")),
            Bytes::from(format!("b64:{b64}\nurl:{}\n", percent(SECRET))),
        ],
        delay: Duration::from_millis(20),
    }
}

struct Setup {
    gw: Cloakroomd,
    leaky: RecordingUpstream,
    other: RecordingUpstream,
    placeholder: String,
    jsonl: std::path::PathBuf,
}

async fn setup() -> Setup {
    let leaky_up = RecordingUpstream::start(leaky).await;
    let other = RecordingUpstream::echo().await;
    let jsonl_dir = tempfile::tempdir().unwrap().keep();
    let jsonl = jsonl_dir.join("audit.jsonl");
    let rest = format!(
        "{}{}{}{}\n[audit]\nexport_jsonl = \"{}\"\n\n[[secrets]]\nname = \"declared\"\nfunctions = [\"other\"]\nlocations = [\"body\"]\n",
        identity_section(),
        function("leaky", "http", &leaky_up.url(), "/fn/leaky"),
        function("other", "http", &other.url(), "/fn/other"),
        allow("agents may call both", &["leaky", "other"], &["agents"]),
        jsonl.display(),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let res = reqwest::Client::new()
        .post(gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "name": "stripe_key",
            "value": SECRET,
            "binding": {
                "functions": ["leaky"],
                "locations": ["header:x-api-key", "query:key", "json:/token"],
                "groups": ["agents"],
            }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    let placeholder = v["placeholder"].as_str().unwrap().to_owned();
    assert!(placeholder.starts_with("cloak_"));
    Setup { gw, leaky: leaky_up, other, placeholder, jsonl }
}

fn assert_no_secret(what: &str, text: &[u8]) {
    for secret in [SECRET, OTHER_SECRET] {
        for (enc, form) in encodings(secret) {
            assert!(
                !text.windows(form.len()).any(|w| w == form.as_bytes()),
                "{what} contains the secret ({enc} encoded)"
            );
        }
    }
}

#[tokio::test]
async fn placeholders_become_the_secret_upstream_and_the_secret_comes_back_as_its_placeholder() {
    let s = setup().await;
    let p = &s.placeholder;
    let res = reqwest::Client::new()
        .post(s.gw.url(&format!("/fn/leaky/charge?key={p}&n=1")))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", p.as_str())
        .json(&json!({ "token": p, "amount": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // What the function received: the secret, in all three places.
    let reqs = s.leaky.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.header("x-api-key").as_deref(), Some(SECRET));
    assert!(r.uri.contains(&format!("key={}", percent(SECRET))), "{}", r.uri);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["token"], SECRET);
    assert!(!r.body_text().contains(p.as_str()));
    // What the caller got: only placeholders, in the header and the streamed body.
    assert_eq!(res.headers()["x-echo-secret"].to_str().unwrap(), p.as_str());
    let text = res.text().await.unwrap();
    assert_no_secret("the response body", text.as_bytes());
    assert!(text.contains(&format!("plain:{p}\n")), "{text}");
    assert!(text.contains(&format!("json:{{\"echo\":\"{p}\"}}")), "{text}");
    assert!(text.contains(&format!("b64:{p}")), "{text}");
    assert!(text.contains(&format!("url:{p}")), "{text}");
}

#[tokio::test]
async fn a_gzip_compressed_response_is_masked_too() {
    let s = setup().await;
    let p = &s.placeholder;
    let res = reqwest::Client::new()
        .get(s.gw.url("/fn/leaky/gz"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", p.as_str())
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(s.leaky.requests()[0].header("x-api-key").as_deref(), Some(SECRET));
    let gz = res.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_owned());
    let raw = res.bytes().await.unwrap();
    let text = if gz.as_deref() == Some("gzip") { gunzip(&raw) } else { raw.to_vec() };
    assert_no_secret("the gzip response", &text);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(&format!("gz:{p}\n")), "{text}");
}

#[tokio::test]
async fn a_placeholder_sent_to_another_function_is_refused_and_nothing_is_forwarded() {
    let s = setup().await;
    let p = &s.placeholder;
    let res = reqwest::Client::new()
        .post(s.gw.url("/fn/other/x"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", p.as_str())
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "secret_not_bound");
    assert!(s.other.requests().is_empty());
    // An unknown cloak_-shaped string passes untouched.
    let unknown = "cloak_aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let res = reqwest::Client::new()
        .post(s.gw.url("/fn/other/x"))
        .bearer_auth(AGENT_KEY)
        .header("x-api-key", unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(s.other.requests()[0].header("x-api-key").as_deref(), Some(unknown));
}

#[tokio::test]
async fn the_secrets_api_never_returns_values_and_config_bindings_win() {
    let s = setup().await;
    let c = reqwest::Client::new();
    let list = s.gw.admin_get("/v1/secrets").await;
    let text = list.to_string();
    assert_no_secret("GET /v1/secrets", text.as_bytes());
    let names: Vec<&str> = list["secrets"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"stripe_key") && names.contains(&"declared"), "{list}");
    // A different binding for a config-declared name: 409.
    let res = c
        .post(s.gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "declared", "value": OTHER_SECRET, "binding": {"functions": ["leaky"], "locations": ["body"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let body = res.text().await.unwrap();
    assert_no_secret("the 409 answer", body.as_bytes());
    // The same name without a binding stores the value under the config's binding.
    let res = c
        .post(s.gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"name": "declared", "value": OTHER_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Non-admins cannot touch secrets; malformed bodies do not echo the value.
    let res = c.get(s.gw.admin_url("/v1/secrets")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = c
        .post(s.gw.admin_url("/v1/secrets"))
        .bearer_auth(ADMIN_KEY)
        .body(format!("{{\"name\": \"x\", \"value\": \"{OTHER_SECRET}\", \"bogus\": 1}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_no_secret("the 400 answer", res.text().await.unwrap().as_bytes());
    // Delete.
    let res = c.delete(s.gw.admin_url("/v1/secrets/stripe_key")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = c.delete(s.gw.admin_url("/v1/secrets/stripe_key")).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_audit_log_holds_every_call_verifies_and_contains_no_secret() {
    let s = setup().await;
    let p = &s.placeholder;
    let c = reqwest::Client::new();
    let mut ids = Vec::new();
    for path in ["/fn/leaky/a", "/fn/leaky/gz", "/fn/other/x"] {
        let res = c
            .post(s.gw.url(&format!("{path}?key={p}")))
            .bearer_auth(AGENT_KEY)
            .header("x-api-key", p.as_str())
            .json(&json!({"token": p}))
            .send()
            .await
            .unwrap();
        ids.push(res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned());
        res.bytes().await.unwrap();
    }
    let records = s.gw.admin_get("/v1/audit?limit=100").await;
    let records = records["records"].as_array().unwrap().clone();
    for id in &ids {
        assert!(records.iter().any(|r| r["id"] == id.as_str()), "call {id} is not in the audit log");
    }
    let first = records.iter().find(|r| r["id"] == ids[0].as_str()).unwrap();
    let used = first["secrets_used"].as_array().unwrap();
    assert_eq!(used.len(), 3, "{first}");
    assert!(used.iter().all(|u| u["name"] == "stripe_key" && u["placeholder"] == p.as_str()));
    assert!(first["response"]["masked"].as_u64().unwrap() >= 4, "{first}");
    let denied = records.iter().find(|r| r["id"] == ids[2].as_str()).unwrap();
    assert_eq!(denied["error"]["code"], "secret_not_bound", "{denied}");
    assert_eq!(s.gw.admin_get("/v1/audit/verify").await["ok"], true);
    assert_no_secret("GET /v1/audit", serde_json::to_vec(&records).unwrap().as_slice());

    // The files: sled's data directory and the JSON-lines export.
    let jsonl = std::fs::read(&s.jsonl).expect("the JSONL export exists");
    assert!(!jsonl.is_empty());
    assert_no_secret("the JSONL export", &jsonl);
    for entry in walk(&s.gw.dir.path().join("data").join("audit")) {
        assert_no_secret(&format!("audit file {}", entry.display()), &std::fs::read(&entry).unwrap());
    }
    // The log is written by a thread of its own: wait for every call's line before
    // looking for what must not be in it.
    s.gw.wait_for_log("call finished", ids.len()).await;
    let log = s.gw.stderr();
    assert_no_secret("cloakroomd's log", log.as_bytes());
    // Not a terminal: no colour codes in the file.
    assert!(!log.contains('\x1b'), "ANSI escapes in a log file: {log}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_secret_whose_binding_names_approvers_needs_an_approval_for_every_use() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("pay", "http", &up.url(), "/fn/pay"),
        allow("agents may pay", &["pay"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();
    let p = gw
        .put_secret(
            "wire_key",
            SECRET,
            json!({"functions": ["pay"], "locations": ["header:x-api-key"], "approvers": ["leads"]}),
        )
        .await;
    let call = || c.post(gw.url("/fn/pay/wire")).bearer_auth(AGENT_KEY).header("x-api-key", p.as_str()).body("{}");
    let res = call().send().await.unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned();
    assert!(up.requests().is_empty());
    // A call without the secret needs no approval.
    assert_eq!(c.post(gw.url("/fn/pay/x")).bearer_auth(AGENT_KEY).send().await.unwrap().status(), 200);
    let res =
        c.post(gw.admin_url(&format!("/v1/approvals/{id}/approve"))).bearer_auth(APPROVER_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = call().header("cloakroom-approval", &id).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let reqs = up.requests();
    assert_eq!(reqs.last().unwrap().header("x-api-key").as_deref(), Some(SECRET));
}

/// The attacks on two mechanisms a binding and the mask lean on, against a real
/// cloakroomd: a placeholder sent to a function whose name starts or ends like the one
/// it is bound to (an exact binding is matched without a glob), and secrets that crowd
/// the masker's prefilter (more than 8 sharing a prefix), whose echo must be masked
/// through the automaton built for crowds alone.
#[tokio::test]
async fn near_names_are_refused_and_crowded_secrets_are_masked() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}{}{}",
        identity_section(),
        function("pay", "http", &up.url(), "/fn/pay"),
        function("payx", "http", &up.url(), "/fn/payx"),
        function("pa", "http", &up.url(), "/fn/pa"),
        allow("agents may call", &["pay", "payx", "pa"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let values: Vec<String> = (0..12).map(|i| format!("sk_live_crowded_prefix_{i:02}_{}", i * 7919)).collect();
    let mut placeholders = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let binding = json!({"functions": ["pay"], "locations": ["header:x-api-key"]});
        placeholders.push(gw.put_secret(&format!("crowded_{i}"), v, binding).await);
    }
    let c = reqwest::Client::new();
    let call = |path: &str, p: &str| c.get(gw.url(path)).bearer_auth(AGENT_KEY).header("x-api-key", p).send();
    for path in ["/fn/payx/a", "/fn/pa/a"] {
        let res = call(path, &placeholders[7]).await.unwrap();
        assert_eq!(res.status(), 403, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "secret_not_bound", "{path}");
    }
    assert!(up.requests().is_empty(), "nothing was forwarded to a near name");
    for i in [0, 7, 11] {
        let res = call("/fn/pay/a", &placeholders[i]).await.unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        assert!(values.iter().all(|v| !text.contains(v.as_str())), "a crowded secret reached the caller: {text}");
        assert!(text.contains(placeholders[i].as_str()), "its echo comes back as the placeholder: {text}");
    }
    let sent: Vec<_> = up.requests().iter().map(|r| r.header("x-api-key").unwrap_or_default()).collect();
    assert_eq!(sent, [0, 7, 11].map(|i| values[i].clone()), "the bound function got each real secret");
    let log = gw.stderr();
    assert!(values.iter().all(|v| !log.contains(v.as_str())), "a secret in the log: {log}");
}
