//! The `Policy` trait every policy implements: built-in rules, Datalog files, custom crates.

use async_trait::async_trait;
use cloakroom_core::Decision;

use crate::{explain::RuleReport, PolicyInput};

/// A policy: given a caller and a call, a [`Decision`].
///
/// A policy with no opinion about a call returns [`Decision::default_deny`] (a deny with
/// `rule: None`). Under deny-overrides that is the same as abstaining: the call is
/// allowed only if another policy allows it and none denies it. A deny that names a rule
/// (`Decision::deny("rule", …)`) overrides every allow and approve.
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
///     async fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
///         if input.call.method == "DELETE" {
///             Decision::deny("no-deletes", "DELETE is never allowed")
///         } else {
///             Decision::default_deny() // no opinion
///         }
///     }
/// }
/// let _boxed: std::sync::Arc<dyn Policy> = std::sync::Arc::new(NoDeletes);
/// ```
#[async_trait]
pub trait Policy: Send + Sync {
    /// The policy's name, shown in `explain` output.
    fn name(&self) -> &str;

    /// Decides about one call.
    async fn evaluate(&self, input: &PolicyInput<'_>) -> Decision;

    /// Why: one report per rule this policy holds. The default reports the policy as one
    /// rule with the decision `evaluate` gives.
    async fn explain(&self, input: &PolicyInput<'_>) -> Vec<RuleReport> {
        let d = self.evaluate(input).await;
        vec![RuleReport::from_decision(crate::explain::RuleKind::Custom, self.name(), &d)]
    }
}
