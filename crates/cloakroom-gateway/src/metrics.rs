//! The gateway's Prometheus metrics, kept in a `prometheus-client` registry.
//!
//! Counters and histograms are atomics; recording a call takes no lock but the read
//! side of a family's map. Labels carry only names the configuration chose: a function
//! label is a configured function's name, or a tool name (`<function>/<tool>`) that a
//! `[[policy.rules]]` or `[[secrets]]` entry names exactly; every other name a caller
//! can make up (an MCP tool, a path) is counted under [`OTHER`]. Decisions are the
//! effects and docs/reference.md error codes. So the size of `/metrics` is bounded by the
//! configuration, whatever callers send. Never a secret, an argument or a credential.
//!
//! ```
//! use cloakroom_gateway::metrics::Metrics;
//! let m = Metrics::default();
//! m.set_known_functions(["echo"]);
//! m.observe_call("echo", "allow", std::time::Duration::from_millis(3));
//! m.observe_call("made-up-by-a-caller", "deny", std::time::Duration::from_millis(3));
//! let text = m.render(&[]);
//! assert!(text.contains("cloakroom_calls_total{function=\"echo\",decision=\"allow\"} 1"));
//! assert!(text.contains("cloakroom_calls_total{function=\"other\",decision=\"deny\"} 1"));
//! assert!(!text.contains("made-up"));
//! ```

use std::{collections::HashSet, fmt::Write, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use cloakroom_core::ErrorCode;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use crate::config::Config;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The label of every function or tool name the configuration does not name.
pub const OTHER: &str = "other";

/// The function label of a request routed to no function.
pub const UNROUTED: &str = "-";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    function: String,
    decision: &'static str,
}

/// A shadow rule's would-be effect: the rule label is a configured rule's name (the
/// audit record's `shadow` list only ever holds those), never caller input.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    rule: String,
    effect: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The gateway's counters.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<FunctionLabel, Histogram, fn() -> Histogram>,
    masked_matches: Counter,
    secrets_substituted: Counter,
    vault_errors: Counter,
    policy_shadow: Family<ShadowLabels, Counter>,
    /// The function and tool names that get their own label.
    known: ArcSwap<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("known", &self.known.load().len()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<FunctionLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let (masked_matches, secrets_substituted, vault_errors) =
            (Counter::default(), Counter::default(), Counter::default());
        // Counters are rendered with `_total` appended.
        registry.register("cloakroom_calls", "Calls by function and decision.", calls.clone());
        registry.register(
            "cloakroom_call_duration_seconds",
            "Time to the response head, by function.",
            latency.clone(),
        );
        registry.register("cloakroom_masked_matches", "Secrets replaced in responses.", masked_matches.clone());
        registry.register(
            "cloakroom_secrets_substituted",
            "Placeholders replaced by secrets in requests.",
            secrets_substituted.clone(),
        );
        registry.register("cloakroom_vault_errors", "Secret store errors.", vault_errors.clone());
        let policy_shadow = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "cloakroom_policy_shadow",
            "Would-be effects of mode = \"shadow\" rules (not enforced), by rule and effect.",
            policy_shadow.clone(),
        );
        Self {
            registry,
            calls,
            latency,
            masked_matches,
            secrets_substituted,
            vault_errors,
            policy_shadow,
            known: ArcSwap::from_pointee(HashSet::new()),
        }
    }
}

/// One extra sample rendered with the gateway's own: `(name, help, type, labels, value)`.
/// Labels must come from the gateway, never from a caller.
pub type Sample = (&'static str, &'static str, &'static str, Vec<(&'static str, String)>, f64);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The decision label: an effect, `none`, an error code, or [`OTHER`].
fn decision_label(decision: &str) -> &'static str {
    const EFFECTS: [&str; 4] = ["allow", "deny", "approve", "none"];
    EFFECTS.into_iter().chain(ErrorCode::ALL.iter().map(ErrorCode::as_str)).find(|d| *d == decision).unwrap_or(OTHER)
}

/// Whether a name in a `functions` list is exact (a glob would match names callers pick).
fn is_exact(name: &str) -> bool {
    !name.is_empty() && !name.contains(['*', '?', '[', ']', '{', '}', '!'])
}

