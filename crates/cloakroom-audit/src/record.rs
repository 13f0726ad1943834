//! The audit record of docs/reference.md (audit record) and how its bodies and headers are captured.
//!
//! One [`AuditRecord`] per call. Every field is always present in the JSON (absent facts
//! are `null` or empty), so records have one shape an auditor can rely on. The chain
//! fields (`chain_id`, `seq`, `prev_hash`, `hash`) are filled in by
//! [`AuditLog::append`](crate::AuditLog::append); see [`crate::chain`] for the hashing rules.
//!
//! ```
//! use cloakroom_audit::{AuditRecord, RecordBody};
//! let mut record = AuditRecord::new(cloakroom_core::CallId::new(), time::OffsetDateTime::UNIX_EPOCH);
//! record.request.body = Some(RecordBody::capture(b"{\"amount\":5}", 12, 1024));
//! assert_eq!(record.time, "1970-01-01T00:00:00.000Z");
//! assert_eq!(record.request.body.as_ref().unwrap().encoding, "utf8");
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use cloakroom_core::{
    ApprovalRef, AuditNoteSnapshot, CallId, Decision, Effect, Identity, Protocol, SecretUse, ShadowVerdict,
};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The value recorded for a sensitive header instead of its content.
pub const REDACTED: &str = "[REDACTED]";

/// Headers whose values are never recorded (compared case-insensitively).
pub const SENSITIVE_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

/// The `prev_hash` of the first record of a chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One call, as the audit log keeps it. Field names are those of docs/reference.md (audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The chain this record belongs to: the replica that wrote it.
    pub chain_id: String,
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// `hash` of the previous record of the chain ([`GENESIS_HASH`] for `seq` 1).
    pub prev_hash: String,
    /// Lowercase hex SHA-256 of the canonical record without this field.
    pub hash: String,
    /// The call id.
    pub id: String,
    /// When the call arrived: RFC 3339, UTC, milliseconds (`2026-11-25T21:30:00.123Z`).
    pub time: String,
    /// From arrival until the record was sealed, in milliseconds.
    pub duration_ms: u64,
    /// The verified caller; `null` when the call was refused before authentication.
    pub identity: Option<RecordIdentity>,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// The function called; `null` when the call was refused before it was parsed.
    pub function: Option<String>,
    /// `http` or `mcp`.
    pub protocol: Option<Protocol>,
    /// What policy decided.
    pub decision: Option<RecordDecision>,
    /// What `mode = "shadow"` rules would have decided (not enforced). Left out of the
    /// JSON when empty — the one field that is — so records written before shadow rules
    /// existed keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowVerdict>,
    /// The approval the call used or asked for.
    pub approval: Option<ApprovalRef>,
    /// Secrets substituted into the request: names, placeholders and locations, never values.
    pub secrets_used: Vec<SecretUse>,
    /// The request as the caller sent it (placeholders, never secrets).
    pub request: RecordRequest,
    /// The response as the caller received it (after masking).
    pub response: RecordResponse,
    /// What the function answered, when the call reached it.
    pub upstream: Option<RecordUpstream>,
    /// How the call failed, if it did.
    pub error: Option<RecordError>,
}

/// The caller of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIdentity {
    /// The subject.
    pub subject: String,
    /// The issuer (`api_key`, `biscuit` or an OIDC issuer URL).
    pub issuer: String,
    /// `oidc`, `biscuit` or `api_key`.
    pub method: String,
    /// The caller's groups.
    pub groups: Vec<String>,
}

/// The decision of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDecision {
    /// `allow`, `deny` or `approve`.
    pub effect: Effect,
    /// The rule that decided; `null` for the default deny.
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
}

/// The request half of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRequest {
    /// The HTTP method.
    pub method: String,
    /// The path and query as received.
    pub path: String,
    /// Header name (lowercase) -> values in order; sensitive ones are `[REDACTED]`.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body as far as the gateway read it; `null` when `record_bodies = false`.
    pub body: Option<RecordBody>,
}

/// The response half of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordResponse {
    /// The status sent to the caller; `null` when the caller went away before it.
    pub status: Option<u16>,
    /// Header name (lowercase) -> values in order; sensitive ones are `[REDACTED]`.
    pub headers: BTreeMap<String, Vec<String>>,
    /// The body as sent to the caller (so far, for aborted streams).
    pub body: Option<RecordBody>,
    /// How many secrets the masker replaced in the response.
    pub masked: u64,
}

