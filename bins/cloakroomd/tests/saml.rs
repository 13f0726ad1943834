//! SAML sign-in against a real IdP: pysaml2 (tests/saml-idp/idp.py, signing with
//! xmlsec1) on a free 127.0.0.1 port, and a real `cloakroomd` whose `[identity.saml]`
//! fetches the IdP's metadata by URL. A person starts at `/v1/saml/login`, "logs in" at
//! the IdP, the browser posts the signed response to `/v1/saml/acs`, and the session it
//! gets works on the admin API and decides an approval. The response is then replayed
//! and tampered with. The attack catalogue (XSW, comment injection, DTDs, …) is in
//! crates/cloakroom-identity/src/saml/attacks_tests.rs.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::{json, Value};

const SP_ENTITY: &str = "https://cloakroom.test/sp";

/// The pysaml2 IdP of tests/saml-idp/idp.py.
struct Idp {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    async fn start() -> Self {
        let python = cloakroom_testkit::workspace_root().join(".tools/venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `source scripts/test-env.sh` (it installs pysaml2)",
            python.display()
        );
        assert!(
            PathBuf::from("/usr/bin/xmlsec1").exists(),
            "xmlsec1 is missing: run `source scripts/test-env.sh` (it installs Debian's xmlsec1 for pysaml2)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = cloakroom_testkit::free_port();
        let script = cloakroom_testkit::workspace_root().join("tests/saml-idp/idp.py");
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("idp.log")).expect("idp log"))
            .spawn()
            .expect("start the pysaml2 IdP");
        let mut idp = Self { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
        for _ in 0..300 {
            if let Some(status) = idp.child.try_wait().unwrap() {
                panic!("the IdP exited with {status} (is pysaml2 installed? source scripts/test-env.sh)");
            }
            if let Ok(r) = reqwest::get(format!("{}/metadata", idp.base)).await {
                if r.status() == 200 {
                    return idp;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the IdP did not start");
    }

    /// Makes the IdP trust Cloakroom, from Cloakroom's own SP metadata endpoint.
    async fn trust(&self, gw: &Cloakroomd) {
        let res = reqwest::Client::new()
            .post(format!("{}/trust", self.base))
            .query(&[("url", gw.admin_url("/v1/saml/metadata"))])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `value="…"` of the hidden input `name` in the IdP's auto-submit form.
fn form_field(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + "value=\"".len();
    let end = rest[v..].find('"').unwrap();
    rest[v..v + end].replace("&#x2B;", "+").replace("&#43;", "+").replace("&#x3D;", "=").replace("&#61;", "=")
}

/// A sign-in up to the IdP's answer: `(SAMLResponse, RelayState)` as the browser would post them.
async fn sign_in_at_idp(gw: &Cloakroomd, idp: &Idp, user: &str, groups: &str, return_to: &str) -> (String, String) {
    let res =
        no_redirects().get(gw.admin_url("/v1/saml/login")).query(&[("return_to", return_to)]).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let to_idp = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(to_idp.starts_with(&format!("{}/sso?SAMLRequest=", idp.base)), "{to_idp}");
    // The person logs in at the IdP (the test names them instead of typing a password).
    let login = format!("{to_idp}&user={user}&groups={groups}");
    let html = reqwest::get(login).await.unwrap().text().await.unwrap();
    (form_field(&html, "SAMLResponse"), form_field(&html, "RelayState"))
}

async fn post_acs(gw: &Cloakroomd, response: &str, relay: &str, accept: &str) -> reqwest::Response {
    no_redirects()
        .post(gw.admin_url("/v1/saml/acs"))
        .header("accept", accept)
        .form(&[("SAMLResponse", response), ("RelayState", relay)])
        .send()
        .await
        .unwrap()
}

async fn start() -> (Idp, Cloakroomd, RecordingUpstream) {
    let idp = Idp::start().await;
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}\n[identity.saml]\nidp_metadata = \"{}/metadata\"\nentity_id = \"{SP_ENTITY}\"\ngroups_attribute = \"groups\"\nsession_ttl = \"1h\"\n{}\
         \n[[policy.rules]]\nname = \"refunds need a lead\"\neffect = \"approve\"\nfunctions = [\"refund\"]\ngroups = [\"agents\"]\napprovers = [\"leads\"]\n",
        identity_section(),
        idp.base,
        function("refund", "http", &up.url(), "/fn/refund"),
    );
    let gw = Cloakroomd::start("", &rest).await;
    idp.trust(&gw).await;
    (idp, gw, up)
}

#[tokio::test]
async fn a_person_signs_in_at_the_idp_and_the_session_works_on_the_admin_api_and_decides_an_approval() {
    let (idp, gw, up) = start().await;

    // Browser: a cookie and back to where the sign-in started.
    let (response, relay) = sign_in_at_idp(&gw, &idp, "lead@example.com", "leads,admins", "/console/approvals").await;
    let res = post_acs(&gw, &response, &relay, "text/html").await;
    assert_eq!(res.status(), 303, "{}", gw.stderr());
    assert_eq!(res.headers()["location"], "/console/approvals");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("cloakroom_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie_token = cookie["cloakroom_session=".len()..].split(';').next().unwrap().to_owned();

    // The same response again is a replay.
    let again = post_acs(&gw, &response, &relay, "application/json").await;
    assert_eq!(again.status(), 401);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");

    // CLI: the token as JSON.
    let (response, relay) = sign_in_at_idp(&gw, &idp, "lead@example.com", "leads,admins", "/console").await;
    let res = post_acs(&gw, &response, &relay, "application/json").await;
    assert_eq!(res.status(), 200);
    let signed_in: Value = res.json().await.unwrap();
    assert_eq!(signed_in["subject"], "lead@example.com");
    assert_eq!(signed_in["groups"], json!(["leads", "admins"]));
    assert!(signed_in["expires_at"].as_str().unwrap().ends_with('Z'));
    let token = signed_in["token"].as_str().unwrap().to_owned();
    assert!(!gw.stderr().contains(&token) && !gw.stderr().contains(&cookie_token), "a session token was logged");

    // Both tokens work as bearer credentials on the admin API (an admin endpoint: the
    // person is in `admins` through the IdP's groups attribute).
    for t in [&token, &cookie_token] {
        let res = reqwest::Client::new().get(gw.admin_url("/v1/approvals")).bearer_auth(t).send().await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }

    // An agent's call waits for a lead; the signed-in lead approves it with the session.
    let res = reqwest::Client::new().get(gw.url("/fn/refund/balance")).bearer_auth(AGENT_KEY).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["approval_id"].as_str().unwrap().to_owned();
    let res = reqwest::Client::new()
        .post(gw.admin_url(&format!("/v1/approvals/{id}/approve")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let approval = gw.admin_get(&format!("/v1/approvals/{id}")).await;
    assert_eq!(approval["state"], "approved", "{approval}");
    assert!(approval.to_string().contains("lead@example.com"), "the approver is the signed-in person: {approval}");
    let res = reqwest::Client::new()
        .get(gw.url("/fn/refund/balance"))
        .bearer_auth(AGENT_KEY)
        .header("cloakroom-approval", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_tampered_or_misdirected_idp_response_is_refused_and_gives_no_session() {
    let (idp, gw, _up) = start().await;
    let (response, relay) = sign_in_at_idp(&gw, &idp, "bob@example.com", "staff", "/console").await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(b64.decode(&response).unwrap()).unwrap();
    assert!(xml.contains("bob@example.com"));

    // Another person, or admin groups, written into the signed assertion.
    for tampered in [xml.replace("bob@example.com", "boss@example.com"), xml.replace(">staff<", ">admins<")] {
        assert_ne!(tampered, xml);
        let res = post_acs(&gw, &b64.encode(&tampered), &relay, "application/json").await;
        assert_eq!(res.status(), 401);
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("signature"), "{body}");
    }
    // A comment in the NameID (the signature still verifies: comments are not signed).
    let commented = xml.replacen("bob@example.com", "bob@example.com<!---->", 1);
    let res = post_acs(&gw, &b64.encode(&commented), &relay, "application/json").await;
    assert_eq!(res.status(), 401);
    // A response for another sign-in's RelayState.
    let (_, other_relay) = sign_in_at_idp(&gw, &idp, "bob@example.com", "staff", "/console").await;
    let res = post_acs(&gw, &response, &other_relay, "application/json").await;
    assert_eq!(res.status(), 401);
    // Not base64 / not a form.
    let res = post_acs(&gw, "%%%", &relay, "application/json").await;
    assert_eq!(res.status(), 400);
    // After all that, the untouched response is still good exactly once.
    let res = post_acs(&gw, &response, &relay, "application/json").await;
    assert_eq!(res.status(), 200, "{}", gw.stderr());
    assert!(!gw.stderr().contains("set-cookie"));
}

#[tokio::test]
async fn login_refuses_a_return_to_that_leaves_the_admin_listener() {
    let (_idp, gw, _up) = start().await;
    for bad in ["https://evil.test/", "//evil.test/x", "/\\evil.test"] {
        let res = no_redirects().get(gw.admin_url("/v1/saml/login")).query(&[("return_to", bad)]).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let md = reqwest::get(gw.admin_url("/v1/saml/metadata")).await.unwrap().text().await.unwrap();
    assert!(md.contains(SP_ENTITY) && md.contains(&gw.admin_url("/v1/saml/acs")), "{md}");
}

#[test]
fn check_names_an_unusable_saml_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let bad_md = dir.path().join("idp.xml");
    std::fs::write(&bad_md, "<!DOCTYPE x><x/>").unwrap();
    for (saml, needle) in [
        (
            format!("idp_metadata = \"{}\"\nentity_id = \"sp\"", dir.path().join("missing.xml").display()),
            "identity.saml.idp_metadata",
        ),
        (format!("idp_metadata = \"{}\"\nentity_id = \"sp\"", bad_md.display()), "DTD"),
        (format!("idp_metadata = \"{}\"\nentity_id = \"\"", bad_md.display()), "identity.saml.entity_id"),
        (
            "idp_metadata = \"https://idp.test/md\"\nentity_id = \"sp\"\nacs_url = \"x\"".to_owned(),
            "identity.saml.acs_url",
        ),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("{}\n[identity.saml]\n{saml}\n", identity_section())).unwrap();
        let out = Command::new(binary()).arg("--config").arg(&config).arg("--check").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{saml}");
        assert!(stderr.contains(needle), "{saml}: {stderr}");
    }
}
