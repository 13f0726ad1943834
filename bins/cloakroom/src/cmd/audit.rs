//! `cloakroom audit tail|show|verify|export`.
//!
//! Records are read page by page from `GET /v1/audit?since=&limit=`: `since` is the
//! `seq` of the last record seen, so `tail` can follow and `export` can stream a log of
//! any size with constant memory. Records stay JSON ([`cloakroom_api::AuditRecord`]):
//! they are printed as the gateway recorded them, fields of newer gateways included.

use std::{
    collections::{HashSet, VecDeque},
    io::{IsTerminal, Write},
};

use cloakroom_api::{AuditPage, AuditRecord, BreakKind, ChainReport, VerifyReport};
use serde_json::Value;

use crate::{
    cli::{AuditCmd, AuditExport, AuditTail},
    client::{segment, AdminClient},
    error::CliError,
    output::{cell, field, print_json, print_json_line, print_text, table, Output},
};

/// Runs an `audit` verb.
pub(crate) async fn run(client: &AdminClient, out: Output, cmd: AuditCmd) -> Result<(), CliError> {
    match cmd {
        AuditCmd::Tail(t) => tail(client, out, t).await,
        AuditCmd::Show { id } => {
            let rec = client.get::<AuditRecord>(&format!("/v1/audit/{}", segment(&id)), &[]).await?.body;
            match out {
                Output::Json => print_json(&rec),
                Output::Human => print_text(&render_record(&rec)),
            }
        }
        AuditCmd::Verify => verify(client, out).await,
        AuditCmd::Export(e) => export(client, e).await,
    }
}

// === paging ===

/// One page of records and the cursor after it.
pub(crate) struct Page {
    pub(crate) records: Vec<AuditRecord>,
    pub(crate) next: Option<u64>,
}

pub(crate) async fn page(client: &AdminClient, since: Option<u64>, limit: usize) -> Result<Page, CliError> {
    let mut query = vec![("limit", limit.to_string())];
    if let Some(s) = since {
        query.push(("since", s.to_string()));
    }
    let res: AuditPage = client.get("/v1/audit", &query).await?.body;
    let next = res.last_seq();
    Ok(Page { records: res.records, next })
}

/// A record's identity for de-duplication across polls: chain and seq, else its id.
fn record_key(r: &Value) -> String {
    format!("{}#{}#{}", cell(r.get("chain_id")), cell(r.get("seq")), cell(r.get("id")))
}

// === tail ===

