//! End-to-end attacks on the request path (issue 18): every shape of request a hostile
//! caller can send is refused before policy or made unambiguous, with bounded work.
//! Each test is one property; each was an attack that worked before.

mod common;

use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::{json, Value};

/// `max_body_bytes` of these gateways: the figure memory bounds are stated against.
const MAX_BODY: usize = 1024 * 1024;

const DENY_DROP: &str = r#"
[[policy.rules]]
name = "no drop table"
effect = "deny"
functions = ["sql"]
arguments = { "/sql" = "(?i)\\bdrop\\s+table\\b" }
"#;

/// A gateway with `sql` (a deny rule on `/sql`), `echo` and `other` (agents may call
/// `sql` and `echo`, nobody `other`), and `mcp`, all in front of `up`.
async fn gateway(up: &RecordingUpstream) -> Cloakroomd {
    gateway_with_body_limit(up, MAX_BODY).await
}

async fn gateway_with_body_limit(up: &RecordingUpstream, max_body_bytes: usize) -> Cloakroomd {
    let rest = format!(
        "{}{}{}{}{}{}{}{}",
        identity_section(),
        function("sql", "http", &up.url(), "/fn/sql"),
        function("echo", "http", &up.url(), "/fn/echo"),
        function("other", "http", &up.url(), "/fn/other"),
        function("mcp", "mcp", &up.url(), "/mcp"),
        allow("agents may call sql, echo and mcp", &["sql", "echo", "mcp", "mcp/search"], &["agents"]),
        DENY_DROP,
        "\n",
    );
    Cloakroomd::start(&format!("max_body_bytes = {max_body_bytes}"), &rest).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// POSTs `body` with `content_type` to `path` as the agent: status and JSON body.
async fn post(gw: &Cloakroomd, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let res = client()
        .post(gw.url(path))
        .bearer_auth(AGENT_KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let call_id = res.headers().get("cloakroom-call-id").map(|v| v.to_str().unwrap().to_owned());
    let mut v: Value = res.json().await.unwrap_or(Value::Null);
    if let Some(id) = call_id {
        v["_call_id"] = json!(id);
    }
    (status, v)
}

/// Sends `head` (request line and headers, no credential, no final CRLF) raw, as the
/// agent, with `Connection: close`: the status code and the whole answer. Raw because
/// HTTP clients normalize `..` and `%2e` before sending.
async fn raw(gw: &Cloakroomd, head: &str) -> (u16, String) {
    let req = format!("{head}\r\nHost: {}\r\nAuthorization: Bearer {AGENT_KEY}\r\nConnection: close\r\n\r\n", gw.addr);
    let answer = gw.raw(req.as_bytes()).await;
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// The audit record of `call_id` once it is written.
async fn audit_record(gw: &Cloakroomd, call_id: &str) -> Value {
    for _ in 0..500 {
        let r =
            client().get(gw.admin_url(&format!("/v1/audit/{call_id}"))).bearer_auth(ADMIN_KEY).send().await.unwrap();
        if r.status() == 200 {
            return r.json().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no audit record for {call_id}");
}

/// The peak resident set of the process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn assert_bad_request(status: u16, v: &Value) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
}

// === bounded work ===

#[tokio::test]
async fn deep_nesting_with_thousands_of_placeholders_is_refused_in_bounded_memory() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let placeholder =
        gw.put_secret("k", "sk_live_deep_0123456789", json!({"functions": ["sql"], "locations": ["body"]})).await;
    // Warm up so that the baseline includes the first call's allocations.
    let (status, _) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "select 1"}"#).await;
    assert_eq!(status, 200);
    let before = peak_rss(gw.pid());
    // The attack of issue 18: 900,000 `[` and then placeholders, just under 1 MiB.
    let mut body = "[".repeat(900_000);
    while body.len() + placeholder.len() + 3 < MAX_BODY {
        body.push_str(&format!("\"{placeholder}\","));
    }
    for content_type in ["application/json", "text/plain", "application/octet-stream"] {
        let started = std::time::Instant::now();
        let (status, v) = post(&gw, "/fn/sql/q", content_type, body.clone()).await;
        eprintln!("deep nesting as {content_type}: answered in {:?}", started.elapsed());
        assert_bad_request(status, &v);
        assert!(v["error"]["message"].as_str().unwrap().contains("deeper than 64"), "{v}");
    }
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    eprintln!("deep nesting: peak RSS grew by {grown} bytes");
    // Before: 2.7 GiB. A few buffered copies of the body are allowed.
    assert!(grown < 32 * MAX_BODY as u64, "peak RSS grew by {grown} bytes");
    assert_eq!(up.requests().len(), 1, "only the warm-up call was forwarded");
}

/// Every held call used to keep its whole arguments in its approval, and the
/// unauthenticated `/metrics` decoded up to 1,000 approvals on every scrape: a few
/// bodies of `[0,0,…]` (32 bytes of `Value` for every 2 bytes of body) made one scrape
/// allocate hundreds of megabytes, and the console's inbox likewise. An approval now
/// keeps at most 16 KiB of arguments and `/metrics` counts without reading them.
#[tokio::test]
async fn held_calls_with_large_arguments_cost_bounded_memory_when_approvals_are_listed() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}\n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"refund\"]\n\
         groups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        function("refund", "http", &up.url(), "/fn/refund"),
    );
    let big = 2 * MAX_BODY;
    let gw = Cloakroomd::start(&format!("max_body_bytes = {big}"), &rest).await;
    // 900,000 values: under the value limit (MAX_JSON_VALUES), 29 MB of `Value` each.
    let body = format!("{{\"x\": [{}0]}}", "0,".repeat(900_000));
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (status, v) = post(&gw, "/fn/refund/r", "application/json", body.clone()).await;
        assert_eq!(status, 202, "{v}");
        ids.push(v["approval_id"].as_str().unwrap().to_owned());
    }
    let metrics = || async { reqwest::get(gw.admin_url("/metrics")).await.unwrap().text().await.unwrap() };
    metrics().await;
    let before = peak_rss(gw.pid());
    for _ in 0..3 {
        let text = metrics().await;
        assert!(
            text.contains("cloakroom_approvals{state=\"pending\"} 6"),
            "{}",
            cloakroom_testkit::last_lines(&text, 40)
        );
    }
    let pending = client()
        .get(gw.admin_url("/v1/approvals?state=pending"))
        .bearer_auth(APPROVER_KEY)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    eprintln!("listing 6 approvals of {big}-byte calls: peak RSS grew by {grown} bytes");
    // Before: each list decoded 6 x 900,000 values (~170-340 MB).
    assert!(grown < 16 * MAX_BODY as u64, "peak RSS grew by {grown} bytes");
    let listed = pending["approvals"].as_array().unwrap_or_else(|| panic!("{pending}"));
    assert_eq!(listed.len(), 6);
    for a in listed {
        assert!(a["arguments"].to_string().len() <= 16 * 1024);
        assert_eq!(a["arguments"]["x"][32], "… [899969 more items not shown]", "{}", a["arguments"]);
    }
    assert!(up.requests().is_empty());
}

