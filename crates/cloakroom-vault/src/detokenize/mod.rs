//! [`DetokenizeLayer`]: placeholders in a request become secrets, only where bound.
//!
//! The layer reads the request's headers, query string and whole body (buffered up to a
//! limit, so a refusal happens before a single byte is forwarded), finds every placeholder
//! the catalog knows, and checks each against its secret's binding: the call's function
//! (from the [`Call`](cloakroom_core::Call) extension), the place it was found, the
//! caller's groups (from [`Identity`](cloakroom_core::Identity)), the expiry, and for a
//! binding with approvers a granted approval. If every check holds the placeholders are
//! replaced (JSON-escaped inside JSON bodies, percent-encoded in the query and in form
//! bodies) and `Content-Length` is fixed; if any fails the call is refused with
//! `secret_not_bound` (403) and nothing is forwarded. Unknown `cloak_…` strings pass
//! untouched. What was used, and where, goes into the
//! [`AuditNote`](cloakroom_core::AuditNote) and the [`SecretsFound`] request extension —
//! never a value.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use cloakroom_core::{Call, Protocol};
//! use cloakroom_vault::{BindingSpec, Catalog, DetokenizeLayer, EmbeddedVault, Keys};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keys = Keys::generate();
//! let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
//! let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await.unwrap();
//! let spec = BindingSpec { functions: vec!["echo".into()], locations: vec!["header:authorization".into()], ..Default::default() };
//! let p = catalog.put("token", "s3cr3t".into(), Some(spec)).await.unwrap();
//!
//! // The inner service sees the secret.
//! let inner = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
//!     Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(auth))))
//! });
//! let svc = DetokenizeLayer::new(catalog).layer(inner);
//! let mut req = http::Request::new(Full::new(Bytes::new()));
//! req.headers_mut().insert("authorization", format!("Bearer {p}").parse().unwrap());
//! req.extensions_mut().insert(Call::new("echo".into(), Protocol::Http).with_method("GET".into()));
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "Bearer s3cr3t");
//! # });
//! ```

mod body;
mod future;
mod json;
mod layer;
mod service;
mod substitute;

pub use body::{InFlightBody, ResponseBody};
pub use future::ResponseFuture;
pub(crate) use json::{locate as json_locate, LocateError};
pub use layer::DetokenizeLayer;
pub use service::Detokenize;
pub use substitute::percent_decode_lossy;

use cloakroom_core::SecretUse;

/// Request extension set by the layer: the secrets substituted, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsFound(pub Vec<SecretUse>);

/// The default body limit (10 MiB, as `server.max_body_bytes`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub(crate) use tower::BoxError;
