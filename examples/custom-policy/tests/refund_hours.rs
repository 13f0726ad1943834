//! The custom policy in a policy set, next to a built-in rule.

use std::sync::Arc;

use cloakroom_core::{AuthMethod, Call, Effect, Identity, Protocol};
use cloakroom_example_custom_policy::RefundHours;
use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet, RuleKind};
use time::macros::datetime;

fn set() -> PolicySet {
    let config: PolicyConfig = toml::from_str(
        r#"
        [[rules]]
        name = "support may refund"
        effect = "allow"
        functions = ["payments/*"]
        groups = ["support"]
        "#,
    )
    .unwrap();
    PolicySet::builder()
        .config(&config)
        .custom(Arc::new(RefundHours::new(500, vec!["finance-leads".into()])))
        .build()
        .unwrap()
}

fn support() -> Identity {
    Identity::new("sam".into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec!["support".into()])
}

fn refund(amount: serde_json::Value) -> Call {
    Call::new("payments/refund".into(), Protocol::Http)
        .with_arguments(serde_json::json!({ "amount": amount }))
        .with_method("POST".into())
        .with_digest("d".into())
}

#[tokio::test]
async fn large_refunds_outside_business_hours_need_approval() {
    let (s, id) = (set(), support());
    let saturday = datetime!(2026-11-28 11:00 UTC);
    let tuesday_night = datetime!(2026-11-24 22:30 UTC);
    let tuesday_noon = datetime!(2026-11-24 12:00 UTC);

    let big = refund(serde_json::json!(900));
    let d = s.evaluate(&PolicyInput::new(&id, &big).at(saturday)).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Approve, Some("refund-hours")));
    assert_eq!(d.approvers, vec!["finance-leads".to_string()]);
    assert_eq!(s.evaluate(&PolicyInput::new(&id, &big).at(tuesday_night)).await.effect, Effect::Approve);
    // In business hours the built-in rule alone decides.
    let d = s.evaluate(&PolicyInput::new(&id, &big).at(tuesday_noon)).await;
    assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("support may refund")));
}

#[tokio::test]
async fn small_refunds_and_other_functions_are_left_to_the_other_rules() {
    let (s, id) = (set(), support());
    let saturday = datetime!(2026-11-28 11:00 UTC);
    let small = refund(serde_json::json!(40));
    assert_eq!(s.evaluate(&PolicyInput::new(&id, &small).at(saturday)).await.effect, Effect::Allow);
    let mut list = small.clone();
    list.function = "payments/list".into();
    assert_eq!(s.evaluate(&PolicyInput::new(&id, &list).at(saturday)).await.effect, Effect::Allow);
    // The custom policy never allows on its own: an outsider is still denied by default.
    let mut outsider = support();
    outsider.groups.clear();
    assert_eq!(s.evaluate(&PolicyInput::new(&outsider, &small).at(saturday)).await.effect, Effect::Deny);
}

#[tokio::test]
async fn an_unreadable_amount_counts_as_large() {
    let (s, id) = (set(), support());
    let sunday = datetime!(2026-11-29 03:00 UTC);
    assert_eq!(s.evaluate(&PolicyInput::new(&id, &refund("lots".into())).at(sunday)).await.effect, Effect::Approve);
    assert_eq!(s.evaluate(&PolicyInput::new(&id, &refund("20".into())).at(sunday)).await.effect, Effect::Allow);
}

#[tokio::test]
async fn explain_shows_the_custom_policy() {
    let (s, id) = (set(), support());
    let ex =
        s.explain(&PolicyInput::new(&id, &refund(serde_json::json!(900))).at(datetime!(2026-11-28 11:00 UTC))).await;
    assert_eq!(ex.decision.effect, Effect::Approve);
    let custom = ex.rules.iter().find(|r| r.kind == RuleKind::Custom).unwrap();
    assert!(custom.matched);
    assert_eq!(custom.name, "refund-hours");
}

#[tokio::test]
async fn the_policy_abstains_on_calls_it_has_no_opinion_about() {
    use cloakroom_policy::Policy;
    let policy = RefundHours::new(500, vec!["finance-leads".into()]);
    let id = support();
    let saturday = datetime!(2026-11-28 11:00 UTC);
    // Not a refund, or a small one: `None`, not a deny.
    let mut list = refund(serde_json::json!(900));
    list.function = "payments/list".into();
    assert_eq!(policy.evaluate(&PolicyInput::new(&id, &list).at(saturday)).await, None);
    assert_eq!(policy.evaluate(&PolicyInput::new(&id, &refund(serde_json::json!(40))).at(saturday)).await, None);
    let d = policy.evaluate(&PolicyInput::new(&id, &refund(serde_json::json!(900))).at(saturday)).await.unwrap();
    assert_eq!(d.effect, Effect::Approve);
    // explain reports an abstention as not matched.
    let ex = set().explain(&PolicyInput::new(&id, &list).at(saturday)).await;
    let custom = ex.rules.iter().find(|r| r.kind == RuleKind::Custom).unwrap();
    assert!(!custom.matched, "{custom:?}");
    assert_eq!(ex.decision.effect, Effect::Allow);
}