/// `0,` is two bytes of body and 32 of parsed `Value`, held by several layers: a
/// 10 MiB body of them cost about a gigabyte before it reached policy. More than a
/// million values are refused before they are all built.
#[tokio::test]
async fn a_body_of_more_than_a_million_values_is_refused_in_bounded_memory() {
    let up = RecordingUpstream::echo().await;
    let big = 8 * MAX_BODY;
    let gw = gateway_with_body_limit(&up, big).await;
    let (status, _) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "select 1"}"#).await;
    assert_eq!(status, 200);
    let before = peak_rss(gw.pid());
    let body = format!("{{\"x\": [{}0]}}", "0,".repeat((big - 16) / 2));
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", body).await;
    assert_bad_request(status, &v);
    assert!(v["error"]["message"].as_str().unwrap().contains("more than 1000000 values"), "{v}");
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    eprintln!("4M values: peak RSS grew by {grown} bytes");
    // Before: ~1 GB for the 4 M values of 8 MiB. The buffered body and what a million
    // values take before the refusal are allowed.
    assert!(grown < 12 * big as u64, "peak RSS grew by {grown} bytes");
    assert_eq!(up.requests().len(), 1, "only the warm-up call was forwarded");
}

#[tokio::test]
async fn placeholders_under_long_pointers_cost_bounded_memory_and_too_many_are_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let placeholder =
        gw.put_secret("k", "sk_live_wide_0123456789", json!({"functions": ["sql"], "locations": ["body"]})).await;
    let (status, _) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "select 1"}"#).await;
    assert_eq!(status, 200);
    let before = peak_rss(gw.pid());
    // 62 levels of 14-byte keys (a 0.9 KB pointer), then an array of placeholders.
    let nest = |n: usize| {
        let key = "k".repeat(14);
        let items = vec![format!("\"{placeholder}\""); n].join(",");
        format!("{}[{items}]{}", format!("{{\"{key}\":").repeat(62), "}".repeat(62))
    };
    let started = std::time::Instant::now();
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", nest(1000)).await;
    eprintln!("1000 placeholders under long pointers: answered in {:?}", started.elapsed());
    assert_eq!(status, 200, "{v}");
    assert_eq!(up.requests().len(), 2);
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", nest(1025)).await;
    assert_bad_request(status, &v);
    assert!(v["error"]["message"].as_str().unwrap().contains("more than 1024 placeholders"), "{v}");
    // One key longer than a pointer may be, above a placeholder.
    let long = format!("{{\"{}\": \"{placeholder}\"}}", "k".repeat(1100));
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", long).await;
    assert_bad_request(status, &v);
    assert_eq!(up.requests().len(), 2, "nothing refused was forwarded");
    let grown = peak_rss(gw.pid()).saturating_sub(before);
    eprintln!("long pointers: peak RSS grew by {grown} bytes");
    assert!(grown < 32 * MAX_BODY as u64, "peak RSS grew by {grown} bytes");
}

