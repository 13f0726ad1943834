//! OIDC sign-in for people against a real `cloakroomd` and OpenBao as the identity
//! provider (its OIDC provider: a confidential client, a `groups` scope, a userpass
//! person in the `leads` group). The test plays the browser: it follows the gateway's
//! redirect to OpenBao's authorization endpoint (the API form of it, authenticated as the
//! person), then brings the code back to the gateway's callback.
//!
//! Attacks, each refused: a replayed, unknown or other-browser state; a code whose PKCE
//! challenge is not the gateway's (OpenBao refuses the verifier); a code for another
//! client; an ID token with another nonce; `return_to` to another site; a hand-off code
//! collected without the CLI's verifier; a session used after it expired.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use cloakroom_testkit::{OpenBao, RecordingUpstream};
use common::*;
use serde_json::{json, Value};

const PERSON: &str = "alice";
const PASSWORD: &str = "correct-horse-battery";
const PROVIDER: &str = "cloakroom-test";

/// OpenBao as an OIDC provider with two clients (`cloakroom`, the gateway's, and
/// `other`), and a person's Vault token.
struct Idp {
    bao: OpenBao,
    issuer: String,
    client_id: String,
    client_secret: String,
    other_client_id: String,
    person_token: String,
    person_entity: String,
}

async fn ok(bao: &OpenBao, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, v) = bao.api(method, path, body).await;
    assert!((200..300).contains(&status), "{method} {path}: {status} {v}");
    v
}

impl Idp {
    async fn start() -> Self {
        let bao = OpenBao::start();
        ok(&bao, "POST", "/v1/sys/auth/userpass", Some(json!({"type": "userpass"}))).await;
        let policy =
            format!("path \"identity/oidc/provider/{PROVIDER}/authorize\" {{ capabilities = [\"read\", \"update\"] }}");
        ok(&bao, "PUT", "/v1/sys/policies/acl/oidc-authorize", Some(json!({"policy": policy}))).await;
        ok(
            &bao,
            "POST",
            &format!("/v1/auth/userpass/users/{PERSON}"),
            Some(json!({"password": PASSWORD, "token_policies": "oidc-authorize"})),
        )
        .await;
        let login =
            ok(&bao, "POST", &format!("/v1/auth/userpass/login/{PERSON}"), Some(json!({"password": PASSWORD}))).await;
        let person_token = login["auth"]["client_token"].as_str().unwrap().to_owned();
        let person_entity = login["auth"]["entity_id"].as_str().unwrap().to_owned();
        ok(&bao, "POST", "/v1/identity/group", Some(json!({"name": "leads", "member_entity_ids": [person_entity]})))
            .await;
        ok(
            &bao,
            "POST",
            "/v1/identity/oidc/key/signing",
            Some(json!({"allowed_client_ids": ["*"], "algorithm": "RS256", "rotation_period": "1h", "verification_ttl": "2h"})),
        )
        .await;
        ok(&bao, "POST", "/v1/identity/oidc/assignment/people", Some(json!({"entity_ids": [person_entity]}))).await;
        for name in ["cloakroom", "other"] {
            ok(
                &bao,
                "POST",
                &format!("/v1/identity/oidc/client/{name}"),
                Some(json!({"redirect_uris": ["http://127.0.0.1:1/unset"], "assignments": ["people"], "key": "signing", "id_token_ttl": "30m", "access_token_ttl": "1h"})),
            )
            .await;
        }
        let template = r#"{"groups": {{identity.entity.groups.names}}}"#;
        ok(&bao, "POST", "/v1/identity/oidc/scope/groups", Some(json!({"template": template}))).await;
        ok(
            &bao,
            "POST",
            &format!("/v1/identity/oidc/provider/{PROVIDER}"),
            Some(json!({"allowed_client_ids": ["*"], "scopes_supported": ["groups"]})),
        )
        .await;
        let client = ok(&bao, "GET", "/v1/identity/oidc/client/cloakroom", None).await;
        let other = ok(&bao, "GET", "/v1/identity/oidc/client/other", None).await;
        Self {
            issuer: format!("{}/v1/identity/oidc/provider/{PROVIDER}", bao.address),
            client_id: client["data"]["client_id"].as_str().unwrap().to_owned(),
            client_secret: client["data"]["client_secret"].as_str().unwrap().to_owned(),
            other_client_id: other["data"]["client_id"].as_str().unwrap().to_owned(),
            person_token,
            person_entity,
            bao,
        }
    }

