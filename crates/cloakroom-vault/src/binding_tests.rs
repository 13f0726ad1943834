use time::{Duration, OffsetDateTime};

use super::*;

fn binding() -> Binding {
    Binding::compile(BindingSpec {
        functions: vec!["payments".into(), "payments/*".into()],
        locations: vec!["header:Authorization".into(), "query:key".into(), "json:/card/token".into()],
        groups: vec!["payments-ops".into()],
        approvers: vec![],
        expires: None,
        ..Default::default()
    })
    .unwrap()
}

const OPS: &[&str] = &["payments-ops"];
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn all_rules_hold_so_the_use_is_allowed() {
    let b = binding();
    assert_eq!(b.check("payments/refund", &Found::Header("authorization".into()), OPS, now()), Ok(()));
    assert_eq!(b.check("payments", &Found::Query("key".into()), OPS, now()), Ok(()));
    assert_eq!(b.check("payments", &Found::Body(Some("/card/token".into())), OPS, now()), Ok(()));
}

#[test]
fn function_outside_the_globs_is_refused() {
    let b = binding();
    let h = Found::Header("authorization".into());
    assert_eq!(b.check("payroll", &h, OPS, now()), Err(Refusal::Function));
    assert_eq!(b.check("payments/refund/partial", &h, OPS, now()), Err(Refusal::Function));
}

#[test]
fn location_outside_the_list_is_refused() {
    let b = binding();
    for found in [
        Found::Header("x-api-key".into()),
        Found::Query("other".into()),
        Found::Body(Some("/card".into())),
        Found::Body(None),
    ] {
        assert_eq!(b.check("payments", &found, OPS, now()), Err(Refusal::Location), "{found}");
    }
}

#[test]
fn header_location_is_case_insensitive_and_query_is_not() {
    let b = binding();
    assert!(b.allows_location(&Found::Header("AUTHORIZATION".into())));
    assert!(!b.allows_location(&Found::Query("KEY".into())));
}

#[test]
fn body_location_covers_every_body_place() {
    let b = Binding::compile(BindingSpec {
        functions: vec!["**".into()],
        locations: vec!["body".into()],
        ..Default::default()
    })
    .unwrap();
    assert!(b.allows_location(&Found::Body(None)));
    assert!(b.allows_location(&Found::Body(Some("/a/0".into()))));
    assert!(!b.allows_location(&Found::Header("authorization".into())));
}

#[test]
fn caller_outside_the_groups_is_refused_and_empty_groups_allow_anyone() {
    let b = binding();
    let h = Found::Header("authorization".into());
    assert_eq!(b.check("payments", &h, &["ops"], now()), Err(Refusal::Group));
    assert_eq!(b.check::<&str>("payments", &h, &[], now()), Err(Refusal::Group));
    let open = Binding::compile(BindingSpec {
        functions: vec!["payments".into()],
        locations: vec!["header:authorization".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(open.check::<&str>("payments", &h, &[], now()), Ok(()));
}

#[test]
fn expired_binding_is_refused() {
    let mut spec = binding().spec().clone();
    spec.expires = Some(now() - Duration::seconds(1));
    let b = Binding::compile(spec.clone()).unwrap();
    assert_eq!(b.check("payments", &Found::Header("authorization".into()), OPS, now()), Err(Refusal::Expired));
    spec.expires = Some(now() + Duration::hours(1));
    let b = Binding::compile(spec).unwrap();
    assert_eq!(b.check("payments", &Found::Header("authorization".into()), OPS, now()), Ok(()));
}

#[test]
fn bad_locations_and_globs_are_refused() {
    for bad in ["header:", "headers:x", "json:card", "query:", "anywhere", "header:bad name"] {
        assert!(Location::parse(bad).is_err(), "{bad}");
    }
    let err = Binding::compile(BindingSpec { functions: vec!["pay[".into()], ..Default::default() }).unwrap_err();
    assert!(matches!(err, BindingError::Function(_)));
}

#[test]
fn spec_round_trips_through_json() {
    let mut spec = binding().spec().clone();
    spec.expires = Some(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    spec.approvers = vec!["finance-leads".into()];
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<BindingSpec>(&json).unwrap(), spec);
}
