//! The policy set: built-in rules, Datalog files and custom policies evaluated together,
//! deny-overrides, deny by default; and [`Policies`], the handle that swaps a reloaded set
//! in atomically.

use std::{path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use biscuit_auth::{Biscuit, PublicKey};
use cloakroom_core::{Decision, Effect, ShadowVerdict};

use crate::{
    config::{DatalogLimitsConfig, PolicyConfig},
    datalog::{self, DatalogPolicy},
    explain::{Explanation, RuleKind, RuleReport},
    index::RuleIndex,
    policy::named,
    rule::Rule,
    Policy, PolicyError, PolicyInput,
};

/// Built-in rules, Datalog policies and custom policies, combined deny-overrides:
/// any matching `deny` denies; else any matching `approve` requires approval; else any
/// matching `allow` allows; else the call is denied by default.
///
/// ```
/// use cloakroom_core::{AuthMethod, Call, Effect, Identity, Protocol};
/// use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet};
///
/// let config: PolicyConfig = toml::from_str(r#"
///     [[rules]]
///     name = "ops may call payments"
///     effect = "allow"
///     functions = ["payments/*"]
///     groups = ["ops"]
///
///     [[rules]]
///     name = "no drops"
///     effect = "deny"
///     arguments = { "/sql" = "(?i)drop\\s+table" }
/// "#).unwrap();
/// let set = PolicySet::builder().config(&config).build().unwrap();
/// let id = Identity::new("alice".into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec!["ops".into()]);
/// let mut call = Call::new("payments/query".into(), Protocol::Mcp)
///     .with_arguments(serde_json::json!({"sql": "select 1"}))
///     .with_method("POST".into());
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert_eq!(rt.block_on(set.evaluate(&PolicyInput::new(&id, &call))).effect, Effect::Allow);
/// call.arguments = serde_json::json!({"sql": "DROP TABLE users"});
/// let d = rt.block_on(set.evaluate(&PolicyInput::new(&id, &call)));
/// assert_eq!((d.effect, d.rule.as_deref()), (Effect::Deny, Some("no drops")));
/// ```
#[derive(Clone)]
pub struct PolicySet {
    rules: Vec<Rule>,
    index: RuleIndex,
    /// Whether any rule is `mode = "shadow"`.
    any_shadow: bool,
    datalog: Vec<DatalogPolicy>,
    custom: Vec<Arc<dyn Policy>>,
    root_key: Option<PublicKey>,
    limits: DatalogLimitsConfig,
    base_dir: Option<PathBuf>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("rules", &self.rules.len())
            .field("datalog", &self.datalog)
            .field("custom", &self.custom.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds a [`PolicySet`].
#[derive(Default)]
pub struct PolicySetBuilder {
    config: PolicyConfig,
    base_dir: Option<PathBuf>,
    sources: Vec<(String, String)>,
    custom: Vec<Arc<dyn Policy>>,
    root_key: Option<PublicKey>,
}

impl PolicySetBuilder {
    /// Uses the `[policy]` section (rules, Datalog files, limits).
    pub fn config(mut self, config: &PolicyConfig) -> Self {
        self.config = config.clone();
        self
    }

    /// Resolves relative Datalog file paths against `dir` (the configuration file's directory).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Adds a Datalog policy from source text (as if it were a file named `name`).
    pub fn datalog_source(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.sources.push((name.into(), source.into()));
        self
    }

    /// Adds a custom policy, evaluated with the others.
    pub fn custom(mut self, policy: Arc<dyn Policy>) -> Self {
        self.custom.push(policy);
        self
    }

    /// The Biscuit root public key, to parse callers' tokens and run their checks.
    pub fn biscuit_root_key(mut self, key: PublicKey) -> Self {
        self.root_key = Some(key);
        self
    }

    /// The Biscuit root public key as in `identity.biscuit.root_public_key`
    /// (`ed25519/<hex>`, or bare hex for Ed25519).
    pub fn biscuit_root_key_str(self, key: &str) -> Result<Self, PolicyError> {
        let parsed = parse_root_key(key)?;
        Ok(self.biscuit_root_key(parsed))
    }

    /// Compiles everything; the first bad rule or file is the error.
    pub fn build(self) -> Result<PolicySet, PolicyError> {
        let rules: Vec<Rule> =
            self.config.rules.iter().enumerate().map(|(i, r)| Rule::compile(r, i)).collect::<Result<_, _>>()?;
        // Names identify rules in denials, audit records and explain: they must be unique.
        let mut seen = std::collections::HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            if !seen.insert(r.name()) {
                return Err(PolicyError::rule(r.name(), i, "name", "another rule has the same name"));
            }
        }
        let mut datalog = Vec::new();
        for d in &self.config.datalog {
            let path = match (&self.base_dir, d.file.is_relative()) {
                (Some(base), true) => base.join(&d.file),
                _ => d.file.clone(),
            };
            datalog.push(DatalogPolicy::load(&path)?);
        }
        for (name, source) in &self.sources {
            datalog.push(DatalogPolicy::parse(name, source)?);
        }
        Ok(PolicySet {
            index: RuleIndex::new(&rules),
            any_shadow: rules.iter().any(Rule::is_shadow),
            rules,
            datalog,
            custom: self.custom,
            root_key: self.root_key,
            limits: self.config.datalog_limits,
            base_dir: self.base_dir,
        })
    }
}

/// Parses `ed25519/<hex>`, `secp256r1/<hex>` or bare hex (Ed25519).
pub fn parse_root_key(key: &str) -> Result<PublicKey, PolicyError> {
    let key = key.trim();
    let parsed = if key.contains('/') {
        key.parse::<PublicKey>().map_err(|e| e.to_string())
    } else {
        PublicKey::from_bytes_hex(key, biscuit_auth::builder::Algorithm::Ed25519).map_err(|e| e.to_string())
    };
    parsed.map_err(PolicyError::RootKey)
}

impl PolicySet {
    /// A builder.
    pub fn builder() -> PolicySetBuilder {
        PolicySetBuilder::default()
    }

    /// A set with no rules: every call is denied by default.
    pub fn deny_all() -> Self {
        PolicySetBuilder::default().build().expect("an empty set builds")
    }

    /// A new set from `config` keeping this set's custom policies, root key and base
    /// directory (what a reload does).
    pub fn rebuild(&self, config: &PolicyConfig) -> Result<PolicySet, PolicyError> {
        PolicySetBuilder {
            config: config.clone(),
            base_dir: self.base_dir.clone(),
            sources: Vec::new(),
            custom: self.custom.clone(),
            root_key: self.root_key,
        }
        .build()
    }

    /// The rules that can match `input`, in configuration order (every rule that does
    /// match is among them; see the index module).
    fn candidates<'a>(&'a self, input: &PolicyInput<'_>) -> impl Iterator<Item = &'a Rule> + 'a {
        self.index.candidates(input).into_iter().map(|i| &self.rules[i as usize])
    }

    /// The compiled rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides about a call: deny-overrides, deny by default.
    pub async fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
        let mut best: Option<Decision> = None;
        // Built-in rules without allocating for those that do not match. Shadow rules
        // never decide: [`Self::shadow`] reports them.
        for rule in self.candidates(input) {
            if rule.is_shadow() {
                continue;
            }
            let Some(effect) = rule.verdict(input) else { continue };
            match effect {
                Effect::Deny => return Decision::deny(rule.name(), "denied by rule"),
                Effect::Approve => require_approval(
                    &mut best,
                    Decision::approve(rule.name(), "approval required", rule.approvers().to_vec()),
                ),
                Effect::Allow => {
                    if best.is_none() {
                        best = Some(Decision::allow(rule.name(), "allowed by rule"));
                    }
                }
            }
        }
        if self.needs_datalog(input) {
            let (token, token_err) = self.token(input);
            if let Some(d) = token_err {
                return d;
            }
            for (d, _) in self.datalog_decisions(input, token.as_deref()) {
                if let Some(deny) = fold(&mut best, d) {
                    return deny;
                }
            }
        }
        for p in &self.custom {
            // An abstaining policy is not applicable: it changes nothing.
            let Some(d) = p.evaluate(input).await else { continue };
            if let Some(deny) = fold(&mut best, named(d, p.name())) {
                return deny;
            }
        }
        best.unwrap_or_else(Decision::default_deny)
    }

    /// What the `mode = "shadow"` rules would decide about the call, in configuration
    /// order: one entry per matching shadow rule. None of it is enforced: the decision
    /// is [`Self::evaluate`]'s. Empty (and allocation-free) without shadow rules.
    pub fn shadow(&self, input: &PolicyInput<'_>) -> Vec<ShadowVerdict> {
        if !self.any_shadow {
            return Vec::new();
        }
        self.candidates(input)
            .filter(|r| r.is_shadow())
            .filter_map(|r| r.verdict(input).map(|effect| ShadowVerdict { rule: r.name().to_owned(), effect }))
            .collect()
    }

    /// Every rule's verdict and the final decision, for `cloakroom policy explain`.
    /// Shadow rules are reported (their reason says so) but do not decide.
    pub async fn explain(&self, input: &PolicyInput<'_>) -> Explanation {
        let mut reports = Vec::new();
        let mut decisions = Vec::new();
        for rule in &self.rules {
            let mut report = rule.report(input);
            if rule.is_shadow() {
                report.reason = format!("shadow rule, not enforced: {}", report.reason);
                reports.push(report);
                continue;
            }
            if let Some(effect) = rule.verdict(input) {
                decisions.push(match effect {
                    Effect::Deny => Decision::deny(rule.name(), "denied by rule"),
                    Effect::Approve => Decision::approve(rule.name(), "approval required", rule.approvers().to_vec()),
                    Effect::Allow => Decision::allow(rule.name(), "allowed by rule"),
                });
            }
            reports.push(report);
        }
        if self.needs_datalog(input) {
            let (token, token_err) = self.token(input);
            if let Some(d) = token_err {
                reports.push(RuleReport::from_decision(RuleKind::Token, "biscuit token", &d));
                decisions.push(d);
            } else {
                for (d, report) in self.datalog_decisions(input, token.as_deref()) {
                    reports.push(report);
                    decisions.push(d);
                }
            }
        }
        for p in &self.custom {
            if let Some(d) = p.evaluate(input).await {
                decisions.push(named(d, p.name()));
            }
            reports.extend(p.explain(input).await);
        }
        let mut best = None;
        let mut denied = None;
        for d in decisions {
            if let Some(deny) = fold(&mut best, d) {
                denied = Some(deny);
                break;
            }
        }
        let decision = denied.or(best).unwrap_or_else(Decision::default_deny);
        Explanation { decision, rules: reports }
    }

    fn needs_datalog(&self, input: &PolicyInput<'_>) -> bool {
        !self.datalog.is_empty() || input.identity.biscuit.is_some()
    }

    /// The caller's token, parsed once per call; or the deny for a token that cannot be used.
    fn token<'a>(&self, input: &PolicyInput<'a>) -> (Option<std::borrow::Cow<'a, Biscuit>>, Option<Decision>) {
        match datalog::caller_token(input.identity, self.root_key.as_ref()) {
            Ok(t) => (t, None),
            Err(reason) => (None, Some(Decision::deny("biscuit token", reason))),
        }
    }

    fn datalog_decisions(&self, input: &PolicyInput<'_>, token: Option<&Biscuit>) -> Vec<(Decision, RuleReport)> {
        let mut out: Vec<_> = self.datalog.iter().map(|p| p.evaluate(input, token, &self.limits)).collect();
        // Without any Datalog file the token's own checks must still run.
        if self.datalog.is_empty() {
            if let Some(t) = token {
                let (d, report) = datalog::token_checks(input, t, &self.limits);
                // The token-only pass allows trivially; only its denials count.
                let d = if d.effect == Effect::Allow { Decision::default_deny() } else { d };
                out.push((d, report));
            }
        }
        out
    }
}