/// The upstream half of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordUpstream {
    /// The function's HTTP status.
    pub status: u16,
    /// How long the function took to answer (headers), in milliseconds.
    pub duration_ms: u64,
}

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordError {
    /// A wire error code of docs/reference.md (`forbidden`, `upstream_timeout`, …), or one of the
    /// audit-only codes `aborted` (the caller went away before the response ended) and
    /// `body_error` (the response stream failed).
    pub code: String,
    /// What happened; never contains a secret.
    pub message: String,
}

/// A captured body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// `utf8` when `data` is the body's text, `base64` when the body was not UTF-8 and
    /// `data` is its standard base64 (with padding).
    pub encoding: String,
    /// The body, up to `max_body_record_bytes` bytes.
    pub data: String,
    /// How many bytes the body had in total (as far as it was read).
    pub bytes: u64,
    /// Whether `data` holds only the first `max_body_record_bytes` bytes.
    pub truncated: bool,
}

// === impl AuditRecord ===

impl AuditRecord {
    /// An empty record for call `id` that arrived at `time` (chain fields unset).
    pub fn new(id: CallId, time: OffsetDateTime) -> Self {
        Self {
            chain_id: String::new(),
            seq: 0,
            prev_hash: String::new(),
            hash: String::new(),
            id: id.to_string(),
            time: format_time(time),
            duration_ms: 0,
            identity: None,
            source_ip: None,
            function: None,
            protocol: None,
            decision: None,
            shadow: Vec::new(),
            approval: None,
            secrets_used: Vec::new(),
            request: RecordRequest::default(),
            response: RecordResponse::default(),
            upstream: None,
            error: None,
        }
    }

    /// An empty record for call `id` arriving now.
    pub fn now(id: CallId) -> Self {
        Self::new(id, OffsetDateTime::now_utc())
    }

    /// Fills in what the layers wrote into the call's `AuditNote`.
    pub fn apply_note(&mut self, note: &AuditNoteSnapshot) {
        if let Some(identity) = &note.identity {
            self.identity = Some(RecordIdentity::from(identity));
            if let Some(ip) = identity.source_ip {
                self.source_ip = Some(ip.to_string());
            }
        }
        if let Some(call) = &note.call {
            self.function = Some(call.function.clone());
            self.protocol = Some(call.protocol);
        }
        self.decision = note.decision.as_ref().map(RecordDecision::from);
        self.shadow = note.shadow.clone();
        self.approval = note.approval.clone();
        self.secrets_used = note.secrets_used.clone();
        self.upstream = note.upstream.map(|(status, duration_ms)| RecordUpstream { status, duration_ms });
        self.response.masked = note.masked;
        if let Some(e) = &note.error {
            self.error = Some(RecordError { code: e.code.as_str().to_owned(), message: e.message.clone() });
        }
    }

    /// The call id, parsed.
    pub fn call_id(&self) -> Option<CallId> {
        self.id.parse().ok()
    }

    /// `time` as a timestamp.
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339).ok()
    }
}

impl From<&Identity> for RecordIdentity {
    fn from(id: &Identity) -> Self {
        Self {
            subject: id.subject.clone(),
            issuer: id.issuer.clone(),
            method: id.method.as_str().to_owned(),
            groups: id.groups.clone(),
        }
    }
}

impl From<&Decision> for RecordDecision {
    fn from(d: &Decision) -> Self {
        Self { effect: d.effect, rule: d.rule.clone(), reason: d.reason.clone() }
    }
}

/// Formats a time as records do: RFC 3339 in UTC with exactly three fractional digits,
/// so that the strings sort like the times.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u16::try_from(t.year()) else { return format_time_slow(t) };
    if year > 9999 {
        return format_time_slow(t);
    }
    // Every call's record has a time stamp: digits by hand, not through `format!`
    // (a tenth of the cost; the test below compares the two over the whole range).
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u16| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u16::from(u8::from(t.month())));
    put(8, 2, u16::from(t.day()));
    put(11, 2, u16::from(t.hour()));
    put(14, 2, u16::from(t.minute()));
    put(17, 2, u16::from(t.second()));
    put(20, 3, t.millisecond());
    b.iter().map(|&c| char::from(c)).collect()
}

