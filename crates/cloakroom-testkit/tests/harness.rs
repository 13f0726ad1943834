//! The harness itself works against the real components.

use cloakroom_testkit::{OpenBao, PgDatabase, RecordingUpstream, Reply};

#[tokio::test]
async fn openbao_dev_server_starts_and_serves_kv_v2() {
    let bao = OpenBao::start();
    let (status, _) =
        bao.api("POST", "/v1/secret/data/harness", Some(serde_json::json!({"data": {"value": "harness-value"}}))).await;
    assert_eq!(status, 200);
    let (status, body) = bao.api("GET", "/v1/secret/data/harness", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"]["value"], "harness-value");
    let out = bao.cli(&["kv", "get", "-field=value", "secret/harness"]);
    assert_eq!(out.trim(), "harness-value");
}

#[test]
fn postgres_database_is_created_and_dropped() {
    let name;
    {
        let db = PgDatabase::create();
        name = db.name.clone();
        let url = db.url.clone();
        let n: i32 = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.query_one("SELECT 41 + 1", &[]).unwrap().get(0)
        })
        .join()
        .unwrap();
        assert_eq!(n, 42);
    }
    let admin = std::env::var("CLOAKROOM_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into());
    let exists: i64 = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).unwrap().get(0)
    })
    .join()
    .unwrap();
    assert_eq!(exists, 0, "database was not dropped");
}

#[tokio::test]
async fn recording_upstream_records_and_replies() {
    let up = RecordingUpstream::start(|req| {
        let mut r = Reply::chunks(vec!["a".into(), "b".into()]);
        r.headers.push(("x-seen".into(), req.uri.clone()));
        r
    })
    .await;
    let res = reqwest::Client::new().post(format!("{}/p?q=1", up.url())).body("hello").send().await.unwrap();
    assert_eq!(res.headers()["x-seen"], "/p?q=1");
    assert_eq!(res.text().await.unwrap(), "ab");
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body_text(), "hello");
    assert_eq!(reqs[0].method, "POST");
}
