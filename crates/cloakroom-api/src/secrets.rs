//! `POST /v1/secrets`, `GET /v1/secrets`, `DELETE /v1/secrets/{name}` and the binding
//! they share.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

/// Where a secret may be substituted (docs/reference.md, "Placeholders and secrets"): the
/// binding of `[[secrets]]`, sent with [`PutSecret`] and shown in [`SecretSummary`].
///
/// Read leniently here (an answer from a newer gateway may carry more); the server reads
/// the one in a [`PutSecret`] strictly.
///
/// ```
/// use cloakroom_api::BindingSpec;
///
/// let b = BindingSpec::new(vec!["payments/*".into()], vec!["header:Authorization".into()])
///     .with_groups(vec!["payments-ops".into()]);
/// assert_eq!(
///     serde_json::to_string(&b).unwrap(),
///     r#"{"functions":["payments/*"],"locations":["header:Authorization"],"groups":["payments-ops"]}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BindingSpec {
    /// Function-name globs (`payments/*`).
    pub functions: Vec<String>,
    /// `header:NAME`, `query:NAME`, `json:/pointer` or `body`.
    pub locations: Vec<String>,
    /// Groups allowed to use the secret; empty: any caller policy lets through.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Groups that must approve every use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// When the binding stops allowing substitution (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires: Option<OffsetDateTime>,
    /// Uses allowed in total (docs/policy.md, "Use budgets").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// Uses allowed per fixed window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses_per: Option<UsesPer>,
    /// Whose uses the budgets count; `None`: `secret` (every caller together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_scope: Option<BudgetScope>,
}

/// `max_uses_per` of a binding: at most `count` uses per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UsesPer {
    /// Uses allowed in one window (at least 1).
    pub count: u64,
    /// The window's length, humantime (`30s`, `1h`), a whole number of seconds.
    pub period: String,
}

impl UsesPer {
    /// `count` uses per `period` (`"1h"`).
    pub fn new(count: u64, period: impl Into<String>) -> Self {
        Self { count, period: period.into() }
    }
}

wire_enum! {
    /// `budget_scope` of a binding: whose uses a budget counts.
    pub enum BudgetScope {
        /// Every caller's uses together.
        Secret = "secret",
        /// Each caller (issuer and subject) has the whole budget.
        Caller = "caller",
    }
}

impl BindingSpec {
    /// A binding to `functions` at `locations`, for any group, without approvers or expiry.
    pub fn new(functions: Vec<String>, locations: Vec<String>) -> Self {
        Self { functions, locations, ..Self::default() }
    }

    /// The same binding, usable by members of `groups` only.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// The same binding, every use approved by a member of each of `approvers`.
    pub fn with_approvers(mut self, approvers: Vec<String>) -> Self {
        self.approvers = approvers;
        self
    }

    /// The same binding, expiring at `expires`.
    pub fn with_expires(mut self, expires: Option<OffsetDateTime>) -> Self {
        self.expires = expires;
        self
    }

    /// The same binding, with `max_uses` uses in total, `max_uses_per` per window,
    /// counted for the `scope` (`None`: the whole secret).
    pub fn with_budget(
        mut self,
        max_uses: Option<u64>,
        max_uses_per: Option<UsesPer>,
        scope: Option<BudgetScope>,
    ) -> Self {
        self.max_uses = max_uses;
        self.max_uses_per = max_uses_per;
        self.budget_scope = scope;
        self
    }
}

/// The binding as the server reads it in a [`PutSecret`]: the fields of [`BindingSpec`]
/// and nothing else, so a misspelt `approvers` is refused rather than silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictBinding {
    functions: Vec<String>,
    locations: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires: Option<OffsetDateTime>,
    #[serde(default)]
    max_uses: Option<u64>,
    #[serde(default)]
    max_uses_per: Option<UsesPer>,
    #[serde(default)]
    budget_scope: Option<BudgetScope>,
}

fn strict_binding<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<BindingSpec>, D::Error> {
    Ok(Option::<StrictBinding>::deserialize(deserializer)?.map(|b| BindingSpec {
        functions: b.functions,
        locations: b.locations,
        groups: b.groups,
        approvers: b.approvers,
        expires: b.expires,
        max_uses: b.max_uses,
        max_uses_per: b.max_uses_per,
        budget_scope: b.budget_scope,
    }))
}

