//! Bindings: where a secret may be substituted, and the checks made for each placeholder.
//!
//! A binding has four rules and every one must hold for a placeholder to be replaced:
//! the call's function matches one of `functions`; the place the placeholder was found is
//! one of `locations`; the caller is in one of `groups` (an empty list means any caller
//! that policy let through); and `expires`, if set, is in the future. A binding with
//! `approvers` further needs the call to carry a granted approval (see `docs/vault.md`).
//!
//! ```
//! use cloakroom_vault::{Binding, BindingSpec, Found};
//! let b = Binding::compile(BindingSpec {
//!     functions: vec!["payments/*".into()],
//!     locations: vec!["header:Authorization".into(), "json:/card/token".into()],
//!     groups: vec!["payments-ops".into()],
//!     ..Default::default()
//! }).unwrap();
//! assert!(b.allows_location(&Found::Header("authorization".into())));
//! assert!(b.allows_location(&Found::Body(Some("/card/token".into()))));
//! assert!(!b.allows_location(&Found::Body(None)));
//! assert!(b.allows_function("payments/refund"));
//! ```

use std::fmt;

use cloakroom_core::{FunctionPatternError, FunctionPatterns};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::budget::{Budget, BudgetError, BudgetScope, UsesPer};

/// A binding as written in `[[secrets]]` or sent to `POST /v1/secrets` (uncompiled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// Function-name globs.
    pub functions: Vec<String>,
    /// `header:NAME`, `query:NAME`, `json:/pointer` or `body`.
    pub locations: Vec<String>,
    /// Groups allowed to use the secret; empty: any caller.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups that must approve every use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Expiry (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires: Option<OffsetDateTime>,
    /// Uses allowed in total (docs/policy.md, "Use budgets").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// Uses allowed per window: `{count, period}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses_per: Option<UsesPer>,
    /// Whose uses the budget counts: `secret` (default, everyone's) or `caller`.
    #[serde(default, skip_serializing_if = "BudgetScope::is_default")]
    pub budget_scope: BudgetScope,
}

/// A binding that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// A function glob is invalid.
    #[error(transparent)]
    Function(#[from] FunctionPatternError),
    /// A location is not `header:NAME`, `query:NAME`, `json:/pointer` or `body`.
    #[error("invalid location {0:?}: expected header:NAME, query:NAME, json:/pointer or body")]
    Location(String),
    /// `max_uses`, `max_uses_per` or `budget_scope` is invalid.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// A place a secret may be substituted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A request header, by lowercase name.
    Header(String),
    /// A query parameter, by name.
    Query(String),
    /// A string at a JSON pointer of a JSON body (`""` is the whole document).
    JsonPointer(String),
    /// Anywhere in the body, JSON pointers included.
    Body,
}

impl Location {
    /// Parses `header:NAME`, `query:NAME`, `json:/pointer` or `body`.
    pub fn parse(s: &str) -> Result<Self, BindingError> {
        let bad = || BindingError::Location(s.to_owned());
        if s == "body" {
            return Ok(Location::Body);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "header" if !rest.is_empty() && http::HeaderName::from_bytes(rest.as_bytes()).is_ok() => {
                Ok(Location::Header(rest.to_ascii_lowercase()))
            }
            "query" if !rest.is_empty() => Ok(Location::Query(rest.to_owned())),
            "json" if rest.is_empty() || rest.starts_with('/') => Ok(Location::JsonPointer(rest.to_owned())),
            _ => Err(bad()),
        }
    }

    /// Whether a placeholder found at `found` is inside this location.
    pub fn covers(&self, found: &Found) -> bool {
        match (self, found) {
            (Location::Header(a), Found::Header(b)) => a.eq_ignore_ascii_case(b),
            (Location::Query(a), Found::Query(b)) => a == b,
            (Location::JsonPointer(a), Found::Body(Some(b))) => a == b,
            (Location::Body, Found::Body(_)) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header(n) => write!(f, "header:{n}"),
            Location::Query(n) => write!(f, "query:{n}"),
            Location::JsonPointer(p) => write!(f, "json:{p}"),
            Location::Body => f.write_str("body"),
        }
    }
}

