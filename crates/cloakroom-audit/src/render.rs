//! The canonical text of an [`AuditRecord`], written straight from its fields.
//!
//! [`chain::seal`](crate::chain::seal) goes through `serde_json::Value`: every field
//! becomes a node, every object's keys are sorted at run time. That is the reference
//! (and what `verify` uses), but on the gateway's data path it cost ~8 % of the CPU of
//! a call. Here the keys are written in their canonical (byte-sorted) order by hand and
//! strings are escaped by the same [`write_string`](crate::chain::write_string), so the
//! text is identical; `tests` below and a `debug_assert` in
//! [`AuditLog::append`](crate::AuditLog::append) compare the two on every record
//! written by a debug build, so a field added to a record type and not here cannot go
//! unnoticed.
//!
//! The chain fields are decided later, under the chain lock: the text is rendered
//! without `hash` and with empty `prev_hash` and `seq` values whose places are kept, so
//! [`Rendered::seal`] hashes the text with those values filled in, piece by piece, and
//! copies it once into the stored text with `hash` spliced in.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    chain::{next_link, splice_hash, write_string},
    record::{RecordBody, RecordDecision, RecordError, RecordIdentity, RecordRequest, RecordResponse, RecordUpstream},
    AuditRecord,
};
use cloakroom_core::{ApprovalRef, SecretUse, ShadowVerdict};

/// A record's canonical text before sealing; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    text: String,
    /// Every string of the text, unescaped, each followed by a NUL; see [`Self::strings`].
    strings: Vec<u8>,
    /// Where `,"hash":"…"` goes: after the `function` value, before `,"id"`.
    hash_at: usize,
    /// Inside the quotes of `"prev_hash":""`.
    prev_hash_at: usize,
    /// Right after `"seq":`.
    seq_at: usize,
}

/// The text being written, and the strings written into it so far (as they were before
/// escaping), which the redaction scan reads: collected while writing, they cost one
/// copy, where reading them back out of the escaped text cost a search and a copy per
/// escape (a JSON body recorded as a string has a `\"` every few bytes).
struct Out {
    text: String,
    strings: Vec<u8>,
}

impl Out {
    /// A JSON string, escaped, whose unescaped bytes the scan sees.
    fn string(&mut self, s: &str) {
        write_string(s, &mut self.text);
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
    }

    fn push(&mut self, c: char) {
        self.text.push(c);
    }

    fn push_str(&mut self, s: &str) {
        self.text.push_str(s);
    }
}

/// [`Out::string`] in the argument order of the other writers.
fn string(s: &str, o: &mut Out) {
    o.string(s);
}

impl Rendered {
    /// Renders `record`, ignoring its chain fields other than `chain_id`.
    pub(crate) fn new(record: &AuditRecord) -> Self {
        let bodies = [&record.request.body, &record.response.body].into_iter().flatten().map(|b| b.data.len());
        let body_bytes = bodies.sum::<usize>();
        let mut o = Out {
            text: String::with_capacity(1024 + body_bytes * 9 / 8),
            strings: Vec::with_capacity(512 + body_bytes),
        };
        o.push('{');
        key(&mut o, "approval", true);
        opt(&mut o, record.approval.as_ref(), approval);
        key(&mut o, "chain_id", false);
        o.string(&record.chain_id);
        key(&mut o, "decision", false);
        opt(&mut o, record.decision.as_ref(), decision);
        key(&mut o, "duration_ms", false);
        num(&mut o, record.duration_ms);
        key(&mut o, "error", false);
        opt(&mut o, record.error.as_ref(), error);
        key(&mut o, "function", false);
        opt(&mut o, record.function.as_deref(), string);
        let hash_at = o.text.len();
        key(&mut o, "id", false);
        o.string(&record.id);
        key(&mut o, "identity", false);
        opt(&mut o, record.identity.as_ref(), identity);
        key(&mut o, "prev_hash", false);
        // An empty string until sealed; the scan sees it as one, as a walk of the
        // record's value (with `prev_hash` still empty) would.
        o.string("");
        let prev_hash_at = o.text.len() - 1;
        key(&mut o, "protocol", false);
        opt(&mut o, record.protocol.map(|p| p.as_str()), string);
        key(&mut o, "request", false);
        request(&record.request, &mut o);
        key(&mut o, "response", false);
        response(&record.response, &mut o);
        key(&mut o, "secrets_used", false);
        array(&mut o, &record.secrets_used, secret_use);
        key(&mut o, "seq", false);
        let seq_at = o.text.len();
        if !record.shadow.is_empty() {
            key(&mut o, "shadow", false);
            array(&mut o, &record.shadow, shadow);
        }
        key(&mut o, "source_ip", false);
        opt(&mut o, record.source_ip.as_deref(), string);
        key(&mut o, "time", false);
        o.string(&record.time);
        key(&mut o, "upstream", false);
        opt(&mut o, record.upstream.as_ref(), upstream);
        o.push('}');
        Self { text: o.text, strings: o.strings, hash_at, prev_hash_at, seq_at }
    }

