//! The in-flight call registry and function-side redemption (`POST /v1/redeem`).
//!
//! Some functions receive a placeholder and ask the gateway for the value themselves.
//! That is allowed only while the call is in flight, to the function handling that exact
//! call, and within the secret's binding (function, caller's groups, expiry; a binding
//! with approvers also needs the call to have gone ahead under an approval). The
//! [`DetokenizeLayer`](crate::DetokenizeLayer) registers every call it forwards and the
//! registration ends when the response body is finished or dropped; the gateway can also
//! register calls itself and hold the [`InFlightGuard`].
//!
//! The function proves it handles the call with a **per-call redemption credential**
//! ([`RedeemToken`]): 256 random bits made when the call is registered, sent to the
//! upstream with that call only (header `Cloakroom-Redeem-Token`), kept here only as its
//! SHA-256 and compared in constant time, and worthless once the call ends. No identity
//! is trusted for redemption: knowing a call id, or being named like the function, is not
//! enough. A token is made only when the function may redeem something for the call: a
//! secret in the catalog whose binding allows the call's function and caller (and, for a
//! binding with approvers, an approved call).
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
//! let mut guard = inflight.register(call, "billing", ("api_key", "alice"), &[], &[]);
//! let token = guard.take_redeem_token().expect("billing may redeem db_password");
//! assert_eq!(inflight.redeem(&call, p.as_str(), token.expose()).await.unwrap().expose(), b"hunter2!");
//! assert!(inflight.redeem(&call, p.as_str(), "a-guess").await.is_err());
//! drop(guard); // the call ended
//! assert!(inflight.redeem(&call, p.as_str(), token.expose()).await.is_err());
//! # });
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use base64::Engine as _;
use cloakroom_core::{CallId, Error, ErrorCode, Secret};
use http::HeaderName;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{binding::Refusal, budget, catalog::CatalogError, BudgetRefusal, Catalog};

/// The header carrying a call's [`RedeemToken`] to the upstream, and back to
/// `POST /v1/redeem`.
pub const REDEEM_TOKEN_HEADER: HeaderName = HeaderName::from_static("cloakroom-redeem-token");

/// A call's redemption credential: 256 random bits, base64url. Only its SHA-256 is kept
/// in the registry; the clear value goes to the upstream with the call and nowhere else
/// (redacted `Debug`, never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct RedeemToken(Arc<str>);

impl RedeemToken {
    fn generate() -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        // ThreadRng is a CSPRNG (ChaCha, seeded and periodically reseeded from the OS):
        // one per thread, so a call costs no getrandom(2) (docs/performance.md).
        rand::thread_rng().fill_bytes(&mut bytes[..]);
        Self(Arc::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..])))
    }

    /// The token, for the `Cloakroom-Redeem-Token` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedeemToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedeemToken([REDACTED])")
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A call being forwarded right now.
#[derive(Debug)]
pub struct InFlightCall {
    /// The call id.
    pub call_id: CallId,
    /// The function it was forwarded to (`name` or `name/tool`).
    pub function: String,
    /// The caller's issuer.
    pub issuer: String,
    /// The caller's subject.
    pub subject: String,
    /// The caller's groups.
    pub groups: Vec<String>,
    /// The approver groups a distinct approver met for this call's approval (empty when
    /// the call went ahead without one). A secret whose binding names approvers is
    /// redeemable only when every one of its groups is here: an approval of the call for
    /// other groups does not cover it.
    pub approved_groups: Vec<String>,
    /// SHA-256 of the call's redemption credential, when one was made.
    redeem_token_sha256: Option<[u8; 32]>,
    /// The secrets whose use budget this call already spent (substituted or redeemed):
    /// a call is one use of a secret, however often the function redeems it.
    spent: Mutex<Vec<String>>,
    /// Held by a redemption from deciding whether it spends a use until the spend is
    /// known: a second redemption racing the first waits for its result rather than
    /// taking the value before the budget has said yes.
    redeeming: tokio::sync::Mutex<()>,
}

