use std::sync::Arc;

use http::Request;

use super::*;
use crate::{
    config::FunctionConfig,
    route::{Function, TargetError},
};

fn parts(req: http::request::Builder) -> Parts {
    req.body(()).unwrap().into_parts().0
}

fn routed() -> Routed {
    let f = Function::new(FunctionConfig {
        name: "sql".into(),
        protocol: Protocol::Http,
        upstream: "http://127.0.0.1:9".into(),
        route: "/fn/sql".into(),
        preserve_host: false,
        ca_file: None,
    })
    .unwrap();
    Routed { function: Arc::new(f), rest: "/q".into() }
}

#[test]
fn override_headers_are_refused_whatever_their_case() {
    for h in OVERRIDE_HEADERS {
        let upper = h.to_ascii_uppercase();
        let err = check_head(&parts(Request::get("/fn/sql/q").header(upper.as_str(), "DELETE"))).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest, "{h}");
    }
    assert!(check_head(&parts(Request::get("/fn/sql/q").header("x-other", "DELETE"))).is_ok());
}

#[test]
fn compressed_bodies_are_refused_and_identity_is_not() {
    for coding in ["gzip", "br", "zstd", "deflate", "identity, gzip", "x-gzip"] {
        let p = parts(Request::post("/fn/sql/q").header("content-encoding", coding));
        assert!(check_head(&p).is_err(), "{coding}");
    }
    assert!(check_head(&parts(Request::post("/fn/sql/q").header("content-encoding", "identity"))).is_ok());
}

#[test]
fn a_refused_target_is_a_bad_request() {
    let mut p = parts(Request::get("/fn/sql/q"));
    p.extensions.insert(RefusedTarget(TargetError::EncodedSlash));
    let err = check_head(&p).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("encoded slash"), "{}", err.message);
}

#[test]
fn a_method_parameter_is_refused_in_query_form_and_json() {
    let r = routed();
    let query = parts(Request::post("/fn/sql/q?a=1&_method=DELETE"));
    assert!(http_call(&r, &query, b"").is_err());
    let form = parts(Request::post("/fn/sql/q").header("content-type", "application/x-www-form-urlencoded"));
    assert!(http_call(&r, &form, b"a=1&%5Fmethod=DELETE").is_err());
    let err = http_call(&r, &form, b"a=1;b=2").unwrap_err();
    assert!(!err.message.contains("_method"), "a ';' in a form is not a method parameter: {}", err.message);
    let json = parts(Request::post("/fn/sql/q").header("content-type", "application/json"));
    assert!(http_call(&r, &json, br#"{"_method": "DELETE"}"#).is_err());
    assert!(http_call(&r, &json, br#"{"a": {"_method": "DELETE"}}"#).is_ok(), "only the top level is read");
}

#[test]
fn the_arguments_are_the_strict_parse() {
    let r = routed();
    let text = parts(Request::post("/fn/sql/q").header("content-type", "text/plain"));
    let call = http_call(&r, &text, br#"{"sql": "DROP TABLE t"}"#).unwrap();
    assert_eq!(call.arguments["sql"], "DROP TABLE t");
    assert_eq!(call.detail.as_deref(), Some("q"));
    let err = http_call(&r, &text, br#"{"sql": "DROP TABLE t", "n": NaN}"#).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
}

#[test]
fn a_form_body_is_arguments_and_ambiguous_forms_are_refused() {
    let r = routed();
    let form = parts(Request::post("/fn/sql/q").header("content-type", "application/x-www-form-urlencoded"));
    let call = http_call(&r, &form, b"sql=DROP+TABLE+t&n=%31&flag").unwrap();
    assert_eq!(call.arguments, serde_json::json!({"sql": "DROP TABLE t", "n": "1", "flag": ""}));
    for bad in [&b"sql=a&sql=b"[..], b"sql=a;b", b"sql=%zz", b"sql=\xff"] {
        assert!(http_call(&r, &form, bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(http_call(&r, &form, b"").unwrap().arguments, Value::Null);
}