#[tokio::test]
async fn an_mcp_batch_over_the_limit_is_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let one = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let batch = Value::Array(vec![one; 65]).to_string();
    let (status, v) = post(&gw, "/mcp", "application/json", batch).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_tool_name_longer_than_128_bytes_is_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for (len, refused) in [(128, false), (129, true), (100_000, true)] {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "s".repeat(len)}});
        let (status, v) = post(&gw, "/mcp", "application/json", body.to_string()).await;
        let code = v["error"]["code"].as_i64();
        if refused {
            assert_eq!(code, Some(-32602), "{len}: {status} {v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("longer than 128 bytes"), "{v}");
            assert!(v.to_string().len() < 1024, "the refusal does not echo the name");
        } else {
            assert_ne!(code, Some(-32602), "{len}: a 128-byte name is a name: {v}");
        }
    }
    assert!(up.requests().iter().all(|r| r.body.len() < 1024), "no over-long tool name reached the upstream");
}

#[tokio::test]
async fn a_compressed_request_body_is_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for encoding in ["gzip", "br", "deflate, identity", "zstd"] {
        let res = client()
            .post(gw.url("/fn/sql/q"))
            .bearer_auth(AGENT_KEY)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        assert_bad_request(status, &v);
    }
    assert!(up.requests().is_empty());
}

// === fail closed on ambiguity ===