/// Adds an approve decision to the running best. Requirements compose: the call needs
/// the approver groups of every approve decision (their union), not just the first's, so
/// a secret's `approvers` cannot be satisfied by a rule's approver group alone. The
/// first approve decision names the rule; the reason names every source.
fn require_approval(best: &mut Option<Decision>, d: Decision) {
    match best {
        Some(b) if b.effect == Effect::Approve => {
            for g in d.approvers {
                if !b.approvers.contains(&g) {
                    b.approvers.push(g);
                }
            }
            let source = format!("{}: {}", d.rule.as_deref().unwrap_or("policy"), d.reason);
            if !b.reason.contains(&source) {
                b.reason = format!("{}; {source}", b.reason);
            }
        }
        _ => {
            let mut d = d;
            d.reason = format!("{}: {}", d.rule.as_deref().unwrap_or("policy"), d.reason);
            *best = Some(d);
        }
    }
}

/// Folds one decision into the running best; returns the deny that ends evaluation.
fn fold(best: &mut Option<Decision>, d: Decision) -> Option<Decision> {
    // A Datalog file's decision without a rule is "no opinion" (custom policies'
    // decisions are named before they get here: theirs abstain with `None`).
    d.rule.as_ref()?;
    match d.effect {
        Effect::Deny => Some(d),
        Effect::Approve => {
            require_approval(best, d);
            None
        }
        Effect::Allow => {
            if best.is_none() {
                *best = Some(d);
            }
            None
        }
    }
}