async fn tail(client: &AdminClient, out: Output, t: AuditTail) -> Result<(), CliError> {
    const PAGE: usize = 1000;
    // Walk to the end keeping the last `lines` records: the API reads forward only.
    let mut recent: VecDeque<Value> = VecDeque::with_capacity(t.lines.min(PAGE));
    let mut cursor: Option<u64> = None;
    loop {
        let p = page(client, cursor, PAGE).await?;
        let n = p.records.len();
        for r in p.records {
            if recent.len() == t.lines {
                recent.pop_front();
            }
            if t.lines > 0 {
                recent.push_back(r);
            }
        }
        if p.next.is_some() {
            cursor = p.next;
        }
        if n < PAGE {
            break;
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut header_printed = false;
    for r in &recent {
        seen.insert(record_key(r));
        print_tail_line(out, r, &mut header_printed)?;
    }
    if t.no_follow {
        if recent.is_empty() && out == Output::Human {
            print_text("no audit records\n")?;
        }
        return Ok(());
    }
    let mut outage = false;
    loop {
        tokio::time::sleep(t.interval).await;
        loop {
            let p = match page(client, cursor, PAGE).await {
                Ok(p) => p,
                // A gateway restart should not end a follow: say so once, keep polling.
                Err(e) if is_transient(&e) => {
                    if !outage {
                        outage = true;
                        eprintln!("cloakroom: warning: {e}; still following");
                    }
                    break;
                }
                Err(e) => return Err(e),
            };
            if outage {
                outage = false;
                eprintln!("cloakroom: admin API is back");
            }
            let n = p.records.len();
            for r in &p.records {
                if seen.insert(record_key(r)) {
                    print_tail_line(out, r, &mut header_printed)?;
                }
            }
            if p.next.is_some() {
                cursor = p.next;
            }
            if n < PAGE {
                break;
            }
        }
        // Only the keys a later poll can still return matter; keep the set small.
        if seen.len() > 100_000 {
            seen.clear();
        }
    }
}

/// Failures a later poll can recover from.
fn is_transient(e: &CliError) -> bool {
    match e {
        CliError::Connect { .. } => true,
        CliError::Api { status, .. } => matches!(status, 502..=504),
        _ => false,
    }
}

fn print_tail_line(out: Output, r: &Value, header_printed: &mut bool) -> Result<(), CliError> {
    match out {
        Output::Json => print_json_line(r),
        Output::Human => {
            let header = ["TIME", "DECISION", "SUBJECT", "FUNCTION", "STATUS", "SECRETS", "CALL"];
            let mut t = table(&header, &[tail_row(r)]);
            // Fixed widths would need the whole stream; print the header once, then rows.
            let mut lines = t.lines();
            let head = lines.next().unwrap_or_default().to_owned();
            let row = lines.next().unwrap_or_default().to_owned();
            t.clear();
            if !*header_printed {
                *header_printed = true;
                t.push_str(&head);
                t.push('\n');
            }
            t.push_str(&row);
            t.push('\n');
            print_text(&t)
        }
    }
}

fn tail_row(r: &Value) -> Vec<String> {
    let secrets: Vec<String> = r
        .get("secrets_used")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|s| cell(s.get("name"))).collect())
        .unwrap_or_default();
    let status = match (field(r, &["response.status"]), field(r, &["error.code"])) {
        (Some(s), Some(e)) => format!("{} {}", cell(Some(s)), cell(Some(e))),
        (Some(s), None) => cell(Some(s)),
        (None, Some(e)) => cell(Some(e)),
        (None, None) => "-".into(),
    };
    vec![
        cell(r.get("time")),
        cell(field(r, &["decision.effect"])),
        cell(field(r, &["identity.subject"])),
        cell(r.get("function")),
        status,
        if secrets.is_empty() { "-".into() } else { secrets.join(",") },
        cell(r.get("id")),
    ]
}

// === show ===

