//! Counters the gateway exports to Prometheus.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The audit log's counters: plain atomics, cheap to read from a metrics handler.
#[derive(Debug)]
pub struct AuditMetrics {
    /// Records durably written to every sink (`cloakroom_audit_records_written_total`).
    pub records_written: AtomicU64,
    /// Records that could not be written and were given up on
    /// (`cloakroom_audit_records_lost_total`).
    pub records_lost: AtomicU64,
    /// Failed sink writes, retried or not (`cloakroom_audit_write_failures_total`).
    pub write_failures: AtomicU64,
    /// Calls refused with `audit_unavailable` (`cloakroom_audit_calls_refused_total`).
    pub calls_refused: AtomicU64,
    /// Group commits performed (`cloakroom_audit_batches_total`).
    pub batches: AtomicU64,
    /// Whether the sinks are writing (`cloakroom_audit_available`, 1 or 0).
    pub available: AtomicBool,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        Self {
            records_written: AtomicU64::new(0),
            records_lost: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            calls_refused: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            available: AtomicBool::new(true),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditMetricsSnapshot {
    /// See [`AuditMetrics::records_written`].
    pub records_written: u64,
    /// See [`AuditMetrics::records_lost`].
    pub records_lost: u64,
    /// See [`AuditMetrics::write_failures`].
    pub write_failures: u64,
    /// See [`AuditMetrics::calls_refused`].
    pub calls_refused: u64,
    /// See [`AuditMetrics::batches`].
    pub batches: u64,
    /// See [`AuditMetrics::available`].
    pub available: bool,
}

impl AuditMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> AuditMetricsSnapshot {
        AuditMetricsSnapshot {
            records_written: self.records_written.load(Ordering::Relaxed),
            records_lost: self.records_lost.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            calls_refused: self.calls_refused.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            available: self.available.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
