//! The `CallLayer` (docs/reference.md, the data path, layer 4): which function, which arguments.
//!
//! It reads the whole request body (refusing bodies over `max_body_bytes` with 413
//! before anything is forwarded; on MCP functions the 413 carries a JSON-RPC error,
//! code -32005 with id `null`), finds the function in the [`Routed`](crate::route::Routed)
//! extension, and puts a [`Call`](cloakroom_core::Call) into the request extensions:
//!
//! - `http` functions: the function is the configured `name`, `detail` the first path
//!   segment below the route, the arguments the body parsed by the strict JSON parser
//!   ([`parse_strict_json`]) whatever its content type (`Null` for a body that neither
//!   parses nor claims JSON; one that claims JSON and does not parse is refused with
//!   `bad_request`), the digest SHA-256 of the canonical JSON arguments or of the raw body.
//! - before the body is read: a target the edge could not normalize
//!   ([`RefusedTarget`](crate::route::RefusedTarget)), method or path override headers
//!   and compressed request bodies are refused with `bad_request`; after it, a `_method`
//!   parameter (query, form, top-level JSON) is.
//! - `mcp` functions: the JSON-RPC body is parsed; `tools/call` is the function
//!   `<name>/<tool>` with `params.arguments`; other methods are the function `<name>`
//!   with the method as `detail`. Malformed or ambiguous JSON gets -32700, a batch of
//!   more than 64 messages -32600, `Mcp-Method`/`Mcp-Name`
//!   headers that disagree with the body get 400 and -32020 — before policy runs.
//!
//! With an [`Identity`](cloakroom_core::Identity) on the request it also puts the call's
//! [`CallScope`](cloakroom_core::CallScope) there: everything an approval binds (caller,
//! function, method, path, query, content type, every placeholder with its location, body
//! digest), built here once so that policy and the detokenizer bind the same call.
//!
//! For MCP functions it is also the rescue step: an error response from an inner layer
//! (policy, detokenizer, forwarder) becomes a JSON-RPC error for the caller's request
//! id, and a `tools/list` result is filtered to the tools the caller may call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use cloakroom_core::Call;
//! use cloakroom_gateway::{call::CallLayer, config::FunctionConfig, route::{Function, Routed}};
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let f = Function::new(FunctionConfig {
//!     name: "payments".into(), protocol: cloakroom_core::Protocol::Http,
//!     upstream: "http://127.0.0.1:9".into(), route: "/fn/payments".into(), preserve_host: false, ca_file: None,
//! }).unwrap();
//! let svc = ServiceBuilder::new().layer(CallLayer::new(1024)).service(service_fn(|req: Request<Full<Bytes>>| async move {
//!     let call = req.extensions().get::<Call>().unwrap().clone();
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{} {:?} {}", call.function, call.detail, call.arguments["amount"])))))
//! }));
//! let mut req = Request::post("/fn/payments/charge").header("content-type", "application/json")
//!     .body(Full::new(Bytes::from(r#"{"amount": 5}"#))).unwrap();
//! req.extensions_mut().insert(Routed { function: Arc::new(f), rest: "/charge".into() });
//! let res = svc.oneshot(req).await.unwrap();
//! let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
//! assert_eq!(body, "payments Some(\"charge\") 5");
//! # }
//! ```

mod digest;
mod future;
mod layer;
mod parse;
mod refuse;
pub mod rescue;
mod scope;
mod service;

pub use crate::json::{parse_strict_json, JsonRefusal};
pub use digest::call_digest;
pub use future::ResponseFuture;
pub use layer::{CallLayer, CallName, Namer, SecretScanner, ToolVisibility};
pub use service::{CallBody, NameCall};
