//! Biscuit Datalog policies: `[[policy.datalog]]` files evaluated with the call's facts
//! (and the caller's Biscuit token, whose own checks run in the same authorizer).
//!
//! Facts given to every evaluation (docs/configuration.md, and the operation facts every listener gives
//! a token's checks, docs/identity.md): `operation("call")`, `resource($function)`,
//! `user($subject)`, `group($g)` (one per group), `function($f)`, `protocol($p)`,
//! `source_ip($ip)` (when known, as a string), `secret($name)` (one per secret the call's
//! placeholders name, from [`crate::SecretsInCall`]), `time($t)` (a date), and
//! `argument($pointer, $value)` for every scalar in the arguments, flattened to JSON
//! pointers (`/amount`, `/items/0/sku`): strings as strings, integers as integers, booleans
//! as booleans, `null` as `null`, other numbers as their JSON text. At most
//! [`MAX_ARGUMENT_FACTS`] argument facts are given, down to depth [`MAX_ARGUMENT_DEPTH`];
//! when arguments were left out, the fact `arguments_truncated(true)` is added so a
//! policy can refuse such calls.

use std::{borrow::Cow, path::Path, sync::Arc};

use biscuit_auth::{
    builder::{self, Fact, Term},
    error::{Logic, RunLimit, Token},
    AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey,
};
use cloakroom_core::{Decision, Identity};

use crate::{
    config::DatalogLimitsConfig,
    explain::{RuleKind, RuleReport},
    PolicyError, PolicyInput,
};

/// Most `argument` facts given for one call.
pub const MAX_ARGUMENT_FACTS: usize = 256;
/// Deepest nesting of arguments flattened into facts.
pub const MAX_ARGUMENT_DEPTH: usize = 16;

/// A loaded Datalog policy file.
#[derive(Clone)]
pub struct DatalogPolicy {
    name: String,
    builder: AuthorizerBuilder,
    /// The text of each `allow if` / `deny if` policy, by index, to name the one that matched.
    policies: Arc<[String]>,
}

impl std::fmt::Debug for DatalogPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatalogPolicy").field("name", &self.name).field("policies", &self.policies.len()).finish()
    }
}

impl DatalogPolicy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let err = |reason: String| PolicyError::Datalog { file: path.to_owned(), reason };
        let source = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&path.display().to_string(), &source).map_err(|e| match e {
            PolicyError::Datalog { reason, .. } => err(reason),
            other => other,
        })
    }

    /// Parses policy source text under `name`.
    pub fn parse(name: &str, source: &str) -> Result<Self, PolicyError> {
        let err = |reason: String| PolicyError::Datalog { file: name.into(), reason };
        let builder = AuthorizerBuilder::new().code(source).map_err(|e| err(describe_parse_error(&e)))?;
        let probe = builder.clone().build_unauthenticated().map_err(|e| err(e.to_string()))?;
        let policies: Arc<[String]> = probe.dump().3.iter().map(|p| p.to_string()).collect();
        if policies.is_empty() {
            return Err(err("no `allow if` or `deny if` policy in the file".into()));
        }
        Ok(Self { name: name.to_owned(), builder, policies })
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Evaluates the file's policies for a call (with the caller's token, if any).
    pub(crate) fn evaluate(
        &self,
        input: &PolicyInput<'_>,
        token: Option<&Biscuit>,
        limits: &DatalogLimitsConfig,
    ) -> (Decision, RuleReport) {
        run(&self.name, RuleKind::Datalog, self.builder.clone(), &self.policies, input, token, limits)
    }
}

/// Runs only the checks of the caller's token (when no Datalog file is configured, the
/// token must still narrow its holder).
pub(crate) fn token_checks(
    input: &PolicyInput<'_>,
    token: &Biscuit,
    limits: &DatalogLimitsConfig,
) -> (Decision, RuleReport) {
    let builder = AuthorizerBuilder::new().policy("allow if true").expect("static policy parses");
    run("biscuit token", RuleKind::Token, builder, &["allow if true".to_owned()], input, Some(token), limits)
}

