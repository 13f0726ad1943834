//! Policy evaluation costs (cloakroom-policy).
//!
//! - `rules/100`: 100 built-in rules evaluated for one call; 97 name other functions,
//!   two match the function but fail on groups or arguments, the last one allows
//!   (target < 5 µs).
//! - `datalog/20`: one Datalog file of 20 `deny if` / `allow if` policies over the
//!   call's facts (user, groups, function, protocol, source ip, time, 6 arguments),
//!   the last policy allowing (target < 200 µs).
//! - `datalog/20+token`: the same with the caller's Biscuit token (signature check and
//!   its checks run in the same authorizer).
//! - `explain/100`: `explain` over the 100 rules (the offline CLI path).
//!
//! Run:
//! `cargo bench -p cloakroom-benches --bench policy -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};

use cloakroom_core::{AuthMethod, BiscuitToken, Call, Decision, Effect, Identity, Protocol};
use cloakroom_policy::{
    biscuit_auth::{Biscuit, BlockBuilder, KeyPair},
    PolicyConfig, PolicyInput, PolicySet, RuleConfig,
};
use criterion::{criterion_group, criterion_main, Criterion};

/// Evaluation without custom policies never waits: polled once, it is ready.
fn now_or_never<T>(fut: impl Future<Output = T>) -> T {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("policy evaluation waited"),
    }
}

fn rule(name: String, effect: Effect, functions: &[&str], groups: &[&str]) -> RuleConfig {
    RuleConfig {
        name,
        effect,
        functions: functions.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        subjects: vec![],
        source_cidrs: vec![],
        methods: vec![],
        arguments: Default::default(),
        approvers: vec![],
        mode: Default::default(),
    }
}

fn hundred_rules() -> PolicyConfig {
    let mut rules: Vec<RuleConfig> = (0..97)
        .map(|i| {
            let mut r = rule(format!("service {i}"), Effect::Allow, &[&format!("svc{i}/*")], &["ops"]);
            r.source_cidrs = vec!["10.0.0.0/8".into(), "fd00::/8".into()];
            r
        })
        .collect();
    rules.push(rule("payments for finance".into(), Effect::Allow, &["payments/*"], &["finance"]));
    let mut sql = rule("no drops".into(), Effect::Deny, &["payments/**"], &[]);
    sql.arguments.insert("/memo".into(), r"(?i)\bdrop\s+table\b".into());
    rules.push(sql);
    let mut last = rule("payments for ops".into(), Effect::Allow, &["payments/*"], &["ops"]);
    last.source_cidrs = vec!["10.0.0.0/8".into()];
    last.methods = vec!["POST".into()];
    rules.push(last);
    PolicyConfig { rules, ..Default::default() }
}

fn twenty_datalog_policies() -> String {
    let mut src = String::new();
    for i in 0..10 {
        src.push_str(&format!("deny if function(\"admin/op{i}\"), group(\"ops\");\n"));
    }
    for i in 0..9 {
        src.push_str(&format!("allow if function(\"svc{i}/call\"), group(\"team{i}\");\n"));
    }
    src.push_str(
        "allow if user($u), group(\"ops\"), function($f), $f.starts_with(\"payments/\"), \
         argument(\"/amount\", $a), $a < 10000, source_ip($ip), time($t), $t > 2020-01-01T00:00:00Z;\n",
    );
    src
}

fn caller(biscuit: Option<BiscuitToken>) -> Identity {
    Identity::new(
        "alice".into(),
        if biscuit.is_some() { "biscuit" } else { "api_key" }.into(),
        if biscuit.is_some() { AuthMethod::Biscuit } else { AuthMethod::ApiKey },
    )
    .with_groups(vec!["ops".into(), "dev".into(), "oncall".into()])
    .with_source_ip(Some("10.1.2.3".parse().unwrap()))
    .with_biscuit(biscuit)
}

/// `v`, typed like `anchor` (serde_json is not a dependency of the benches crate: the
/// call's own argument field names the type).
fn like<T>(_anchor: &T, v: T) -> T {
    v
}

fn the_call() -> Call {
    let mut call = Call::new("payments/refund".into(), Protocol::Http)
        .with_arguments(Default::default())
        .with_method("POST".into())
        .with_digest("0".repeat(64));
    let a = &call.arguments;
    let args = vec![
        ("amount".to_owned(), like(a, 900_i64.into())),
        ("currency".to_owned(), like(a, "EUR".into())),
        ("customer".to_owned(), like(a, "cus_123".into())),
        ("memo".to_owned(), like(a, "refund for order 42".into())),
        ("express".to_owned(), like(a, true.into())),
        ("card".to_owned(), like(a, "cloak_abcdefghijklmnopqrstuvwxyz".into())),
    ];
    call.arguments = like(a, args.into_iter().collect());
    call
}

fn check(d: Decision, rule: &str) {
    assert_eq!(d.effect, Effect::Allow, "{d:?}");
    assert!(d.rule.as_deref().unwrap_or_default().starts_with(rule), "{d:?}");
}

fn bench_policy(c: &mut Criterion) {
    let call = the_call();

    let rules = PolicySet::builder().config(&hundred_rules()).build().unwrap();
    let id = caller(None);
    check(now_or_never(rules.evaluate(&PolicyInput::new(&id, &call))), "payments for ops");
    c.bench_function("rules/100", |b| {
        b.iter(|| black_box(now_or_never(rules.evaluate(black_box(&PolicyInput::new(&id, &call))))))
    });
    c.bench_function("explain/100", |b| {
        b.iter(|| black_box(now_or_never(rules.explain(black_box(&PolicyInput::new(&id, &call))))))
    });

    let root = KeyPair::new();
    let datalog = PolicySet::builder()
        .datalog_source("bench.datalog", twenty_datalog_policies())
        .biscuit_root_key(root.public())
        .build()
        .unwrap();
    check(now_or_never(datalog.evaluate(&PolicyInput::new(&id, &call))), "bench.datalog: allow if user");
    c.bench_function("datalog/20", |b| {
        b.iter(|| black_box(now_or_never(datalog.evaluate(black_box(&PolicyInput::new(&id, &call))))))
    });

    let token = Biscuit::builder()
        .code(r#"user("alice"); right("payments/refund");"#)
        .unwrap()
        .build(&root)
        .unwrap()
        .append(BlockBuilder::new().code(r#"check if function($f), $f.starts_with("payments/");"#).unwrap())
        .unwrap();
    // As the identity layer leaves it: the verified token itself, not re-verified per call.
    let with_token = caller(Some(BiscuitToken::verified(token.to_vec().unwrap(), token.clone())));
    check(now_or_never(datalog.evaluate(&PolicyInput::new(&with_token, &call))), "bench.datalog: allow if user");
    c.bench_function("datalog/20+token", |b| {
        b.iter(|| black_box(now_or_never(datalog.evaluate(black_box(&PolicyInput::new(&with_token, &call))))))
    });
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