    /// Registers `redirect_uri` for both clients.
    async fn allow_redirect(&self, redirect_uri: &str) {
        for name in ["cloakroom", "other"] {
            ok(
                &self.bao,
                "POST",
                &format!("/v1/identity/oidc/client/{name}"),
                Some(json!({"redirect_uris": [redirect_uri], "assignments": ["people"], "key": "signing"})),
            )
            .await;
        }
    }

    /// The person authorizes at OpenBao the request the gateway sent the browser to
    /// (after `tamper` had its way with the query); returns the callback URL.
    async fn authorize(&self, authorize_url: &str, tamper: impl Fn(&mut Vec<(String, String)>)) -> String {
        let url = reqwest::Url::parse(authorize_url).unwrap();
        assert!(url.as_str().starts_with(&format!("{}/ui/vault/identity/oidc/provider/", self.bao.address)), "{url}");
        let mut pairs: Vec<(String, String)> =
            url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        tamper(&mut pairs);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        let mut api = reqwest::Url::parse(&self.bao.address).unwrap();
        api.set_path(&url.path().replacen("/ui/vault/", "/v1/", 1));
        api.query_pairs_mut().extend_pairs(pairs.iter());
        let res = reqwest::Client::new().get(api).header("X-Vault-Token", &self.person_token).send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(status.is_success(), "OpenBao authorize: {status} {body}");
        let mut cb = reqwest::Url::parse(&get("redirect_uri")).unwrap();
        cb.query_pairs_mut().append_pair("code", body["code"].as_str().unwrap()).append_pair("state", &get("state"));
        cb.into()
    }
}

/// A browser: no automatic redirects, and its own cookies.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

struct Answer {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    body: Value,
}