/// The body of `POST /v1/secrets`: store `value` under `name`, with an optional binding.
///
/// Not `Debug`-printable with its value, and read strictly: a field the server does not
/// know, at the top or in the binding, refuses the request. The value may be borrowed
/// (`Cow`), so a client can send it straight from a zeroizing buffer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PutSecret<'a> {
    /// The secret's name.
    pub name: String,
    /// The value. A secret: never log it.
    pub value: Cow<'a, str>,
    /// Where it may be substituted; `None` keeps the server's rules (a binding declared in
    /// the configuration, or none).
    #[serde(default, deserialize_with = "strict_binding", skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingSpec>,
}

impl<'a> PutSecret<'a> {
    /// Store `value` under `name`, without a binding.
    pub fn new(name: impl Into<String>, value: impl Into<Cow<'a, str>>) -> Self {
        Self { name: name.into(), value: value.into(), binding: None }
    }

    /// The same request with `binding`.
    pub fn with_binding(mut self, binding: Option<BindingSpec>) -> Self {
        self.binding = binding;
        self
    }
}

impl std::fmt::Debug for PutSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecret")
            .field("name", &self.name)
            .field("value", &"[REDACTED]")
            .field("binding", &self.binding)
            .finish()
    }
}

/// The answer to `POST /v1/secrets`: the secret's placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretStored {
    /// The secret's name.
    pub name: String,
    /// Its placeholder (`cloak_` + 26 characters), the same for the name on every replica.
    pub placeholder: String,
}

impl SecretStored {
    /// `name` is stored; callers use `placeholder`.
    pub fn new(name: impl Into<String>, placeholder: impl Into<String>) -> Self {
        Self { name: name.into(), placeholder: placeholder.into() }
    }
}

wire_enum! {
    /// Where a secret's binding comes from.
    pub enum SecretOrigin {
        /// Declared in `[[secrets]]`: the configuration's binding wins.
        Config = "config",
        /// Put through the admin API only.
        Api = "api",
    }
}

/// One secret in `GET /v1/secrets`: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretSummary {
    /// The secret's name.
    pub name: String,
    /// Its placeholder.
    pub placeholder: String,
    /// Its binding; `None`: never substituted (but still masked).
    pub binding: Option<BindingSpec>,
    /// Where the binding comes from.
    pub origin: SecretOrigin,
    /// Whether the vault holds a value for it.
    pub has_value: bool,
    /// Its uses, when its binding has a use budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<SecretUses>,
}

/// A secret's uses under its budget, in `GET /v1/secrets` (docs/policy.md, "Use budgets").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretUses {
    /// Uses counted since the budget was set (summed over callers for a per-caller budget).
    pub total: u64,
    /// Uses in the current window, with `max_uses_per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_count: Option<u64>,
    /// When the current window ends (RFC 3339), with `max_uses_per`.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub window_resets_at: Option<OffsetDateTime>,
    /// The binding's `max_uses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// The binding's `max_uses_per`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses_per: Option<UsesPer>,
}

impl SecretUses {
    /// `total` uses so far; the rest unset.
    pub fn new(total: u64) -> Self {
        Self { total, window_count: None, window_resets_at: None, max_uses: None, max_uses_per: None }
    }

    /// With `count` uses in the window ending at `resets_at`.
    pub fn with_window(mut self, count: Option<u64>, resets_at: Option<OffsetDateTime>) -> Self {
        self.window_count = count;
        self.window_resets_at = resets_at;
        self
    }

    /// With the binding's limits.
    pub fn with_limits(mut self, max_uses: Option<u64>, max_uses_per: Option<UsesPer>) -> Self {
        self.max_uses = max_uses;
        self.max_uses_per = max_uses_per;
        self
    }
}

impl SecretSummary {
    /// The summary of secret `name` with `placeholder`.
    pub fn new(
        name: impl Into<String>,
        placeholder: impl Into<String>,
        binding: Option<BindingSpec>,
        origin: SecretOrigin,
        has_value: bool,
    ) -> Self {
        Self { name: name.into(), placeholder: placeholder.into(), binding, origin, has_value, uses: None }
    }