#[async_trait]
impl Policy for PolicySet {
    fn name(&self) -> &str {
        "policy set"
    }

    /// A nested set abstains when nothing in it applies (its default deny is the
    /// outer set's to give).
    async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        let d = PolicySet::evaluate(self, input).await;
        d.rule.is_some().then_some(d)
    }

    async fn explain(&self, input: &PolicyInput<'_>) -> Vec<RuleReport> {
        PolicySet::explain(self, input).await.rules
    }
}

/// The current policy set behind `arc-swap`: readers never block, a reload swaps the
/// whole set at once, and a reload that fails leaves the old set in force.
///
/// ```
/// use cloakroom_policy::{Policies, PolicyConfig, PolicySet};
/// let policies = Policies::new(PolicySet::deny_all());
/// let bad: PolicyConfig = toml::from_str(r#"
///     [[rules]]
///     name = "bad"
///     effect = "allow"
///     source_cidrs = ["10.0.0.0/33"]
/// "#).unwrap();
/// let err = policies.reload(&bad).unwrap_err();
/// assert!(err.to_string().contains("source_cidrs"));
/// assert_eq!(policies.current().rules().len(), 0); // the old set is still in force
/// ```
#[derive(Clone)]
pub struct Policies {
    current: Arc<ArcSwap<PolicySet>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Policies").field(&*self.current.load()).finish()
    }
}