    /// Every string of the record (object keys included), unescaped, each followed by a
    /// NUL: what the redaction scan looks at. The same strings, in the same order, as a
    /// walk of the record's `serde_json::Value` would give.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    pub(crate) fn strings(&self) -> &[u8] {
        &self.strings
    }

    /// Seals the text after a record whose `(seq, hash)` is `prev` (`None` for the first
    /// of a chain): sets `record`'s `seq`, `prev_hash` and `hash` and returns the stored
    /// text, exactly as [`chain::seal`](crate::chain::seal) would.
    pub(crate) fn seal(self, record: &mut AuditRecord, prev: Option<(u64, &str)>) -> String {
        let (seq_number, prev_hash) = next_link(prev);
        let t = &self.text;
        let seq = seq_number.to_string();
        // The text with the chain fields filled in, as pieces: hashed as they are and
        // copied once, with `hash` spliced in before them.
        let tail = [prev_hash, &t[self.prev_hash_at..self.seq_at], &seq, &t[self.seq_at..]];
        let (hash, stored) = splice_hash(&t[..self.prev_hash_at], self.hash_at, &tail);
        record.seq = seq_number;
        record.prev_hash = prev_hash.to_owned();
        record.hash = hash;
        stored
    }
}

fn key(o: &mut Out, name: &str, first: bool) {
    if !first {
        o.push(',');
    }
    // Key names are ASCII identifiers: nothing to escape.
    o.push('"');
    o.push_str(name);
    o.push_str("\":");
    o.strings.extend_from_slice(name.as_bytes());
    o.strings.push(0);
}

fn num(o: &mut Out, n: u64) {
    let _ = write!(o.text, "{n}");
}

fn opt<T>(o: &mut Out, value: Option<T>, write: impl FnOnce(T, &mut Out)) {
    match value {
        Some(v) => write(v, o),
        None => o.push_str("null"),
    }
}

fn array<T>(o: &mut Out, items: &[T], write: impl Fn(&T, &mut Out)) {
    o.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write(item, o);
    }
    o.push(']');
}

fn strings(items: &[String], o: &mut Out) {
    array(o, items, |s, o| o.string(s));
}

fn headers(map: &BTreeMap<String, Vec<String>>, o: &mut Out) {
    // A BTreeMap<String, _> iterates in byte order: the canonical order.
    o.push('{');
    for (i, (name, values)) in map.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.string(name);
        o.push(':');
        strings(values, o);
    }
    o.push('}');
}

fn approval(a: &ApprovalRef, o: &mut Out) {
    o.push('{');
    key(o, "decided_at", true);
    opt(o, a.decided_at.as_deref(), string);
    key(o, "decided_by", false);
    opt(o, a.decided_by.as_deref(), string);
    key(o, "id", false);
    o.string(&a.id);
    key(o, "requested_by", false);
    o.string(&a.requested_by);
    o.push('}');
}

fn decision(d: &RecordDecision, o: &mut Out) {
    o.push('{');
    key(o, "effect", true);
    o.string(d.effect.as_str());
    key(o, "reason", false);
    o.string(&d.reason);
    key(o, "rule", false);
    opt(o, d.rule.as_deref(), string);
    o.push('}');
}

