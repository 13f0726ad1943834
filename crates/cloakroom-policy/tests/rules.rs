//! Built-in rules: each field matching and not, deny-overrides, default deny, load errors.

mod common;

use cloakroom_core::Effect;
use cloakroom_policy::{Policies, PolicyError, PolicyInput, RuleKind};
use common::*;
use serde_json::json;

const ALLOW_ALL_ECHO: &str = r#"
[[rules]]
name = "r"
effect = "allow"
"#;

async fn allowed(rule_fields: &str, id: &cloakroom_core::Identity, c: &cloakroom_core::Call) -> bool {
    let s = set(&format!("{ALLOW_ALL_ECHO}{rule_fields}"));
    let d = decide(&s, id, c).await;
    d.effect == Effect::Allow
}

#[tokio::test]
async fn a_rule_without_conditions_matches_any_call() {
    assert!(allowed("", &who("a", &[]), &call("anything/at/all", json!(null))).await);
}

#[tokio::test]
async fn functions_field_matches_globs() {
    let f = r#"functions = ["payments/*"]"#;
    assert!(allowed(f, &who("a", &[]), &call("payments/refund", json!(null))).await);
    assert!(!allowed(f, &who("a", &[]), &call("payments", json!(null))).await);
    assert!(!allowed(f, &who("a", &[]), &call("payments/refund/partial", json!(null))).await);
    assert!(!allowed(f, &who("a", &[]), &call("payroll/refund", json!(null))).await);
    let f = r#"functions = ["payments/**"]"#;
    assert!(allowed(f, &who("a", &[]), &call("payments/refund/partial", json!(null))).await);
}

#[tokio::test]
async fn groups_field_needs_one_of_the_groups() {
    let f = r#"groups = ["ops", "sre"]"#;
    assert!(allowed(f, &who("a", &["dev", "sre"]), &call("echo", json!(null))).await);
    assert!(!allowed(f, &who("a", &["dev"]), &call("echo", json!(null))).await);
    assert!(!allowed(f, &who("a", &[]), &call("echo", json!(null))).await);
}

#[tokio::test]
async fn subjects_field_matches_exactly() {
    let f = r#"subjects = ["ci-bot"]"#;
    assert!(allowed(f, &who("ci-bot", &[]), &call("echo", json!(null))).await);
    assert!(!allowed(f, &who("ci-bot2", &[]), &call("echo", json!(null))).await);
}

#[tokio::test]
async fn source_cidrs_field_matches_ipv4_and_ipv6() {
    let f = r#"source_cidrs = ["10.1.0.0/16", "fd00::/8"]"#;
    let mut id = who("a", &[]);
    let c = call("echo", json!(null));
    id.source_ip = Some("10.1.2.3".parse().unwrap());
    assert!(allowed(f, &id, &c).await);
    id.source_ip = Some("10.2.0.1".parse().unwrap());
    assert!(!allowed(f, &id, &c).await);
    id.source_ip = Some("fd12:3456::1".parse().unwrap());
    assert!(allowed(f, &id, &c).await);
    id.source_ip = Some("2001:db8::1".parse().unwrap());
    assert!(!allowed(f, &id, &c).await);
    id.source_ip = None;
    assert!(!allowed(f, &id, &c).await, "an unknown address never matches a CIDR rule");
}

#[tokio::test]
async fn source_ip_falls_back_to_the_input_address() {
    let s = set(&format!("{ALLOW_ALL_ECHO}source_cidrs = [\"127.0.0.0/8\"]"));
    let id = who("a", &[]);
    let c = call("echo", json!(null));
    let input = PolicyInput::new(&id, &c).with_source_ip(Some("127.0.0.1".parse().unwrap()));
    assert_eq!(s.evaluate(&input).await.effect, Effect::Allow);
}

#[tokio::test]
async fn methods_field_is_case_insensitive() {
    let f = r#"methods = ["get", "POST"]"#;
    let mut c = call("echo", json!(null));
    assert!(allowed(f, &who("a", &[]), &c).await);
    c.method = "get".into();
    assert!(allowed(f, &who("a", &[]), &c).await);
    c.method = "DELETE".into();
    assert!(!allowed(f, &who("a", &[]), &c).await);
}

#[tokio::test]
async fn arguments_field_matches_strings_by_regex() {
    let f = r#"arguments = { "/sql" = "(?i)^\\s*select\\b" }"#;
    assert!(allowed(f, &who("a", &[]), &call("db", json!({"sql": "SELECT * FROM t"}))).await);
    assert!(!allowed(f, &who("a", &[]), &call("db", json!({"sql": "delete from t"}))).await);
}