#[tokio::test]
async fn a_nan_body_under_a_deny_rule_is_refused_and_audited() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "DROP TABLE t", "n": NaN}"#).await;
    assert_bad_request(status, &v);
    let record = audit_record(&gw, v["_call_id"].as_str().unwrap()).await;
    assert_eq!(record["error"]["code"], "bad_request", "{record}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn json_sent_as_text_plain_is_evaluated_by_argument_rules() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream"] {
        let (status, v) = post(&gw, "/fn/sql/q", content_type, r#"{"sql": "DROP TABLE t"}"#).await;
        assert_eq!(status, 403, "{content_type}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    // Still JSON-shaped but not JSON: refused, not forwarded as "no arguments".
    let (status, v) = post(&gw, "/fn/sql/q", "text/plain", r#"{"sql": "DROP TABLE t", }"#).await;
    assert_bad_request(status, &v);
    let (status, _) = post(&gw, "/fn/sql/q", "text/plain", "select 1").await;
    assert_eq!(status, 200);
    assert_eq!(up.requests().len(), 1, "only the plain-text call was forwarded");
}

#[tokio::test]
async fn a_form_body_is_evaluated_by_argument_rules() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let form = "application/x-www-form-urlencoded";
    let (status, v) = post(&gw, "/fn/sql/q", form, "sql=DROP+TABLE+t").await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    // A field twice: servers disagree on which one counts.
    let (status, v) = post(&gw, "/fn/sql/q", form, "sql=SELECT+1&sql=DROP+TABLE+t").await;
    assert_bad_request(status, &v);
    assert!(up.requests().is_empty());
    let (status, _) = post(&gw, "/fn/sql/q", form, "sql=SELECT+1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn duplicate_keys_at_any_depth_are_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for body in [
        r#"{"sql": "SELECT 1", "sql": "DROP TABLE t"}"#,
        r#"{"sql": "SELECT 1", "opts": [{"a": 1, "a": 2}]}"#,
        r#"{"sql": "SELECT 1", "\u0073ql": "DROP TABLE t"}"#,
    ] {
        let (status, v) = post(&gw, "/fn/sql/q", "application/json", body).await;
        assert_bad_request(status, &v);
    }
    let mcp = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"drop_db"}}"#;
    let (status, v) = post(&gw, "/mcp", "application/json", mcp).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert!(up.requests().is_empty());
}

/// Go's encoding/json (and so Go MCP servers), ASP.NET Core and others match object keys
/// without regard to case, fold `ſ` to `s` and `K` (Kelvin) to `k`, and let the last
/// match win: `{"name": "search", "Name": "delete_db"}` is a call of `search` to policy and
/// of `delete_db` to such a server. Keys that fold to the same name are refused as
/// duplicates are.
#[tokio::test]
async fn keys_that_fold_to_the_same_name_are_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for body in [
        r#"{"sql": "SELECT 1", "SQL": "DROP TABLE t"}"#,
        r#"{"sql": "SELECT 1", "Sql": "DROP TABLE t"}"#,
        "{\"sql\": \"SELECT 1\", \"\u{17f}ql\": \"DROP TABLE t\"}",
        r#"{"sql": "SELECT 1", "\u017fql": "DROP TABLE t"}"#,
        r#"{"sql": "SELECT 1", "opts": {"kind": 1, "\u212aind": 2}}"#,
        r#"{"sql": "SELECT 1", "sql\u0000": "DROP TABLE t"}"#,
        r#"{"sql": "SELECT 1", "opts": [{"Mode": 1, "mode": 2}]}"#,
    ] {
        let (status, v) = post(&gw, "/fn/sql/q", "application/json", body).await;
        assert_bad_request(status, &v);
    }
    for mcp in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{},"Name":"drop_db"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{}},"Params":{"name":"drop_db"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list","params":{"name":"search","arguments":{}}}"#,
    ] {
        let (status, v) = post(&gw, "/mcp", "application/json", mcp).await;
        assert_eq!(status, 400, "{mcp}: {v}");
        assert_eq!(v["error"]["code"], -32700, "{v}");
    }
    assert!(up.requests().is_empty());
    // Keys that only look alike are distinct names everywhere.
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "SELECT 1", "sqls": 2, "sq": 3}"#).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(up.requests().len(), 1);
}