fn error(e: &RecordError, o: &mut Out) {
    o.push('{');
    key(o, "code", true);
    o.string(&e.code);
    key(o, "message", false);
    o.string(&e.message);
    o.push('}');
}

fn identity(id: &RecordIdentity, o: &mut Out) {
    o.push('{');
    key(o, "groups", true);
    strings(&id.groups, o);
    key(o, "issuer", false);
    o.string(&id.issuer);
    key(o, "method", false);
    o.string(&id.method);
    key(o, "subject", false);
    o.string(&id.subject);
    o.push('}');
}

fn body(b: &RecordBody, o: &mut Out) {
    o.push('{');
    key(o, "bytes", true);
    num(o, b.bytes);
    key(o, "data", false);
    o.string(&b.data);
    key(o, "encoding", false);
    o.string(&b.encoding);
    key(o, "truncated", false);
    o.push_str(if b.truncated { "true" } else { "false" });
    o.push('}');
}

fn request(r: &RecordRequest, o: &mut Out) {
    o.push('{');
    key(o, "body", true);
    opt(o, r.body.as_ref(), body);
    key(o, "headers", false);
    headers(&r.headers, o);
    key(o, "method", false);
    o.string(&r.method);
    key(o, "path", false);
    o.string(&r.path);
    o.push('}');
}

fn response(r: &RecordResponse, o: &mut Out) {
    o.push('{');
    key(o, "body", true);
    opt(o, r.body.as_ref(), body);
    key(o, "headers", false);
    headers(&r.headers, o);
    key(o, "masked", false);
    num(o, r.masked);
    key(o, "status", false);
    opt(o, r.status, |s, o| num(o, u64::from(s)));
    o.push('}');
}

fn secret_use(s: &SecretUse, o: &mut Out) {
    o.push('{');
    key(o, "location", true);
    o.string(&s.location);
    key(o, "name", false);
    o.string(&s.name);
    key(o, "placeholder", false);
    o.string(s.placeholder.as_str());
    o.push('}');
}

fn shadow(v: &ShadowVerdict, o: &mut Out) {
    o.push('{');
    key(o, "effect", true);
    o.string(v.effect.as_str());
    key(o, "rule", false);
    o.string(&v.rule);
    o.push('}');
}

fn upstream(u: &RecordUpstream, o: &mut Out) {
    o.push('{');
    key(o, "duration_ms", true);
    num(o, u.duration_ms);
    key(o, "status", false);
    num(o, u64::from(u.status));
    o.push('}');
}

#[cfg(test)]
mod tests {
    use cloakroom_core::{CallId, Effect, Placeholder, Protocol};
    use proptest::prelude::*;

    use super::*;
    use crate::chain;

    /// A record with every optional field present and `s` in every string field.
    fn full(s: &str, n: u64) -> AuditRecord {
        let mut r = AuditRecord::new(CallId::new(), time::OffsetDateTime::UNIX_EPOCH);
        r.chain_id = format!("chain {s}");
        r.duration_ms = n;
        r.identity = Some(RecordIdentity {
            subject: s.into(),
            issuer: format!("https://{s}"),
            method: "oidc".into(),
            groups: vec![s.into(), "b".into()],
        });
        r.source_ip = Some(s.into());
        r.function = Some(s.into());
        r.protocol = Some(Protocol::Mcp);
        r.decision = Some(RecordDecision { effect: Effect::Approve, rule: Some(s.into()), reason: s.into() });
        r.approval = Some(ApprovalRef {
            id: s.into(),
            requested_by: s.into(),
            decided_by: Some(s.into()),
            decided_at: Some(s.into()),
        });
        let placeholder = Placeholder::from_digest(&[7u8; 32]).unwrap();
        r.secrets_used = vec![
            SecretUse { name: s.into(), placeholder: placeholder.clone(), location: format!("header:{s}") },
            SecretUse { name: "two".into(), placeholder, location: "json:/a".into() },
        ];
        r.request.method = s.into();
        r.request.path = format!("/{s}");
        r.request.headers.insert(s.into(), vec![s.into(), String::new()]);
        r.request.headers.insert("accept".into(), vec!["*/*".into()]);
        r.request.body = Some(RecordBody::capture(s.as_bytes(), n, 1024));
        r.response.status = Some(599);
        r.response.headers.insert("content-type".into(), vec![s.into()]);
        r.response.body = Some(RecordBody::capture(&[0xff, 0xfe, b'x'], 3, 1024));
        r.response.masked = n;
        r.upstream = Some(RecordUpstream { status: 200, duration_ms: n });
        r.error = Some(RecordError { code: s.into(), message: s.into() });
        r.shadow = vec![
            ShadowVerdict { rule: s.into(), effect: Effect::Deny },
            ShadowVerdict { rule: "two".into(), effect: Effect::Approve },
        ];
        r
    }