impl InFlightCall {
    /// Whether a redemption credential was made for the call (the function may redeem).
    pub fn redeemable(&self) -> bool {
        self.redeem_token_sha256.is_some()
    }

    /// Whether `token` is the call's credential (constant time).
    fn accepts(&self, token: &str) -> bool {
        self.redeem_token_sha256.is_some_and(|want| bool::from(want.ct_eq(&token_digest(token))))
    }
}

/// Why a redemption was refused. Messages are safe to send back.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// No `Cloakroom-Redeem-Token` was presented.
    #[error("POST /v1/redeem needs the Cloakroom-Redeem-Token header the gateway sent with the call")]
    MissingToken,
    /// No call with this id is in flight with this credential: it never was, it ended, it
    /// was given no credential, or the credential is another call's. One answer for all,
    /// so that the endpoint tells nothing about which calls are in flight.
    #[error("no call {0} is in flight with this redemption token")]
    NotInFlight(CallId),
    /// The placeholder is not known.
    #[error("unknown placeholder")]
    UnknownPlaceholder,
    /// The binding does not allow it.
    #[error("the secret cannot be redeemed for this call: {0}")]
    NotBound(String),
    /// Its use budget is spent, or the budget store cannot be reached.
    #[error(transparent)]
    Budget(BudgetRefusal),
    /// The secret could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl RedeemError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            RedeemError::MissingToken => ErrorCode::Unauthenticated,
            RedeemError::NotInFlight(_) => ErrorCode::Forbidden,
            RedeemError::UnknownPlaceholder => ErrorCode::NotFound,
            RedeemError::NotBound(_) => ErrorCode::SecretNotBound,
            RedeemError::Budget(r) => r.to_error().code,
            RedeemError::Catalog(e) => e.code(),
        }
    }

    /// As a wire error (`budget_exhausted` with its `Retry-After`).
    pub fn to_error(&self) -> Error {
        match self {
            RedeemError::Budget(r) => r.to_error(),
            _ => Error::new(self.code(), self.to_string()),
        }
    }
}

type Calls = Arc<Mutex<HashMap<CallId, Arc<InFlightCall>>>>;

/// The registry of calls in flight. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct InFlight {
    calls: Calls,
    catalog: Arc<Catalog>,
}

/// Removes its call from the registry when dropped, which ends its redemption credential.
#[derive(Debug)]
pub struct InFlightGuard {
    calls: Calls,
    call_id: CallId,
    redeem_token: Option<RedeemToken>,
}

