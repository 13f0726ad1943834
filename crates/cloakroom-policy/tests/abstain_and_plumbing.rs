//! A custom policy's "no opinion" (`None`) is not a deny, and a decision it does return
//! counts even without a rule name; a rule naming an MCP function's tools allows that
//! function's protocol plumbing (and only allow/approve rules do).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cloakroom_core::{Call, Decision, Effect, Protocol};
use cloakroom_policy::{Policy, PolicyInput, PolicySet, RuleKind};
use common::*;

/// Returns what it was built with, whatever the call.
struct Fixed(Option<Decision>);

#[async_trait]
impl Policy for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    async fn evaluate(&self, _input: &PolicyInput<'_>) -> Option<Decision> {
        self.0.clone()
    }
}

const ALLOW_OPS: &str = r#"
[[rules]]
name = "ops may pay"
effect = "allow"
functions = ["payments/*"]
groups = ["ops"]
"#;

fn with(custom: Option<Decision>) -> PolicySet {
    PolicySet::builder().config(&config(ALLOW_OPS)).custom(Arc::new(Fixed(custom))).build().unwrap()
}

#[tokio::test]
async fn an_abstaining_custom_policy_leaves_the_decision_to_the_others() {
    let (ops, c) = (who("o", &["ops"]), call("payments/charge", serde_json::json!({})));
    let d = decide(&with(None), &ops, &c).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("ops may pay")));
    // Nothing applicable: denied by default, not by the abstaining policy.
    let d = decide(&with(None), &who("x", &[]), &c).await;
    assert_eq!((d.effect, d.rule), (Effect::Deny, None));
}

#[tokio::test]
async fn a_returned_deny_without_a_rule_name_is_a_deny_named_after_the_policy() {
    let (ops, c) = (who("o", &["ops"]), call("payments/charge", serde_json::json!({})));
    let d = decide(&with(Some(Decision::default_deny())), &ops, &c).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Deny, Some("fixed")));
    let ex = with(Some(Decision::default_deny())).explain(&PolicyInput::new(&ops, &c)).await;
    assert_eq!(ex.decision.effect, Effect::Deny);
    let report = ex.rules.iter().find(|r| r.kind == RuleKind::Custom).unwrap();
    assert!(report.matched);
    let ex = with(None).explain(&PolicyInput::new(&ops, &c)).await;
    assert!(!ex.rules.iter().find(|r| r.kind == RuleKind::Custom).unwrap().matched);
}

#[tokio::test]
async fn a_nested_policy_set_abstains_when_nothing_in_it_applies() {
    let inner = set(ALLOW_OPS);
    let c = call("payments/charge", serde_json::json!({}));
    assert_eq!(Policy::evaluate(&inner, &PolicyInput::new(&who("x", &[]), &c)).await, None);
    let d = Policy::evaluate(&inner, &PolicyInput::new(&who("o", &["ops"]), &c)).await.unwrap();
    assert_eq!(d.effect, Effect::Allow);
}

fn mcp(function: &str, detail: &str) -> Call {
    Call::new(function.into(), Protocol::Mcp)
        .with_arguments(serde_json::Value::Null)
        .with_detail(Some(detail.into()))
        .with_method("POST".into())
        .with_digest("d".into())
}

const TOOL_RULES: &str = r#"
[[rules]]
name = "agents may search"
effect = "allow"
functions = ["tools/search"]
groups = ["agents"]
arguments = { "/q" = "^[a-z]+$" }

[[rules]]
name = "refunds need a lead"
effect = "approve"
functions = ["pay/refund"]
approvers = ["leads"]

[[rules]]
name = "no deletes"
effect = "deny"
functions = ["tools/delete", "*/drop"]
"#;

#[tokio::test]
async fn a_rule_naming_a_tool_allows_its_function_plumbing_and_nothing_else() {
    let s = set(TOOL_RULES);
    let agent = who("a", &["agents"]);
    for detail in ["initialize", "tools/list", "ping", "notifications/initialized"] {
        let d = decide(&s, &agent, &mcp("tools", detail)).await;
        assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("agents may search")), "{detail}");
    }
    let mut stream = mcp("tools", "x");
    (stream.detail, stream.method) = (None, "GET".into());
    assert_eq!(decide(&s, &agent, &stream).await.effect, Effect::Allow);
    // Tool calls are still judged by name and arguments.
    let mut delete = mcp("tools/delete", "tools/call");
    delete.arguments = serde_json::json!({});
    assert_eq!(decide(&s, &agent, &delete).await.effect, Effect::Deny);
    let mut search = mcp("tools/search", "tools/call");
    search.arguments = serde_json::json!({"q": "DROP"});
    assert_eq!(decide(&s, &agent, &search).await.effect, Effect::Deny);
    // A bare function named like a tool call is not plumbing when it says tools/call.
    assert_eq!(decide(&s, &agent, &mcp("tools", "tools/call")).await.effect, Effect::Deny);
    // Another caller, another function, another protocol: no plumbing.
    assert_eq!(decide(&s, &who("x", &[]), &mcp("tools", "initialize")).await.effect, Effect::Deny);
    assert_eq!(decide(&s, &agent, &mcp("other", "initialize")).await.effect, Effect::Deny);
    let mut http = mcp("tools", "initialize");
    http.protocol = Protocol::Http;
    assert_eq!(decide(&s, &agent, &http).await.effect, Effect::Deny);
}

#[tokio::test]
async fn an_approve_rule_on_a_tool_allows_plumbing_without_asking_and_a_deny_on_a_tool_does_not_close_it() {
    let s = set(TOOL_RULES);
    let d = decide(&s, &who("x", &[]), &mcp("pay", "initialize")).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("refunds need a lead")));
    assert!(d.approvers.is_empty());
    // explain says so: the approve rule matched, with the effect it has here (allow).
    let ex = s.explain(&PolicyInput::new(&who("x", &[]), &mcp("pay", "initialize"))).await;
    let report = ex.rules.iter().find(|r| r.name == "refunds need a lead").unwrap();
    assert!(report.matched && report.effect == Some(Effect::Allow), "{report:?}");
    assert!(report.reason.contains("MCP plumbing"), "{report:?}");
    // `*/drop` and `tools/delete` deny tools, not every function's initialize.
    let d = decide(&s, &who("a", &["agents"]), &mcp("tools", "initialize")).await;
    assert_eq!(d.effect, Effect::Allow);
}