impl Policies {
    /// A handle starting with `set`.
    pub fn new(set: PolicySet) -> Self {
        Self { current: Arc::new(ArcSwap::from_pointee(set)) }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Replaces the set.
    pub fn store(&self, set: PolicySet) {
        self.current.store(Arc::new(set));
    }

    /// Builds a new set from `config` (keeping custom policies and the root key) and
    /// swaps it in; on error the old set stays in force and the error is returned and logged.
    pub fn reload(&self, config: &PolicyConfig) -> Result<(), PolicyError> {
        match self.current.load().rebuild(config) {
            Ok(set) => {
                self.store(set);
                tracing::info!("policy set reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload failed; the previous policy set stays in force");
                Err(e)
            }
        }
    }

    /// Loads a base directory for the Datalog files of future reloads.
    pub fn base_dir(&self) -> Option<PathBuf> {
        self.current.load().base_dir.clone()
    }

    /// Decides with the current set.
    pub async fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
        self.current().evaluate(input).await
    }

    /// Decides with the current set, and says what its shadow rules would decide
    /// (both from the same set, even across a reload).
    pub async fn evaluate_with_shadow(&self, input: &PolicyInput<'_>) -> (Decision, Vec<ShadowVerdict>) {
        let set = self.current();
        (set.evaluate(input).await, set.shadow(input))
    }

    /// Explains with the current set.
    pub async fn explain(&self, input: &PolicyInput<'_>) -> Explanation {
        self.current().explain(input).await
    }
}
