//! `mode = "shadow"` rules: evaluated and reported, never enforced.

mod common;

use cloakroom_core::{Effect, ShadowVerdict};
use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet, RuleMode};
use common::*;
use serde_json::json;

const RULES: &str = r#"
[[rules]]
name = "ops may echo"
effect = "allow"
functions = ["echo"]
groups = ["ops"]

[[rules]]
name = "would deny echo"
effect = "deny"
functions = ["echo"]
mode = "shadow"

[[rules]]
name = "would allow payments"
effect = "allow"
functions = ["payments/*"]
mode = "shadow"

[[rules]]
name = "would hold echo"
effect = "approve"
functions = ["echo"]
approvers = ["leads"]
mode = "shadow"
"#;

fn verdict(rule: &str, effect: Effect) -> ShadowVerdict {
    ShadowVerdict { rule: rule.into(), effect }
}

#[tokio::test]
async fn a_shadow_deny_leaves_an_allowed_call_allowed_and_is_reported() {
    let s = set(RULES);
    let (id, c) = (who("a", &["ops"]), call("echo", json!(null)));
    let d = decide(&s, &id, &c).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("ops may echo")));
    assert!(d.approvers.is_empty(), "a shadow approve holds nothing");
    let shadow = s.shadow(&PolicyInput::new(&id, &c));
    assert_eq!(shadow, vec![verdict("would deny echo", Effect::Deny), verdict("would hold echo", Effect::Approve)]);
}

#[tokio::test]
async fn a_shadow_allow_leaves_a_denied_call_denied() {
    let s = set(RULES);
    let (id, c) = (who("a", &[]), call("payments/refund", json!(null)));
    let d = decide(&s, &id, &c).await;
    assert_eq!((d.effect, d.rule), (Effect::Deny, None), "default deny");
    assert_eq!(s.shadow(&PolicyInput::new(&id, &c)), vec![verdict("would allow payments", Effect::Allow)]);
}

#[tokio::test]
async fn without_shadow_rules_nothing_is_reported() {
    let s = set("[[rules]]\nname = \"r\"\neffect = \"allow\"\nmode = \"enforce\"\n");
    let (id, c) = (who("a", &[]), call("echo", json!(null)));
    assert_eq!(decide(&s, &id, &c).await.effect, Effect::Allow);
    assert!(s.shadow(&PolicyInput::new(&id, &c)).is_empty());
    assert_eq!(s.rules()[0].mode(), RuleMode::Enforce);
}

#[tokio::test]
async fn explain_shows_shadow_rules_without_letting_them_decide() {
    let s = set(RULES);
    let (id, c) = (who("a", &["ops"]), call("echo", json!(null)));
    let ex = s.explain(&PolicyInput::new(&id, &c)).await;
    assert_eq!(ex.decision.effect, Effect::Allow);
    let shadow = ex.rules.iter().find(|r| r.name == "would deny echo").unwrap();
    assert!(shadow.matched && shadow.reason.starts_with("shadow rule, not enforced"), "{shadow:?}");
}

#[test]
fn mode_defaults_to_enforce_and_unknown_modes_are_refused() {
    let c: PolicyConfig = toml::from_str("[[rules]]\nname = \"r\"\neffect = \"allow\"\n").unwrap();
    assert_eq!(c.rules[0].mode, RuleMode::Enforce);
    let err = toml::from_str::<PolicyConfig>("[[rules]]\nname = \"r\"\neffect = \"allow\"\nmode = \"audit\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant") && err.contains("shadow"), "{err}");
    let set = PolicySet::builder().config(&c).build().unwrap();
    assert!(!set.rules()[0].is_shadow());
}
