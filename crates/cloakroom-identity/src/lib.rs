//! Credentials to verified identities: OIDC JWTs, Biscuit tokens and API keys, as a
//! tower layer (docs/reference.md, the data path, layer 3).
//!
//! [`IdentityLayer`] reads the caller's bearer credential (`Proxy-Authorization` when
//! present, else `Authorization`), picks the verifier by the credential's shape, and
//! either passes the request on with a verified [`Identity`] in its extensions — minus
//! the header that carried the credential — or answers 401 `unauthenticated` with a
//! `WWW-Authenticate: Bearer` challenge. Nothing downstream trusts anything about the
//! caller that is not in that `Identity`. [`Authenticator`] is the same verifier
//! without the layer, for the admin API, where [`Authenticator::authorize`] also runs a
//! Biscuit token's own checks (TTL, attenuation blocks) against the [`Operation`] each
//! endpoint states. A verified Biscuit stays in the `Identity`, so it is verified once
//! per request. docs/identity.md describes each method and every fact. [`saml`] is the
//! SAML 2.0 service provider through which people sign in for a gateway session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{convert::Infallible, sync::Arc};
//! use bytes::Bytes;
//! use cloakroom_core::Identity;
//! use cloakroom_identity::{ApiKeyConfig, Authenticator, IdentityConfig, IdentityLayer};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use sha2::{Digest, Sha256};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! let config = IdentityConfig {
//!     api_keys: vec![ApiKeyConfig {
//!         subject: "ci-bot".into(),
//!         groups: vec!["ci".into()],
//!         sha256: hex::encode(Sha256::digest(b"ck_live_example")),
//!     }],
//!     ..Default::default()
//! };
//! let auth = Arc::new(Authenticator::new(&config).unwrap());
//! let svc = ServiceBuilder::new().layer(IdentityLayer::new(auth)).service(service_fn(
//!     |req: Request<Full<Bytes>>| async move {
//!         let who = req.extensions().get::<Identity>().unwrap().subject.clone();
//!         assert!(req.headers().get("authorization").is_none());
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who))))
//!     },
//! ));
//!
//! let ok = Request::builder().header("authorization", "Bearer ck_live_example").body(Full::default()).unwrap();
//! assert_eq!(svc.clone().oneshot(ok).await.unwrap().status(), StatusCode::OK);
//!
//! let refused = svc.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(refused.headers()["www-authenticate"], "Bearer");
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod api_key;
mod authenticator;
mod biscuit;

mod cache;
mod config;
mod credential;
mod error;
mod future;
mod layer;
mod oidc;
mod operation;
pub mod saml;
mod service;
mod session;
mod source;

pub use api_key::API_KEY_ISSUER;
pub use authenticator::Authenticator;
pub use biscuit::BISCUIT_ISSUER;
pub use cloakroom_core::ResponseBody;
pub use config::{ApiKeyConfig, BiscuitConfig, IdentityConfig, OidcIssuerConfig, SessionsConfig};
pub use credential::{kind_of, Credential, CredentialKind, MAX_CREDENTIAL_LEN};
pub use error::{AuthError, AuthzError, ConfigError};
pub use future::ResponseFuture;
pub use layer::IdentityLayer;
pub use oidc::{pkce_challenge, random_token, OidcLogin, PendingLogin, SignInError, ACCEPTED_ALGORITHMS};
pub use operation::Operation;
pub use service::Authenticate;
pub use session::{Session, SessionKeys, SignIn, SESSION_ROOT_KEY_ID};
pub use source::{SourceAddress, X_FORWARDED_FOR};

#[doc(no_inline)]
pub use cloakroom_core::Identity;

/// The RFC 9728 protected-resource metadata URL to name in a 401's `WWW-Authenticate`
/// challenge (`resource_metadata="…"`), as MCP clients expect. The gateway inserts it
/// into the request extensions, per route, before the [`IdentityLayer`]; it overrides
/// [`IdentityLayer::resource_metadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata(pub String);

/// Whether `identity` is in one of `admin_groups` (`identity.admin_groups`).
pub fn is_admin(identity: &Identity, admin_groups: &[String]) -> bool {
    identity.in_any_group(admin_groups)
}
