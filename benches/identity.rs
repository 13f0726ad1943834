//! Identity verification costs (cloakroom-identity).
//!
//! - `cached_jwt`: a repeated OIDC token, answered from the verified-token cache
//!   (target < 2 µs).
//! - `cold_jwt/<alg>`: a token not in the cache, verified against the already-fetched
//!   JWKS (signature check + claims), with the cache turned off.
//! - `api_key`: SHA-256 and constant-time compare against 16 configured keys.
//!
//! The JWKS comes from the testkit's local issuer on 127.0.0.1, fetched once before
//! measuring; nothing measured touches the network. Run:
//! `cargo bench -p cloakroom-benches --bench identity -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)]

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use cloakroom_core::Identity;
use cloakroom_identity::{ApiKeyConfig, AuthError, Authenticator, IdentityConfig, OidcIssuerConfig};
use cloakroom_testkit::{OidcIssuer, OidcTestKey, OIDC_TEST_AUDIENCE};
use criterion::{criterion_group, criterion_main, Criterion};

/// `printf %s ck_live_bench_key | sha256sum`
const BENCH_KEY_SHA256: &str = "848bf8d05194bebd615e89dfc539bae221d0e043b64006d989f099c407ab0442";

/// Runs a verification that never waits (keys cached): polled once, it is ready.
fn now_or_never(fut: impl Future<Output = Result<Identity, AuthError>>) -> Identity {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.expect("token verifies"),
        Poll::Pending => panic!("verification waited: keys were not cached"),
    }
}

fn authenticator(issuer: &OidcIssuer, cache: usize) -> Authenticator {
    let config = IdentityConfig {
        oidc: vec![OidcIssuerConfig::new(issuer.issuer.clone(), vec![OIDC_TEST_AUDIENCE.to_owned()])],
        token_cache_capacity: cache,
        ..Default::default()
    };
    Authenticator::new(&config).expect("config")
}

fn identity(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let keys = [
        OidcTestKey::rsa(1, "rs256", "RS256"),
        OidcTestKey::rsa(1, "ps256", "PS256"),
        OidcTestKey::es256("es256"),
        OidcTestKey::ed25519("eddsa"),
    ];
    let issuer = rt.block_on(OidcIssuer::start(&keys.iter().collect::<Vec<_>>()));

    let cached = authenticator(&issuer, 10_000);
    rt.block_on(cached.warm_up()).expect("JWKS");
    let token = keys[0].sign(&issuer.claims("alice"));
    rt.block_on(cached.verify_token(&token)).expect("first verification");
    c.bench_function("identity/cached_jwt", |b| b.iter(|| now_or_never(cached.verify_token(black_box(&token)))));

    let cold = authenticator(&issuer, 0);
    rt.block_on(cold.warm_up()).expect("JWKS");
    let mut group = c.benchmark_group("identity/cold_jwt");
    for key in &keys {
        let token = key.sign(&issuer.claims("alice"));
        group.bench_function(key.alg.as_str(), |b| b.iter(|| now_or_never(cold.verify_token(black_box(&token)))));
    }
    group.finish();

    let config = IdentityConfig {
        // Fifteen other keys and the one presented, last: every hash is compared anyway.
        api_keys: (0..16u8)
            .map(|i| ApiKeyConfig {
                subject: format!("bot-{i}"),
                groups: vec!["ci".into()],
                sha256: if i == 15 { BENCH_KEY_SHA256.to_owned() } else { format!("{i:02x}").repeat(32) },
            })
            .collect(),
        ..Default::default()
    };
    let api = Authenticator::new(&config).unwrap();
    c.bench_function("identity/api_key", |b| b.iter(|| now_or_never(api.verify_token(black_box("ck_live_bench_key")))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = identity
}
criterion_main!(benches);
