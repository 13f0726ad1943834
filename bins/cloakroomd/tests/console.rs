//! The web console against a real `cloakroomd` (docs/console.md): sessions, CSRF,
//! authorization per page and action, security headers, escaping.
//!
//! Attacks tried here: a forged cross-site form (no token, another session's token, a
//! foreign `Origin` or `Sec-Fetch-Site`), a forged or expired session cookie, a
//! non-admin reaching the secrets and audit pages or posting to them, an approver
//! deciding another group's approval, a credential in the sign-in URL outside dev
//! mode, and a caller's `<script>` argument rendered to an approver.

mod common;

use std::time::{Duration, SystemTime};

use biscuit_auth::{builder_ext::BuilderExt, Biscuit, BlockBuilder, KeyPair};
use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::{json, Value};

const FINANCE_KEY: &str = "ck_test_finance_key_0123456";

/// A gateway whose `refund` calls need a `leads` approval and `payroll` calls a
/// `finance` approval; Biscuits of `root` are accepted too.
async fn gateway(root: &KeyPair) -> (Cloakroomd, RecordingUpstream) {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        r#"{identity}
[[identity.api_keys]]
subject = "fin"
groups = ["finance"]
sha256 = "{finance}"

[identity.biscuit]
root_public_key = "{key}"
{refund}{payroll}
[[policy.rules]]
name = "refunds need a lead"
effect = "approve"
functions = ["refund"]
groups = ["agents"]
approvers = ["leads"]

[[policy.rules]]
name = "payroll needs finance"
effect = "approve"
functions = ["payroll"]
groups = ["agents"]
approvers = ["finance"]
"#,
        identity = identity_section(),
        finance = sha256_hex(FINANCE_KEY),
        key = root.public(),
        refund = function("refund", "http", &up.url(), "/fn/refund"),
        payroll = function("payroll", "http", &up.url(), "/fn/payroll"),
    );
    (Cloakroomd::start("", &rest).await, up)
}

/// A client that does not follow redirects (the tests look at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn cookie(token: &str) -> String {
    format!("cloakroom_session={token}")
}

/// GET a console page with `token` as the session cookie: (status, headers, body).
async fn get(gw: &Cloakroomd, path: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().get(gw.admin_url(path));
    if let Some(t) = token {
        req = req.header("cookie", cookie(t));
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, headers, res.text().await.unwrap())
}

/// POST a form as a same-origin browser would (cookie, `Origin`, `Sec-Fetch-Site`).
async fn post(gw: &Cloakroomd, path: &str, token: &str, form: &[(&str, &str)]) -> (u16, String, String) {
    let res = client()
        .post(gw.admin_url(path))
        .header("cookie", cookie(token))
        .header("origin", format!("http://{}", gw.admin))
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, location, res.text().await.unwrap())
}

/// The CSRF token of the page at `path` for `token`'s session.
async fn csrf(gw: &Cloakroomd, path: &str, token: &str) -> String {
    let (status, _, body) = get(gw, path, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let at = body.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    body[at..at + 64].to_owned()
}

/// A call to `function` held for approval: its approval id.
async fn held_call(gw: &Cloakroomd, function: &str, body: Value) -> String {
    let res =
        client().post(gw.url(&format!("/fn/{function}/go"))).bearer_auth(AGENT_KEY).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 202, "{function}");
    let v: Value = res.json().await.unwrap();
    v["approval_id"].as_str().unwrap().to_owned()
}

fn assert_secure_headers(h: &reqwest::header::HeaderMap, what: &str) {
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert_eq!(
        get("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "{what}"
    );
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cache-control"), "no-store", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    for (path, token) in [
        ("/console/login", None),
        ("/console", None),
        ("/console", Some(ADMIN_KEY)),
        ("/console/audit", Some(ADMIN_KEY)),
        ("/console/secrets", Some(ADMIN_KEY)),
        ("/console/secrets", Some(AGENT_KEY)),
        ("/console/no-such-page", Some(ADMIN_KEY)),
        ("/console/static/htmx.min.js", None),
        ("/console/static/console.css", None),
    ] {
        let (_, headers, body) = get(&gw, path, token).await;
        assert_secure_headers(&headers, path);
        if !path.starts_with("/console/static/") {
            // No inline script or style for the CSP to have to allow.
            assert!(!body.contains("<script>") && !body.contains("<style") && !body.contains(" style="), "{path}");
        }
    }
}

