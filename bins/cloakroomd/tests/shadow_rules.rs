//! End-to-end: `mode = "shadow"` rules in a real `cloakroomd` are recorded in the audit
//! record's `shadow` field and counted in `cloakroom_policy_shadow_total`, but never
//! change what happens to a call.

mod common;

use std::process::Command;

use cloakroom_testkit::RecordingUpstream;
use common::*;
use serde_json::json;

fn shadow(name: &str, effect: &str, functions: &[&str], extra: &str) -> String {
    format!(
        "\n[[policy.rules]]\nname = \"{name}\"\neffect = \"{effect}\"\nfunctions = {functions:?}\nmode = \"shadow\"\n{extra}\n"
    )
}

#[tokio::test]
async fn shadow_rules_are_recorded_and_counted_but_not_enforced() {
    let up = RecordingUpstream::echo().await;
    let rest = format!(
        "{}{}{}{}{}{}{}",
        identity_section(),
        function("echo", "http", &up.url(), "/fn/echo"),
        function("other", "http", &up.url(), "/fn/other"),
        allow("agents may call echo", &["echo"], &["agents"]),
        shadow("would deny echo", "deny", &["echo"], ""),
        shadow("would hold echo", "approve", &["echo"], "approvers = [\"leads\"]"),
        shadow("would allow other", "allow", &["other"], ""),
    );
    let gw = Cloakroomd::start("", &rest).await;
    let c = reqwest::Client::new();

    // A shadow deny and a shadow approve leave an allowed call allowed, and hold nothing.
    let ok = c.post(gw.url("/fn/echo/a")).bearer_auth(AGENT_KEY).body("one").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok_id = ok.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    ok.bytes().await.unwrap();
    // A shadow allow leaves a denied call denied.
    let denied = c.post(gw.url("/fn/other/b")).bearer_auth(AGENT_KEY).body("two").send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let denied_id = denied.headers()["cloakroom-call-id"].to_str().unwrap().to_owned();
    denied.bytes().await.unwrap();
    assert_eq!(up.requests().len(), 1, "only the allowed call reached the upstream");

    let rec = gw.admin_get(&format!("/v1/audit/{ok_id}")).await;
    assert_eq!(rec["decision"]["effect"], "allow", "{rec}");
    assert_eq!(rec["decision"]["rule"], "agents may call echo", "{rec}");
    assert!(rec["approval"].is_null(), "{rec}");
    assert_eq!(
        rec["shadow"],
        json!([{"rule": "would deny echo", "effect": "deny"}, {"rule": "would hold echo", "effect": "approve"}]),
        "{rec}"
    );
    // The console's call view shows the same verdicts, marked as not enforced.
    let view = c
        .get(gw.admin_url(&format!("/console/audit/{ok_id}")))
        .header("cookie", format!("cloakroom_session={ADMIN_KEY}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(view.contains("Shadow rules") && view.contains("would deny echo would deny"), "{view}");
    let rec = gw.admin_get(&format!("/v1/audit/{denied_id}")).await;
    assert_eq!(rec["decision"]["effect"], "deny", "{rec}");
    assert!(rec["decision"]["rule"].is_null(), "the default deny: {rec}");
    assert_eq!(rec["shadow"], json!([{"rule": "would allow other", "effect": "allow"}]), "{rec}");

    // An unauthenticated call never reached policy: no shadow field at all.
    c.get(gw.url("/fn/echo/c")).send().await.unwrap().bytes().await.unwrap();
    let records = gw.admin_get("/v1/audit?limit=10").await;
    let refused = records["records"].as_array().unwrap().iter().find(|r| r["identity"].is_null()).unwrap().clone();
    assert!(refused.get("shadow").is_none(), "{refused}");

    let verify = gw.admin_get("/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "records with and without shadow verdicts verify: {verify}");

    let metrics = c.get(gw.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for (rule, effect) in [("would deny echo", "deny"), ("would hold echo", "approve"), ("would allow other", "allow")]
    {
        let line = format!("cloakroom_policy_shadow_total{{rule=\"{rule}\",effect=\"{effect}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(metrics.contains("cloakroom_calls_total{function=\"echo\",decision=\"allow\"} 1"), "{metrics}");
}

#[test]
fn check_accepts_the_modes_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[server]\nlisten = \"127.0.0.1:18080\"\nadmin_listen = \"127.0.0.1:18081\"\n\n[[functions]]\nname = \"echo\"\nupstream = \"http://127.0.0.1:9\"\nroute = \"/fn/echo\"\n\n[[policy.rules]]\nname = \"r\"\neffect = \"allow\"\n";
    for (mode, ok) in [("enforce", true), ("shadow", true), ("dry-run", false)] {
        let path = dir.path().join(format!("{mode}.toml"));
        std::fs::write(&path, format!("{base}mode = \"{mode}\"\n")).unwrap();
        let out = Command::new(binary()).arg("--config").arg(&path).arg("--check").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "mode {mode}: {err}");
        if !ok {
            assert!(err.contains("policy.rules[0].mode") && err.contains("unknown variant"), "{err}");
        }
    }
}
