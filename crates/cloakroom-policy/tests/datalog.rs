//! Datalog policies: allow and deny, the facts, Biscuit attenuation, limits.

mod common;

use cloakroom_core::{AuthMethod, BiscuitToken, Decision, Effect, Identity};
use cloakroom_policy::{
    biscuit_auth::{Biscuit, BlockBuilder, KeyPair},
    PolicyConfig, PolicyError, PolicyInput, PolicySet, RuleKind,
};
use common::*;
use serde_json::json;

/// The default limits but a patient clock: `max_time` is wall-clock time, and a debug
/// build on a busy 2-core machine can be descheduled for longer than the 20 ms default.
/// The tests of the limits rely on `max_facts`, which no clock changes.
fn datalog_set(source: &str) -> PolicySet {
    let mut patient = PolicyConfig::default();
    patient.datalog_limits.max_time = std::time::Duration::from_secs(5);
    PolicySet::builder().config(&patient).datalog_source("test.datalog", source).build().expect("datalog parses")
}

async fn eval(set: &PolicySet, input: PolicyInput<'_>) -> Decision {
    set.evaluate(&input).await
}

#[tokio::test]
async fn an_allow_policy_allows_and_a_deny_policy_denies() {
    let s = datalog_set(
        r#"
deny if function("admin/wipe");
allow if group("ops"), function($f), $f.starts_with("payments/");
"#,
    );
    let d = eval(&s, PolicyInput::new(&who("a", &["ops"]), &call("payments/refund", json!(null)))).await;
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert!(d.rule.unwrap().starts_with("test.datalog: allow if"));
    let d = eval(&s, PolicyInput::new(&who("a", &["ops"]), &call("admin/wipe", json!(null)))).await;
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.rule.unwrap().contains("deny if function(\"admin/wipe\")"));
    // No policy matches: no opinion, so the set denies by default.
    let d = eval(&s, PolicyInput::new(&who("a", &["dev"]), &call("payments/refund", json!(null)))).await;
    assert_eq!((d.effect, d.rule), (Effect::Deny, None));
}

#[tokio::test]
async fn a_datalog_deny_overrides_a_rule_allow() {
    let s = PolicySet::builder()
        .config(&config("[[rules]]\nname = \"all\"\neffect = \"allow\"\n"))
        .datalog_source("deny.datalog", "deny if user(\"mallory\");\nallow if false;")
        .build()
        .unwrap();
    assert_eq!(eval(&s, PolicyInput::new(&who("alice", &[]), &call("f", json!(null)))).await.effect, Effect::Allow);
    assert_eq!(eval(&s, PolicyInput::new(&who("mallory", &[]), &call("f", json!(null)))).await.effect, Effect::Deny);
}

#[tokio::test]
async fn the_call_facts_are_all_there() {
    let s = datalog_set(
        r#"
allow if
    user("alice"), group("ops"), function("payments/refund"), protocol("http"),
    source_ip("10.0.0.7"), secret("stripe_key"),
    time($t), $t > 2020-01-01T00:00:00Z,
    argument("/amount", 120), argument("/currency", "EUR"), argument("/items/1/sku", "B"),
    argument("/express", true), argument("/note", null), argument("/rate", "1.5");
"#,
    );
    let mut id = who("alice", &["ops"]);
    id.source_ip = Some("10.0.0.7".parse().unwrap());
    let c = call(
        "payments/refund",
        json!({"amount": 120, "currency": "EUR", "items": [{"sku": "A"}, {"sku": "B"}],
               "express": true, "note": null, "rate": 1.5}),
    );
    let secrets = vec!["stripe_key".to_string()];
    let d = eval(&s, PolicyInput::new(&id, &c).with_secrets(&secrets)).await;
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    // Without the secret fact the policy no longer matches.
    let d = eval(&s, PolicyInput::new(&id, &c)).await;
    assert_eq!(d.effect, Effect::Deny);
}

#[tokio::test]
async fn too_many_arguments_are_truncated_and_flagged() {
    let s = datalog_set("deny if arguments_truncated(true);\nallow if true;");
    let small = call("f", json!({"a": 1}));
    assert_eq!(eval(&s, PolicyInput::new(&who("a", &[]), &small)).await.effect, Effect::Allow);
    let many: serde_json::Map<String, serde_json::Value> = (0..300).map(|i| (format!("k{i}"), json!(i))).collect();
    let big = call("f", serde_json::Value::Object(many));
    assert_eq!(eval(&s, PolicyInput::new(&who("a", &[]), &big)).await.effect, Effect::Deny);
}

