//! `cloakroom policy diff`: replays recorded calls against a new configuration's policy
//! and reports what would change, grouped by function, rule and change.
//!
//! Records come from the admin API (`GET /v1/audit`, page by page) or, with `--from`,
//! from a file written by `cloakroom audit export` (offline). Each record is replayed
//! with the audit crate's [`cloakroom_audit::replay`] against the `PolicySet` built from
//! `--config` exactly as `policy explain` builds it. A call held for approval and then
//! approved was recorded as `allow` by the approve rule; it counts as `approve` here, so
//! an unchanged approve rule shows no change.

use std::{collections::BTreeMap, io::BufRead, path::Path, time::Duration};

use async_trait::async_trait;
use cloakroom_audit::{replay, AuditRecord, ReplayPolicy};
use cloakroom_core::{Call, Decision, Effect, FunctionPattern, Identity};
use cloakroom_policy::{PolicyInput, PolicySet};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    cli::PolicyDiff,
    client::AdminClient,
    cmd::audit::page,
    error::CliError,
    output::{print_json, print_text, table, Output},
};

/// Records per admin API page.
const PAGE: usize = 500;
/// Call ids kept per group as examples.
const EXAMPLES: usize = 3;

/// The new policy, with the secrets the replayed call used (the Datalog `secret` facts).
struct NewPolicy<'a> {
    set: &'a PolicySet,
    secrets: Vec<String>,
}

#[async_trait]
impl ReplayPolicy for NewPolicy<'_> {
    async fn decide(&self, identity: &Identity, call: &Call) -> Decision {
        let input = PolicyInput::new(identity, call).with_source_ip(identity.source_ip).with_secrets(&self.secrets);
        self.set.evaluate(&input).await
    }
}

/// What `policy diff` found.
#[derive(Debug, Default, Serialize)]
pub(crate) struct DiffReport {
    /// Records read (before filtering).
    pub(crate) read: u64,
    /// Records replayed (after `--since` and `--function`).
    pub(crate) replayed: u64,
    /// Replayed calls whose effect would not change.
    pub(crate) unchanged: u64,
    /// Records that could not be replayed (refused before authentication or parsing,
    /// or not readable as a record), by reason.
    pub(crate) skipped: BTreeMap<String, u64>,
    /// The changes, grouped.
    pub(crate) changes: Vec<DiffGroup>,
    /// What replay could not reproduce, with how many calls it concerns.
    pub(crate) caveats: BTreeMap<String, u64>,
}

/// Calls of one function whose effect would change the same way under the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DiffGroup {
    /// The function called.
    pub(crate) function: String,
    /// The effect recorded (`approve` for a call that was held and then approved).
    pub(crate) from: Effect,
    /// The effect under the new policy.
    pub(crate) to: Effect,
    /// The rule that decided then (`null`: the default deny).
    pub(crate) rule_then: Option<String>,
    /// The rule that would decide now (`null`: the default deny).
    pub(crate) rule_now: Option<String>,
    /// How many calls.
    pub(crate) calls: u64,
    /// A few of their call ids.
    pub(crate) examples: Vec<String>,
}

type GroupKey = (String, Option<String>, Option<String>, &'static str, &'static str);

/// Accumulates replayed records into a [`DiffReport`].
struct Differ<'a> {
    set: &'a PolicySet,
    since: Option<OffsetDateTime>,
    function: Option<FunctionPattern>,
    report: DiffReport,
    groups: BTreeMap<GroupKey, DiffGroup>,
}

impl<'a> Differ<'a> {
    fn new(set: &'a PolicySet, since: Option<Duration>, function: Option<&str>) -> Result<Self, CliError> {
        let function = function
            .map(|f| FunctionPattern::new(f).map_err(|e| CliError::Input(format!("--function {f:?}: {e}"))))
            .transpose()?;
        let since = since.map(|d| OffsetDateTime::now_utc() - d);
        Ok(Self { set, since, function, report: DiffReport::default(), groups: BTreeMap::new() })
    }

    fn skip(&mut self, why: &str) {
        *self.report.skipped.entry(why.to_owned()).or_default() += 1;
    }

