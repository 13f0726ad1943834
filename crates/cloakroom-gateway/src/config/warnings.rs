//! Warnings about policy rules that load but can never do anything, and about use
//! budgets a replica counts alone: printed by `cloakroomd --check` and logged at start, never a reason to refuse the file. Only
//! checks whose answer is certain from the file alone are made (docs/policy.md,
//! "Warnings from `cloakroomd --check`").

use cloakroom_core::{Effect, FunctionPattern, Protocol};
use cloakroom_policy::RuleConfig;

use super::Config;

/// The registered HTTP methods (RFC 9110 and PATCH, RFC 5789).
const HTTP_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

impl Config {
    /// One line per policy rule that can never match or never change a decision, each
    /// naming the rule and the field.
    pub fn warnings(&self) -> Vec<String> {
        let rules = &self.policy.rules;
        let mut out = Vec::new();
        if self.functions.is_empty() {
            // An embedding application's configuration: it names its calls in code, so
            // rules cannot be checked against functions here.
            out.push(
                "no [[functions]]: cloakroomd routes no calls (without functions, a configuration is for an \
                 application embedding the layers, which names its calls itself)"
                    .to_owned(),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let at = |field: &str| format!("policy.rules[{i}] ({:?}): field `{field}`", rule.name);
            for (j, pattern) in rule.functions.iter().enumerate() {
                if !self.functions.is_empty() && !self.can_produce(pattern) {
                    out.push(format!(
                        "{}: no configured function or MCP tool is named like {pattern:?}; the rule never matches through it",
                        at(&format!("functions[{j}]"))
                    ));
                }
            }
            for m in &rule.methods {
                if !HTTP_METHODS.iter().any(|h| h.eq_ignore_ascii_case(m)) {
                    out.push(format!(
                        "{}: {m:?} is not a registered HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH); a typo?",
                        at("methods")
                    ));
                }
            }
            if let Some(deny) = rules[..i].iter().find(|d| shadows(d, rule)) {
                out.push(format!(
                    "policy.rules[{i}] ({:?}): every call it matches is denied by the earlier deny rule {:?}; it never changes a decision",
                    rule.name, deny.name
                ));
            }
        }
        let store = self.approvals.store;
        if store != cloakroom_policy::ApprovalStoreKind::Postgres {
            for (i, secret) in self.secrets.iter().enumerate() {
                if secret.max_uses.is_some() || secret.max_uses_per.is_some() {
                    out.push(format!(
                        "secrets[{i}] ({:?}): its use budget is counted by this replica alone (approvals.store = {:?}); \
                         replicas share a budget only with approvals.store = \"postgres\" (docs/policy.md, \"Use budgets\")",
                        secret.name,
                        store.as_str()
                    ));
                }
            }
        }
        out
    }

    /// Whether some call to a configured function can be named by `pattern`: the
    /// pattern matches a function's name, or names tools of an MCP function. An HTTP
    /// function's calls are only ever its bare name. A pattern that does not compile is
    /// a load error, not a warning.
    fn can_produce(&self, pattern: &str) -> bool {
        let Ok(whole) = FunctionPattern::new(pattern) else { return true };
        let tools = pattern
            .split_once('/')
            .filter(|(_, rest)| !rest.is_empty())
            .and_then(|(first, _)| FunctionPattern::new(first).ok());
        self.functions.iter().any(|f| {
            whole.matches(&f.name)
                || (f.protocol == Protocol::Mcp && tools.as_ref().is_some_and(|t| t.matches(&f.name)))
        })
    }
}

/// Whether the deny rule `deny` matches every call `rule` matches: each of its
/// conditions is implied by one of `rule`'s (same or narrower lists, the same argument
/// regexes on the same pointers), and its patterns include every one of `rule`'s. An
/// allow or approve rule naming tools also matches MCP plumbing, which only a deny
/// without `functions` is sure to match too.
fn shadows(deny: &RuleConfig, rule: &RuleConfig) -> bool {
    if deny.effect != Effect::Deny {
        return false;
    }
    let narrower = |d: &[String], r: &[String]| d.is_empty() || (!r.is_empty() && r.iter().all(|x| d.contains(x)));
    let methods = |v: &[String]| v.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>();
    let functions = if deny.functions.is_empty() {
        true
    } else {
        let names_tools = rule.effect != Effect::Deny && rule.functions.iter().any(|p| p.contains('/'));
        !rule.functions.is_empty() && !names_tools && rule.functions.iter().all(|p| deny.functions.contains(p))
    };
    functions
        && narrower(&deny.groups, &rule.groups)
        && narrower(&deny.subjects, &rule.subjects)
        && narrower(&deny.source_cidrs, &rule.source_cidrs)
        && narrower(&methods(&deny.methods), &methods(&rule.methods))
        && deny.arguments.iter().all(|(p, re)| rule.arguments.get(p) == Some(re))
}
