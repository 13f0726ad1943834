//! Who is calling the admin API, and what their credential lets them do.

use std::net::SocketAddr;

use cloakroom_core::{Error, ErrorCode, Identity};
use cloakroom_identity::Operation;

use crate::Gateway;

/// A caller of the admin API whose credential verified. Its [`Identity`] is reachable
/// only through [`Caller::authorize`], which runs the credential's own checks (a Biscuit
/// token's TTL and attenuation blocks) against the operation the endpoint states: no
/// endpoint can act for a caller without saying what it does.
pub(super) struct Caller<'a> {
    gateway: &'a Gateway,
    identity: Identity,
}

impl<'a> Caller<'a> {
    pub(super) async fn authenticate(
        gateway: &'a Gateway,
        headers: &http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Caller<'a>, Error> {
        let identity = gateway.authenticator().authenticate(headers, peer).await.map_err(|e| e.to_error())?;
        Ok(Self { gateway, identity })
    }

    /// A caller whose credential is the bare `token` of the console's session cookie
    /// (a gateway-minted session, an operator's Biscuit or an API key), verified by the
    /// same authenticator as `Authorization: Bearer`, with the request's source address.
    /// A token whose time check fails (a session or Biscuit past its TTL) is
    /// `unauthenticated` here rather than `forbidden` on every page, so the console sends
    /// the person to sign in again.
    pub(super) async fn from_token(
        gateway: &'a Gateway,
        token: &str,
        headers: &http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Caller<'a>, Error> {
        let authenticator = gateway.authenticator();
        let mut identity = authenticator.verify_token(token).await.map_err(|e| e.to_error())?;
        identity.source_ip = authenticator.source_ip(headers, peer);
        if let Err(cloakroom_identity::AuthzError::CheckFailed { checks, .. }) =
            authenticator.authorize(&identity, &Operation::new(Operation::APPROVALS_LIST))
        {
            if checks.contains("time(") {
                return Err(Error::new(ErrorCode::Unauthenticated, "the session has expired: sign in again"));
            }
        }
        Ok(Self { gateway, identity })
    }

    /// The identity, once its credential allows `operation` (else 403 `forbidden`).
    pub(super) fn authorize(&self, operation: Operation) -> Result<&Identity, Error> {
        match self.gateway.authenticator().authorize(&self.identity, &operation) {
            Ok(()) => Ok(&self.identity),
            Err(e) => {
                tracing::info!(
                    subject = %self.identity.subject,
                    issuer = %self.identity.issuer,
                    operation = %operation,
                    reason = %e,
                    "admin request refused by the credential's checks"
                );
                Err(e.to_error())
            }
        }
    }

    /// [`Caller::authorize`] for an endpoint that also needs a member of `admin_groups`.
    pub(super) fn authorize_admin(&self, operation: Operation) -> Result<&Identity, Error> {
        let identity = self.authorize(operation)?;
        if self.is_admin() {
            Ok(identity)
        } else {
            Err(Error::new(ErrorCode::Forbidden, "this endpoint needs a member of identity.admin_groups"))
        }
    }

    /// Loads approval `id` and authorizes `operation` on it (its id and function are the
    /// operation's facts). An approval that cannot be loaded is refused as the operation
    /// on nothing would be first, so a token that may not do `operation` at all learns
    /// nothing about which ids exist.
    pub(super) async fn authorize_approval(
        &self,
        operation: &'static str,
        id: &str,
    ) -> Result<(cloakroom_policy::Approval, &Identity), Error> {
        match self.gateway.approvals().get(id).await {
            Ok(a) => {
                let identity = self.authorize(Operation::new(operation).approval(&a.id, &a.function))?;
                Ok((a, identity))
            }
            Err(e) => {
                self.authorize(Operation::new(operation))?;
                Err(e.to_error())
            }
        }
    }

    /// Who is signed in, for the console's header (no operation is done with it).
    pub(super) fn subject(&self) -> &str {
        &self.identity.subject
    }

    pub(super) fn is_admin(&self) -> bool {
        self.gateway.authenticator().is_admin(&self.identity)
    }
}