/// The caller's token, as the identity layer verified it (`Identity::biscuit` keeps the
/// verified `Biscuit`, so it is not verified a second time); a token given as bare bytes
/// (an embedder's own identity layer) is verified here with the root key.
pub(crate) fn caller_token<'a>(
    identity: &'a Identity,
    root: Option<&PublicKey>,
) -> Result<Option<Cow<'a, Biscuit>>, String> {
    let Some(token) = &identity.biscuit else {
        return Ok(None);
    };
    if let Some(verified) = token.get::<Biscuit>() {
        return Ok(Some(Cow::Borrowed(verified)));
    }
    let root = root.ok_or("the caller has a Biscuit token but no root public key is configured for policy")?;
    Biscuit::from(token.bytes(), *root)
        .map(|t| Some(Cow::Owned(t)))
        .map_err(|e| format!("the caller's Biscuit token does not verify: {e}"))
}

fn run(
    name: &str,
    kind: RuleKind,
    builder: AuthorizerBuilder,
    policies: &[String],
    input: &PolicyInput<'_>,
    token: Option<&Biscuit>,
    limits: &DatalogLimitsConfig,
) -> (Decision, RuleReport) {
    let limits = AuthorizerLimits {
        max_facts: limits.max_facts,
        max_iterations: limits.max_iterations,
        max_time: limits.max_time,
    };
    let rule_name = |detail: &str| format!("{name}: {detail}");
    let outcome = (|| {
        let mut b = builder.set_limits(limits);
        for fact in call_facts(input) {
            b = b.fact(fact)?;
        }
        let mut authorizer = match token {
            Some(t) => b.build(t)?,
            None => b.build_unauthenticated()?,
        };
        authorizer.authorize()
    })();
    let (decision, matched) = match outcome {
        Ok(i) => {
            let p = policies.get(i).map(String::as_str).unwrap_or("allow");
            let rule = rule_name(p);
            (Decision::allow(rule.clone(), format!("datalog policy `{p}` matched")), true)
        }
        Err(Token::FailedLogic(Logic::Unauthorized { policy, checks })) => {
            let (idx, allow) = match policy {
                biscuit_auth::error::MatchedPolicy::Allow(i) => (i, true),
                biscuit_auth::error::MatchedPolicy::Deny(i) => (i, false),
            };
            let p = policies.get(idx).map(String::as_str).unwrap_or("?");
            if allow {
                // An allow policy matched but a check (the token's, most often) failed:
                // the token narrows its holder.
                let failed = checks.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ");
                (Decision::deny(rule_name("check failed"), format!("check failed: {failed}")), true)
            } else {
                (Decision::deny(rule_name(p), format!("datalog policy `{p}` matched")), true)
            }
        }
        Err(Token::FailedLogic(Logic::NoMatchingPolicy { checks })) if !checks.is_empty() => {
            let failed = checks.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ");
            (Decision::deny(rule_name("check failed"), format!("check failed: {failed}")), true)
        }
        Err(Token::FailedLogic(Logic::NoMatchingPolicy { .. })) => {
            let mut d = Decision::default_deny();
            d.reason = "no datalog policy matched".into();
            (d, false)
        }
        Err(Token::RunLimit(limit)) => {
            let which = match limit {
                RunLimit::TooManyFacts => "too many facts",
                RunLimit::TooManyIterations => "too many iterations",
                RunLimit::Timeout => "time limit reached",
                RunLimit::UnexpectedQueryResult(..) => "unexpected query result",
            };
            (Decision::deny(rule_name("limits"), format!("datalog evaluation stopped at its limits ({which})")), true)
        }
        Err(e) => (Decision::deny(rule_name("error"), format!("datalog evaluation failed: {e}")), true),
    };
    let report = RuleReport {
        kind,
        name: decision.rule.clone().unwrap_or_else(|| name.to_owned()),
        effect: matched.then_some(decision.effect),
        matched,
        field: None,
        reason: decision.reason.clone(),
    };
    (decision, report)
}

fn describe_parse_error(e: &Token) -> String {
    format!("does not parse: {e}")
}

