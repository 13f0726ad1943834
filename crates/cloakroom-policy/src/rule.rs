//! Built-in rules: `[[policy.rules]]` compiled once at load.

use std::borrow::Cow;

use cloakroom_core::{Effect, FunctionPattern, FunctionPatterns, Protocol};
use ipnet::IpNet;
use regex::Regex;

use crate::{
    config::{RuleConfig, RuleMode},
    explain::{RuleKind, RuleReport},
    PolicyError, PolicyInput,
};

/// Regexes from configuration are bounded so that loading one cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `[[policy.rules]]` entry.
#[derive(Debug, Clone)]
pub struct Rule {
    name: String,
    effect: Effect,
    functions: FunctionPatterns,
    /// Literal prefixes of the function globs (up to the first metacharacter), checked
    /// before the globs so that most non-matching rules cost a string compare.
    prefixes: Vec<String>,
    /// The function part (before the first `/`) of each pattern that names MCP tools
    /// (`tools/*` → `tools`): an allow or approve rule matching a tool of a function
    /// also matches that function's protocol plumbing (see [`is_mcp_plumbing`]).
    tool_functions: Vec<FunctionPattern>,
    groups: Vec<String>,
    subjects: Vec<String>,
    source_cidrs: Vec<IpNet>,
    methods: Vec<String>,
    arguments: Vec<(String, Regex)>,
    approvers: Vec<String>,
    mode: RuleMode,
}

/// Which field of a rule failed first (in evaluation order); cheap to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Miss {
    Functions,
    Subjects,
    Groups,
    Methods,
    SourceUnknown,
    SourceOutside,
    ArgumentAbsent(usize),
    ArgumentNoMatch(usize),
}

/// How a matching rule matched: the called function itself, or (MCP plumbing only) a
/// tool of the called function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Function,
    Tool,
}

/// Why a rule did not match, spelled out for `explain`.
struct Mismatch {
    field: Cow<'static, str>,
    reason: String,
}

impl Rule {
    /// Compiles a rule; `index` names it in errors when its name is empty.
    pub fn compile(config: &RuleConfig, index: usize) -> Result<Self, PolicyError> {
        let name = &config.name;
        let err = |field: &str, reason: String| PolicyError::rule(name, index, field, reason);
        if name.trim().is_empty() {
            return Err(err("name", "a rule needs a name".into()));
        }
        let functions = FunctionPatterns::new(&config.functions).map_err(|e| err("functions", e.to_string()))?;
        let prefixes = config.functions.iter().map(|p| literal_prefix(p).to_owned()).collect();
        let tool_functions = if config.effect == Effect::Deny {
            // A deny of some tools must not take the whole function's plumbing with it.
            Vec::new()
        } else {
            config.functions.iter().filter_map(|p| tool_function(p)).collect()
        };
        let source_cidrs = config
            .source_cidrs
            .iter()
            .map(|c| parse_cidr(c).ok_or_else(|| err("source_cidrs", format!("{c:?} is not an IPv4 or IPv6 CIDR"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut methods = Vec::with_capacity(config.methods.len());
        for m in &config.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(err("methods", format!("{m:?} is not an HTTP method")));
            }
            methods.push(m.to_ascii_uppercase());
        }
        let mut arguments = Vec::with_capacity(config.arguments.len());
        for (pointer, pattern) in &config.arguments {
            let field = format!("arguments.{pointer}");
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(err(&field, "a JSON pointer is empty or starts with `/`".into()));
            }
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| err(&field, format!("invalid regex: {e}")))?;
            arguments.push((pointer.clone(), re));
        }
        match (config.effect, config.approvers.is_empty()) {
            (Effect::Approve, true) => {
                return Err(err("approvers", "effect = \"approve\" needs at least one approver group".into()))
            }
            (Effect::Allow | Effect::Deny, false) => {
                return Err(err("approvers", "approvers are only used with effect = \"approve\"".into()))
            }
            _ => {}
        }
        Ok(Rule {
            name: name.clone(),
            effect: config.effect,
            functions,
            prefixes,
            tool_functions,
            groups: config.groups.clone(),
            subjects: config.subjects.clone(),
            source_cidrs,
            methods,
            arguments,
            approvers: config.approvers.clone(),
            mode: config.mode,
        })
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rule's effect when it matches.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whether the rule is enforced or only shadowed (`mode`).
    pub fn mode(&self) -> RuleMode {
        self.mode
    }

    /// Whether the rule is `mode = "shadow"`: evaluated and recorded, never enforced.
    pub fn is_shadow(&self) -> bool {
        self.mode == RuleMode::Shadow
    }

    /// The approver groups (with [`Effect::Approve`]).
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }

    /// Whether the rule matches the call.
    pub fn matches(&self, input: &PolicyInput<'_>) -> bool {
        self.check(input).is_ok()
    }

    /// The effect this rule gives the call, `None` when it does not match. An approve
    /// rule matching only through a tool of the called function gives `Allow` to that
    /// function's MCP plumbing: approval is for tool calls, not for `initialize`.
    pub fn verdict(&self, input: &PolicyInput<'_>) -> Option<Effect> {
        match self.check(input) {
            Ok(Via::Tool) => Some(Effect::Allow),
            Ok(Via::Function) => Some(self.effect),
            Err(_) => None,
        }
    }

    /// The verdict with the reason, for `explain`.
    pub fn report(&self, input: &PolicyInput<'_>) -> RuleReport {
        let (matched, field, reason) = match self.check(input) {
            Ok(Via::Function) => (true, None, "every condition matched".to_owned()),
            Ok(Via::Tool) => (
                true,
                None,
                "MCP plumbing of a function whose tools this rule names: allowed (argument conditions apply to tool calls)"
                    .to_owned(),
            ),
            Err(miss) => {
                let m = self.describe(miss, input);
                (false, Some(m.field.into_owned()), m.reason)
            }
        };
        // The effect the rule has on this call: plumbing matched through a tool is allowed.
        let effect = self.verdict(input).unwrap_or(self.effect);
        RuleReport { kind: RuleKind::Rule, name: self.name.clone(), effect: Some(effect), matched, field, reason }
    }

    // Cheapest and most selective fields first: most rules fail on `functions`. Nothing
    // here allocates: the reason is only spelled out for `explain`.
    fn check(&self, input: &PolicyInput<'_>) -> Result<Via, Miss> {
        let call = input.call;
        let id = input.identity;
        // Matched only through a tool of the function: the call is plumbing and carries
        // no tool arguments, so the rule's argument conditions (about tool calls) do not apply.
        let mut via_tool = false;
        if !self.functions.is_empty() {
            let f = call.function.as_str();
            let hit = self
                .prefixes
                .iter()
                .zip(self.functions.iter())
                .any(|(prefix, pattern)| f.starts_with(prefix.as_str()) && pattern.matches(f));
            if !hit {
                via_tool = is_mcp_plumbing(call) && self.tool_functions.iter().any(|p| p.matches(f));
                if !via_tool {
                    return Err(Miss::Functions);
                }
            }
        }
        if !self.subjects.is_empty() && !self.subjects.contains(&id.subject) {
            return Err(Miss::Subjects);
        }
        if !self.groups.is_empty() && !id.in_any_group(&self.groups) {
            return Err(Miss::Groups);
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(&call.method)) {
            return Err(Miss::Methods);
        }
        if !self.source_cidrs.is_empty() {
            match input.source_ip {
                None => return Err(Miss::SourceUnknown),
                Some(ip) if !self.source_cidrs.iter().any(|net| net.contains(&ip)) => return Err(Miss::SourceOutside),
                Some(_) => {}
            }
        }
        if via_tool {
            return Ok(Via::Tool);
        }
        for (i, (pointer, re)) in self.arguments.iter().enumerate() {
            let Some(value) = call.argument(pointer) else {
                return Err(Miss::ArgumentAbsent(i));
            };
            let hit = match value {
                serde_json::Value::String(s) => re.is_match(s),
                other => re.is_match(&other.to_string()),
            };
            if !hit {
                return Err(Miss::ArgumentNoMatch(i));
            }
        }
        Ok(Via::Function)
    }