impl Browser {
    async fn get(&mut self, url: &str) -> Answer {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = client.get(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let set_cookies: Vec<String> =
            res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        for c in &set_cookies {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !c.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        let body = res.json().await.unwrap_or(Value::Null);
        Answer { status, location, set_cookies, body }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

struct Setup {
    idp: Idp,
    gw: Cloakroomd,
    up: RecordingUpstream,
}

/// OpenBao, an echo upstream for `refund` (held for a lead's approval when an agent
/// calls it), and the gateway signing people in with OpenBao's `cloakroom` client.
async fn setup(sessions: &str) -> Setup {
    let idp = Idp::start().await;
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}\n[identity.sessions]\n{sessions}\n\n[[identity.oidc]]\nissuer = \"{}\"\naudiences = [\"{}\"]\n\
         client_id = \"{}\"\nclient_secret_env = \"TEST_OIDC_CLIENT_SECRET\"\nscopes = [\"openid\", \"groups\"]\n{}\n\
         [[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"refund\"]\n\
         groups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        idp.issuer,
        idp.client_id,
        idp.client_id,
        function("refund", "http", &up.url(), "/fn/refund"),
    );
    let gw = Cloakroomd::start_with_env("", &rest, &[("TEST_OIDC_CLIENT_SECRET", &idp.client_secret)]).await;
    idp.allow_redirect(&gw.admin_url("/v1/oidc/callback")).await;
    Setup { idp, gw, up }
}

impl Setup {
    /// `GET /v1/oidc/login?<query>`: must redirect to OpenBao; returns the authorize URL.
    async fn start_login(&self, browser: &mut Browser, query: &str) -> String {
        let a = browser.get(&self.gw.admin_url(&format!("/v1/oidc/login?{query}"))).await;
        assert_eq!(a.status, 302, "{}", a.body);
        assert!(browser.cookie("cloakroom_oidc").is_some(), "a browser-binding cookie is set");
        a.location
    }

    /// A whole browser sign-in; returns the callback's answer.
    async fn sign_in(&self, browser: &mut Browser, query: &str) -> Answer {
        let authorize = self.start_login(browser, query).await;
        let callback = self.idp.authorize(&authorize, |_| {}).await;
        browser.get(&callback).await
    }

    async fn held_refund(&self) -> String {
        let res = reqwest::Client::new().get(self.gw.url("/fn/refund/1")).bearer_auth(AGENT_KEY).send().await.unwrap();
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned()
    }
}

async fn approve(s: &Setup, id: &str, token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(s.gw.admin_url(&format!("/v1/approvals/{id}/approve")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

fn set_code(pairs: &mut [(String, String)], name: &str, value: &str) {
    pairs.iter_mut().filter(|(k, _)| k == name).for_each(|(_, v)| *v = value.to_owned());
}

#[tokio::test]
async fn a_person_signs_in_with_openbao_and_approves_a_held_call_with_the_session() {
    let s = setup("").await;
    let mut browser = Browser::default();
    let authorize = s.start_login(&mut browser, "issuer=0&return_to=/console/approvals%3Fstate%3Dpending").await;
    let q: Vec<(String, String)> =
        reqwest::Url::parse(&authorize).unwrap().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("client_id"), s.idp.client_id);
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("scope"), "openid groups");
    assert_eq!(get("redirect_uri"), s.gw.admin_url("/v1/oidc/callback"));
    assert!(get("state").len() >= 43 && get("nonce").len() >= 43 && get("code_challenge").len() == 43);

    let callback = s.idp.authorize(&authorize, |_| {}).await;
    let done = browser.get(&callback).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, "/console/approvals?state=pending");
    let cookie = done.set_cookies.iter().find(|c| c.starts_with("cloakroom_session=")).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(browser.cookie("cloakroom_oidc").is_none(), "the binding cookie is cleared");
    let token = browser.cookie("cloakroom_session").unwrap();

    // The session is the person, with the groups OpenBao put in the ID token: a lead.
    let id = s.held_refund().await;
    let (status, body) = approve(&s, &id, &token).await;
    assert_eq!(status, 200, "{body}");
    let approval = s.gw.admin_get(&format!("/v1/approvals/{id}")).await;
    assert_eq!(approval["state"], "approved", "{approval}");
    assert_eq!(approval["decided_by"], s.idp.person_entity, "{approval}");
    let (status, _) = {
        let res = reqwest::Client::new()
            .get(s.gw.url("/fn/refund/1"))
            .bearer_auth(AGENT_KEY)
            .header("cloakroom-approval", &id)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), ())
    };
    assert_eq!(status, 200);
    assert_eq!(s.up.requests().len(), 1);
    // Neither the session nor the code is in the gateway's log.
    s.gw.wait_for_log("signed in with OIDC", 1).await;
    let log = s.gw.stderr();
    assert!(!log.contains(&token) && !log.contains(&callback[callback.find("code=").unwrap() + 5..][..20]));
}

#[tokio::test]
async fn a_state_is_used_once_only_by_the_browser_that_started_it() {
    let s = setup("").await;
    let mut browser = Browser::default();
    let authorize = s.start_login(&mut browser, "").await;
    let callback = s.idp.authorize(&authorize, |_| {}).await;

    // Another browser (the attacker sends the victim their callback URL): refused, and
    // the state is spent.
    let mut other = Browser::default();
    let a = other.get(&callback).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("bad_request")), "{}", a.body);
    assert!(a.set_cookies.iter().all(|c| !c.starts_with("cloakroom_session=")));
    let a = browser.get(&callback).await;
    assert_eq!(a.status, 400, "a state is used once: {}", a.body);

    // Replay after a success, and a made-up state.
    let done = s.sign_in(&mut browser, "").await;
    assert_eq!(done.status, 303);
    let authorize = s.start_login(&mut browser, "").await;
    let callback = s.idp.authorize(&authorize, |_| {}).await;
    assert_eq!(browser.get(&callback).await.status, 303);
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.set_cookies.iter().all(|c| !c.starts_with("cloakroom_session=")));
    let forged = callback.replace("state=", "state=x");
    assert_eq!(browser.get(&forged).await.status, 400);
}

