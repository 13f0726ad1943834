//! The `Policy` trait every policy implements: built-in rules, Datalog files, custom crates.

use async_trait::async_trait;
use cloakroom_core::Decision;

use crate::{
    explain::{RuleKind, RuleReport},
    PolicyInput,
};

/// A policy: given a caller and a call, a [`Decision`] — or `None`, no opinion.
///
/// `None` abstains: the policy is not applicable to the call, and the others decide
/// (the call is allowed only if another policy allows it and none denies it; nothing
/// applicable denies by default). `Some(Decision::deny(…))` refuses the call whatever
/// the others say (deny-overrides); `Some(Decision::approve(…))` adds an approval
/// requirement; `Some(Decision::allow(…))` allows it unless something denies or needs
/// approval. A decision whose `rule` is `None` is named after [`Policy::name`], so even
/// `Some(Decision::default_deny())` is a real deny, not an abstention.
///
/// The trait is object-safe (`Arc<dyn Policy>`), so custom policy crates plug into a
/// [`crate::PolicySet`] and into the gateway builder.
///
/// ```
/// use async_trait::async_trait;
/// use cloakroom_core::Decision;
/// use cloakroom_policy::{Policy, PolicyInput};
///
/// struct NoDeletes;
///
/// #[async_trait]
/// impl Policy for NoDeletes {
///     fn name(&self) -> &str { "no-deletes" }
///     async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
///         if input.call.method == "DELETE" {
///             Some(Decision::deny("no-deletes", "DELETE is never allowed"))
///         } else {
///             None // no opinion
///         }
///     }
/// }
/// let _boxed: std::sync::Arc<dyn Policy> = std::sync::Arc::new(NoDeletes);
/// ```
#[async_trait]
pub trait Policy: Send + Sync {
    /// The policy's name, shown in `explain` output.
    fn name(&self) -> &str;

    /// Decides about one call; `None` abstains (no opinion).
    async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision>;

    /// Why: one report per rule this policy holds. The default reports the policy as one
    /// rule with the decision `evaluate` gives (unmatched when it abstains).
    async fn explain(&self, input: &PolicyInput<'_>) -> Vec<RuleReport> {
        let report = match self.evaluate(input).await {
            Some(d) => RuleReport::from_decision(RuleKind::Custom, self.name(), &named(d, self.name())),
            None => RuleReport::abstained(RuleKind::Custom, self.name()),
        };
        vec![report]
    }
}

/// `d` with `rule` set to `name` when the policy left it empty: a decision a policy
/// returns is never "no opinion" (that is `None`), and denials and audit records name
/// what decided.
pub(crate) fn named(mut d: Decision, name: &str) -> Decision {
    if d.rule.is_none() {
        d.rule = Some(name.to_owned());
    }
    d
}
