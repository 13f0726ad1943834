//! End-to-end: redirects are never followed; a `Location` at the upstream's own URL is
//! rewritten to the gateway route, one at another host passes unchanged (masked).

mod common;

use cloakroom_testkit::{RecordingUpstream, Reply};
use common::*;
use serde_json::json;

const SECRET: &str = "sk_live_redirect_0123456789abcdef";

/// Redirects by the request's last path segment: `self` to the upstream's own URL
/// (`http://<its Host>/base/next?a=1#frag`), `other` to another host, `secret` to another
/// host with the `x-api-key` it received in the query.
fn redirecting(req: &cloakroom_testkit::RecordedRequest) -> Reply {
    let host = req.header("host").unwrap_or_default();
    let location = match req.uri.rsplit('/').next().unwrap_or("") {
        "self" => format!("http://{host}/base/next?a=1#frag"),
        "other" => "http://elsewhere.example/base/next".to_owned(),
        "secret" => format!("https://elsewhere.example/cb?key={}", req.header("x-api-key").unwrap_or_default()),
        _ => return Reply::echo(req),
    };
    let mut reply = Reply::chunks(Vec::new());
    reply.status = 302;
    reply.headers.push(("location".into(), location));
    reply
}

async fn gateway_for(up: &RecordingUpstream) -> (Cloakroomd, String) {
    let rest = format!(
        "{}{}{}",
        identity_section(),
        function("redir", "http", &format!("{}/base", up.url()), "/fn/redir"),
        allow("agents may call redir", &["redir"], &["agents"]),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let placeholder =
        gw.put_secret("redirect_key", SECRET, json!({"functions": ["redir"], "locations": ["header:x-api-key"]})).await;
    (gw, placeholder)
}

/// The gateway's answer to GET `path` (redirects not followed), as status and Location.
async fn location_of(gw: &Cloakroomd, path: &str, api_key: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut req = client.get(gw.url(path)).bearer_auth(AGENT_KEY);
    if let Some(key) = api_key {
        req = req.header("x-api-key", key);
    }
    let res = req.send().await.unwrap();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (res.status().as_u16(), location)
}

#[tokio::test]
async fn a_location_at_the_upstreams_own_url_points_at_the_gateway_route() {
    let up = RecordingUpstream::start(redirecting).await;
    let (gw, _) = gateway_for(&up).await;
    let (status, location) = location_of(&gw, "/fn/redir/self", None).await;
    assert_eq!(status, 302);
    assert_eq!(location, "/fn/redir/next?a=1#frag");
    // Not followed: the upstream saw the one request.
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_location_on_another_host_passes_unchanged() {
    let up = RecordingUpstream::start(redirecting).await;
    let (gw, _) = gateway_for(&up).await;
    let (status, location) = location_of(&gw, "/fn/redir/other", None).await;
    assert_eq!(status, 302);
    assert_eq!(location, "http://elsewhere.example/base/next");
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_location_carrying_the_secret_comes_back_masked() {
    let up = RecordingUpstream::start(redirecting).await;
    let (gw, placeholder) = gateway_for(&up).await;
    let (status, location) = location_of(&gw, "/fn/redir/secret", Some(&placeholder)).await;
    assert_eq!(status, 302);
    // The function received the secret and put it in the Location; the caller sees the
    // placeholder.
    assert_eq!(up.requests()[0].header("x-api-key").as_deref(), Some(SECRET));
    assert_eq!(location, format!("https://elsewhere.example/cb?key={placeholder}"));
}
