//! The console in a real browser: headless Chromium driven through chromedriver
//! (Debian's `chromium` and `chromium-driver`, installed by scripts/test-env.sh) against
//! a real `cloakroomd`. A person signs in by pasting a key, sees a held call appear in
//! the inbox by itself (htmx polling under the strict CSP), approves it, and the
//! caller's repeated call goes through; an admin then searches the audit log, opens
//! the call with its replay, and puts a secret through the form. Each page is saved to
//! docs/console/*.png for docs/console.md.
//!
//! Without chromedriver the test is skipped, except with `CI=true`, where it fails.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use cloakroom_testkit::RecordingUpstream;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// A chromedriver on a free 127.0.0.1 port, killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CLOAKROOM_CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("chromedriver")).find(|p| p.is_file()))
}

impl ChromeDriver {
    async fn start(path: PathBuf) -> Self {
        let port = cloakroom_testkit::free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let me = Self { child, url };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{}/status", me.url)).send().await.is_ok_and(|r| r.status() == 200) {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start");
    }

    async fn browser(&self) -> Client {
        let mut chrome = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"]
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            chrome["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), chrome);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

async fn gateway() -> (Cloakroomd, RecordingUpstream) {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        r#"{identity}
{refund}
[[policy.rules]]
name = "refunds need a lead"
effect = "approve"
functions = ["refund"]
groups = ["agents"]
approvers = ["leads"]
"#,
        identity = identity_section(),
        refund = function("refund", "http", &up.url(), "/fn/refund"),
    );
    (Cloakroomd::start("", &rest).await, up)
}

fn screenshot_dir() -> PathBuf {
    let dir = cloakroom_testkit::workspace_root().join("docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(browser: &Client, gw: &Cloakroomd, key: &str) {
    browser.goto(&gw.admin_url("/console/login")).await.unwrap();
    browser.find(Locator::Css("#token")).await.unwrap().send_keys(key).await.unwrap();
    browser.find(Locator::Css("form.card button[type=submit]")).await.unwrap().click().await.unwrap();
    if browser.wait().for_element(Locator::Css("form.signout")).await.is_err() {
        panic!("not signed in: {}\n{}", browser.current_url().await.unwrap(), browser.source().await.unwrap());
    }
}

async fn sign_out(browser: &Client) {
    browser.find(Locator::Css("form.signout button")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("#token")).await.unwrap();
}

/// Finds `css` in the approvals inbox and does `act` on it. The inbox is replaced every
/// 2 s, so an element found just before a refresh can be gone when it is used (a stale
/// element reference): then it is found again, for at most 10 s.
async fn in_inbox<T, F, Fut>(browser: &Client, css: &str, act: F) -> T
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let mut last = None;
    for _ in 0..40 {
        match browser.find(Locator::Css(css)).await {
            Ok(element) => match act(element).await {
                Ok(done) => return done,
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{css}: {last:?}");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

#[tokio::test]
async fn a_person_approves_a_held_call_in_the_browser_and_the_call_goes_through() {
    let Some(path) = chromedriver_path() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and chromedriver is missing (scripts/test-env.sh installs it)"
        );
        eprintln!("skipping: no chromedriver (install Debian's chromium-driver, or source scripts/test-env.sh)");
        return;
    };
    let driver = ChromeDriver::start(path).await;
    let (gw, up) = gateway().await;
    let browser = driver.browser().await;
    let result = run(&browser, &gw, &up).await;
    let _ = browser.close().await;
    result
}

async fn run(browser: &Client, gw: &Cloakroomd, up: &RecordingUpstream) {
    // Sign in with a pasted key.
    browser.goto(&gw.admin_url("/console")).await.unwrap();
    browser.wait().for_element(Locator::Css("#token")).await.unwrap();
    save(browser, "login").await;
    sign_in(browser, gw, APPROVER_KEY).await;
    browser.wait().for_element(Locator::Css("p.empty")).await.unwrap();

    // A call is held; the open inbox shows it without a reload.
    let body = json!({"amount": 42, "note": "<script>alert(1)</script>"});
    let res = client().post(gw.url("/fn/refund/orders/7")).bearer_auth(AGENT_KEY).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let approval = res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned();
    let card = format!(r#"article[data-approval="{approval}"]"#);
    browser.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(&card)).await.unwrap();
    let text = in_inbox(browser, &card, |e| async move { e.text().await }).await;
    assert!(text.contains("refund") && text.contains("agent") && text.contains("/orders/7"), "{text}");
    assert!(text.contains("refunds need a lead") && text.contains("leads"), "{text}");
    // The caller's markup is text on the page, not an element.
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    assert!(browser.find_all(Locator::Css("main script")).await.unwrap().is_empty());
    let reason = browser.find(Locator::Css(&format!("#reason-{approval}"))).await.unwrap();
    reason.send_keys("order 7 checked").await.unwrap();
    // Typing survives the 2 s refresh.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let kept = browser.find(Locator::Css(&format!("#reason-{approval}"))).await.unwrap().prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("order 7 checked"));
    save(browser, "approvals").await;
    in_inbox(browser, &format!("{card} button.approve"), |e| async move { e.click().await }).await;
    browser.wait().for_element(Locator::Css("p.notice")).await.unwrap();

    // The caller repeats the call with the approval: it goes through to the function.
    let res = client()
        .post(gw.url("/fn/refund/orders/7"))
        .bearer_auth(AGENT_KEY)
        .header("cloakroom-approval", &approval)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer = res.text().await.unwrap();
    assert!(answer.contains("orders/7"), "the upstream's answer: {answer}");
    assert!(!up.requests().is_empty());
    sign_out(browser).await;

    // An admin: audit search, the call view with replay, secrets.
    sign_in(browser, gw, ADMIN_KEY).await;
    browser.goto(&gw.admin_url("/console/audit?function=refund")).await.unwrap();
    browser.wait().for_element(Locator::Css("table.records tbody tr")).await.unwrap();
    save(browser, "audit").await;
    let rows = browser.find_all(Locator::Css("table.records tbody tr td:first-child a")).await.unwrap();
    assert!(rows.len() >= 2, "the held call and the approved one");
    rows[0].click().await.unwrap();
    browser.wait().for_element(Locator::Css("section.replay")).await.unwrap();
    let view = browser.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(view.contains("Replay against today's policy") && view.contains("intact"), "{view}");
    assert!(view.contains(&approval), "the call view names its approval: {view}");
    save(browser, "audit-call").await;

    browser.goto(&gw.admin_url("/console/secrets")).await.unwrap();
    let value = "sk_browser_value_never_shown_7";
    browser.find(Locator::Css("form.put input[name=name]")).await.unwrap().send_keys("refund_api_key").await.unwrap();
    browser.find(Locator::Css("form.put input[name=value]")).await.unwrap().send_keys(value).await.unwrap();
    browser.find(Locator::Css("form.put input[name=functions]")).await.unwrap().send_keys("refund").await.unwrap();
    browser
        .find(Locator::Css("form.put input[name=locations]"))
        .await
        .unwrap()
        .send_keys("header:x-api-key")
        .await
        .unwrap();
    browser.find(Locator::Css("form.put button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("p.notice")).await.unwrap();
    let page = browser.source().await.unwrap();
    assert!(page.contains("refund_api_key") && page.contains("cloak_"), "{page}");
    assert!(!page.contains(value));
    save(browser, "secrets").await;
    let stored = gw.admin_get("/v1/secrets").await;
    assert!(stored["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "refund_api_key" && s["has_value"] == true));
}
