//! Detokenizing a request: a 4 KiB JSON body holding 3 placeholders, 10,000 secrets in
//! the catalog, through the `DetokenizeLayer` (buffer, find, check bindings, substitute,
//! fix Content-Length). Target: under 20 µs per call on one core.
//!
//! cargo bench -p cloakroom-benches --bench detokenize -- --warm-up-time 1 --measurement-time 3

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::convert::Infallible;

use bytes::Bytes;
use cloakroom_core::{AuthMethod, Call, Identity, Protocol};
use cloakroom_vault::{BindingSpec, Catalog, DetokenizeLayer, Key, MemoryVault};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = Key::generate();
    let store = MemoryVault::new();
    {
        for i in 0..10_000 {
            let binding = BindingSpec {
                functions: vec!["payments/*".into()],
                locations: vec!["json:/card/token".into(), "json:/auth/key".into(), "body".into()],
                groups: vec!["payments-ops".into()],
                ..Default::default()
            };
            store.insert(&format!("secret_{i}"), format!("sk_live_{i:08}_abcdefghijklmnop").into(), Some(binding));
        }
    }
    let catalog = rt.block_on(Catalog::new(std::sync::Arc::new(store), key.clone(), &[], None)).unwrap();
    assert_eq!(catalog.snapshot().len(), 10_000);
    let ph = |i: usize| key.placeholder_for(&format!("secret_{i}"));

    // A 4 KiB JSON document with three placeholders in it.
    let mut filler = String::new();
    let mut n = 0;
    while filler.len() < 3920 {
        filler.push_str(&format!("\"field_{n}\": \"some ordinary text value number {n}\", "));
        n += 1;
    }
    let body = format!(
        r#"{{{filler}"card": {{"token": "{}"}}, "auth": {{"key": "{}"}}, "note": "ref {} end"}}"#,
        ph(17),
        ph(4242),
        ph(9999)
    );
    assert!((4000..4200).contains(&body.len()), "body is {} bytes", body.len());
    let body = Bytes::from(body);

    let inner = tower::service_fn(|req: http::Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
            req.headers()["content-length"].as_bytes().to_vec(),
        ))))
    });
    let svc = DetokenizeLayer::new(catalog).layer(inner);
    let identity =
        Identity::new("alice".into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec!["payments-ops".into()]);
    let call = Call::new("payments/charge".into(), Protocol::Http)
        .with_arguments(serde_json::Value::Null)
        .with_method("POST".into())
        .with_digest(String::new());
    let request = || {
        let mut req = http::Request::post("/fn/payments/charge")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .header("authorization", "Bearer caller-credential")
            .body(Full::new(body.clone()))
            .unwrap();
        req.extensions_mut().insert(identity.clone());
        req.extensions_mut().insert(call.clone());
        req
    };
    // The work is real: substituted and refused nothing.
    let res = rt.block_on(svc.clone().oneshot(request())).unwrap();
    assert_eq!(res.status(), 200);

    let mut group = c.benchmark_group("detokenize");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("json_4k_3_placeholders_10k_secrets", |b| {
        let mut svc = svc.clone();
        b.iter(|| {
            rt.block_on(async {
                let res = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
                    .await
                    .unwrap()
                    .call(request())
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