/// [`format_time`] for years outside 0..=9999.
fn format_time_slow(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

// === impl RecordBody ===

impl RecordBody {
    /// Records `seen` (the first bytes of a body of `total` bytes), keeping at most `max`.
    ///
    /// Text stays text (cut back to a character boundary when truncated); anything else
    /// is base64.
    pub fn capture(seen: &[u8], total: u64, max: usize) -> Self {
        let kept = &seen[..seen.len().min(max)];
        let truncated = total > kept.len() as u64;
        let text = match std::str::from_utf8(kept) {
            Ok(s) => Some(s),
            // A cut through a multi-byte character is still text.
            Err(e) if truncated && e.error_len().is_none() => {
                Some(std::str::from_utf8(&kept[..e.valid_up_to()]).expect("valid prefix"))
            }
            Err(_) => None,
        };
        match text {
            Some(s) => Self { encoding: "utf8".into(), data: s.to_owned(), bytes: total, truncated },
            None => Self {
                encoding: "base64".into(),
                data: base64::engine::general_purpose::STANDARD.encode(kept),
                bytes: total,
                truncated,
            },
        }
    }

    /// The recorded bytes (decoded from base64 when needed).
    pub fn decoded(&self) -> Option<Vec<u8>> {
        match self.encoding.as_str() {
            "utf8" => Some(self.data.clone().into_bytes()),
            "base64" => base64::engine::general_purpose::STANDARD.decode(&self.data).ok(),
            _ => None,
        }
    }
}

/// Headers as records keep them: lowercase names, values in order, sensitive values
/// replaced by `[REDACTED]`, non-UTF-8 values lossily decoded.
pub fn record_headers(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let value = if SENSITIVE_HEADERS.contains(&name) {
            REDACTED.to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.entry(name.to_owned()).or_default().push(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_body_is_text_and_binary_is_base64() {
        let b = RecordBody::capture(b"hello", 5, 100);
        assert_eq!((b.encoding.as_str(), b.data.as_str(), b.truncated), ("utf8", "hello", false));
        let b = RecordBody::capture(&[0xff, 0x00, 0x10], 3, 100);
        assert_eq!(b.encoding, "base64");
        assert_eq!(b.decoded().unwrap(), vec![0xff, 0x00, 0x10]);
    }

    #[test]
    fn truncation_is_marked_and_counts_all_bytes() {
        let body = "a".repeat(100);
        let b = RecordBody::capture(body.as_bytes(), 250, 10);
        assert_eq!(b.data, "a".repeat(10));
        assert!(b.truncated);
        assert_eq!(b.bytes, 250);
    }

    #[test]
    fn truncation_inside_a_character_keeps_text() {
        let body = "ééééé"; // two bytes each
        let b = RecordBody::capture(body.as_bytes(), 10, 5);
        assert_eq!((b.encoding.as_str(), b.data.as_str()), ("utf8", "éé"));
        assert!(b.truncated);
    }

    #[test]
    fn sensitive_headers_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("proxy-authorization", "Bearer def".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        h.append("set-cookie", "a=1".parse().unwrap());
        h.append("set-cookie", "b=2".parse().unwrap());
        h.insert("x-trace", "t1".parse().unwrap());
        let r = record_headers(&h);
        assert_eq!(r["authorization"], vec![REDACTED]);
        assert_eq!(r["proxy-authorization"], vec![REDACTED]);
        assert_eq!(r["cookie"], vec![REDACTED]);
        assert_eq!(r["set-cookie"], vec![REDACTED, REDACTED]);
        assert_eq!(r["x-trace"], vec!["t1"]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("abc") && !json.contains("def") && !json.contains("session"));
    }

    #[test]
    fn time_format_is_fixed_width_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_106_200_123_456_789).unwrap();
        assert_eq!(format_time(t), "2025-11-25T21:30:00.123Z");
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_000_000).unwrap().to_offset(time::macros::offset!(+5:30));
        assert_eq!(format_time(t), "1970-01-01T00:00:00.001Z", "converted to UTC");
    }

    proptest::proptest! {
        #[test]
        fn the_hand_written_time_format_is_the_format_one(nanos in -62_167_219_200_000_000_000i128..253_402_300_800_000_000_000i128) {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            proptest::prop_assert_eq!(format_time(t), format_time_slow(t));
        }
    }
}
