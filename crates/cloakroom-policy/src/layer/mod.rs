//! `PolicyLayer`: decides every call before it goes any further.
//!
//! It reads the [`Identity`](cloakroom_core::Identity), the [`Call`](cloakroom_core::Call),
//! the [`ClientAddr`](cloakroom_core::ClientAddr) and the optional
//! [`SecretsInCall`](crate::SecretsInCall) from the request extensions, evaluates the
//! current policy set, writes the [`Decision`](cloakroom_core::Decision) into the request
//! extensions and the [`AuditNote`](cloakroom_core::AuditNote), and then:
//!
//! - **deny**: answers `403 forbidden`, naming the rule;
//! - **allow**: passes the request on;
//! - **approve**: with a `Cloakroom-Approval: <id>` header, consumes that approval if it
//!   matches this exact call (caller, function, argument digest; approved, unexpired,
//!   unused) and passes the request on — else `403 approval_invalid`. Without the header,
//!   creates an approval request and answers `202` with
//!   `{"status":"pending_approval","approval_id":"…","call_id":"…"}` (and a typed
//!   [`PendingApproval`] response extension, for the gateway to re-render for MCP);
//!   with `approvals.wait > 0` it first holds the call open until the request is decided
//!   or the wait ends.
//!
//! A request without an `Identity` or a `Call` is refused: the layer fails closed.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use cloakroom_core::{AuthMethod, Call, Identity, Protocol};
//! use cloakroom_policy::{Approvals, ApprovalsConfig, Policies, PolicyConfig, PolicyLayer, PolicySet, SledApprovalStore};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let config: PolicyConfig = toml::from_str(r#"
//!     [[rules]]
//!     name = "ops may echo"
//!     effect = "allow"
//!     functions = ["echo"]
//!     groups = ["ops"]
//! "#).unwrap();
//! let policies = Policies::new(PolicySet::builder().config(&config).build().unwrap());
//! let dir = tempfile::tempdir().unwrap();
//! let approvals = Approvals::new(Arc::new(SledApprovalStore::open(dir.path()).unwrap()), ApprovalsConfig::default());
//! let svc = ServiceBuilder::new()
//!     .layer(PolicyLayer::new(policies, approvals))
//!     .service(service_fn(|_req: http::Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hello"))))
//!     }));
//!
//! let mut req = http::Request::new(Full::new(Bytes::new()));
//! req.extensions_mut()
//!     .insert(Identity::new("bob".into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec!["dev".into()]));
//! req.extensions_mut()
//!     .insert(Call::new("echo".into(), Protocol::Http).with_method("POST".into()).with_digest("x".into()));
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 403); // bob is not in ops: denied by default
//! # });
//! ```

mod future;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use cloakroom_core::ResponseBody;
pub use future::ResponseFuture;
pub use layer::PolicyLayer;
pub use service::Authorize;

use serde::{Deserialize, Serialize};

/// The request header that carries an approval id.
pub const APPROVAL_HEADER: &str = "cloakroom-approval";

/// The `202` answer to a call that waits for approval; also put in that response's
/// extensions so the gateway can render it as a JSON-RPC error for MCP functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// Always `pending_approval`.
    pub status: String,
    /// The approval id to send back as `Cloakroom-Approval` once approved.
    pub approval_id: String,
    /// The id of the call that asked.
    pub call_id: Option<String>,
}

impl PendingApproval {
    /// A pending answer for approval `approval_id`.
    pub fn new(approval_id: impl Into<String>, call_id: Option<String>) -> Self {
        Self { status: "pending_approval".into(), approval_id: approval_id.into(), call_id }
    }
}