#[tokio::test]
async fn openbao_refuses_a_code_bound_to_another_pkce_challenge() {
    let s = setup("").await;
    let mut browser = Browser::default();
    let authorize = s.start_login(&mut browser, "").await;
    // Someone who swapped the challenge (say, for one whose verifier they know) gets a
    // code the gateway's verifier cannot redeem.
    let attacker_challenge = cloakroom_identity_challenge("attacker-verifier-attacker-verifier-attacker");
    let callback = s.idp.authorize(&authorize, |q| set_code(q, "code_challenge", &attacker_challenge)).await;
    let a = browser.get(&callback).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("refused the authorization code"), "{}", a.body);
    assert!(browser.cookie("cloakroom_session").is_none());
}

#[tokio::test]
async fn a_code_issued_to_another_client_is_refused() {
    let s = setup("").await;
    let mut browser = Browser::default();
    let authorize = s.start_login(&mut browser, "").await;
    let other = s.idp.other_client_id.clone();
    let callback = s.idp.authorize(&authorize, |q| set_code(q, "client_id", &other)).await;
    let a = browser.get(&callback).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(browser.cookie("cloakroom_session").is_none());
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    let s = setup("").await;
    let mut browser = Browser::default();
    let authorize = s.start_login(&mut browser, "").await;
    let callback = s.idp.authorize(&authorize, |q| set_code(q, "nonce", "a-nonce-from-an-older-login")).await;
    let a = browser.get(&callback).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("nonce"), "{}", a.body);
    assert!(browser.cookie("cloakroom_session").is_none());
}

#[tokio::test]
async fn return_to_must_be_a_local_path() {
    let s = setup("").await;
    for evil in ["https://evil.example", "//evil.example", "/\\evil.example", "/%5Cevil.example", "%2F%2Fevil.example"]
    {
        let mut browser = Browser::default();
        let a = browser.get(&s.gw.admin_url(&format!("/v1/oidc/login?return_to={evil}"))).await;
        assert_eq!(a.status, 400, "{evil}: {}", a.body);
        assert!(a.location.is_empty(), "{evil}: no redirect at all");
    }
    for evil in ["http://evil.example:80/cb", "http://localhost:5000/cb", "https://127.0.0.1:5000/cb"] {
        let mut browser = Browser::default();
        let challenge = cloakroom_identity_challenge("v");
        let a = browser
            .get(&s.gw.admin_url(&format!("/v1/oidc/login?cli_redirect={evil}&cli_challenge={challenge}")))
            .await;
        assert_eq!(a.status, 400, "{evil}: {}", a.body);
    }
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    // Long enough for the sign-in and the first request on a busy machine.
    let s = setup("ttl = \"5s\"").await;
    let mut browser = Browser::default();
    assert_eq!(s.sign_in(&mut browser, "").await.status, 303);
    let token = browser.cookie("cloakroom_session").unwrap();
    let id = s.held_refund().await;
    let fresh = reqwest::Client::new().get(s.gw.admin_url(&format!("/v1/approvals/{id}"))).bearer_auth(&token);
    assert_eq!(fresh.send().await.unwrap().status(), 200, "the session works until it expires");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = approve(&s, &id, &token).await;
    // The expiry is the session's own Biscuit check, which the admin API runs for the
    // operation: refused as not allowed, and the approval is still pending.
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("check if time"), "{body}");
    assert_eq!(s.gw.admin_get(&format!("/v1/approvals/{id}")).await["state"], "pending");
}