#[tokio::test]
async fn a_missing_forged_or_expired_session_is_sent_to_sign_in() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let admin = Biscuit::builder().code(r#"user("alice"); group("admins");"#).unwrap().build(&root).unwrap();
    let expired = admin
        .append(BlockBuilder::new().check_expiration_date(SystemTime::now() - Duration::from_secs(60)))
        .unwrap()
        .to_base64()
        .unwrap();
    let forged = Biscuit::builder()
        .code(r#"user("mallory"); group("admins");"#)
        .unwrap()
        .build(&KeyPair::new())
        .unwrap()
        .to_base64()
        .unwrap();
    for (token, what) in [
        (None, "no cookie"),
        (Some("not-a-key"), "unknown key"),
        (Some(&*expired), "expired"),
        (Some(&*forged), "forged"),
    ] {
        for path in ["/console", "/console/audit", "/console/secrets", "/console/approvals/list"] {
            let (status, headers, body) = get(&gw, path, token).await;
            assert_eq!(status, 303, "{what} {path}: {body}");
            assert_eq!(headers["location"], "/console/login", "{what} {path}");
            if token.is_some() {
                // A cookie that no longer verifies is dropped.
                assert!(headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"), "{what}");
            }
        }
    }
    // htmx's polling is told to move the whole page, not swap the sign-in page in.
    let res = client().get(gw.admin_url("/console/approvals/list")).header("hx-request", "true").send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["hx-redirect"], "/console/login");
    // The unexpired token is accepted.
    let (status, _, _) = get(&gw, "/console", Some(&admin.to_base64().unwrap())).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_cookie_and_a_bad_credential_is_not_echoed() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let res = client()
        .post(gw.admin_url("/console/login"))
        .header("origin", format!("http://{}", gw.admin))
        .form(&[("token", APPROVER_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with(&format!("cloakroom_session={APPROVER_KEY};")), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");

    let wrong = "ck_wrong_key_but_looks_plausible_123";
    let res = client().post(gw.admin_url("/console/login")).form(&[("token", wrong)]).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let body = res.text().await.unwrap();
    assert!(!body.contains(wrong), "the refused credential is echoed: {body}");
    assert!(!gw.stderr().contains(wrong), "the refused credential is logged");

    // Login CSRF: another site cannot sign the browser in to an account of its choosing.
    let res = client()
        .post(gw.admin_url("/console/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", APPROVER_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_token_in_the_sign_in_url_is_refused_outside_dev_mode() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let (status, headers, _) = get(&gw, &format!("/console/login?token={ADMIN_KEY}"), None).await;
    assert_eq!(status, 403);
    assert!(headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let token = csrf(&gw, "/console", APPROVER_KEY).await;
    let res = client()
        .post(gw.admin_url("/console/logout"))
        .header("cookie", cookie(APPROVER_KEY))
        .header("origin", format!("http://{}", gw.admin))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console/login");
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with("cloakroom_session=; "));
}

#[tokio::test]
async fn a_state_change_without_the_sessions_csrf_token_or_from_another_site_is_refused() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let approval = held_call(&gw, "refund", json!({"amount": 5})).await;
    let approve = format!("/console/approvals/{approval}/approve");
    // No token, an empty one, another session's token.
    let other = csrf(&gw, "/console", ADMIN_KEY).await;
    for form in [vec![], vec![("csrf", "")], vec![("csrf", other.as_str())]] {
        let (status, _, body) = post(&gw, &approve, APPROVER_KEY, &form).await;
        assert_eq!(status, 403, "{form:?}: {body}");
    }
    // The right token from a foreign origin, or a browser that says cross-site.
    let mine = csrf(&gw, "/console", APPROVER_KEY).await;
    for (origin, site) in [
        ("http://evil.example", "cross-site"),
        (&*format!("http://{}", gw.admin), "cross-site"),
        ("null", "cross-site"),
        ("http://evil.example", "same-origin"),
        ("null", "none"),
    ] {
        let res = client()
            .post(gw.admin_url(&approve))
            .header("cookie", cookie(APPROVER_KEY))
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .form(&[("csrf", mine.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{origin} {site}");
    }
    // A GET changes nothing.
    let (status, _, _) = get(&gw, &approve, Some(APPROVER_KEY)).await;
    assert_eq!(status, 404);
    assert_eq!(gw.admin_get(&format!("/v1/approvals/{approval}")).await["state"], "pending");
    // With its own token, from its own origin, the same approver's decision goes through.
    let (status, location, _) = post(&gw, &approve, APPROVER_KEY, &[("csrf", &mine), ("reason", "ok")]).await;
    assert_eq!(status, 303);
    assert!(location.starts_with("/console/approvals?decided="));
    assert_eq!(gw.admin_get(&format!("/v1/approvals/{approval}")).await["state"], "approved");
    let (_, _, page) = get(&gw, &location, Some(APPROVER_KEY)).await;
    assert!(page.contains("is now <strong>approved</strong>"), "{page}");
}

/// Large arguments are shown shortened with every key (padding cannot hide `amount`),
/// and arguments of too many keys to keep carry a warning on the card.
#[tokio::test]
async fn an_approver_sees_every_key_of_large_arguments_or_a_warning() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let padded = held_call(&gw, "refund", json!({"!": "p".repeat(64 * 1024), "amount": 999999})).await;
    let keys: serde_json::Map<String, Value> = (0..4000).map(|i| (format!("k{i:05}"), json!(i))).collect();
    let many = held_call(&gw, "refund", Value::Object(keys)).await;
    let (_, _, page) = get(&gw, "/console/approvals/list", Some(APPROVER_KEY)).await;
    let card = |id: &str| {
        let start = page.find(&format!("data-approval=\"{id}\"")).unwrap_or_else(|| panic!("{id}: {page}"));
        let end = page[start..].find("</article>").map_or(page.len(), |e| start + e);
        page[start..end].to_owned()
    };
    let padded = card(&padded);
    assert!(padded.contains("999999") && padded.contains("more bytes not shown"), "{padded}");
    assert!(!padded.contains("Only part of the arguments is shown"), "{padded}");
    let many = card(&many);
    assert!(many.contains("Only part of the arguments is shown"), "{many}");
}

#[tokio::test]
async fn an_approver_sees_and_decides_only_their_groups_approvals() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let refund = held_call(&gw, "refund", json!({"amount": 1})).await;
    let payroll = held_call(&gw, "payroll", json!({"amount": 2})).await;
    let (_, _, lead) = get(&gw, "/console/approvals/list", Some(APPROVER_KEY)).await;
    assert!(lead.contains(&refund) && !lead.contains(&payroll), "{lead}");
    let (_, _, fin) = get(&gw, "/console/approvals/list", Some(FINANCE_KEY)).await;
    assert!(fin.contains(&payroll) && !fin.contains(&refund), "{fin}");
    let (_, _, outsider) = get(&gw, "/console", Some(OUTSIDER_KEY)).await;
    assert!(!outsider.contains(&payroll) && !outsider.contains(&refund));
    // A crafted notice link does not reveal another group's approval either.
    let (_, _, crafted) = get(&gw, &format!("/console/approvals?decided={payroll}"), Some(APPROVER_KEY)).await;
    assert!(!crafted.contains(&payroll), "{crafted}");
    let (_, _, admin) = get(&gw, "/console/approvals/list", Some(ADMIN_KEY)).await;
    assert!(admin.contains(&payroll) && admin.contains(&refund));

    // The lead cannot approve finance's approval through the console, nor the agent its own.
    let token = csrf(&gw, "/console", APPROVER_KEY).await;
    let (status, _, _) =
        post(&gw, &format!("/console/approvals/{payroll}/approve"), APPROVER_KEY, &[("csrf", &token)]).await;
    assert_eq!(status, 403);
    let token = csrf(&gw, "/console", AGENT_KEY).await;
    let (status, _, _) =
        post(&gw, &format!("/console/approvals/{refund}/approve"), AGENT_KEY, &[("csrf", &token)]).await;
    assert_eq!(status, 403);
    assert_eq!(gw.admin_get(&format!("/v1/approvals/{payroll}")).await["state"], "pending");
    assert_eq!(gw.admin_get(&format!("/v1/approvals/{refund}")).await["state"], "pending");

    // Finance denies with a reason.
    let token = csrf(&gw, "/console", FINANCE_KEY).await;
    let (status, _, _) = post(
        &gw,
        &format!("/console/approvals/{payroll}/deny"),
        FINANCE_KEY,
        &[("csrf", &token), ("reason", "not this month")],
    )
    .await;
    assert_eq!(status, 303);
    let a = gw.admin_get(&format!("/v1/approvals/{payroll}")).await;
    assert_eq!(a["state"], "denied");
    assert_eq!(a["reason"], "not this month");
}

#[tokio::test]
async fn caller_controlled_text_renders_inert() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let approval = held_call(&gw, "refund", json!({"note": evil})).await;
    let (status, _, body) = get(&gw, "/console", Some(APPROVER_KEY)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&approval));
    assert!(!body.contains("<script>alert") && !body.contains("<img src=x"), "{body}");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{body}");
    // The audit view of the same call.
    let call_id = gw.admin_get("/v1/audit?limit=1").await["records"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, body) = get(&gw, &format!("/console/audit/{call_id}"), Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("<script>alert") && !body.contains("<img src=x"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
}

#[tokio::test]
async fn only_admins_reach_the_secrets_and_audit_pages() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    for key in [AGENT_KEY, APPROVER_KEY, OUTSIDER_KEY] {
        for path in ["/console/secrets", "/console/audit"] {
            let (status, _, body) = get(&gw, path, Some(key)).await;
            assert_eq!(status, 403, "{key} {path}");
            assert!(body.contains("forbidden"));
        }
        let token = csrf(&gw, "/console", key).await;
        let (status, _, _) =
            post(&gw, "/console/secrets", key, &[("csrf", &token), ("name", "sneaky"), ("value", "v4lue-sneaky")])
                .await;
        assert_eq!(status, 403, "{key}");
        // Navigation offers them no admin pages.
        let (_, _, page) = get(&gw, "/console", Some(key)).await;
        assert!(!page.contains("/console/secrets"));
    }
    assert!(gw.admin_get("/v1/secrets").await["secrets"].as_array().unwrap().iter().all(|s| s["name"] != "sneaky"));
}

#[tokio::test]
async fn a_secret_put_through_the_form_is_stored_and_its_value_never_shown() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    let value = "sk_console_value_never_shown_42";
    let token = csrf(&gw, "/console/secrets", ADMIN_KEY).await;
    let (status, location, _) = post(
        &gw,
        "/console/secrets",
        ADMIN_KEY,
        &[
            ("csrf", &token),
            ("name", "stripe"),
            ("value", value),
            ("functions", "refund"),
            ("locations", "header:x-api-key"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, _, page) = get(&gw, &location, Some(ADMIN_KEY)).await;
    assert!(page.contains("stripe") && page.contains("cloak_") && page.contains("header:x-api-key"));
    assert!(!page.contains(value));
    // A crafted link cannot make the page announce a placeholder the catalog does not have.
    let (_, _, page) = get(&gw, "/console/secrets?stored=ghost", Some(ADMIN_KEY)).await;
    assert!(!page.contains("ghost"));

    // A refused put (bad location) shows the form again without the value.
    let (status, _, page) = post(
        &gw,
        "/console/secrets",
        ADMIN_KEY,
        &[("csrf", &token), ("name", "broken"), ("value", value), ("functions", "refund"), ("locations", "nowhere:x")],
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(!page.contains(value), "{page}");
    assert!(page.contains(r#"value="broken""#));
    assert!(!gw.stderr().contains(value));

    // Delete.
    let (status, _, _) = post(&gw, "/console/secrets/stripe/delete", ADMIN_KEY, &[("csrf", &token)]).await;
    assert_eq!(status, 303);
    let list = gw.admin_get("/v1/secrets").await;
    assert!(
        list["secrets"].as_array().unwrap().iter().all(|s| s["name"] != "stripe" || s["has_value"] == false),
        "{list}"
    );
}

#[tokio::test]
async fn the_audit_pages_search_and_replay_against_todays_policy() {
    let root = KeyPair::new();
    let (gw, _up) = gateway(&root).await;
    held_call(&gw, "refund", json!({"amount": 3})).await;
    held_call(&gw, "payroll", json!({"amount": 4})).await;
    let (status, _, page) = get(&gw, "/console/audit?function=payroll&decision=approve", Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(">payroll<") && !page.contains(">refund<"), "{page}");
    let (_, _, none) = get(&gw, "/console/audit?subject=nobody", Some(ADMIN_KEY)).await;
    assert!(none.contains("No records match."));
    let (status, _, _) = get(&gw, "/console/audit?since=yesterday", Some(ADMIN_KEY)).await;
    assert_eq!(status, 400);

    let id = gw.admin_get("/v1/audit?limit=10").await["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"] == "payroll")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, view) = get(&gw, &format!("/console/audit/{id}"), Some(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    assert!(view.contains("payroll needs finance"), "{view}");
    assert!(view.contains("Replay against today"), "{view}");
    assert!(view.contains("Nothing changed since the call."), "{view}");
    assert!(view.contains("intact"), "{view}");
}

#[tokio::test]
async fn the_dev_banner_links_a_sign_in_that_accepts_only_the_dev_admin_token() {
    use std::io::{BufRead, BufReader};
    struct Dev(std::process::Child);
    impl Drop for Dev {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let addr = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    let admin = format!("127.0.0.1:{}", cloakroom_testkit::free_port());
    let mut child = Dev(std::process::Command::new(binary())
        .args(["--dev", "--listen", &addr, "--admin-listen", &admin])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut lines = Vec::new();
        // Read to the end: a closed pipe would fail cloakroomd's next print.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.contains("/console/login?token=");
            lines.push(line);
            if done {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(lines.join("\n"));
                }
            }
        }
    });
    let banner = tokio::time::timeout(Duration::from_secs(60), rx).await.expect("a console link").unwrap();
    let link = banner.lines().last().unwrap().trim().to_owned();
    let agent =
        banner.lines().find(|l| l.contains("export CLOAKROOM_AGENT_TOKEN=")).unwrap().split('\'').nth(1).unwrap();
    assert!(link.starts_with(&format!("http://{admin}/console/login?token=")), "{link}");
    let token = link.split("token=").nth(1).unwrap().to_owned();

    let res = client().get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console", "the token leaves the address bar");
    assert!(res.headers()["set-cookie"].to_str().unwrap().starts_with(&format!("cloakroom_session={token};")));
    let res =
        client().get(format!("http://{admin}/console/secrets")).header("cookie", cookie(&token)).send().await.unwrap();
    assert_eq!(res.status(), 200, "the dev admin sees the admin pages");

    // Any other token, even a valid one of the same process, is not accepted in a URL.
    for other in [agent, "not-the-dev-token"] {
        let res = client().get(format!("http://{admin}/console/login?token={other}")).send().await.unwrap();
        assert_eq!(res.status(), 403);
        assert!(res.headers().get("set-cookie").is_none());
    }
}