/// The facts of docs/configuration.md for one call.
pub(crate) fn call_facts(input: &PolicyInput<'_>) -> Vec<Fact> {
    let id = input.identity;
    let call = input.call;
    let mut facts = Vec::with_capacity(10 + id.groups.len() + input.secrets.len());
    // What the admin API calls an operation: a token narrowed to admin operations
    // (`check if operation("approvals:approve")`) is refused here, and a token can be
    // narrowed to calls of some functions with the same `resource` check on every listener.
    facts.push(builder::fact("operation", &[builder::string("call")]));
    facts.push(builder::fact("resource", &[builder::string(&call.function)]));
    facts.push(builder::fact("user", &[builder::string(&id.subject)]));
    for g in &id.groups {
        facts.push(builder::fact("group", &[builder::string(g)]));
    }
    facts.push(builder::fact("function", &[builder::string(&call.function)]));
    facts.push(builder::fact("protocol", &[builder::string(call.protocol.as_str())]));
    if let Some(ip) = input.source_ip {
        facts.push(builder::fact("source_ip", &[builder::string(&ip.to_string())]));
    }
    for s in input.secrets {
        facts.push(builder::fact("secret", &[builder::string(s)]));
    }
    let secs = input.now.unix_timestamp().max(0) as u64;
    facts.push(builder::fact("time", &[Term::Date(secs)]));
    let mut truncated = false;
    let mut count = 0usize;
    flatten(&call.arguments, &mut String::new(), 0, &mut count, &mut truncated, &mut facts);
    if truncated {
        facts.push(builder::fact("arguments_truncated", &[builder::boolean(true)]));
    }
    facts
}

fn flatten(
    value: &serde_json::Value,
    pointer: &mut String,
    depth: usize,
    count: &mut usize,
    truncated: &mut bool,
    out: &mut Vec<Fact>,
) {
    use serde_json::Value;
    let term = match value {
        Value::Object(map) => {
            if depth >= MAX_ARGUMENT_DEPTH {
                *truncated = true;
                return;
            }
            for (k, v) in map {
                let len = pointer.len();
                pointer.push('/');
                // JSON pointer escaping (RFC 6901).
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                flatten(v, pointer, depth + 1, count, truncated, out);
                pointer.truncate(len);
            }
            return;
        }
        Value::Array(items) => {
            if depth >= MAX_ARGUMENT_DEPTH {
                *truncated = true;
                return;
            }
            for (i, v) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                flatten(v, pointer, depth + 1, count, truncated, out);
                pointer.truncate(len);
            }
            return;
        }
        // `null` arguments at the top level mean "no arguments".
        Value::Null if depth == 0 => return,
        Value::Null => Term::Null,
        Value::Bool(b) => Term::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Term::Integer(i),
            None => Term::Str(n.to_string()),
        },
        Value::String(s) => Term::Str(s.clone()),
    };
    if *count >= MAX_ARGUMENT_FACTS {
        *truncated = true;
        return;
    }
    *count += 1;
    out.push(builder::fact("argument", &[Term::Str(pointer.clone()), term]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::KeyPair;
    use cloakroom_core::{AuthMethod, BiscuitToken};

    fn caller(token: Option<BiscuitToken>) -> Identity {
        Identity::new("alice".into(), "biscuit".into(), AuthMethod::Biscuit).with_biscuit(token)
    }

    #[test]
    fn the_token_the_identity_layer_verified_is_reused_not_verified_again() {
        let root = KeyPair::new();
        let token = Biscuit::builder().code(r#"user("alice");"#).unwrap().build(&root).unwrap();
        let id = caller(Some(BiscuitToken::verified(token.to_vec().unwrap(), token.clone())));
        // No root key at all: only the verified token can be used.
        assert!(matches!(caller_token(&id, None), Ok(Some(Cow::Borrowed(_)))));
        // Bare bytes are verified here, with the root key, and only with it.
        let id = caller(Some(BiscuitToken::from_bytes(token.to_vec().unwrap())));
        assert!(caller_token(&id, None).is_err());
        assert!(caller_token(&id, Some(&KeyPair::new().public())).is_err());
        assert!(matches!(caller_token(&id, Some(&root.public())), Ok(Some(Cow::Owned(_)))));
        assert!(matches!(caller_token(&caller(None), None), Ok(None)));
    }
}