#[test]
fn a_file_that_does_not_parse_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.datalog");
    std::fs::write(&path, "allow if user(\"x\"").unwrap();
    let config: PolicyConfig = toml::from_str(&format!("[[datalog]]\nfile = {:?}\n", path)).unwrap();
    let err = PolicySet::builder().config(&config).build().unwrap_err();
    assert!(matches!(&err, PolicyError::Datalog { file, .. } if *file == path), "{err}");
    let missing: PolicyConfig = toml::from_str("[[datalog]]\nfile = \"nope.datalog\"\n").unwrap();
    let err = PolicySet::builder().config(&missing).base_dir(dir.path()).build().unwrap_err();
    assert!(err.to_string().contains("nope.datalog") && err.to_string().contains("cannot read"), "{err}");
}

#[tokio::test]
async fn files_are_loaded_relative_to_the_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.datalog"), "allow if group(\"ops\");").unwrap();
    let config: PolicyConfig = toml::from_str("[[datalog]]\nfile = \"policies/p.datalog\"\n").unwrap();
    let s = PolicySet::builder().config(&config).base_dir(dir.path()).build().unwrap();
    assert_eq!(eval(&s, PolicyInput::new(&who("a", &["ops"]), &call("f", json!(null)))).await.effect, Effect::Allow);
}

fn biscuit_identity(token: &Biscuit) -> Identity {
    Identity::new("agent-7".into(), "biscuit".into(), AuthMethod::Biscuit)
        .with_groups(vec!["agents".into()])
        .with_biscuit(Some(BiscuitToken::from_bytes(token.to_vec().unwrap())))
}