impl Metrics {
    /// Sets the function and tool names that get their own label (see the module docs).
    pub fn set_known_functions<I, S>(&self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = names.into_iter().filter(|n| is_exact(n.as_ref())).map(|n| n.as_ref().to_owned()).collect();
        self.known.store(Arc::new(set));
    }

    /// Sets the labelled names from a configuration: the functions' names and the exact
    /// names in `[[policy.rules]].functions` and `[[secrets]].functions`.
    pub fn set_known_from(&self, config: &Config) {
        let names = config
            .functions
            .iter()
            .map(|f| f.name.as_str())
            .chain(config.policy.rules.iter().flat_map(|r| r.functions.iter().map(String::as_str)))
            .chain(config.secrets.iter().flat_map(|s| s.functions.iter().map(String::as_str)));
        self.set_known_functions(names);
    }

    /// The label `function` is counted under.
    pub fn function_label(&self, function: &str) -> String {
        if function == UNROUTED || self.known.load().contains(function) {
            function.to_owned()
        } else {
            OTHER.to_owned()
        }
    }

    /// Counts a call to `function` that ended with `decision` (`allow`, `deny`,
    /// `approve`, or the error code when no decision was made) and took `elapsed` to answer.
    pub fn observe_call(&self, function: &str, decision: &str, elapsed: Duration) {
        let function = self.function_label(function);
        self.latency.get_or_create(&FunctionLabel { function: function.clone() }).observe(elapsed.as_secs_f64());
        self.calls.get_or_create(&CallLabels { function, decision: decision_label(decision) }).inc();
    }

    /// Counts secrets replaced in a response.
    pub fn add_masked(&self, n: u64) {
        self.masked_matches.inc_by(n);
    }

    /// Counts placeholders substituted in a request.
    pub fn add_substituted(&self, n: u64) {
        self.secrets_substituted.inc_by(n);
    }

    /// Counts a `mode = "shadow"` rule that would have given a call `effect`. `rule` must
    /// be a configured rule's name.
    pub fn add_shadow(&self, rule: &str, effect: cloakroom_core::Effect) {
        self.policy_shadow.get_or_create(&ShadowLabels { rule: rule.to_owned(), effect: effect.as_str() }).inc();
    }

    /// Counts a secret store error.
    pub fn add_vault_error(&self) {
        self.vault_errors.inc();
    }

