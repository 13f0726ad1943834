//! Canonical JSON, record hashes and chain verification.
//!
//! Rules (also in docs/audit.md, so an auditor can check an export with any language):
//! - Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings
//!   escaped as JSON requires and nothing more (`"`, `\`, control characters; `\b \f \n
//!   \r \t` short, others `\u00xx` lowercase), non-ASCII written as UTF-8, integers only
//!   (a float anywhere is refused).
//! - `hash` = lowercase hex SHA-256 of the canonical JSON of the record without its `hash`
//!   key (so `chain_id`, `seq` and `prev_hash` are covered).
//! - Records of a chain have `seq` 1, 2, 3… and each `prev_hash` is the previous record's
//!   `hash` ([`GENESIS_HASH`](crate::GENESIS_HASH) for `seq` 1).
//!
//! ```
//! use cloakroom_audit::chain::canonical_json;
//! let v = serde_json::json!({"b": 1, "a": [true, null, "x\n"]});
//! assert_eq!(canonical_json(&v).unwrap(), r#"{"a":[true,null,"x\n"],"b":1}"#);
//! assert!(canonical_json(&serde_json::json!({"f": 1.5})).is_err());
//! ```

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AuditRecord, GENESIS_HASH};

pub(crate) use cloakroom_core::canonical::write_json_string as write_string;
pub use cloakroom_core::canonical::{canonical_json, CanonicalError};
use cloakroom_core::canonical::{sorted_keys, write_canonical_json};

/// The canonical JSON of any serializable value.
pub fn to_canonical<T: Serialize>(value: &T) -> Result<String, CanonicalError> {
    canonical_json(&serde_json::to_value(value)?)
}

/// The hash a record must carry: SHA-256 over its canonical JSON without `hash`.
pub fn record_hash(record: &AuditRecord) -> Result<String, CanonicalError> {
    let mut value = serde_json::to_value(record)?;
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    Ok(hex::encode(Sha256::digest(canonical_json(&value)?.as_bytes())))
}

/// Sets `seq`, `prev_hash` and `hash` so that `record` follows a record whose
/// `(seq, hash)` is `prev` (`None` for the first of a chain), and returns the
/// canonical text that is stored.
pub fn seal(record: &mut AuditRecord, prev: Option<(u64, &str)>) -> Result<String, CanonicalError> {
    let value = serde_json::to_value(&*record)?;
    seal_value(record, value, prev)
}

/// The `seq` and `prev_hash` of the record that follows `prev`, a record's `(seq, hash)`
/// (`None`: the first record of a chain).
pub(crate) fn next_link(prev: Option<(u64, &str)>) -> (u64, &str) {
    prev.map(|(s, h)| (s + 1, h)).unwrap_or((1, GENESIS_HASH))
}

/// Hashes a record's canonical text without `hash`, given as `head` followed by the
/// `tail` pieces, and returns the hash and the stored text: the same text, copied once,
/// with `,"hash":"…"` spliced in at byte `at` of `head` (before the first key that sorts
/// after `hash`).
pub(crate) fn splice_hash(head: &str, at: usize, tail: &[&str]) -> (String, String) {
    let mut hasher = Sha256::new();
    hasher.update(head);
    tail.iter().for_each(|piece| hasher.update(piece));
    let hash = hex::encode(hasher.finalize());
    let len = head.len() + tail.iter().map(|piece| piece.len()).sum::<usize>();
    let mut stored = String::with_capacity(len + hash.len() + 10);
    stored.push_str(&head[..at]);
    stored.push_str(",\"hash\":\"");
    stored.push_str(&hash);
    stored.push('"');
    stored.push_str(&head[at..]);
    tail.iter().for_each(|piece| stored.push_str(piece));
    (hash, stored)
}

/// [`seal`] for a record already converted with `serde_json::to_value` (which the log
/// does before taking the chain lock, to keep the time under the lock short).
pub fn seal_value(
    record: &mut AuditRecord,
    mut value: Value,
    prev: Option<(u64, &str)>,
) -> Result<String, CanonicalError> {
    let (seq, prev_hash) = next_link(prev);
    record.seq = seq;
    record.prev_hash = prev_hash.to_owned();
    let Value::Object(map) = &mut value else { unreachable!("a record is an object") };
    map.insert("chain_id".into(), Value::String(record.chain_id.clone()));
    map.insert("seq".into(), Value::from(seq));
    map.insert("prev_hash".into(), Value::String(record.prev_hash.clone()));
    // One canonical pass without `hash`; the stored text is the same with `"hash":"…"`
    // spliced in at its sorted place.
    let mut out = String::with_capacity(1024);
    let mut splice = None;
    out.push('{');
    let mut first = true;
    for key in sorted_keys(map) {
        if key == "hash" {
            continue;
        }
        if splice.is_none() && key.as_str() > "hash" {
            splice = Some(out.len());
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_string(key, &mut out);
        out.push(':');
        write_canonical_json(&map[key], &mut out)?;
    }
    out.push('}');
    // A record always has keys before and after "hash" ("function", "id").
    let (hash, stored) = splice_hash(&out, splice.unwrap_or(out.len() - 1), &[]);
    record.hash = hash;
    Ok(stored)
}

/// What is wrong at the first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The stored bytes of a record changed: they no longer parse as a record, or its
    /// content no longer matches its `hash`.
    Altered {
        /// What did not match.
        detail: String,
    },
    /// Records are missing: the chain jumps from `expected` to a later `seq`.
    Removed {
        /// The first missing `seq`.
        from: u64,
        /// The last missing `seq`.
        to: u64,
    },
    /// A record that does not belong: a duplicate `seq`, a record of another chain, or
    /// one whose `prev_hash` does not link to the record before it.
    Inserted {
        /// What did not match.
        detail: String,
    },
    /// Records are present but out of order: a `seq` came earlier or later than its place.
    Reordered {
        /// The `seq` expected at this position.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
}

/// The first broken link found in a chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainBreak {
    /// 0-based position in the store's order where the break was found.
    pub position: u64,
    /// The `seq` the chain expected at that position.
    pub expected_seq: u64,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: BreakKind,
}