    #[test]
    fn an_empty_shadow_list_is_left_out_so_older_records_keep_their_hash() {
        let mut r = full("x", 1);
        r.shadow.clear();
        let text = Rendered::new(&r).seal(&mut r, None);
        assert!(!text.contains("\"shadow\""), "{text}");
        // A record stored before the field existed reads back and verifies.
        let back: AuditRecord = serde_json::from_str(&text).unwrap();
        assert!(back.shadow.is_empty());
        assert_eq!(chain::record_hash(&back).unwrap(), r.hash);
        let mut with = full("x", 1);
        let text = Rendered::new(&with).seal(&mut with, None);
        assert!(
            text.contains(r#""shadow":[{"effect":"deny","rule":"x"},{"effect":"approve","rule":"two"}]"#),
            "{text}"
        );
        assert_ne!(with.hash, r.hash, "the shadow list is hashed");
    }

    /// The direct text, sealed, equals the serde_json::Value path's, and so do the
    /// chain fields it sets.
    fn same_as_value_path(r: &AuditRecord, prev: Option<(u64, &str)>) {
        let (mut direct, mut reference) = (r.clone(), r.clone());
        let text = Rendered::new(r).seal(&mut direct, prev);
        let expected = chain::seal(&mut reference, prev).unwrap();
        assert_eq!(text, expected);
        assert_eq!(direct, reference);
        assert_eq!(chain::record_hash(&direct).unwrap(), direct.hash);
    }

    /// The strings the redaction scan sees are the strings of the record's JSON value,
    /// keys included, in canonical order, each followed by a NUL.
    fn same_strings_as_value(r: &AuditRecord) {
        fn walk(v: &serde_json::Value, out: &mut Vec<u8>) {
            let mut push = |s: &str| {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            };
            match v {
                serde_json::Value::String(s) => push(s),
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
                serde_json::Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                    for k in keys {
                        out.extend_from_slice(k.as_bytes());
                        out.push(0);
                        walk(&map[k], out);
                    }
                }
                _ => {}
            }
        }
        let rendered = Rendered::new(r);
        let got = rendered.strings();
        let mut value = serde_json::to_value(r).unwrap();
        if let serde_json::Value::Object(map) = &mut value {
            // Rendered leaves `hash` out and `prev_hash` empty until it is sealed.
            map.remove("hash");
            map.insert("prev_hash".into(), serde_json::Value::String(String::new()));
        }
        let mut want = Vec::new();
        walk(&value, &mut want);
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(&want));
    }

    #[test]
    fn every_field_renders_as_the_value_path_does() {
        for s in [
            "plain",
            "",
            "quote \" backslash \\ slash /",
            "ctl \u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}\n\r\t",
            "ünï 😀 \u{2028}",
        ] {
            let r = full(s, 42);
            same_as_value_path(&r, None);
            same_as_value_path(&r, Some((41, "ab".repeat(32).as_str())));
            same_strings_as_value(&r);
        }
        let empty = AuditRecord::new(CallId::new(), time::OffsetDateTime::UNIX_EPOCH);
        same_as_value_path(&empty, None);
        same_strings_as_value(&empty);
    }

    proptest! {
        #[test]
        fn any_strings_render_as_the_value_path_does(s in "\\PC*|[\\x00-\\x7f]*", n in any::<u64>(), seq in 0u64..u64::MAX) {
            let r = full(&s, n);
            same_as_value_path(&r, Some((seq, "0f".repeat(32).as_str())));
            same_strings_as_value(&r);
        }
    }
}
