//! The gateway's Prometheus metrics, rendered in the text exposition format.
//!
//! A small exporter rather than a registry: a handful of counters and one histogram
//! family, plus values read from the audit log and approval store at scrape time.
//! Labels carry function names, decisions and error codes — never a secret, an
//! argument or a credential.
//!
//! ```
//! use cloakroom_gateway::metrics::Metrics;
//! let m = Metrics::default();
//! m.observe_call("echo", "allow", std::time::Duration::from_millis(3));
//! let text = m.render(&[]);
//! assert!(text.contains("cloakroom_calls_total{function=\"echo\",decision=\"allow\"} 1"));
//! ```

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Secrets replaced in responses by the masker.
    pub masked_matches: AtomicU64,
    /// Placeholders substituted by secrets in requests.
    pub secrets_substituted: AtomicU64,
    /// Secret store errors.
    pub vault_errors: AtomicU64,
}

/// One extra sample rendered with the gateway's own: `(name, help, type, labels, value)`.
pub type Sample = (&'static str, &'static str, &'static str, Vec<(&'static str, String)>, f64);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Counts a call to `function` that ended with `decision` (`allow`, `deny`,
    /// `approve`, or the error code when no decision was made) and took `elapsed` to answer.
    pub fn observe_call(&self, function: &str, decision: &str, elapsed: Duration) {
        *lock(&self.calls).entry((function.to_owned(), decision.to_owned())).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = lock(&self.latency);
        let h = latency.entry(function.to_owned()).or_default();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The metrics as Prometheus text, with `extra` samples appended.
    pub fn render(&self, extra: &[Sample]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP cloakroom_calls_total Calls by function and decision.\n# TYPE cloakroom_calls_total counter\n",
        );
        for ((function, decision), n) in lock(&self.calls).iter() {
            let _ = writeln!(
                out,
                "cloakroom_calls_total{{function=\"{}\",decision=\"{}\"}} {n}",
                escape(function),
                escape(decision)
            );
        }
        out.push_str("# HELP cloakroom_call_duration_seconds Time to the response head, by function.\n# TYPE cloakroom_call_duration_seconds histogram\n");
        for (function, h) in lock(&self.latency).iter() {
            let f = escape(function);
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "cloakroom_call_duration_seconds_bucket{{function=\"{f}\",le=\"{bound}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(out, "cloakroom_call_duration_seconds_bucket{{function=\"{f}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "cloakroom_call_duration_seconds_sum{{function=\"{f}\"}} {}", h.sum);
            let _ = writeln!(out, "cloakroom_call_duration_seconds_count{{function=\"{f}\"}} {}", h.count);
        }
        let counters = [
            ("cloakroom_masked_matches_total", "Secrets replaced in responses.", &self.masked_matches),
            (
                "cloakroom_secrets_substituted_total",
                "Placeholders replaced by secrets in requests.",
                &self.secrets_substituted,
            ),
            ("cloakroom_vault_errors_total", "Secret store errors.", &self.vault_errors),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let mut last = "";
        for (name, help, kind, labels, value) in extra {
            if *name != last {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", l.join(","));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_call("f", "deny", Duration::from_millis(2));
        m.observe_call("f", "deny", Duration::from_millis(200));
        let t = m.render(&[("cloakroom_x", "X.", "gauge", vec![("state", "pending".into())], 3.0)]);
        assert!(t.contains("cloakroom_call_duration_seconds_bucket{function=\"f\",le=\"0.0025\"} 1"), "{t}");
        assert!(t.contains("cloakroom_call_duration_seconds_bucket{function=\"f\",le=\"0.25\"} 2"), "{t}");
        assert!(t.contains("cloakroom_call_duration_seconds_count{function=\"f\"} 2"));
        assert!(t.contains("cloakroom_calls_total{function=\"f\",decision=\"deny\"} 2"));
        assert!(t.contains("cloakroom_x{state=\"pending\"} 3"));
    }
}