/// Where a placeholder was found in a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Found {
    /// In the value of this header (lowercase name).
    Header(String),
    /// In the value (or name) of this query parameter.
    Query(String),
    /// In the body: inside the JSON string at this pointer, or `None` when the body is
    /// not JSON (or the place has no pointer).
    Body(Option<String>),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Header(n) => write!(f, "header:{n}"),
            Found::Query(n) => write!(f, "query:{n}"),
            Found::Body(Some(p)) => write!(f, "json:{p}"),
            Found::Body(None) => f.write_str("body"),
        }
    }
}

/// Why a binding refuses a use. The text is safe to send to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The secret has no binding at all.
    Unbound,
    /// The function is not in `functions`.
    Function,
    /// The place is not in `locations`.
    Location,
    /// The caller is in none of `groups`.
    Group,
    /// The binding expired.
    Expired,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unbound => "it has no binding",
            Refusal::Function => "it is not bound to this function",
            Refusal::Location => "it is not bound to this location",
            Refusal::Group => "the caller is not in its groups",
            Refusal::Expired => "its binding has expired",
        })
    }
}

/// A compiled binding.
#[derive(Debug, Clone)]
pub struct Binding {
    spec: BindingSpec,
    functions: FunctionPatterns,
    locations: Vec<Location>,
    budget: Option<Budget>,
}

impl Binding {
    /// Compiles a spec, checking every glob and location.
    pub fn compile(spec: BindingSpec) -> Result<Self, BindingError> {
        let functions = FunctionPatterns::new(spec.functions.iter().map(String::as_str))?;
        let locations = spec.locations.iter().map(|l| Location::parse(l)).collect::<Result<_, _>>()?;
        let budget = Budget::new(spec.max_uses, spec.max_uses_per, spec.budget_scope)?;
        Ok(Self { spec, functions, locations, budget })
    }

    /// Its use budget; `None`: uses are not counted.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// The binding as written.
    pub fn spec(&self) -> &BindingSpec {
        &self.spec
    }

    /// The compiled locations.
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// The approver groups (empty: no approval needed).
    pub fn approvers(&self) -> &[String] {
        &self.spec.approvers
    }

    /// Whether `function` matches one of the globs.
    pub fn allows_function(&self, function: &str) -> bool {
        self.functions.matches(function)
    }

    /// Whether `found` is inside one of the locations.
    pub fn allows_location(&self, found: &Found) -> bool {
        self.locations.iter().any(|l| l.covers(found))
    }

    /// Whether a caller in `groups` may use it.
    pub fn allows_groups<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        self.spec.groups.is_empty() || self.spec.groups.iter().any(|g| groups.iter().any(|c| c.as_ref() == g))
    }

    /// Whether it has expired at `now`.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.spec.expires.is_some_and(|e| e <= now)
    }

    /// Every rule except the location: function, groups, expiry (used by redemption).
    pub fn check_call<S: AsRef<str>>(&self, function: &str, groups: &[S], now: OffsetDateTime) -> Result<(), Refusal> {
        if self.expired_at(now) {
            return Err(Refusal::Expired);
        }
        if !self.allows_function(function) {
            return Err(Refusal::Function);
        }
        if !self.allows_groups(groups) {
            return Err(Refusal::Group);
        }
        Ok(())
    }

    /// Every rule: function, location, groups, expiry.
    pub fn check<S: AsRef<str>>(
        &self,
        function: &str,
        found: &Found,
        groups: &[S],
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        self.check_call(function, groups, now)?;
        if !self.allows_location(found) {
            return Err(Refusal::Location);
        }
        Ok(())
    }
}

impl PartialEq for Binding {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

#[cfg(test)]
#[path = "binding_tests.rs"]
mod tests;