    /// The content type of [`Metrics::render`]'s text.
    pub const CONTENT_TYPE: &'static str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The metrics as OpenMetrics text (which Prometheus scrapes), with `extra` samples
    /// appended.
    pub fn render(&self, extra: &[Sample]) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let mut last = "";
        for (name, help, kind, labels, value) in extra {
            // OpenMetrics names a counter family without `_total` and its sample with it.
            let family = if *kind == "counter" { name.strip_suffix("_total").unwrap_or(name) } else { name };
            if family != last {
                let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
                last = family;
            }
            let name = if *kind == "counter" { format!("{family}_total") } else { family.to_owned() };
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", l.join(","));
            }
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

impl Metrics {
    /// The audit layer's seal hook that feeds these metrics and logs the "call finished"
    /// line: every count comes from the sealed audit record, so the metrics and the log
    /// count exactly the calls the audit log holds (aborted ones included).
    pub fn on_seal(self: &std::sync::Arc<Self>) -> cloakroom_audit::OnSeal {
        let metrics = self.clone();
        std::sync::Arc::new(move |sealed: &cloakroom_audit::SealedCall<'_>| metrics.observe_sealed(sealed))
    }

    fn observe_sealed(&self, sealed: &cloakroom_audit::SealedCall<'_>) {
        let r = sealed.record;
        let function = r.function.as_deref().unwrap_or("-");
        // A Cloakroom refusal names the call's outcome (but `forbidden` is the decision's
        // `deny`); how the response stream ended (`aborted`, `body_error`) does not.
        let refusal =
            r.error.as_ref().map(|e| e.code.as_str()).filter(|c| ErrorCode::ALL.iter().any(|k| k.as_str() == *c));
        let decision = match (&r.decision, refusal) {
            (_, Some(code)) if code != ErrorCode::Forbidden.as_str() => code,
            (Some(d), _) => d.effect.as_str(),
            (None, Some(code)) => code,
            (None, None) => "none",
        };
        let head = sealed.head_latency.unwrap_or(std::time::Duration::from_millis(r.duration_ms));
        self.observe_call(function, decision, head);
        self.add_masked(r.response.masked);
        if refusal == Some(ErrorCode::VaultUnavailable.as_str()) {
            self.add_vault_error();
        }
        self.add_substituted(r.secrets_used.len() as u64);
        for v in &r.shadow {
            self.add_shadow(&v.rule, v.effect);
        }
        tracing::info!(
            call_id = %r.id,
            function = %cloakroom_core::quoted(function),
            decision = %decision,
            upstream_status = r.upstream.as_ref().map(|u| u.status),
            masked = r.response.masked,
            secrets_used = r.secrets_used.len(),
            head_ms = head.as_millis() as u64,
            "call finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.set_known_functions(["f"]);
        m.observe_call("f", "deny", Duration::from_millis(2));
        m.observe_call("f", "deny", Duration::from_millis(200));
        let t = m.render(&[
            ("cloakroom_x", "X.", "gauge", vec![("state", "pending".into())], 3.0),
            ("cloakroom_y_total", "Y.", "counter", vec![], 4.0),
        ]);
        assert!(t.contains("# TYPE cloakroom_y counter\ncloakroom_y_total 4\n"), "{t}");
        assert!(t.contains("cloakroom_call_duration_seconds_bucket{le=\"0.0025\",function=\"f\"} 1"), "{t}");
        assert!(t.contains("cloakroom_call_duration_seconds_bucket{le=\"0.25\",function=\"f\"} 2"), "{t}");
        assert!(t.contains("cloakroom_call_duration_seconds_count{function=\"f\"} 2"), "{t}");
        assert!(t.contains("cloakroom_calls_total{function=\"f\",decision=\"deny\"} 2"), "{t}");
        assert!(t.contains("cloakroom_x{state=\"pending\"} 3"), "{t}");
        assert!(t.ends_with("# EOF\n"), "{t}");
    }

    #[test]
    fn labels_come_only_from_the_configuration() {
        let m = Metrics::default();
        m.set_known_functions(["mcp", "mcp/search", "payments/*"]);
        for i in 0..300 {
            m.observe_call(&format!("mcp/{}{i}", "x".repeat(1000)), "deny", Duration::ZERO);
            m.observe_call("mcp", &format!("made-up-{i}"), Duration::ZERO);
        }
        m.observe_call("mcp/search", "allow", Duration::ZERO);
        m.observe_call("payments/*", "allow", Duration::ZERO);
        m.observe_call(UNROUTED, "not_found", Duration::ZERO);
        let t = m.render(&[]);
        assert!(t.contains("cloakroom_calls_total{function=\"other\",decision=\"deny\"} 300"), "{t}");
        assert!(t.contains("cloakroom_calls_total{function=\"mcp\",decision=\"other\"} 300"), "{t}");
        assert!(t.contains("cloakroom_calls_total{function=\"mcp/search\",decision=\"allow\"} 1"), "{t}");
        assert!(t.contains("cloakroom_calls_total{function=\"other\",decision=\"allow\"} 1"), "{t}");
        assert!(t.contains("cloakroom_calls_total{function=\"-\",decision=\"not_found\"} 1"), "{t}");
        assert!(t.len() < 8192, "{} bytes", t.len());
    }

    #[test]
    fn the_plain_counters_keep_their_names() {
        let m = Metrics::default();
        m.add_masked(3);
        m.add_substituted(2);
        m.add_vault_error();
        m.add_shadow("would deny \"x\"", cloakroom_core::Effect::Deny);
        let t = m.render(&[]);
        assert!(t.contains("cloakroom_policy_shadow_total{rule=\"would deny \\\"x\\\"\",effect=\"deny\"} 1"), "{t}");
        assert!(t.contains("cloakroom_masked_matches_total 3"), "{t}");
        assert!(t.contains("cloakroom_secrets_substituted_total 2"), "{t}");
        assert!(t.contains("cloakroom_vault_errors_total 1"), "{t}");
    }
}