    fn describe(&self, miss: Miss, input: &PolicyInput<'_>) -> Mismatch {
        let (call, id) = (input.call, input.identity);
        let fixed = |field: &'static str, reason: String| Mismatch { field: Cow::Borrowed(field), reason };
        match miss {
            Miss::Functions => fixed("functions", format!("{:?} matches none of {:?}", call.function, self.patterns())),
            Miss::Subjects => fixed("subjects", format!("subject {:?} is not one of {:?}", id.subject, self.subjects)),
            Miss::Groups => fixed("groups", format!("caller is in none of {:?}", self.groups)),
            Miss::Methods => fixed("methods", format!("method {:?} is not one of {:?}", call.method, self.methods)),
            Miss::SourceUnknown => fixed("source_cidrs", "the caller's address is unknown".to_owned()),
            Miss::SourceOutside => {
                let nets: Vec<String> = self.source_cidrs.iter().map(|n| n.to_string()).collect();
                let ip = input.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
                fixed("source_cidrs", format!("{ip} is in none of {nets:?}"))
            }
            Miss::ArgumentAbsent(i) => Mismatch {
                field: Cow::Owned(format!("arguments.{}", self.arguments[i].0)),
                reason: "the argument is absent".to_owned(),
            },
            // The argument's value is not repeated: it may be sensitive.
            Miss::ArgumentNoMatch(i) => Mismatch {
                field: Cow::Owned(format!("arguments.{}", self.arguments[i].0)),
                reason: format!("the value does not match /{}/", self.arguments[i].1.as_str()),
            },
        }
    }

    /// The function globs as written.
    pub(crate) fn patterns(&self) -> Vec<&str> {
        self.functions.iter().map(|p| p.as_str()).collect()
    }

    /// The groups condition (empty: any group).
    pub(crate) fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The subjects condition (empty: any subject).
    pub(crate) fn subjects(&self) -> &[String] {
        &self.subjects
    }
}

/// Whether `call` is an MCP function's protocol plumbing rather than a tool call:
/// `initialize`, `tools/list`, `ping`, `notifications/*`, responses, batches without a
/// tool call, and the session's GET stream and DELETE. The gateway names all of these
/// the bare function (`tools`), tool calls `<function>/<tool>` with detail `tools/call`.
pub(crate) fn is_mcp_plumbing(call: &cloakroom_core::Call) -> bool {
    call.protocol == Protocol::Mcp && !call.function.contains('/') && call.detail.as_deref() != Some("tools/call")
}

/// The function part of a pattern that names tools of a function: `tools` of
/// `tools/*`, `tools/search` or `tools/**`, `t*` of `t*/search`, `**` of `**/x`.
/// `None` for a pattern of bare functions (`tools`, `*`) — those match plumbing
/// themselves — and for one whose function part does not compile on its own. Any glob
/// segment after the first matches some tool name, so the pattern matches a tool of
/// every function its first segment matches.
fn tool_function(pattern: &str) -> Option<FunctionPattern> {
    let (first, rest) = match pattern.split_once('/') {
        Some((first, rest)) => (first, rest),
        // `**` alone (or `**` inside the only segment) already matches bare names.
        None => return None,
    };
    if rest.is_empty() {
        return None;
    }
    FunctionPattern::new(first).ok()
}

/// A CIDR, or a bare address meaning that single host.
fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// The part of a glob before its first metacharacter; every match starts with it.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '{', '\\']).unwrap_or(pattern.len());
    &pattern[..end]
}