/// The record as an auditor reads it: who, when, what was decided and why, who
/// approved, which secrets were used (by name), and the bodies as recorded.
fn render_record(r: &Value) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| s.push_str(&format!("{k:<10}{v}\n"));
    kv("call", cell(r.get("id")));
    let mut when = cell(r.get("time"));
    if let Some(d) = r.get("duration_ms").filter(|d| !d.is_null()) {
        when.push_str(&format!(" (took {} ms)", cell(Some(d))));
    }
    kv("time", when);
    if r.get("seq").is_some() {
        kv(
            "chain",
            format!(
                "{} seq {} hash {} (prev {})",
                cell(r.get("chain_id")),
                cell(r.get("seq")),
                cell(r.get("hash")),
                cell(r.get("prev_hash"))
            ),
        );
    }
    let who = match r.get("identity").filter(|i| !i.is_null()) {
        Some(i) => format!(
            "{} via {} (issuer {}), groups: {}",
            cell(i.get("subject")),
            cell(i.get("method")),
            cell(i.get("issuer")),
            cell(i.get("groups"))
        ),
        None => "not authenticated".into(),
    };
    kv("caller", who);
    kv("source", cell(r.get("source_ip")));
    let function = match r.get("protocol").filter(|p| !p.is_null()) {
        Some(p) => format!("{} ({})", cell(r.get("function")), cell(Some(p))),
        None => cell(r.get("function")),
    };
    kv("function", function);
    let decision = match r.get("decision").filter(|d| !d.is_null()) {
        Some(d) => {
            let rule = match field(d, &["rule"]) {
                Some(rule) => format!("rule {}", cell(Some(rule))),
                None => "default".into(),
            };
            format!("{} by {}: {}", cell(d.get("effect")), rule, cell(d.get("reason")))
        }
        None => "none (refused before policy)".into(),
    };
    kv("decision", decision);
    if let Some(shadow) = r.get("shadow").and_then(Value::as_array).filter(|s| !s.is_empty()) {
        let verdicts: Vec<String> =
            shadow.iter().map(|v| format!("{} by rule {}", cell(v.get("effect")), cell(v.get("rule")))).collect();
        kv("shadow", format!("{} (not enforced)", verdicts.join("; ")));
    }
    if let Some(a) = r.get("approval").filter(|a| !a.is_null()) {
        let mut line = format!("{} requested by {}", cell(a.get("id")), cell(a.get("requested_by")));
        match field(a, &["decided_by"]) {
            Some(by) => line.push_str(&format!(", decided by {} at {}", cell(Some(by)), cell(a.get("decided_at")))),
            None => line.push_str(", undecided"),
        }
        kv("approval", line);
    }
    let secrets: Vec<String> = r
        .get("secrets_used")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|u| {
                    format!("{} ({}) at {}", cell(u.get("name")), cell(u.get("placeholder")), cell(u.get("location")))
                })
                .collect()
        })
        .unwrap_or_default();
    if secrets.is_empty() {
        kv("secrets", "none".into());
    } else {
        for (i, line) in secrets.into_iter().enumerate() {
            kv(if i == 0 { "secrets" } else { "" }, line);
        }
    }
    if let Some(u) = r.get("upstream").filter(|u| !u.is_null()) {
        kv("upstream", format!("{} in {} ms", cell(u.get("status")), cell(u.get("duration_ms"))));
    } else {
        kv("upstream", "not reached".into());
    }
    if let Some(e) = r.get("error").filter(|e| !e.is_null()) {
        kv("error", format!("{}: {}", cell(e.get("code")), cell(e.get("message"))));
    }
    if let Some(req) = r.get("request").filter(|x| !x.is_null()) {
        s.push_str(&format!("\nrequest: {} {}\n", cell(req.get("method")), cell(req.get("path"))));
        s.push_str(&render_headers(req.get("headers")));
        s.push_str(&render_body(req.get("body")));
    }
    if let Some(res) = r.get("response").filter(|x| !x.is_null()) {
        let masked = res.get("masked").and_then(Value::as_u64).unwrap_or(0);
        s.push_str(&format!("\nresponse: {} ({} secret value(s) masked)\n", cell(res.get("status")), masked));
        s.push_str(&render_headers(res.get("headers")));
        s.push_str(&render_body(res.get("body")));
    }
    s
}

fn render_headers(h: Option<&Value>) -> String {
    let mut s = String::new();
    if let Some(Value::Object(m)) = h {
        for (k, v) in m {
            match v {
                Value::Array(vals) => {
                    for v in vals {
                        s.push_str(&format!("  {k}: {}\n", cell(Some(v))));
                    }
                }
                other => s.push_str(&format!("  {k}: {}\n", cell(Some(other)))),
            }
        }
    }
    s
}

