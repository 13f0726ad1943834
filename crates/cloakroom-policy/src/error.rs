//! Errors of loading a policy set.

use std::path::PathBuf;

/// A policy configuration that cannot be loaded. The old policy set (if any) stays in
/// force; the message names the rule (or file) and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A `[[policy.rules]]` entry with a bad field.
    #[error("policy rule {rule:?}: field `{field}`: {reason}")]
    Rule {
        /// The rule's name (or `#<index>` when the name itself is empty).
        rule: String,
        /// The field, e.g. `source_cidrs` or `arguments./sql`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A Datalog policy file that cannot be read or parsed.
    #[error("datalog policy {file:?}: {reason}")]
    Datalog {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The Biscuit root public key given to the policy set does not parse.
    #[error("biscuit root public key: {0}")]
    RootKey(String),
}

impl PolicyError {
    pub(crate) fn rule(rule: &str, index: usize, field: impl Into<String>, reason: impl Into<String>) -> Self {
        let rule = if rule.is_empty() { format!("#{index}") } else { rule.to_owned() };
        PolicyError::Rule { rule, field: field.into(), reason: reason.into() }
    }
}
