//! The audit pages: search (`/console/audit`) and the call view (`/console/audit/<id>`)
//! with the chains' verification and a replay against today's policy.
//!
//! Admin-only, as `GET /v1/audit` is (`audit:read`; the chain status also needs
//! `audit:verify`). Records are already masked when written (placeholders, never
//! secrets; sensitive headers `[REDACTED]`); here they are only rendered, escaped.

use cloakroom_audit::{AuditRecord, RecordBody, RecordQuery, Since};
use cloakroom_core::{CallId, Error, ErrorCode};
use cloakroom_identity::Operation;
use http::{Response, StatusCode};
use maud::{html, Markup};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{layout, replay::replay, Signed};
use crate::{admin::respond::param, forward::GatewayBody, Gateway};

/// How many records one search reads at most, and how many matches it shows.
const SCAN_LIMIT: usize = 10_000;
const SHOW_LIMIT: usize = 200;

/// The search form's fields.
#[derive(Default)]
struct Filter {
    subject: String,
    function: String,
    decision: String,
    since: String,
    until: String,
}

impl Filter {
    fn from_query(q: &str) -> Self {
        let p = |n| param(q, n).map(|v| v.trim().to_owned()).unwrap_or_default();
        Self {
            subject: p("subject"),
            function: p("function"),
            decision: p("decision"),
            since: p("since"),
            until: p("until"),
        }
    }

    fn matches(&self, r: &AuditRecord, until: Option<OffsetDateTime>) -> bool {
        let subject = r.identity.as_ref().map(|i| i.subject.as_str()).unwrap_or("");
        let effect = r.decision.as_ref().map(|d| d.effect.to_string()).unwrap_or_default();
        (self.subject.is_empty() || subject == self.subject)
            && (self.function.is_empty() || r.function.as_deref() == Some(self.function.as_str()))
            && (self.decision.is_empty() || effect == self.decision)
            && until.is_none_or(|u| OffsetDateTime::parse(&r.time, &Rfc3339).is_ok_and(|t| t <= u))
    }
}

/// A time field: RFC 3339, or the `datetime-local` form's `YYYY-MM-DDTHH:MM` as UTC.
fn parse_time(field: &str, value: &str) -> Result<Option<OffsetDateTime>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    let full = if value.len() == 16 { format!("{value}:00Z") } else { value.to_owned() };
    OffsetDateTime::parse(&full, &Rfc3339)
        .map(Some)
        .map_err(|_| Error::new(ErrorCode::BadRequest, format!("{field} is an RFC 3339 time (UTC)")))
}

