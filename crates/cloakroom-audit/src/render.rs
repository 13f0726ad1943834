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
//! [`Rendered::seal`] is two splices, one SHA-256 and a third splice for `hash`.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    chain::{next_link, splice_hash, write_string},
    record::{RecordBody, RecordDecision, RecordError, RecordIdentity, RecordRequest, RecordResponse, RecordUpstream},
    AuditRecord,
};
use cloakroom_core::{ApprovalRef, SecretUse};

/// A record's canonical text before sealing; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    text: String,
    /// Where `,"hash":"…"` goes: after the `function` value, before `,"id"`.
    hash_at: usize,
    /// Inside the quotes of `"prev_hash":""`.
    prev_hash_at: usize,
    /// Right after `"seq":`.
    seq_at: usize,
}

impl Rendered {
    /// Renders `record`, ignoring its chain fields other than `chain_id`.
    pub(crate) fn new(record: &AuditRecord) -> Self {
        let bodies = [&record.request.body, &record.response.body].into_iter().flatten().map(|b| b.data.len());
        let mut o = String::with_capacity(1024 + bodies.sum::<usize>() * 9 / 8);
        o.push('{');
        key(&mut o, "approval", true);
        opt(&mut o, record.approval.as_ref(), approval);
        key(&mut o, "chain_id", false);
        write_string(&record.chain_id, &mut o);
        key(&mut o, "decision", false);
        opt(&mut o, record.decision.as_ref(), decision);
        key(&mut o, "duration_ms", false);
        num(&mut o, record.duration_ms);
        key(&mut o, "error", false);
        opt(&mut o, record.error.as_ref(), error);
        key(&mut o, "function", false);
        opt(&mut o, record.function.as_deref(), write_string);
        let hash_at = o.len();
        key(&mut o, "id", false);
        write_string(&record.id, &mut o);
        key(&mut o, "identity", false);
        opt(&mut o, record.identity.as_ref(), identity);
        key(&mut o, "prev_hash", false);
        o.push('"');
        let prev_hash_at = o.len();
        o.push('"');
        key(&mut o, "protocol", false);
        opt(&mut o, record.protocol.map(|p| p.as_str()), write_string);
        key(&mut o, "request", false);
        request(&record.request, &mut o);
        key(&mut o, "response", false);
        response(&record.response, &mut o);
        key(&mut o, "secrets_used", false);
        array(&mut o, &record.secrets_used, secret_use);
        key(&mut o, "seq", false);
        let seq_at = o.len();
        key(&mut o, "source_ip", false);
        opt(&mut o, record.source_ip.as_deref(), write_string);
        key(&mut o, "time", false);
        write_string(&record.time, &mut o);
        key(&mut o, "upstream", false);
        opt(&mut o, record.upstream.as_ref(), upstream);
        o.push('}');
        Self { text: o, hash_at, prev_hash_at, seq_at }
    }

    /// Every string of the record (object keys included), unescaped, each followed by a
    /// NUL: what the redaction scan looks at. The same strings, in the same order, as a
    /// walk of the record's `serde_json::Value` would give.
    pub(crate) fn strings(&self, out: &mut Vec<u8>) {
        let b = self.text.as_bytes();
        let mut i = 0;
        // From one opening quote to the next; runs without a quote or backslash are
        // copied whole (the record's bodies are most of its text).
        while let Some(open) = memchr::memchr(b'"', &b[i..]) {
            i += open + 1;
            loop {
                match memchr::memchr2(b'"', b'\\', &b[i..]) {
                    None => {
                        out.extend_from_slice(&b[i..]);
                        i = b.len();
                        break;
                    }
                    Some(k) => {
                        out.extend_from_slice(&b[i..i + k]);
                        i += k;
                        if b[i] == b'"' {
                            i += 1;
                            break;
                        }
                        i += unescape(&b[i..], out);
                    }
                }
            }
            out.push(0);
        }
    }

    /// The length of the text (an upper bound for the joined strings).
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// Seals the text after a record whose `(seq, hash)` is `prev` (`None` for the first
    /// of a chain): sets `record`'s `seq`, `prev_hash` and `hash` and returns the stored
    /// text, exactly as [`chain::seal`](crate::chain::seal) would.
    pub(crate) fn seal(self, record: &mut AuditRecord, prev: Option<(u64, &str)>) -> String {
        let (seq, prev_hash) = next_link(prev);
        let t = &self.text;
        let mut unsealed = String::with_capacity(t.len() + prev_hash.len() + 20);
        unsealed.push_str(&t[..self.prev_hash_at]);
        unsealed.push_str(prev_hash);
        unsealed.push_str(&t[self.prev_hash_at..self.seq_at]);
        num(&mut unsealed, seq);
        unsealed.push_str(&t[self.seq_at..]);
        let (hash, stored) = splice_hash(&unsealed, self.hash_at);
        record.seq = seq;
        record.prev_hash = prev_hash.to_owned();
        record.hash = hash;
        stored
    }
}

