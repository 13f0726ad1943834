//! Why a decision came out the way it did: the data behind `cloakroom policy explain`.
//!
//! ```
//! use cloakroom_core::{AuthMethod, Call, Effect, Identity, Protocol};
//! use cloakroom_policy::{PolicyConfig, PolicySet, PolicyInput};
//!
//! let config: PolicyConfig = toml::from_str(r#"
//!     [[rules]]
//!     name = "ops may call payments"
//!     effect = "allow"
//!     functions = ["payments"]
//!     groups = ["ops"]
//! "#).unwrap();
//! let set = PolicySet::builder().config(&config).build().unwrap();
//! let id = Identity::new("bob".into(), "api_key".into(), AuthMethod::ApiKey).with_groups(vec!["dev".into()]);
//! let call = Call::new("payments".into(), Protocol::Http).with_method("POST".into());
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let ex = rt.block_on(set.explain(&PolicyInput::new(&id, &call)));
//! assert_eq!(ex.decision.effect, Effect::Deny);
//! assert_eq!(ex.rules[0].field.as_deref(), Some("groups"));
//! println!("{ex}");
//! ```

use std::fmt;

use cloakroom_core::{Decision, Effect};
use serde::{Deserialize, Serialize};

/// What kind of rule a report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A `[[policy.rules]]` entry.
    Rule,
    /// A `[[policy.datalog]]` file.
    Datalog,
    /// The checks inside the caller's Biscuit token.
    Token,
    /// A custom policy plugged in by code.
    Custom,
}

/// One rule's verdict for the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleReport {
    /// What kind of rule.
    pub kind: RuleKind,
    /// The rule's name (for Datalog: the file, and the policy that matched).
    pub name: String,
    /// The rule's effect when it matches (`None` when it has no fixed effect).
    pub effect: Option<Effect>,
    /// Whether it matched the call.
    pub matched: bool,
    /// The field that did not match (`functions`, `groups`, `arguments./sql`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why it matched or not.
    pub reason: String,
}

impl RuleReport {
    /// The report of a policy that abstained (no opinion about the call).
    pub fn abstained(kind: RuleKind, name: &str) -> Self {
        RuleReport {
            kind,
            name: name.to_owned(),
            effect: None,
            matched: false,
            field: None,
            reason: "no opinion (abstained)".to_owned(),
        }
    }

    /// A report from a policy's decision: a decision naming a rule counts as a match.
    pub fn from_decision(kind: RuleKind, name: &str, d: &Decision) -> Self {
        let matched = d.rule.is_some();
        RuleReport {
            kind,
            name: d.rule.clone().unwrap_or_else(|| name.to_owned()),
            effect: matched.then_some(d.effect),
            matched,
            field: None,
            reason: d.reason.clone(),
        }
    }
}

/// The final decision and every rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// What the policy set decided.
    pub decision: Decision,
    /// Every rule considered, in evaluation order.
    pub rules: Vec<RuleReport>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.decision;
        write!(f, "decision: {}", d.effect)?;
        match &d.rule {
            Some(rule) => write!(f, " by {rule:?}")?,
            None => write!(f, " (default)")?,
        }
        writeln!(f, ": {}", d.reason)?;
        if !d.approvers.is_empty() {
            writeln!(f, "approvers: {}", d.approvers.join(", "))?;
        }
        for r in &self.rules {
            let mark = if r.matched { "match   " } else { "no match" };
            let kind = match r.kind {
                RuleKind::Rule => "rule",
                RuleKind::Datalog => "datalog",
                RuleKind::Token => "token",
                RuleKind::Custom => "custom",
            };
            write!(f, "  [{mark}] {kind} {:?}", r.name)?;
            if let Some(e) = r.effect {
                write!(f, " ({e})")?;
            }
            match &r.field {
                Some(field) => writeln!(f, ": `{field}`: {}", r.reason)?,
                None => writeln!(f, ": {}", r.reason)?,
            }
        }
        Ok(())
    }
}