    /// Replays one record given as JSON.
    async fn add(&mut self, value: serde_json::Value) {
        self.report.read += 1;
        let record: AuditRecord = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(_) => return self.skip("not an audit record this version of the CLI can read"),
        };
        if let (Some(since), Some(t)) = (self.since, record.timestamp()) {
            if t < since {
                return;
            }
        }
        if let (Some(p), Some(f)) = (&self.function, &record.function) {
            if !p.matches(f) {
                return;
            }
        }
        if record.decision.is_none() && record.identity.is_some() && record.function.is_some() {
            return self.skip("no decision was recorded (the call never reached policy)");
        }
        let policy = NewPolicy { set: self.set, secrets: record.secrets_used.iter().map(|s| s.name.clone()).collect() };
        let r = match replay(&record, &policy).await {
            Ok(r) => r,
            Err(e) => return self.skip(&e.to_string()),
        };
        self.report.replayed += 1;
        for c in r.caveats {
            *self.report.caveats.entry(c).or_default() += 1;
        }
        let Some(then) = &r.recorded else { return };
        // Held, then approved: recorded as allowed by the approve rule.
        let from =
            if record.approval.is_some() && then.effect == Effect::Allow { Effect::Approve } else { then.effect };
        let to = r.now.effect;
        if from == to {
            self.report.unchanged += 1;
            return;
        }
        let function = record.function.clone().unwrap_or_default();
        let key = (function.clone(), then.rule.clone(), r.now.rule.clone(), from.as_str(), to.as_str());
        let g = self.groups.entry(key).or_insert_with(|| DiffGroup {
            function,
            from,
            to,
            rule_then: then.rule.clone(),
            rule_now: r.now.rule.clone(),
            calls: 0,
            examples: Vec::new(),
        });
        g.calls += 1;
        if g.examples.len() < EXAMPLES {
            g.examples.push(record.id.clone());
        }
    }

    fn finish(mut self) -> DiffReport {
        self.report.changes = self.groups.into_values().collect();
        self.report
    }
}

/// Runs `cloakroom policy diff`.
pub(crate) async fn run(
    out: Output,
    d: PolicyDiff,
    admin: impl FnOnce() -> Result<AdminClient, CliError>,
) -> Result<(), CliError> {
    let set = super::policy::load(&d.config)?;
    let mut differ = Differ::new(&set, d.since, d.function.as_deref())?;
    match &d.from {
        Some(path) => read_file(path, &mut differ).await?,
        None => {
            let client = admin()?;
            let mut cursor = None;
            loop {
                let p = page(&client, cursor, PAGE).await?;
                let n = p.records.len();
                for r in p.records {
                    differ.add(r).await;
                }
                if p.next.is_some() {
                    cursor = p.next;
                }
                if n < PAGE {
                    break;
                }
            }
        }
    }
    let report = differ.finish();
    match out {
        Output::Json => {
            print_json(&serde_json::to_value(&report).map_err(|e| CliError::Protocol(format!("diff report: {e}")))?)
        }
        Output::Human => print_text(&render(&report)),
    }
}

async fn read_file(path: &Path, differ: &mut Differ<'_>) -> Result<(), CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .map_err(|e| CliError::Input(format!("{} line {}: not JSON: {e}", path.display(), i + 1)))?;
        differ.add(value).await;
    }
    Ok(())
}

fn rule(r: &Option<String>) -> String {
    r.clone().unwrap_or_else(|| "(default deny)".to_owned())
}

/// What the change means for callers, in words.
fn describe(from: Effect, to: Effect) -> String {
    let word = |e: Effect| match e {
        Effect::Allow => "allowed",
        Effect::Deny => "denied",
        Effect::Approve => "held",
    };
    format!("{} -> {}", word(from), word(to))
}

fn render(r: &DiffReport) -> String {
    let mut s = String::new();
    if r.changes.is_empty() {
        s.push_str("no recorded call would change.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .changes
            .iter()
            .map(|g| {
                vec![
                    g.function.clone(),
                    describe(g.from, g.to),
                    format!("{} -> {}", rule(&g.rule_then), rule(&g.rule_now)),
                    g.calls.to_string(),
                    g.examples.join(" "),
                ]
            })
            .collect();
        s.push_str(&table(&["FUNCTION", "CHANGE", "RULE (then -> now)", "CALLS", "EXAMPLES"], &rows));
    }
    let changed: u64 = r.changes.iter().map(|g| g.calls).sum();
    s.push_str(&format!(
        "\n{} records read, {} replayed: {} would change, {} unchanged.\n",
        r.read, r.replayed, changed, r.unchanged
    ));
    for (why, n) in &r.skipped {
        s.push_str(&format!("skipped {n}: {why}\n"));
    }
    for (caveat, n) in &r.caveats {
        s.push_str(&format!("caveat ({n} calls): {caveat}\n"));
    }
    s
}