fn root_token(root: &KeyPair) -> Biscuit {
    Biscuit::builder()
        .code(r#"user("agent-7"); right("payments/refund"); right("payments/list");"#)
        .unwrap()
        .build(root)
        .unwrap()
}

#[tokio::test]
async fn an_attenuated_token_narrows_what_its_holder_may_call() {
    let root = KeyPair::new();
    let s = PolicySet::builder()
        .config(&config("[[rules]]\nname = \"agents\"\neffect = \"allow\"\ngroups = [\"agents\"]\n"))
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    let token = root_token(&root);
    let refund = call("payments/refund", json!({"amount": 10}));
    let list = call("payments/list", json!(null));

    // The full token: the rule allows both calls.
    let id = biscuit_identity(&token);
    assert_eq!(eval(&s, PolicyInput::new(&id, &refund)).await.effect, Effect::Allow);
    assert_eq!(eval(&s, PolicyInput::new(&id, &list)).await.effect, Effect::Allow);

    // Attenuated to payments/list: refunds are now refused, by the token's own check.
    let narrowed = token.append(BlockBuilder::new().code(r#"check if function("payments/list");"#).unwrap()).unwrap();
    let id = biscuit_identity(&narrowed);
    let d = eval(&s, PolicyInput::new(&id, &refund)).await;
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    assert!(d.reason.contains("check failed"), "{}", d.reason);
    assert_eq!(eval(&s, PolicyInput::new(&id, &list)).await.effect, Effect::Allow);

    // Attenuation that checks an argument.
    let capped =
        token.append(BlockBuilder::new().code(r#"check if argument("/amount", $a), $a <= 100;"#).unwrap()).unwrap();
    let id = biscuit_identity(&capped);
    assert_eq!(eval(&s, PolicyInput::new(&id, &refund)).await.effect, Effect::Allow);
    let big = call("payments/refund", json!({"amount": 1000}));
    assert_eq!(eval(&s, PolicyInput::new(&id, &big)).await.effect, Effect::Deny);
}

#[tokio::test]
async fn datalog_files_see_the_tokens_authority_facts() {
    let root = KeyPair::new();
    let s = PolicySet::builder()
        .datalog_source("rights.datalog", r#"allow if function($f), right($f);"#)
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    let id = biscuit_identity(&root_token(&root));
    assert_eq!(eval(&s, PolicyInput::new(&id, &call("payments/list", json!(null)))).await.effect, Effect::Allow);
    assert_eq!(eval(&s, PolicyInput::new(&id, &call("admin/wipe", json!(null)))).await.effect, Effect::Deny);
    // An attenuated block's facts are not trusted by the authorizer's policies.
    let forged = root_token(&root).append(BlockBuilder::new().code(r#"right("admin/wipe");"#).unwrap()).unwrap();
    let id = biscuit_identity(&forged);
    assert_eq!(eval(&s, PolicyInput::new(&id, &call("admin/wipe", json!(null)))).await.effect, Effect::Deny);
}

#[tokio::test]
async fn a_token_without_a_root_key_or_from_another_root_is_denied() {
    let root = KeyPair::new();
    let allow_all = config("[[rules]]\nname = \"all\"\neffect = \"allow\"\n");
    let id = biscuit_identity(&root_token(&root));
    let no_key = PolicySet::builder().config(&allow_all).build().unwrap();
    let d = eval(&no_key, PolicyInput::new(&id, &call("f", json!(null)))).await;
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.reason.contains("root public key"), "{}", d.reason);
    let other = PolicySet::builder().config(&allow_all).biscuit_root_key(KeyPair::new().public()).build().unwrap();
    assert_eq!(eval(&other, PolicyInput::new(&id, &call("f", json!(null)))).await.effect, Effect::Deny);
}

#[tokio::test]
async fn a_hostile_token_hits_the_limits_and_is_denied() {
    let root = KeyPair::new();
    let s = PolicySet::builder()
        .config(&config("[[rules]]\nname = \"all\"\neffect = \"allow\"\n"))
        .datalog_source("p.datalog", "allow if true;")
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    // A block whose rule derives a cartesian product: 40^3 facts.
    let mut code: String = (0..40).map(|i| format!("a({i});\n")).collect();
    code.push_str("p($x, $y, $z) <- a($x), a($y), a($z);\ncheck if p(-1, -1, -1);");
    let hostile = root_token(&root).append(BlockBuilder::new().code(&code).unwrap()).unwrap();
    let id = biscuit_identity(&hostile);
    let d = eval(&s, PolicyInput::new(&id, &call("f", json!(null)))).await;
    assert_eq!(d.effect, Effect::Deny, "{d:?}");
    assert!(d.reason.contains("limits"), "{}", d.reason);
    assert!(d.rule.unwrap().ends_with(": limits"));

    // The same without any Datalog file: the token-only pass is bounded too.
    let rules_only = PolicySet::builder()
        .config(&config("[[rules]]\nname = \"all\"\neffect = \"allow\"\n"))
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    let d = eval(&rules_only, PolicyInput::new(&id, &call("f", json!(null)))).await;
    assert_eq!(d.effect, Effect::Deny);
    assert!(d.reason.contains("limits"), "{}", d.reason);
}

#[tokio::test]
async fn explain_reports_datalog_and_token_verdicts() {
    let root = KeyPair::new();
    let s = PolicySet::builder()
        .datalog_source("p.datalog", "allow if group(\"agents\");")
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    let narrowed =
        root_token(&root).append(BlockBuilder::new().code(r#"check if function("payments/list");"#).unwrap()).unwrap();
    let id = biscuit_identity(&narrowed);
    let c = call("payments/refund", json!(null));
    let ex = s.explain(&PolicyInput::new(&id, &c)).await;
    assert_eq!(ex.decision.effect, Effect::Deny);
    assert_eq!(ex.rules.len(), 1);
    assert_eq!(ex.rules[0].kind, RuleKind::Datalog);
    assert!(ex.rules[0].reason.contains("check failed"));
}

#[tokio::test]
async fn a_reload_with_a_broken_file_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.datalog");
    std::fs::write(&file, "allow if group(\"ops\");").unwrap();
    let config: PolicyConfig = toml::from_str("[[datalog]]\nfile = \"p.datalog\"\n").unwrap();
    let policies =
        cloakroom_policy::Policies::new(PolicySet::builder().config(&config).base_dir(dir.path()).build().unwrap());
    let (id, c) = (who("a", &["ops"]), call("f", json!(null)));
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Allow);

    std::fs::write(&file, "allow if group(").unwrap();
    let err = policies.reload(&config).unwrap_err();
    assert!(matches!(err, PolicyError::Datalog { .. }), "{err}");
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Allow);

    std::fs::write(&file, "deny if group(\"ops\");\nallow if true;").unwrap();
    policies.reload(&config).unwrap();
    assert_eq!(policies.evaluate(&PolicyInput::new(&id, &c)).await.effect, Effect::Deny);
}