fn render_body(b: Option<&Value>) -> String {
    let Some(b) = b.filter(|b| !b.is_null()) else {
        return "  body: not recorded\n".into();
    };
    let Some(data) = b.get("data").and_then(Value::as_str) else {
        // A server that records the body as a bare string.
        return match b.as_str() {
            Some(text) => format!("  body:\n{}\n", indent(text)),
            None => format!("  body: {b}\n"),
        };
    };
    let encoding = b.get("encoding").and_then(Value::as_str).unwrap_or("utf8");
    let bytes = b.get("bytes").and_then(Value::as_u64).unwrap_or(data.len() as u64);
    let truncated = b.get("truncated").and_then(Value::as_bool).unwrap_or(false);
    if bytes == 0 && data.is_empty() {
        return "  body: empty\n".into();
    }
    let mut head = format!("  body ({bytes} bytes");
    if truncated {
        head.push_str(", truncated as recorded");
    }
    if encoding != "utf8" {
        head.push_str(&format!(", {encoding}"));
    }
    head.push_str("):\n");
    let text = if encoding == "utf8" {
        match serde_json::from_str::<Value>(data) {
            Ok(v) if !truncated && (v.is_object() || v.is_array()) => {
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| data.to_owned())
            }
            _ => data.to_owned(),
        }
    } else {
        data.to_owned()
    };
    format!("{head}{}\n", indent(&text))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

// === verify ===

async fn verify(client: &AdminClient, out: Output) -> Result<(), CliError> {
    let res = client.get::<VerifyReport>("/v1/audit/verify", &[]).await?;
    let report = &res.body;
    let first_broken = report.broken().next();
    // Broken when the server says so or when any chain has a break.
    let ok = report.ok && first_broken.is_none();
    match out {
        Output::Json => print_json(&res.json)?,
        Output::Human => {
            let mut s = String::new();
            for c in &report.chains {
                if c.is_ok() {
                    s.push_str(&format!(
                        "chain {}: ok, {} records, head seq {} hash {}\n",
                        c.chain_id, c.records, c.head_seq, c.head_hash
                    ));
                } else {
                    s.push_str(&format!("chain {}: BROKEN: {}\n", c.chain_id, describe_break(c)));
                }
            }
            if report.chains.is_empty() {
                s.push_str("no audit chains yet\n");
            }
            if ok {
                s.push_str("every chain verifies\n");
            }
            print_text(&s)?;
        }
    }
    if ok {
        Ok(())
    } else {
        let first = first_broken
            .map(|c| format!("chain {}: {}", c.chain_id, describe_break(c)))
            .unwrap_or_else(|| "the server reports a broken chain".into());
        Err(CliError::ChainBroken(first))
    }
}

/// The first broken link, in words: where, which `seq` was expected, what is wrong.
fn describe_break(c: &ChainReport) -> String {
    let Some(b) = &c.first_break else {
        return "reported as not verifying".into();
    };
    let mut s =
        format!("first broken link at position {} (expected seq {}): {}", b.position, b.expected_seq, b.kind.name());
    match &b.kind {
        BreakKind::Removed { from, to } => s.push_str(&format!(", records {from}..={to} missing")),
        BreakKind::Reordered { expected, found } => s.push_str(&format!(", expected seq {expected} found {found}")),
        BreakKind::Altered { detail } | BreakKind::Inserted { detail } => s.push_str(&format!(": {detail}")),
        _ => s.push_str(" (a kind of break this version of the CLI does not know)"),
    }
    s
}

// === export ===