impl InFlightGuard {
    /// Notes that the call spent the use budgets of `secrets` (a redemption of one of
    /// them in this call spends nothing more).
    pub fn spent<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) {
        let call = self.calls.lock().unwrap_or_else(|p| p.into_inner()).get(&self.call_id).cloned();
        if let Some(call) = call {
            let mut spent = call.spent.lock().unwrap_or_else(|p| p.into_inner());
            for s in secrets {
                if !spent.iter().any(|x| x == s) {
                    spent.push(s.to_owned());
                }
            }
        }
    }

    /// The call's redemption credential, to send upstream with the call (once: it is not
    /// kept here afterwards). `None` when the function may redeem nothing for the call.
    pub fn take_redeem_token(&mut self) -> Option<RedeemToken> {
        self.redeem_token.take()
    }
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

    /// Registers call `call_id` as forwarded to `function` for the caller (`issuer`,
    /// `subject`) in `groups`.
    /// The call stays in flight until the guard is dropped. When a secret in the catalog
    /// may be redeemed for the call (its binding allows `function`, `groups`, has not
    /// expired, and every approver group it names is in `approved_groups`), a redemption credential
    /// is made; [`InFlightGuard::take_redeem_token`] hands it over.
    pub fn register(
        &self,
        call_id: CallId,
        function: &str,
        (issuer, subject): (&str, &str),
        groups: &[String],
        approved_groups: &[String],
    ) -> InFlightGuard {
        let now = time::OffsetDateTime::now_utc();
        let may_redeem = self.catalog.snapshot().bound_candidates(function).any(|e| {
            e.binding()
                .is_some_and(|b| b.check_call(function, groups, now).is_ok() && covers(approved_groups, b.approvers()))
        });
        let redeem_token = may_redeem.then(RedeemToken::generate);
        let call = InFlightCall {
            call_id,
            function: function.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            groups: groups.to_vec(),
            approved_groups: approved_groups.to_vec(),
            redeem_token_sha256: redeem_token.as_ref().map(|t| token_digest(t.expose())),
            spent: Mutex::new(Vec::new()),
            redeeming: tokio::sync::Mutex::new(()),
        };
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).insert(call_id, Arc::new(call));
        InFlightGuard { calls: self.calls.clone(), call_id, redeem_token }
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

    /// `POST /v1/redeem {"placeholder", "call_id"}` with the `Cloakroom-Redeem-Token`
    /// the function received with the call: the value, if the call is in flight with this
    /// credential and the placeholder's binding allows the call's function and caller.
    /// A secret with a use budget spends one use, unless this call already did
    /// (substituting it or redeeming it before).
    pub async fn redeem(&self, call_id: &CallId, placeholder: &str, token: &str) -> Result<Secret, RedeemError> {
        if token.is_empty() {
            return Err(RedeemError::MissingToken);
        }
        let call = self.get(call_id).filter(|c| c.accepts(token)).ok_or(RedeemError::NotInFlight(*call_id))?;
        let snap = self.catalog.snapshot();
        let entry = snap.by_placeholder(placeholder.as_bytes()).ok_or(RedeemError::UnknownPlaceholder)?.clone();
        let binding = entry.binding().ok_or_else(|| RedeemError::NotBound(Refusal::Unbound.to_string()))?;
        binding
            .check_call(&call.function, &call.groups, time::OffsetDateTime::now_utc())
            .map_err(|r| RedeemError::NotBound(r.to_string()))?;
        if !covers(&call.approved_groups, binding.approvers()) {
            return Err(RedeemError::NotBound(format!(
                "its binding requires the call to be approved by {:?}",
                binding.approvers()
            )));
        }
        let value = self.catalog.value_of(&entry).await?;
        if let Some(b) = binding.budget() {
            // One redemption of the call at a time decides and spends, so two racing in
            // one call spend once and neither has the value before the spend succeeded
            // (with the store down, both fail closed).
            let _deciding = call.redeeming.lock().await;
            let first = !call.spent.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|s| s == entry.name());
            if first {
                let store = self.catalog.budget_store();
                let caller = budget::caller_key(&call.issuer, &call.subject);
                budget::spend(&*store, &[(entry.name(), b)], &caller, budget::unix_now())
                    .await
                    .map_err(RedeemError::Budget)?;
                call.spent.lock().unwrap_or_else(|p| p.into_inner()).push(entry.name().to_owned());
            }
        }
        Ok(value)
    }
}