#[tokio::test]
async fn arguments_field_absent_pointer_does_not_match() {
    let f = r#"arguments = { "/sql" = ".*" }"#;
    assert!(!allowed(f, &who("a", &[]), &call("db", json!({"query": "select 1"}))).await);
    assert!(!allowed(f, &who("a", &[]), &call("db", json!(null))).await);
}

#[tokio::test]
async fn arguments_field_matches_non_strings_by_their_json_text() {
    let f = r#"arguments = { "/amount" = "^[0-9]{1,3}$", "/dry_run" = "^true$" }"#;
    assert!(allowed(f, &who("a", &[]), &call("pay", json!({"amount": 250, "dry_run": true}))).await);
    assert!(!allowed(f, &who("a", &[]), &call("pay", json!({"amount": 2500, "dry_run": true}))).await);
    assert!(!allowed(f, &who("a", &[]), &call("pay", json!({"amount": "250", "dry_run": "yes"}))).await);
    let nested = r#"arguments = { "/items/0/sku" = "^A-" }"#;
    assert!(allowed(nested, &who("a", &[]), &call("pay", json!({"items": [{"sku": "A-1"}]}))).await);
}

#[tokio::test]
async fn every_field_of_a_rule_must_match() {
    let f = r#"
functions = ["payments/*"]
groups = ["ops"]
methods = ["POST"]
"#;
    assert!(allowed(f, &who("a", &["ops"]), &call("payments/x", json!(null))).await);
    assert!(!allowed(f, &who("a", &["dev"]), &call("payments/x", json!(null))).await);
}

#[tokio::test]
async fn nothing_matching_is_denied_by_default() {
    let s = set(r#"
[[rules]]
name = "only ops"
effect = "allow"
groups = ["ops"]
"#);
    let d = decide(&s, &who("a", &["dev"]), &call("echo", json!(null))).await;
    assert_eq!(d.effect, Effect::Deny);
    assert_eq!(d.rule, None);
    let empty = set("");
    assert_eq!(decide(&empty, &who("a", &["ops"]), &call("echo", json!(null))).await.effect, Effect::Deny);
}

#[tokio::test]
async fn deny_overrides_approve_and_allow_in_any_order() {
    let rules = [
        r#"
[[rules]]
name = "allow ops"
effect = "allow"
groups = ["ops"]
"#,
        r#"
[[rules]]
name = "refunds need approval"
effect = "approve"
functions = ["payments/refund"]
approvers = ["finance"]
"#,
        r#"
[[rules]]
name = "no refunds from interns"
effect = "deny"
groups = ["interns"]
"#,
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let text: String = order.iter().map(|&i| rules[i]).collect();
        let s = set(&text);
        let d = decide(&s, &who("a", &["ops", "interns"]), &call("payments/refund", json!(null))).await;
        assert_eq!((d.effect, d.rule.as_deref()), (Effect::Deny, Some("no refunds from interns")), "{order:?}");
        let d = decide(&s, &who("a", &["ops"]), &call("payments/refund", json!(null))).await;
        assert_eq!(d.effect, Effect::Approve, "{order:?}");
        assert_eq!(d.approvers, vec!["finance".to_string()]);
        let d = decide(&s, &who("a", &["ops"]), &call("payments/list", json!(null))).await;
        assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("allow ops")), "{order:?}");
    }
}

fn load_error(text: &str) -> PolicyError {
    cloakroom_policy::PolicySet::builder().config(&config(text)).build().unwrap_err()
}