/// `GET /console/audit?subject=&function=&decision=&since=&until=`.
pub(super) async fn search(gateway: &Gateway, signed: &Signed<'_>) -> Result<Response<GatewayBody>, Error> {
    signed.caller.authorize_admin(Operation::new(Operation::AUDIT_READ))?;
    let f = Filter::from_query(&signed.query);
    let since = parse_time("since", &f.since)?;
    let until = parse_time("until", &f.until)?;
    let q = RecordQuery { chain_id: None, since: since.map_or(Since::Start, Since::Time), limit: SCAN_LIMIT };
    let records = gateway.audit().records(&q).await.map_err(|e| e.to_core())?;
    let scanned_all = records.len() < SCAN_LIMIT;
    let mut hits: Vec<&AuditRecord> = records.iter().filter(|r| f.matches(r, until)).collect();
    hits.reverse(); // newest first
    let more = hits.len() > SHOW_LIMIT;
    hits.truncate(SHOW_LIMIT);
    let nav = signed.nav();
    let body = html! {
        form.search method="get" action="/console/audit" {
            label { "Subject " input name="subject" value=(f.subject); }
            label { "Function " input name="function" value=(f.function); }
            label { "Decision "
                select name="decision" {
                    @for d in ["", "allow", "deny", "approve"] {
                        option value=(d) selected[f.decision == d] { @if d.is_empty() { "any" } @else { (d) } }
                    }
                }
            }
            label { "From " input type="datetime-local" name="since" value=(f.since); }
            label { "To " input type="datetime-local" name="until" value=(f.until); }
            button type="submit" { "Search" }
        }
        @if !scanned_all { p.notice { "Only the first " (SCAN_LIMIT) " records from the start time were searched: narrow the time range." } }
        @if more { p.notice { "Showing the newest " (SHOW_LIMIT) " matches." } }
        table.records {
            thead { tr { th { "Time" } th { "Subject" } th { "Function" } th { "Decision" } th { "Rule" } th { "Status" } } }
            tbody {
                @for r in &hits {
                    tr {
                        td { a href={ "/console/audit/" (r.id) } { (r.time) } }
                        td { (r.identity.as_ref().map(|i| i.subject.as_str()).unwrap_or("—")) }
                        td { (r.function.as_deref().unwrap_or("—")) }
                        td { (r.decision.as_ref().map(|d| d.effect.to_string()).unwrap_or_else(|| "—".into())) }
                        td { (r.decision.as_ref().and_then(|d| d.rule.as_deref()).unwrap_or("")) }
                        td { (r.response.status.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                    }
                }
            }
        }
        @if hits.is_empty() { p.empty { "No records match." } }
    };
    Ok(layout::html(StatusCode::OK, layout::page("Audit", Some(&nav), body)))
}

/// `GET /console/audit/<id>`: one call, its chain's status, and its replay.
pub(super) async fn call_view(
    gateway: &Gateway,
    signed: &Signed<'_>,
    id: &str,
) -> Result<Response<GatewayBody>, Error> {
    signed.caller.authorize_admin(Operation::new(Operation::AUDIT_READ).on(id))?;
    let call_id: CallId =
        id.parse().map_err(|_| Error::new(ErrorCode::BadRequest, "an audit id is a call id (UUID)"))?;
    let record = gateway
        .audit()
        .record(&call_id)
        .await
        .map_err(|e| e.to_core())?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, "no audit record with this id"))?;
    let chains = match signed.caller.authorize_admin(Operation::new(Operation::AUDIT_VERIFY)) {
        Ok(_) => Some(gateway.audit().verify().await.map_err(|e| e.to_core())?),
        Err(_) => None,
    };
    let replayed = replay(gateway, &record).await;
    let nav = signed.nav();
    let r = &record;
    let body = html! {
        section.card {
            dl {
                dt { "Call" } dd { code { (r.id) } }
                dt { "When" } dd { (r.time) " · " (r.duration_ms) " ms" }
                dt { "Who" }
                dd { @if let Some(i) = &r.identity {
                        (i.subject) " " span.muted { "(" (i.issuer) ", " (i.method) ")" }
                        @if !i.groups.is_empty() { " in " (i.groups.join(", ")) }
                     } @else { "not authenticated" }
                     @if let Some(ip) = &r.source_ip { " from " (ip) } }
                dt { "Function" } dd { (r.function.as_deref().unwrap_or("—")) }
                dt { "Decision" }
                dd { @if let Some(d) = &r.decision {
                        strong { (d.effect.to_string()) } " by " (d.rule.as_deref().unwrap_or("(default)")) ": " (d.reason)
                     } @else { "none (refused before policy)" } }
                @if !r.shadow.is_empty() {
                    dt { "Shadow rules" }
                    dd { "not enforced: "
                         ul { @for v in &r.shadow { li { (v.rule) " would " (v.effect.to_string()) } } } }
                }
                @if let Some(a) = &r.approval {
                    dt { "Approval" }
                    dd { code { (a.id) } " asked by " (a.requested_by)
                         @if let Some(by) = &a.decided_by { "; decided by " (by) }
                         @if let Some(at) = &a.decided_at { " at " (at) } }
                }
                dt { "Secrets" }
                dd { @if r.secrets_used.is_empty() { "none" }
                     ul { @for s in &r.secrets_used { li { (s.name) " in " code { (s.location) } " as " code { (s.placeholder.as_str()) } } } } }
                @if let Some(u) = &r.upstream { dt { "Upstream" } dd { (u.status) " in " (u.duration_ms) " ms" } }
                @if let Some(e) = &r.error { dt { "Error" } dd { code { (e.code) } ": " (e.message) } }
            }
        }
        section.card.replay {
            h2 { "Replay against today's policy" }
            @match &replayed {
                Ok(rep) => {
                    p { "Now: " strong.effect { (rep.now.effect.to_string()) } " by "
                        (rep.now.rule.as_deref().unwrap_or("(default deny)")) ": " (rep.now.reason) }
                    @if rep.changes.is_empty() { p { "Nothing changed since the call." } }
                    @else { ul.changes { @for c in &rep.changes { li { (c) } } } }
                    @if !rep.caveats.is_empty() { ul.caveats { @for c in &rep.caveats { li.muted { (c) } } } }
                }
                Err(e) => { p.muted { "Cannot be replayed: " (e.to_string()) } }
            }
        }
        section.card {
            h2 { "Request" }
            p { code { (r.request.method) " " (r.request.path) } }
            (headers(&r.request.headers))
            (body_view(r.request.body.as_ref()))
            h2 { "Response" }
            p { (r.response.status.map(|s| s.to_string()).unwrap_or_else(|| "no status".into()))
                " · " (r.response.masked) " secret(s) masked" }
            (headers(&r.response.headers))
            (body_view(r.response.body.as_ref()))
        }
        @if let Some(report) = &chains {
            section.card.chains {
                h2 { "Chain verification" }
                table { thead { tr { th { "Chain" } th { "Records" } th { "Head" } th { "Status" } } }
                    tbody { @for c in &report.chains {
                        tr.this[c.chain_id == r.chain_id] {
                            td { code { (c.chain_id) } } td { (c.records) } td { (c.head_seq) }
                            td { @if c.is_ok() { span.ok { "intact" } } @else {
                                span.bad { "broken" } @if let Some(b) = &c.first_break {
                                    " at position " (b.position) " (expected seq " (b.expected_seq) ")" } } }
                        }
                    } }
                }
                p.muted { "This record is seq " (r.seq) " of chain " code { (r.chain_id) } "." }
            }
        }
    };
    Ok(layout::html(StatusCode::OK, layout::page("Audit record", Some(&nav), body)))
}

fn headers(h: &std::collections::BTreeMap<String, Vec<String>>) -> Markup {
    html! {
        @if !h.is_empty() {
            table.headers { tbody { @for (k, vs) in h { @for v in vs { tr { th { (k) } td { (v) } } } } } }
        }
    }
}

fn body_view(b: Option<&RecordBody>) -> Markup {
    html! {
        @match b {
            None => p.muted { "Body not recorded." },
            Some(b) => {
                p.muted { (b.bytes) " bytes" @if b.encoding != "utf8" { ", " (b.encoding) } @if b.truncated { ", truncated" } }
                pre.body { (b.data) }
            }
        }
    }
}