/// Whether approvals met for `approved` groups cover a binding needing `approvers`.
fn covers(approved: &[String], approvers: &[String]) -> bool {
    approvers.iter().all(|g| approved.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindingSpec, Catalog, MemoryVault};

    async fn registry() -> (InFlight, String, String) {
        let keys = crate::Keys::generate();
        let catalog =
            Catalog::new(Arc::new(MemoryVault::new()), keys.placeholder_key().clone(), &[], None).await.unwrap();
        let bound = |f: &str| BindingSpec {
            functions: vec![f.into()],
            locations: vec!["body".into()],
            groups: vec!["ops".into()],
            ..Default::default()
        };
        let billing = catalog.put("db_password", "hunter2!".into(), Some(bound("billing"))).await.unwrap();
        let other = catalog.put("other_key", "s3cr3t-other".into(), Some(bound("reports"))).await.unwrap();
        (InFlight::new(catalog), billing.as_str().to_owned(), other.as_str().to_owned())
    }

    fn ops() -> Vec<String> {
        vec!["ops".into()]
    }

    /// A budget store that takes its time and finds every budget spent.
    #[derive(Debug)]
    struct SlowAndSpent;

    #[async_trait::async_trait]
    impl crate::budget::BudgetStore for SlowAndSpent {
        async fn spend(&self, _: &[crate::budget::Counter]) -> Result<Option<usize>, crate::budget::BudgetStoreError> {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Ok(Some(0))
        }

        async fn count(&self, _: &str, _: u64, _: u64) -> Result<u64, crate::budget::BudgetStoreError> {
            Ok(1)
        }
    }

    #[tokio::test]
    async fn racing_redemptions_of_a_spent_budget_all_fail() {
        let keys = crate::Keys::generate();
        let catalog =
            Catalog::new(Arc::new(MemoryVault::new()), keys.placeholder_key().clone(), &[], None).await.unwrap();
        let spec = BindingSpec {
            functions: vec!["billing".into()],
            locations: vec!["body".into()],
            max_uses: Some(1),
            ..Default::default()
        };
        let p = catalog.put("db_password", "hunter2!".into(), Some(spec)).await.unwrap();
        catalog.set_budget_store(Arc::new(SlowAndSpent));
        let reg = InFlight::new(catalog);
        let call = CallId::new();
        let mut g = reg.register(call, "billing", ("api_key", "alice"), &[], &[]);
        let token = g.take_redeem_token().unwrap();
        let redeem = || reg.redeem(&call, p.as_str(), token.expose());
        let (a, b, c) = tokio::join!(redeem(), redeem(), redeem());
        for r in [a, b, c] {
            assert!(matches!(r, Err(RedeemError::Budget(_))), "a redemption got past a spent budget: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_token_is_made_only_when_the_function_may_redeem() {
        let (reg, _, _) = registry().await;
        let mut g = reg.register(CallId::new(), "billing", ("api_key", "alice"), &ops(), &[]);
        assert!(g.take_redeem_token().is_some());
        assert!(g.take_redeem_token().is_none(), "handed over once");
        let mut g = reg.register(CallId::new(), "nothing-bound", ("api_key", "alice"), &ops(), &[]);
        assert!(g.take_redeem_token().is_none());
        let mut g = reg.register(CallId::new(), "billing", ("api_key", "bob"), &["dev".into()], &[]);
        assert!(g.take_redeem_token().is_none(), "the caller is not in the binding's groups");
    }

    #[tokio::test]
    async fn only_the_calls_own_token_redeems_and_only_while_in_flight() {
        let (reg, billing, other) = registry().await;
        let (a, b) = (CallId::new(), CallId::new());
        let mut ga = reg.register(a, "billing", ("api_key", "alice"), &ops(), &[]);
        let mut gb = reg.register(b, "billing", ("api_key", "alice"), &ops(), &[]);
        let (ta, tb) = (ga.take_redeem_token().unwrap(), gb.take_redeem_token().unwrap());
        assert_ne!(ta, tb);
        assert_eq!(reg.redeem(&a, &billing, ta.expose()).await.unwrap().expose(), b"hunter2!");
        for (call, token) in [(&a, tb.expose()), (&b, ta.expose()), (&a, ""), (&a, "x")] {
            let err = reg.redeem(call, &billing, token).await.unwrap_err();
            assert!(matches!(err, RedeemError::NotInFlight(_) | RedeemError::MissingToken), "{err}");
        }
        // A secret bound to another function is not released, whatever the token.
        assert!(matches!(reg.redeem(&a, &other, ta.expose()).await, Err(RedeemError::NotBound(_))));
        drop(ga);
        assert!(matches!(reg.redeem(&a, &billing, ta.expose()).await, Err(RedeemError::NotInFlight(_))));
        assert!(!format!("{ta:?}{:?}", reg.get(&b).unwrap()).contains(ta.expose()));
        assert!(ta.expose().len() >= 43, "256 bits, base64url");
    }
}