#[tokio::test]
async fn a_cli_hand_off_needs_the_cli_verifier_and_is_used_once() {
    let setup = setup("").await;
    let s = &setup;
    let verifier = "the-cli-keeps-this-verifier-to-itself-0123456789";
    let challenge = cloakroom_identity_challenge(verifier);
    let cli = "http://127.0.0.1:9/callback";
    let mut browser = Browser::default();
    let hand_off = |query: String| async move {
        let mut b = Browser::default();
        let a = s.sign_in(&mut b, &query).await;
        assert_eq!(a.status, 303, "{}", a.body);
        assert!(a.location.starts_with(&format!("{cli}?code=")), "{}", a.location);
        assert!(a.set_cookies.iter().all(|c| !c.starts_with("cloakroom_session=")), "no cookie for the CLI flow");
        a.location.split_once("code=").unwrap().1.to_owned()
    };
    let collect = |code: String, verifier: String| async move {
        let res = reqwest::Client::new()
            .post(s.gw.admin_url("/v1/oidc/session"))
            .json(&json!({"code": code, "code_verifier": verifier}))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
    };
    let query = format!("cli_redirect={cli}&cli_challenge={challenge}");
    // Without the verifier, the code is spent.
    let code = hand_off(query.clone()).await;
    assert_eq!(collect(code.clone(), "guess".into()).await.0, 401);
    assert_eq!(collect(code, verifier.into()).await.0, 401);
    // With it, once.
    let code = hand_off(query.clone()).await;
    let (status, body) = collect(code.clone(), verifier.into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], s.idp.person_entity);
    assert_eq!(body["groups"], json!(["leads"]));
    let id = s.held_refund().await;
    assert_eq!(approve(s, &id, body["token"].as_str().unwrap()).await.0, 200);
    assert_eq!(collect(code, verifier.into()).await.0, 401);
    // cli_redirect without a challenge is refused before the sign-in starts.
    let a = browser.get(&s.gw.admin_url(&format!("/v1/oidc/login?cli_redirect={cli}"))).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn cloakroom_login_stores_a_session_the_cli_then_uses() {
    let s = setup("").await;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(cli_binary())
        .args(["--admin", &s.gw.admin_url(""), "login", "--no-browser"])
        .env_remove("CLOAKROOM_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cloakroom login");
    // The CLI prints the URL to open; the test is the browser. Its stderr is read to the
    // end, so the CLI can go on writing to it.
    let stderr = child.stderr.take().unwrap();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                let _ = url_tx.send(url.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = tokio::task::spawn_blocking(move || url_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the CLI prints the login URL");
    assert!(
        url.contains("/v1/oidc/login?") && url.contains("cli_redirect=") && url.contains("cli_challenge="),
        "{url}"
    );
    let mut browser = Browser::default();
    let authorize = browser.get(&url).await;
    assert_eq!(authorize.status, 302, "{}", authorize.body);
    let callback = s.idp.authorize(&authorize.location, |_| {}).await;
    let to_cli = browser.get(&callback).await;
    assert_eq!(to_cli.status, 303, "{}", to_cli.body);
    assert!(to_cli.location.starts_with("http://127.0.0.1:"), "{}", to_cli.location);
    let page = browser.get(&to_cli.location).await;
    assert_eq!(page.status, 200);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = reader.join().unwrap();
    assert!(out.status.success(), "cloakroom login failed: {stderr}");
    assert!(stderr.contains("Signed in as"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);

    let file = home.path().join("cloakroom/token");
    let token = std::fs::read_to_string(&file).expect("the token file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(
        !stdout.contains(token.trim()) && !stderr.contains(token.trim()),
        "the token is not printed without --print"
    );

    // The CLI reads it when CLOAKROOM_TOKEN is unset, and the person approves.
    let id = s.held_refund().await;
    let approve = Command::new(cli_binary())
        .args(["--admin", &s.gw.admin_url(""), "approval", "approve", &id])
        .env_remove("CLOAKROOM_TOKEN")
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", String::from_utf8_lossy(&approve.stderr));
    assert_eq!(s.gw.admin_get(&format!("/v1/approvals/{id}")).await["decided_by"], s.idp.person_entity);
}

/// The S256 challenge of `verifier`, computed here independently of the gateway.
fn cloakroom_identity_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The `cloakroom` CLI, built next to `cloakroomd` (`cargo test --workspace` builds both).
fn cli_binary() -> std::path::PathBuf {
    let path = binary().with_file_name(format!("cloakroom{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "cloakroom", "--bin", "cloakroom"])
            .current_dir(cloakroom_testkit::workspace_root())
            .status()
            .expect("run cargo build -p cloakroom");
        assert!(status.success(), "cargo build -p cloakroom failed");
    }
    path
}