    /// The same summary, with the secret's uses under its budget.
    pub fn with_uses(mut self, uses: Option<SecretUses>) -> Self {
        self.uses = uses;
        self
    }
}

/// The answer to `GET /v1/secrets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretList {
    /// Every secret the gateway knows, declared or put.
    pub secrets: Vec<SecretSummary>,
}

impl SecretList {
    /// The list of `secrets`.
    pub fn new(secrets: Vec<SecretSummary>) -> Self {
        Self { secrets }
    }
}

/// The answer to `DELETE /v1/secrets/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretDeleted {
    /// The secret whose value was deleted.
    pub name: String,
    /// Always `true` (a name without a value is refused with `not_found`).
    pub deleted: bool,
}

impl SecretDeleted {
    /// The value of `name` is deleted.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), deleted: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_without_binding_sends_none() {
        let put = PutSecret::new("k", "v4lue");
        assert_eq!(serde_json::to_string(&put).unwrap(), r#"{"name":"k","value":"v4lue"}"#);
    }

    #[test]
    fn a_put_debug_never_shows_the_value() {
        let put = PutSecret::new("k", "sk_live_123");
        assert!(!format!("{put:?}").contains("sk_live"));
    }

    #[test]
    fn the_server_refuses_unknown_fields_of_a_put_and_its_binding() {
        let ok = r#"{"name":"k","value":"v","binding":{"functions":["f"],"locations":["body"],"approvers":["leads"],"expires":"2030-01-01T00:00:00Z"}}"#;
        let put: PutSecret<'static> = serde_json::from_str(ok).unwrap();
        let b = put.binding.unwrap();
        assert_eq!(b.approvers, ["leads"]);
        assert_eq!(b.expires.unwrap().year(), 2030);
        let misspelt =
            r#"{"name":"k","value":"v","binding":{"functions":["f"],"locations":["body"],"approver":["leads"]}}"#;
        assert!(serde_json::from_str::<PutSecret<'static>>(misspelt).is_err());
        assert!(serde_json::from_str::<PutSecret<'static>>(r#"{"name":"k","value":"v","ttl":3}"#).is_err());
    }

    #[test]
    fn a_binding_in_an_answer_reads_leniently_and_round_trips_strictly() {
        let newer = r#"{"functions":["f"],"locations":["body"],"groups":[],"max_uses":3,"colour":"red"}"#;
        assert_eq!(serde_json::from_str::<BindingSpec>(newer).unwrap().functions, ["f"]);
        // Everything a BindingSpec writes, the strict reader reads back.
        let b = BindingSpec::new(vec!["f".into()], vec!["body".into()])
            .with_groups(vec!["g".into()])
            .with_approvers(vec!["a".into()])
            .with_expires(Some(time::macros::datetime!(2030-01-01 0:00 UTC)))
            .with_budget(Some(10), Some(UsesPer::new(2, "1h")), Some(BudgetScope::Caller));
        let put = PutSecret::new("k", "v").with_binding(Some(b.clone()));
        let back: PutSecret<'static> = serde_json::from_str(&serde_json::to_string(&put).unwrap()).unwrap();
        assert_eq!(back.binding, Some(b));
    }

    #[test]
    fn a_budget_is_read_strictly_in_a_put() {
        let ok = r#"{"name":"k","value":"v","binding":{"functions":["f"],"locations":["body"],"max_uses":3,"max_uses_per":{"count":2,"period":"2s"},"budget_scope":"caller"}}"#;
        let b = serde_json::from_str::<PutSecret<'static>>(ok).unwrap().binding.unwrap();
        assert_eq!(
            (b.max_uses, b.max_uses_per, b.budget_scope),
            (Some(3), Some(UsesPer::new(2, "2s")), Some(BudgetScope::Caller))
        );
        let misspelt = r#"{"name":"k","value":"v","binding":{"functions":["f"],"locations":["body"],"max_uses_per":{"count":2,"every":"2s"}}}"#;
        assert!(serde_json::from_str::<PutSecret<'static>>(misspelt).is_err());
    }

    #[test]
    fn origins_are_lowercase() {
        assert_eq!(serde_json::to_string(&SecretOrigin::Config).unwrap(), "\"config\"");
        assert_eq!(serde_json::from_str::<SecretOrigin>("\"api\"").unwrap(), SecretOrigin::Api);
    }
}