/// Decodes the escape at the start of `b` (a backslash) into `out`; returns its length.
fn unescape(b: &[u8], out: &mut Vec<u8>) -> usize {
    let Some(&e) = b.get(1) else {
        return 1;
    };
    let byte = match e {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            // The writer only emits `\u00xx` (control characters).
            let code =
                b.get(2..6).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u32::from_str_radix(h, 16).ok());
            let c = code.and_then(char::from_u32).unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            return 6.min(b.len());
        }
        other => other,
    };
    out.push(byte);
    2
}

fn key(o: &mut String, name: &str, first: bool) {
    if !first {
        o.push(',');
    }
    // Key names are ASCII identifiers: nothing to escape.
    o.push('"');
    o.push_str(name);
    o.push_str("\":");
}

fn num(o: &mut String, n: u64) {
    let _ = write!(o, "{n}");
}

fn opt<T>(o: &mut String, value: Option<T>, write: impl FnOnce(T, &mut String)) {
    match value {
        Some(v) => write(v, o),
        None => o.push_str("null"),
    }
}

fn array<T>(o: &mut String, items: &[T], write: impl Fn(&T, &mut String)) {
    o.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write(item, o);
    }
    o.push(']');
}

fn strings(items: &[String], o: &mut String) {
    array(o, items, |s, o| write_string(s, o));
}

fn headers(map: &BTreeMap<String, Vec<String>>, o: &mut String) {
    // A BTreeMap<String, _> iterates in byte order: the canonical order.
    o.push('{');
    for (i, (name, values)) in map.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write_string(name, o);
        o.push(':');
        strings(values, o);
    }
    o.push('}');
}

fn approval(a: &ApprovalRef, o: &mut String) {
    o.push('{');
    key(o, "decided_at", true);
    opt(o, a.decided_at.as_deref(), write_string);
    key(o, "decided_by", false);
    opt(o, a.decided_by.as_deref(), write_string);
    key(o, "id", false);
    write_string(&a.id, o);
    key(o, "requested_by", false);
    write_string(&a.requested_by, o);
    o.push('}');
}

fn decision(d: &RecordDecision, o: &mut String) {
    o.push('{');
    key(o, "effect", true);
    write_string(d.effect.as_str(), o);
    key(o, "reason", false);
    write_string(&d.reason, o);
    key(o, "rule", false);
    opt(o, d.rule.as_deref(), write_string);
    o.push('}');
}

fn error(e: &RecordError, o: &mut String) {
    o.push('{');
    key(o, "code", true);
    write_string(&e.code, o);
    key(o, "message", false);
    write_string(&e.message, o);
    o.push('}');
}

fn identity(id: &RecordIdentity, o: &mut String) {
    o.push('{');
    key(o, "groups", true);
    strings(&id.groups, o);
    key(o, "issuer", false);
    write_string(&id.issuer, o);
    key(o, "method", false);
    write_string(&id.method, o);
    key(o, "subject", false);
    write_string(&id.subject, o);
    o.push('}');
}

fn body(b: &RecordBody, o: &mut String) {
    o.push('{');
    key(o, "bytes", true);
    num(o, b.bytes);
    key(o, "data", false);
    write_string(&b.data, o);
    key(o, "encoding", false);
    write_string(&b.encoding, o);
    key(o, "truncated", false);
    o.push_str(if b.truncated { "true" } else { "false" });
    o.push('}');
}

fn request(r: &RecordRequest, o: &mut String) {
    o.push('{');
    key(o, "body", true);
    opt(o, r.body.as_ref(), body);
    key(o, "headers", false);
    headers(&r.headers, o);
    key(o, "method", false);
    write_string(&r.method, o);
    key(o, "path", false);
    write_string(&r.path, o);
    o.push('}');
}

fn response(r: &RecordResponse, o: &mut String) {
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

fn secret_use(s: &SecretUse, o: &mut String) {
    o.push('{');
    key(o, "location", true);
    write_string(&s.location, o);
    key(o, "name", false);
    write_string(&s.name, o);
    key(o, "placeholder", false);
    write_string(s.placeholder.as_str(), o);
    o.push('}');
}

fn upstream(u: &RecordUpstream, o: &mut String) {
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
        r
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
        let mut got = Vec::new();
        Rendered::new(r).strings(&mut got);
        let mut value = serde_json::to_value(r).unwrap();
        if let serde_json::Value::Object(map) = &mut value {
            // Rendered leaves `hash` out and `prev_hash` empty until it is sealed.
            map.remove("hash");
            map.insert("prev_hash".into(), serde_json::Value::String(String::new()));
        }
        let mut want = Vec::new();
        walk(&value, &mut want);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
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