/// The result of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// The chain.
    pub chain_id: String,
    /// How many stored records were checked.
    pub records: u64,
    /// `seq` and `hash` of the last record before any break (the verified head).
    pub head_seq: u64,
    /// The verified head's hash ([`GENESIS_HASH`] for an empty chain).
    pub head_hash: String,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Whether the chain verified.
    pub fn is_ok(&self) -> bool {
        self.first_break.is_none()
    }
}

/// The result of verifying every chain of a store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// One report per chain, sorted by chain id.
    pub chains: Vec<ChainReport>,
}

impl VerifyReport {
    /// Whether every chain verified.
    pub fn is_ok(&self) -> bool {
        self.chains.iter().all(ChainReport::is_ok)
    }
}

/// Walks one chain's stored records (in the store's order) and finds the first broken
/// link. Feed it with [`ChainVerifier::push`], then call [`ChainVerifier::finish`].
#[derive(Debug)]
pub struct ChainVerifier {
    chain_id: String,
    position: u64,
    head_seq: u64,
    head_hash: String,
    first_break: Option<ChainBreak>,
    /// Set when a jump forward was seen: if the skipped `seq` shows up later, the
    /// records were reordered rather than removed.
    pending_gap: Option<PendingGap>,
}

#[derive(Debug, Clone, Copy)]
struct PendingGap {
    position: u64,
    missing: u64,
    found: u64,
}

impl ChainVerifier {
    /// A verifier for chain `chain_id`.
    pub fn new(chain_id: impl Into<String>) -> Self {
        Self {
            chain_id: chain_id.into(),
            position: 0,
            head_seq: 0,
            head_hash: GENESIS_HASH.to_owned(),
            first_break: None,
            pending_gap: None,
        }
    }

    /// Whether a break was found already (the rest only serves to classify it).
    pub fn broken(&self) -> bool {
        self.first_break.is_some() && self.pending_gap.is_none()
    }

    /// Checks the next stored record.
    pub fn push(&mut self, stored: &[u8]) {
        let position = self.position;
        self.position += 1;
        if let Some(gap) = self.pending_gap {
            // Classify the earlier jump: if the skipped seq appears later, the records
            // were reordered rather than removed.
            if let Ok(r) = serde_json::from_slice::<AuditRecord>(stored) {
                if r.seq == gap.missing {
                    if let Some(b) = &mut self.first_break {
                        if b.position == gap.position {
                            b.kind = BreakKind::Reordered { expected: gap.missing, found: gap.found };
                        }
                    }
                    self.pending_gap = None;
                }
            }
            return;
        }
        if self.first_break.is_some() {
            return;
        }
        let expected = self.head_seq + 1;
        let brk = |kind| Some(ChainBreak { position, expected_seq: expected, kind });
        let record: AuditRecord = match serde_json::from_slice(stored) {
            Ok(r) => r,
            Err(e) => {
                self.first_break = brk(BreakKind::Altered { detail: format!("stored bytes are not a record: {e}") });
                return;
            }
        };
        match record_hash(&record) {
            Ok(h) if h == record.hash => {}
            Ok(_) => {
                self.first_break =
                    brk(BreakKind::Altered { detail: format!("record seq {} does not match its hash", record.seq) });
                return;
            }
            Err(e) => {
                self.first_break = brk(BreakKind::Altered { detail: e.to_string() });
                return;
            }
        }
        if record.chain_id != self.chain_id {
            self.first_break = brk(BreakKind::Inserted {
                detail: format!("record of chain {:?} in chain {:?}", record.chain_id, self.chain_id),
            });
            return;
        }
        if record.seq > expected {
            self.first_break = brk(BreakKind::Removed { from: expected, to: record.seq - 1 });
            self.pending_gap = Some(PendingGap { position, missing: expected, found: record.seq });
            return;
        }
        if record.seq < expected {
            self.first_break = if record.seq == self.head_seq || record.seq == 0 {
                brk(BreakKind::Inserted { detail: format!("a second record with seq {}", record.seq) })
            } else {
                brk(BreakKind::Reordered { expected, found: record.seq })
            };
            return;
        }
        if record.prev_hash != self.head_hash {
            self.first_break = brk(BreakKind::Inserted {
                detail: format!("record seq {} does not link to the record before it", record.seq),
            });
            return;
        }
        self.head_seq = record.seq;
        self.head_hash = record.hash;
    }

    /// The report for everything pushed.
    pub fn finish(self) -> ChainReport {
        ChainReport {
            chain_id: self.chain_id,
            records: self.position,
            head_seq: self.head_seq,
            head_hash: self.head_hash,
            first_break: self.first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        // Stored hashes depend on these bytes: the escaping must never change.
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        for s in [every_ascii.as_str(), "", "plain", "ünïcödé ✓ \u{2028}", "a\"b\\c\u{1f}\u{7f}"] {
            let mut out = String::new();
            write_string(s, &mut out);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