async fn export(client: &AdminClient, e: AuditExport) -> Result<(), CliError> {
    let page_size = e.page_size.max(1);
    let mut sink: Box<dyn Write> = match &e.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|err| CliError::io(format!("creating {}", path.display()), err))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = std::io::stderr().is_terminal();
    let mut cursor: Option<u64> = None;
    let mut count: u64 = 0;
    let mut shown = false;
    loop {
        let p = page(client, cursor, page_size).await?;
        let n = p.records.len();
        for r in &p.records {
            serde_json::to_writer(&mut sink, r).map_err(|err| CliError::io("writing the export", err.into()))?;
            sink.write_all(b"\n").map_err(|err| CliError::io("writing the export", err))?;
        }
        count += n as u64;
        if p.next.is_some() {
            cursor = p.next;
        }
        if n < page_size {
            break;
        }
        // Progress only on a terminal, and only for exports of more than one page.
        if progress {
            shown = true;
            eprint!("\rexported {count} records…");
        }
    }
    sink.flush().map_err(|err| CliError::io("writing the export", err))?;
    if shown {
        eprintln!("\rexported {count} records    ");
    }
    if let Some(path) = &e.out {
        eprintln!("exported {count} records to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record() -> Value {
        json!({
            "chain_id": "r1", "seq": 7, "prev_hash": "aa", "hash": "bb",
            "id": "01JCALL", "time": "2026-11-25T21:30:00.123Z", "duration_ms": 12,
            "identity": {"subject": "alice", "issuer": "api_key", "method": "api_key", "groups": ["ops"]},
            "source_ip": "127.0.0.1", "function": "payments/refund", "protocol": "http",
            "decision": {"effect": "allow", "rule": "ops may refund", "reason": "matched"},
            "approval": {"id": "ap1", "requested_by": "alice", "decided_by": "bob", "decided_at": "2026-11-25T21:29:00Z"},
            "shadow": [{"rule": "no refunds", "effect": "deny"}],
            "secrets_used": [{"name": "stripe_key", "placeholder": "cloak_x", "location": "header:authorization"}],
            "request": {"method": "POST", "path": "/fn/payments/refund", "headers": {"authorization": ["[REDACTED]"]},
                        "body": {"encoding": "utf8", "data": "{\"amount\":5}", "bytes": 12, "truncated": false}},
            "response": {"status": 200, "headers": {}, "body": {"encoding": "utf8", "data": "ok cloak_x", "bytes": 10, "truncated": false}, "masked": 1},
            "upstream": {"status": 200, "duration_ms": 9},
            "error": null
        })
    }

    #[test]
    fn show_names_who_when_decision_approval_secrets_and_bodies() {
        let s = render_record(&record());
        for needle in [
            "alice via api_key",
            "2026-11-25T21:30:00.123Z",
            "allow by rule ops may refund",
            "ap1 requested by alice, decided by bob",
            "shadow    deny by rule no refunds (not enforced)",
            "stripe_key (cloak_x) at header:authorization",
            "authorization: [REDACTED]",
            "\"amount\": 5",
            "ok cloak_x",
            "1 secret value(s) masked",
            "r1 seq 7",
        ] {
            assert!(s.contains(needle), "missing {needle:?} in\n{s}");
        }
    }

    #[test]
    fn show_copes_with_a_refused_call() {
        let s = render_record(&json!({"id": "x", "time": "t", "identity": null, "decision": null,
            "error": {"code": "unauthenticated", "message": "no credential"}, "request": {"method": "GET", "path": "/", "headers": {}, "body": null}}));
        assert!(s.contains("not authenticated"), "{s}");
        assert!(s.contains("unauthenticated: no credential"), "{s}");
        assert!(s.contains("body: not recorded"), "{s}");
    }

    #[test]
    fn breaks_are_described() {
        let chain = |first_break: Value| -> ChainReport {
            serde_json::from_value(json!({"chain_id": "r1", "records": 9, "head_seq": 3, "head_hash": "h",
                "first_break": first_break}))
            .unwrap()
        };
        let c = chain(json!({"position": 3, "expected_seq": 4, "kind": "removed", "from": 4, "to": 6}));
        assert!(!c.is_ok());
        let d = describe_break(&c);
        assert!(d.contains("position 3") && d.contains("4..=6"), "{d}");
        let d = describe_break(&chain(json!({"position": 4, "expected_seq": 5, "kind": "altered", "detail": "hash"})));
        assert!(d.ends_with("position 4 (expected seq 5): altered: hash"), "{d}");
        let d = describe_break(&chain(json!({"position": 1, "expected_seq": 2, "kind": "forked"})));
        assert!(d.contains("does not know"), "{d}");
        assert!(chain(Value::Null).is_ok());
    }
}
