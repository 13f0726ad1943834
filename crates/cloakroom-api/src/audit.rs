//! `GET /v1/audit?since=&limit=`, `GET /v1/audit/{id}` and `GET /v1/audit/verify`.
//!
//! The records themselves stay JSON ([`AuditRecord`]; the crate docs say why); the page
//! around them and the verification report are typed.

use serde::{Deserialize, Serialize};

/// One audit record as the gateway serves it: the answer of `GET /v1/audit/{id}` and
/// each item of an [`AuditPage`]. Its fields are those of docs/reference.md ("The audit
/// record"), owned and versioned by the `cloakroom-audit` crate; `seq` is the cursor for
/// the next page.
pub type AuditRecord = serde_json::Value;

/// The answer to `GET /v1/audit`: records in chain order, at most `limit` of them, after
/// `since` (a `seq` or an RFC 3339 time). Ask for the next page with `since` = the last
/// record's `seq`; a page shorter than `limit` is the end.
///
/// Generic over the record so the gateway can serialize its own record type;
/// clients read it as `AuditPage` (records as [`AuditRecord`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditPage<R = AuditRecord> {
    /// The records.
    pub records: Vec<R>,
}

impl<R> AuditPage<R> {
    /// A page of `records`.
    pub fn new(records: Vec<R>) -> Self {
        Self { records }
    }
}

impl AuditPage {
    /// The `seq` of the last record: the `since` of the next page.
    pub fn last_seq(&self) -> Option<u64> {
        self.records.last().and_then(|r| r.get("seq")).and_then(serde_json::Value::as_u64)
    }
}

/// The answer to `GET /v1/audit/verify`: every chain of the store, checked link by link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Whether every chain verified.
    pub ok: bool,
    /// One report per chain, sorted by chain id.
    pub chains: Vec<ChainReport>,
}

impl VerifyReport {
    /// The report over `chains`; `ok` when none has a break.
    pub fn new(chains: Vec<ChainReport>) -> Self {
        Self { ok: chains.iter().all(ChainReport::is_ok), chains }
    }

    /// The chains with a broken link.
    pub fn broken(&self) -> impl Iterator<Item = &ChainReport> {
        self.chains.iter().filter(|c| !c.is_ok())
    }
}

/// The result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChainReport {
    /// The chain (one per replica).
    pub chain_id: String,
    /// How many stored records were checked.
    pub records: u64,
    /// `seq` of the last record before any break (the verified head).
    pub head_seq: u64,
    /// The verified head's hash.
    pub head_hash: String,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Chain `chain_id` with `records` checked, verified up to `head_seq` / `head_hash`.
    pub fn new(
        chain_id: impl Into<String>,
        records: u64,
        head_seq: u64,
        head_hash: impl Into<String>,
        first_break: Option<ChainBreak>,
    ) -> Self {
        Self { chain_id: chain_id.into(), records, head_seq, head_hash: head_hash.into(), first_break }
    }

    /// Whether the chain verified.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The first broken link of a chain: `{"position", "expected_seq", "kind", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChainBreak {
    /// 0-based position in the store's order where the break was found.
    pub position: u64,
    /// The `seq` the chain expected there.
    pub expected_seq: u64,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: BreakKind,
}

impl ChainBreak {
    /// A break of `kind` at `position`, where `expected_seq` was expected.
    pub fn new(position: u64, expected_seq: u64, kind: BreakKind) -> Self {
        Self { position, expected_seq, kind }
    }
}

/// What is wrong at a [`ChainBreak`], in its `kind` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// A record's stored bytes changed.
    Altered {
        /// What did not match.
        detail: String,
    },
    /// Records `from..=to` are missing.
    Removed {
        /// The first missing `seq`.
        from: u64,
        /// The last missing `seq`.
        to: u64,
    },
    /// A record that does not belong (a duplicate, another chain's, or one that does not
    /// link to the record before it).
    Inserted {
        /// What did not match.
        detail: String,
    },
    /// Records out of order.
    Reordered {
        /// The `seq` expected at this position.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
    /// A kind this version does not know (the chain is broken all the same).
    #[serde(other)]
    Unknown,
}

impl BreakKind {
    /// The kind's wire name (`altered`, `removed`, …).
    pub fn name(&self) -> &'static str {
        match self {
            BreakKind::Altered { .. } => "altered",
            BreakKind::Removed { .. } => "removed",
            BreakKind::Inserted { .. } => "inserted",
            BreakKind::Reordered { .. } => "reordered",
            BreakKind::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_break_is_flat_on_the_wire() {
        let report = VerifyReport::new(vec![
            ChainReport::new("a", 3, 3, "h3", None),
            ChainReport::new("b", 9, 4, "h4", Some(ChainBreak::new(4, 5, BreakKind::Removed { from: 5, to: 6 }))),
        ]);
        assert!(!report.ok);
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(
            v["chains"][1]["first_break"],
            serde_json::json!({"position": 4, "expected_seq": 5, "kind": "removed", "from": 5, "to": 6})
        );
        assert_eq!(serde_json::from_value::<VerifyReport>(v).unwrap(), report);
        assert_eq!(report.broken().map(|c| c.chain_id.as_str()).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn an_unknown_break_kind_still_reads_as_broken() {
        let c: ChainReport = serde_json::from_str(
            r#"{"chain_id":"a","records":2,"head_seq":1,"head_hash":"h","first_break":{"position":1,"expected_seq":2,"kind":"forked","at":7}}"#,
        )
        .unwrap();
        assert!(!c.is_ok());
        assert_eq!(c.first_break.unwrap().kind, BreakKind::Unknown);
    }

    #[test]
    fn the_next_page_starts_after_the_last_seq() {
        let page: AuditPage = serde_json::from_str(r#"{"records":[{"seq":7},{"seq":8}]}"#).unwrap();
        assert_eq!(page.last_seq(), Some(8));
        assert_eq!(AuditPage::new(vec![]).last_seq(), None);
    }
}
