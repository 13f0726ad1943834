use std::{sync::Arc, time::Duration};

use super::*;

fn per(count: u64, secs: u64) -> Option<UsesPer> {
    Some(UsesPer { count, period: Duration::from_secs(secs) })
}

#[test]
fn windows_are_aligned_to_the_epoch() {
    assert_eq!(window_of(0, 60), 0);
    assert_eq!(window_of(59, 60), 0);
    assert_eq!(window_of(60, 60), 1);
    assert_eq!(window_end(1, 60), Some(120));
    assert_eq!(window_end(0, 0), None, "a total never refills");
    assert_eq!(window_of(7, 0), 7, "a zero period is not divided by");
}

#[test]
fn a_budget_counts_the_total_and_the_window_per_secret_or_per_caller() {
    let b = Budget::new(None, per(5, 3600), BudgetScope::Secret).unwrap().unwrap();
    let c = b.counters("k", "api_key alice", 7300);
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].period_secs, c[0].limit, c[0].caller.as_str()), (0, UNLIMITED, ""));
    assert_eq!((c[1].period_secs, c[1].window, c[1].limit), (3600, 2, 5));
    let b = Budget::new(Some(3), None, BudgetScope::Caller).unwrap().unwrap();
    let c = b.counters("k", "api_key alice", 0);
    assert_eq!((c.len(), c[0].limit, c[0].caller.as_str()), (1, 3, "api_key alice"));
    assert_eq!(Budget::new(None, None, BudgetScope::Secret).unwrap(), None);
}

proptest::proptest! {
    #[test]
    fn now_is_inside_its_window_and_retry_after_is_at_most_the_period(now in 0u64..1u64 << 40, period in 1u64..1_000_000) {
        let w = window_of(now, period);
        let end = window_end(w, period).unwrap();
        proptest::prop_assert!(w * period <= now && now < end);
        proptest::prop_assert!((1..=period).contains(&(end - now)));
    }
}

async fn spends_all_or_nothing(store: Arc<dyn BudgetStore>) {
    let a = Budget::new(Some(2), None, BudgetScope::Secret).unwrap().unwrap();
    let b = Budget::new(None, per(1, 60), BudgetScope::Secret).unwrap().unwrap();
    let now = 600;
    spend(&*store, &[("a", &a), ("b", &b)], "", now).await.unwrap();
    // b's window is spent: a is not charged either.
    let refused = spend(&*store, &[("a", &a), ("b", &b)], "", now + 1).await.unwrap_err();
    match &refused {
        BudgetRefusal::Exhausted { secret, retry_after, .. } => {
            assert_eq!((secret.as_str(), *retry_after), ("b", Some(59)));
        }
        other => panic!("{other}"),
    }
    assert_eq!(refused.to_error().retry_after, Some(59));
    assert_eq!(store.count("a", 0, 0).await.unwrap(), 1);
    // Naming a secret twice is one use.
    spend(&*store, &[("a", &a), ("a", &a)], "", now).await.unwrap();
    assert_eq!(store.count("a", 0, 0).await.unwrap(), 2);
    let spent = spend(&*store, &[("a", &a)], "", now).await.unwrap_err();
    assert!(matches!(spent, BudgetRefusal::Exhausted { retry_after: None, .. }), "{spent}");
    assert_eq!(spent.to_error().code, cloakroom_core::ErrorCode::BudgetExhausted);
    // The next window refills b and keeps the one before (a replica whose clock lags
    // is still counting in it); the window after forgets it.
    spend(&*store, &[("b", &b)], "", now + 60).await.unwrap();
    assert_eq!(store.count("b", 60, 11).await.unwrap(), 1);
    assert_eq!(store.count("b", 60, 10).await.unwrap(), 1, "the previous window is kept");
    spend(&*store, &[("b", &b)], "", now + 120).await.unwrap();
    assert_eq!(store.count("b", 60, 10).await.unwrap(), 0, "windows before the previous are forgotten");
    assert_eq!(store.count("b", 60, 11).await.unwrap(), 1);
    assert_eq!(store.count("b", 0, 0).await.unwrap(), 3);
    // Per caller: each caller has the whole budget; the listing sums them.
    let c = Budget::new(Some(1), None, BudgetScope::Caller).unwrap().unwrap();
    spend(&*store, &[("c", &c)], "x alice", now).await.unwrap();
    assert!(spend(&*store, &[("c", &c)], "x alice", now).await.is_err());
    spend(&*store, &[("c", &c)], "x bob", now).await.unwrap();
    assert_eq!(store.count("c", 0, 0).await.unwrap(), 2);
}

#[tokio::test]
async fn the_memory_store_spends_all_or_nothing() {
    spends_all_or_nothing(Arc::new(MemoryBudgets::new())).await;
}

#[tokio::test]
async fn the_embedded_store_spends_all_or_nothing_and_keeps_counts_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    spends_all_or_nothing(Arc::new(EmbeddedBudgets::open(dir.path()).unwrap())).await;
    let reopened = EmbeddedBudgets::open(dir.path()).unwrap();
    assert_eq!(reopened.count("a", 0, 0).await.unwrap(), 2);
}

#[tokio::test]
async fn the_postgres_store_spends_all_or_nothing_and_never_overspends_under_concurrency() {
    let pg = cloakroom_testkit::PgDatabase::create();
    let store = Arc::new(PostgresBudgets::connect(&pg.url).await.unwrap());
    // Opening again (another replica) migrates nothing twice.
    PostgresBudgets::connect(&pg.url).await.unwrap();
    spends_all_or_nothing(store.clone()).await;
    let d = Budget::new(Some(10), None, BudgetScope::Secret).unwrap().unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (store, d) = (store.clone(), d.clone());
        tasks.spawn(async move { spend(&*store, &[("d", &d)], "", 0).await.is_ok() });
    }
    let mut passed = 0;
    while let Some(ok) = tasks.join_next().await {
        passed += usize::from(ok.unwrap());
    }
    assert_eq!(passed, 10);
    assert_eq!(store.count("d", 0, 0).await.unwrap(), 10);
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_store_error_not_a_pass() {
    let bad = PostgresBudgets::connect("host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=2").await;
    let err = bad.unwrap_err();
    assert!(err.to_string().starts_with("budget store unavailable"), "{err}");
}
