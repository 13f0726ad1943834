//! The in-flight call registry and function-side redemption (`POST /v1/redeem`).
//!
//! Some functions receive a placeholder and ask the gateway for the value themselves.
//! That is allowed only while the call that carried it is in flight, to the function the
//! call was forwarded to, and within the secret's binding (function, caller's groups,
//! expiry; a binding with approvers also needs the call to have gone ahead under an
//! approval). The [`DetokenizeLayer`](crate::DetokenizeLayer) registers every call it
//! forwards and the registration ends when the response body is finished or dropped; the
//! gateway can also register calls itself and hold the [`InFlightGuard`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cloakroom_core::CallId;
//! use cloakroom_vault::{BindingSpec, Catalog, EmbeddedVault, InFlight, Keys};
//! let dir = tempfile::tempdir().unwrap();
//! let keys = Keys::generate();
//! let store = EmbeddedVault::open(dir.path(), keys.vault_key().unwrap()).unwrap();
//! let catalog = Catalog::new(Arc::new(store), keys.placeholder_key().clone(), &[], None).await.unwrap();
//! let spec = BindingSpec { functions: vec!["billing".into()], locations: vec!["body".into()], ..Default::default() };
//! let p = catalog.put("db_password", "hunter2!".into(), Some(spec)).await.unwrap();
//!
//! let inflight = InFlight::new(catalog);
//! let call = CallId::new();
//! let guard = inflight.register(call, "billing", "alice", &[], false);
//! assert_eq!(inflight.redeem(&call, p.as_str(), "billing").await.unwrap().expose(), b"hunter2!");
//! assert!(inflight.redeem(&call, p.as_str(), "other").await.is_err());
//! drop(guard); // the call ended
//! assert!(inflight.redeem(&call, p.as_str(), "billing").await.is_err());
//! # });
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use cloakroom_core::{CallId, Error, ErrorCode, Secret};

use crate::{binding::Refusal, catalog::CatalogError, Catalog};

/// A call being forwarded right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightCall {
    /// The call id.
    pub call_id: CallId,
    /// The function it was forwarded to (`name` or `name/tool`).
    pub function: String,
    /// The caller's subject.
    pub subject: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// Whether the call went ahead under a granted approval.
    pub approved: bool,
}

/// Why a redemption was refused. Messages are safe to send back.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// No call with this id is in flight (never was, or already ended).
    #[error("call {0} is not in flight")]
    NotInFlight(CallId),
    /// The redeeming function is not the one the call was forwarded to.
    #[error("call {0} was not forwarded to this function")]
    WrongFunction(CallId),
    /// The placeholder is not known.
    #[error("unknown placeholder")]
    UnknownPlaceholder,
    /// The binding does not allow it.
    #[error("the secret cannot be redeemed for this call: {0}")]
    NotBound(String),
    /// The secret could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl RedeemError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            RedeemError::NotInFlight(_) | RedeemError::WrongFunction(_) => ErrorCode::Forbidden,
            RedeemError::UnknownPlaceholder => ErrorCode::NotFound,
            RedeemError::NotBound(_) => ErrorCode::SecretNotBound,
            RedeemError::Catalog(e) => e.code(),
        }
    }

    /// As a wire error.
    pub fn to_error(&self) -> Error {
        Error::new(self.code(), self.to_string())
    }
}

type Calls = Arc<Mutex<HashMap<CallId, Arc<InFlightCall>>>>;

/// The registry of calls in flight. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct InFlight {
    calls: Calls,
    catalog: Arc<Catalog>,
}

/// Removes its call from the registry when dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    calls: Calls,
    call_id: CallId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.call_id);
    }
}

impl InFlight {
    /// An empty registry redeeming from `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { calls: Arc::default(), catalog }
    }

    /// Registers call `call_id` as forwarded to `function` for caller `subject` in `groups`.
    /// The call stays in flight until the guard is dropped.
    pub fn register(
        &self,
        call_id: CallId,
        function: &str,
        subject: &str,
        groups: &[String],
        approved: bool,
    ) -> InFlightGuard {
        let call = InFlightCall {
            call_id,
            function: function.to_owned(),
            subject: subject.to_owned(),
            groups: groups.to_vec(),
            approved,
        };
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id, Arc::new(call));
        InFlightGuard { calls: self.calls.clone(), call_id }
    }

    /// The call, if in flight.
    pub fn get(&self, call_id: &CallId) -> Option<Arc<InFlightCall>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(call_id).cloned()
    }

    /// Number of calls in flight.
    pub fn len(&self) -> usize {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no call is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `POST /v1/redeem {"placeholder", "call_id"}` for the authenticated function
    /// `redeemer` (the configured function name the gateway mapped the caller's identity
    /// to). The redeemer must be the function the call went to: `redeemer` equals the
    /// call's function or is its `name` part for an MCP `name/tool`.
    pub async fn redeem(&self, call_id: &CallId, placeholder: &str, redeemer: &str) -> Result<Secret, RedeemError> {
        let call = self.get(call_id).ok_or(RedeemError::NotInFlight(*call_id))?;
        let same_function =
            call.function == redeemer || call.function.strip_prefix(redeemer).is_some_and(|rest| rest.starts_with('/'));
        if !same_function {
            return Err(RedeemError::WrongFunction(*call_id));
        }
        let snap = self.catalog.snapshot();
        let entry = snap.by_placeholder(placeholder.as_bytes()).ok_or(RedeemError::UnknownPlaceholder)?.clone();
        let binding = entry.binding().ok_or_else(|| RedeemError::NotBound(Refusal::Unbound.to_string()))?;
        binding
            .check_call(&call.function, &call.groups, time::OffsetDateTime::now_utc())
            .map_err(|r| RedeemError::NotBound(r.to_string()))?;
        if !binding.approvers().is_empty() && !call.approved {
            return Err(RedeemError::NotBound("its binding requires an approved call".into()));
        }
        Ok(self.catalog.value_of(&entry).await?)
    }
}