/// One key in another case is the same field to a case-blind server (Go's
/// encoding/json binds `Amount` to `amount`): argument rules see it, and so does the
/// MCP layer's reading of `params.arguments` and `params.name`.
#[tokio::test]
async fn argument_rules_see_keys_in_any_case() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}{}{}\n[[policy.rules]]\nname = \"no drop in search\"\neffect = \"deny\"\nfunctions = [\"mcp/search\"]\n\
         arguments = {{ \"/q\" = \"(?i)drop\" }}\n",
        identity_section(),
        function("sql", "http", &up.url(), "/fn/sql"),
        function("mcp", "mcp", &up.url(), "/mcp"),
        allow("agents may call sql and search", &["sql", "mcp", "mcp/search"], &["agents"]),
        DENY_DROP,
    );
    let gw = Cloakroomd::start("", &rest).await;
    for body in [r#"{"SQL": "DROP TABLE t"}"#, r#"{"Sql": "DROP TABLE t"}"#, "{\"\u{17f}ql\": \"DROP TABLE t\"}"] {
        let (status, v) = post(&gw, "/fn/sql/q", "application/json", body).await;
        assert_eq!(status, 403, "{body}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
    }
    for params in [
        r#"{"name": "search", "Arguments": {"q": "drop"}}"#,
        r#"{"name": "search", "arguments": {"Q": "drop"}}"#,
        r#"{"Name": "search", "ARGUMENTS": {"Q": "DROP"}}"#,
    ] {
        let mcp = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
        let (status, v) = post(&gw, "/mcp", "application/json", mcp).await;
        assert_eq!(status, 200, "{params}: {v}");
        assert_eq!(v["error"]["data"]["code"], "forbidden", "{params}: {v}");
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    let (status, v) = post(&gw, "/fn/sql/q", "application/json", r#"{"SQL": "SELECT 1"}"#).await;
    assert_eq!(status, 200, "{v}");
}

/// A form body that is also a JSON document: policy reads the JSON (`amount` 5), every
/// form parser the fields (`amount` 999999, or `sql=DROP TABLE t`). Refused when a form
/// parser finds a named field in it.
#[tokio::test]
async fn a_form_body_that_is_also_json_naming_form_fields_is_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": "&sql=DROP TABLE t&"}"#),
        ("application/x-www-form-urlencoded; charset=utf-8", r#"{"sql": "SELECT 1", "x": "&sql=DROP TABLE t&"}"#),
        ("Application/X-WWW-Form-Urlencoded", r#"{"sql": "SELECT 1", "x": "&sql=DROP TABLE t&"}"#),
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": ";%73ql=DROP+TABLE+t;"}"#),
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": "&opts[mode]=drop"}"#),
        // PHP drops leading spaces and cuts at NUL; Spring reads `!name`.
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": "&+sql=DROP+TABLE+t&"}"#),
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": "&sql%00x=DROP+TABLE+t&"}"#),
        ("application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "x": "&!sql=DROP+TABLE+t&"}"#),
        // Types lenient servers take for a form (PHP cuts at `,` and spaces).
        ("application/x-www-form-urlencoded,x", r#"{"sql": "SELECT 1", "x": "&sql=DROP+TABLE+t&"}"#),
        (" application/x-www-form-urlencoded x", r#"{"sql": "SELECT 1", "x": "&sql=DROP+TABLE+t&"}"#),
    ] {
        let (status, v) = post(&gw, "/fn/sql/q", content_type, body).await;
        assert_bad_request(status, &v);
    }
    assert!(up.requests().is_empty());
    // JSON sent as a form without hidden fields is judged as JSON; a form is a form.
    let (status, v) =
        post(&gw, "/fn/sql/q", "application/x-www-form-urlencoded", r#"{"sql": "SELECT 1", "q": "a=b"}"#).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(&gw, "/fn/sql/q", "application/x-www-form-urlencoded", "sql=DROP+TABLE+t").await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = post(&gw, "/fn/sql/q", "application/x-www-form-urlencoded", "sql=SELECT+1").await;
    assert_eq!(status, 200, "{v}");
    // A form under a type PHP or Go still reads as a form is judged as a form.
    for content_type in ["application/x-www-form-urlencoded,x", "application/x-www-form-urlencoded x"] {
        let (status, v) = post(&gw, "/fn/sql/q", content_type, "sql=DROP+TABLE+t").await;
        assert_eq!(status, 403, "{content_type}: {v}");
    }
    // Two Content-Type headers: which one counts differs between servers, so a form
    // among them makes the body a form.
    let res = client()
        .post(gw.url("/fn/sql/q"))
        .bearer_auth(AGENT_KEY)
        .header("content-type", "text/plain")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("sql=DROP+TABLE+t")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    assert_eq!(up.requests().len(), 2, "only the two allowed calls were forwarded");
}

/// Methods are case-sensitive (RFC 9110) and hyper passes `post` on as an extension
/// method; some servers (ASP.NET Core, so the C# MCP SDK) take it for POST. On an MCP
/// route the body of a `post` was not read as JSON-RPC, so a `tools/call` in it was
/// named the bare function: no tool rule, no approval. A method in lower case is refused
/// on every route.
#[tokio::test]
async fn a_method_in_lower_or_mixed_case_is_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    let mcp = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"drop_db","arguments":{}}}"#;
    for (method, path) in
        [("post", "/mcp"), ("Post", "/mcp"), ("pOST", "/mcp"), ("post", "/fn/sql/q"), ("get", "/fn/echo/x")]
    {
        let body = if path == "/mcp" { mcp } else { r#"{"sql": "DROP TABLE t"}"# };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {AGENT_KEY}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            gw.addr,
            body.len()
        );
        let answer = gw.raw(req.as_bytes()).await;
        let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(status == 400 || status == 405, "{method} {path}: {answer}");
        assert!(!answer.contains("drop_db") || !answer.contains("\"result\""), "{answer}");
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
}

#[tokio::test]
async fn numbers_without_one_exact_value_are_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for n in ["NaN", "Infinity", "-Infinity", "1e400", "18446744073709551616", "1e300", "-9223372036854775809"] {
        let (status, v) = post(&gw, "/fn/sql/q", "application/json", format!(r#"{{"sql": "x", "n": {n}}}"#)).await;
        assert_bad_request(status, &v);
    }
    let (status, _) = post(&gw, "/fn/sql/q", "application/json", r#"{"sql": "x", "n": 18446744073709551615}"#).await;
    assert_eq!(status, 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn method_and_path_override_headers_and_parameters_are_refused() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for header in ["X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method", "X-Original-URL", "X-Rewrite-URL"] {
        let res =
            client().get(gw.url("/fn/echo/x")).bearer_auth(AGENT_KEY).header(header, "DELETE").send().await.unwrap();
        let status = res.status().as_u16();
        let v: Value = res.json().await.unwrap();
        assert_bad_request(status, &v);
    }
    let res = client().post(gw.url("/fn/echo/x?_method=DELETE")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // As PHP (Laravel, Symfony) reads names: leading spaces dropped, cut at NUL, ` ` and
    // `.` made `_`; and in any case.
    for form in [
        "a=1&_method=DELETE",
        "a=1&+_method=DELETE",
        "a=1&_method%00x=DELETE",
        "a=1&.method=DELETE",
        "a=1&_METHOD=DELETE",
    ] {
        let (status, v) = post(&gw, "/fn/echo/x", "application/x-www-form-urlencoded", form).await;
        assert_bad_request(status, &v);
    }
    let (status, v) = post(&gw, "/fn/echo/x", "application/x-www-form-urlencoded", "payment_method=card").await;
    assert_eq!(status, 200, "a field that only contains the word is not the method: {v}");
    assert_eq!(up.requests().len(), 1, "only payment_method=card was forwarded");
}

// === paths and queries ===

#[tokio::test]
async fn dot_segments_raw_and_encoded_are_resolved_before_routing() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    // Agents may call echo, not other: every spelling of "other" is other.
    for path in ["/fn/echo/../other/x", "/fn/echo/%2e%2e/other/x", "/fn/echo/%2E./other/x", "/fn/echo/.%2e/other/x"] {
        let (status, answer) = raw(&gw, &format!("GET {path} HTTP/1.1")).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(answer.contains("forbidden"), "{path}: {answer}");
    }
    assert!(up.requests().is_empty(), "a call evaluated as echo reached other");
    // Merged slashes and removed dot segments are what the upstream sees.
    let (status, answer) = raw(&gw, "GET /fn//echo/./a//b/../c HTTP/1.1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.requests()[0].uri, "/a/c");
    let (status, _) = raw(&gw, "GET /%66n/%65cho/x HTTP/1.1").await;
    assert_eq!(status, 200);
    assert_eq!(up.requests()[1].uri, "/x");
}

#[tokio::test]
async fn encoded_slashes_backslashes_and_ambiguous_segments_are_refused_and_audited() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for path in [
        "/fn/echo/..%2fother/x",
        "/fn/echo%2F..%2Fother",
        "/fn/echo/%5c..%5cother",
        "/fn/echo/..;/other/x",
        "/fn/echo/%zz",
        "/fn/echo/%00",
        "/fn/echo/../../../etc/passwd",
    ] {
        let (status, answer) = raw(&gw, &format!("GET {path} HTTP/1.1")).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains("bad_request"), "{path}: {answer}");
    }
    // A raw backslash: refused by the HTTP parser or by the gateway, never forwarded.
    let (status, _) = raw(&gw, "GET /fn/echo\\..\\other HTTP/1.1").await;
    assert_eq!(status, 400);
    assert!(up.requests().is_empty());
    let res = client().get(gw.url("/fn/echo/%2e%2e%2fother")).bearer_auth(AGENT_KEY).send().await.unwrap();
    let call_id = res.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    assert_eq!(res.status(), 400);
    let record = audit_record(&gw, &call_id).await;
    assert_eq!(record["error"]["code"], "bad_request", "{record}");
}

#[tokio::test]
async fn the_query_is_forwarded_as_its_strict_parse_rewritten() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for query in ["a=1;b=2", "a=%zz", "a=%4", "a=%ff"] {
        let (status, answer) = raw(&gw, &format!("GET /fn/echo/x?{query} HTTP/1.1")).await;
        assert_eq!(status, 400, "{query}: {answer}");
    }
    let many = (0..300).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
    let (status, _) = raw(&gw, &format!("GET /fn/echo/x?{many} HTTP/1.1")).await;
    assert_eq!(status, 400);
    assert!(up.requests().is_empty());
    let (status, answer) = raw(&gw, "GET /fn/echo/x?a=1&a=2&&b=c+d&e=%2b&flag HTTP/1.1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(up.requests()[0].uri, "/x?a=1&a=2&b=c%20d&e=%2B&flag");
}

// === cardinality ===

#[tokio::test]
async fn metrics_stay_small_after_300_unique_tool_names() {
    let up = RecordingUpstream::echo().await;
    let gw = gateway(&up).await;
    for i in 0..300 {
        let name = format!("{}{i}", "t".repeat(120));
        let body =
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": {}}});
        let res = client()
            .post(gw.url("/mcp"))
            .bearer_auth(OUTSIDER_KEY)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(res.status() == 200 || res.status() == 403, "{}", res.status());
    }
    let metrics = client().get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("tttt"), "a caller-chosen name became a label");
    assert!(metrics.contains("cloakroom_calls_total{function=\"other\""), "{metrics}");
    assert!(metrics.len() < 16 * 1024, "/metrics is {} bytes", metrics.len());
    // Calls to a configured tool keep their own label.
    assert!(!metrics.contains("mcp/search"), "{metrics}");
    assert!(up.requests().is_empty());
}