fn assert_rule_error(err: PolicyError, rule: &str, field: &str) {
    match &err {
        PolicyError::Rule { rule: r, field: f, .. } => {
            assert_eq!((r.as_str(), f.as_str()), (rule, field), "{err}");
        }
        other => panic!("expected a rule error, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(rule) && text.contains(field), "{text}");
}

#[test]
fn an_invalid_regex_names_the_rule_and_the_field() {
    let err = load_error(
        r#"
[[rules]]
name = "sql guard"
effect = "deny"
arguments = { "/sql" = "(unclosed" }
"#,
    );
    assert_rule_error(err, "sql guard", "arguments./sql");
}

#[test]
fn an_invalid_glob_names_the_rule_and_the_field() {
    let err = load_error(
        r#"
[[rules]]
name = "bad glob"
effect = "allow"
functions = ["payments/["]
"#,
    );
    assert_rule_error(err, "bad glob", "functions");
}

#[test]
fn an_invalid_cidr_names_the_rule_and_the_field() {
    let err = load_error(
        r#"
[[rules]]
name = "office"
effect = "allow"
source_cidrs = ["10.0.0.0/8", "300.1.2.3/8"]
"#,
    );
    assert_rule_error(err, "office", "source_cidrs");
}

#[test]
fn approve_without_approvers_and_approvers_without_approve_are_errors() {
    let err = load_error(
        r#"
[[rules]]
name = "needs approvers"
effect = "approve"
"#,
    );
    assert_rule_error(err, "needs approvers", "approvers");
    let err = load_error(
        r#"
[[rules]]
name = "stray approvers"
effect = "allow"
approvers = ["x"]
"#,
    );
    assert_rule_error(err, "stray approvers", "approvers");
}

#[test]
fn a_bad_pointer_and_a_bad_method_are_errors() {
    let err = load_error(
        r#"
[[rules]]
name = "p"
effect = "deny"
arguments = { "sql" = "x" }
"#,
    );
    assert_rule_error(err, "p", "arguments.sql");
    let err = load_error(
        r#"
[[rules]]
name = "m"
effect = "deny"
methods = ["GE T"]
"#,
    );
    assert_rule_error(err, "m", "methods");
}

#[test]
fn duplicate_rule_names_are_an_error() {
    let err = load_error(
        r#"
[[rules]]
name = "twice"
effect = "allow"

[[rules]]
name = "twice"
effect = "deny"
"#,
    );
    assert_rule_error(err, "twice", "name");
}

#[test]
fn unknown_keys_and_effects_are_refused_by_the_config_parser() {
    assert!(toml::from_str::<cloakroom_policy::PolicyConfig>(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ngroup = [\"typo\"]\n"
    )
    .is_err());
    assert!(toml::from_str::<cloakroom_policy::PolicyConfig>("[[rules]]\nname = \"x\"\neffect = \"permit\"\n").is_err());
}

#[tokio::test]
async fn explain_lists_each_rule_with_the_field_that_failed() {
    let s = set(r#"
[[rules]]
name = "ops may pay"
effect = "allow"
functions = ["payments/*"]
groups = ["ops"]

[[rules]]
name = "wrong function"
effect = "deny"
functions = ["admin/*"]

[[rules]]
name = "big amounts"
effect = "approve"
functions = ["payments/*"]
arguments = { "/amount" = "^[0-9]{5,}$" }
approvers = ["finance"]
"#);
    let id = who("alice", &["ops"]);
    let c = call("payments/refund", json!({"amount": 12}));
    let ex = s.explain(&PolicyInput::new(&id, &c)).await;
    assert_eq!(ex.decision.effect, Effect::Allow);
    assert_eq!(ex.decision.rule.as_deref(), Some("ops may pay"));
    assert_eq!(ex.rules.len(), 3);
    assert!(ex.rules[0].matched);
    assert_eq!(ex.rules[0].kind, RuleKind::Rule);
    assert!(!ex.rules[1].matched);
    assert_eq!(ex.rules[1].field.as_deref(), Some("functions"));
    assert!(!ex.rules[2].matched);
    assert_eq!(ex.rules[2].field.as_deref(), Some("arguments./amount"));

    let v = serde_json::to_value(&ex).unwrap();
    assert_eq!(v["decision"]["effect"], "allow");
    assert_eq!(v["rules"][1]["field"], "functions");
    let text = ex.to_string();
    assert!(text.starts_with("decision: allow by \"ops may pay\""), "{text}");
    assert!(text.contains("[no match] rule \"wrong function\" (deny): `functions`"), "{text}");

    // The same call with a big amount: the approve rule now wins over the allow.
    let c = call("payments/refund", json!({"amount": 12000}));
    let ex = s.explain(&PolicyInput::new(&id, &c)).await;
    assert_eq!(ex.decision.effect, Effect::Approve);
    assert_eq!(ex.decision, s.evaluate(&PolicyInput::new(&id, &c)).await);
}

#[tokio::test]
async fn reload_swaps_the_set_and_a_bad_reload_keeps_the_old_one() {
    let policies = Policies::new(set(ALLOW_ALL_ECHO));
    let (id, c) = (who("a", &[]), call("echo", json!(null)));
    let before = policies.current();
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Allow);

    let err = policies
        .reload(&config(
            r#"
[[rules]]
name = "broken"
effect = "deny"
arguments = { "/x" = "[" }
"#,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("broken"));
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Allow);

    policies.reload(&config("")).unwrap();
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Deny);
    // A reader holding the old set keeps a consistent view.
    assert_eq!(before.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Allow);
}
