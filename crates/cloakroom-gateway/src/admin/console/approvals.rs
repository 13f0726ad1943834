//! The approvals inbox: the pending approvals this person may decide, with everything
//! needed to decide them, approve/deny with a reason, and live updates.
//!
//! The list is the JSON API's `GET /v1/approvals?state=pending` (admins see all; an
//! approver sees the approvals naming one of their groups) and a decision is
//! `POST /v1/approvals/{id}/approve|deny`: the same [`Caller`](super::Caller) checks,
//! the same [`Approvals`](cloakroom_policy::Approvals) rules (a distinct approver, not
//! the requester, in a required group). The list refreshes itself: htmx polls
//! `/console/approvals/list` every 2 s and swaps it in, keeping a reason being typed.

use cloakroom_core::Error;
use cloakroom_identity::Operation;
use cloakroom_policy::{Approval, ApprovalState};
use http::{Response, StatusCode};
use maud::{html, Markup};

use super::{layout, see_other, Signed};
use crate::{admin::respond::param, forward::GatewayBody, Gateway};

/// `GET /console` and `/console/approvals`: the inbox page.
pub(super) async fn page(gateway: &Gateway, signed: &Signed<'_>) -> Result<Response<GatewayBody>, Error> {
    let nav = signed.nav();
    let list = inbox(gateway, signed, &nav.csrf).await?;
    let decided = match param(&signed.query, "decided") {
        // Told from the store, not from the link: a crafted `?decided=` shows nothing false.
        Some(id) => match signed.caller.authorize_approval(Operation::APPROVALS_READ, &id).await {
            Ok((a, identity)) if nav.is_admin || identity.in_any_group(&a.approvers) => Some(a),
            _ => None,
        },
        None => None,
    };
    let body = html! {
        @if let Some(a) = decided {
            p.notice { "Approval " code { (a.id) } " (" (a.function) ") is now " strong { (a.state_at(time::OffsetDateTime::now_utc()).as_str()) } "." }
        }
        div #inbox hx-get="/console/approvals/list" hx-trigger="every 2s" hx-swap="innerHTML" { (list) }
    };
    Ok(layout::html(StatusCode::OK, layout::page("Approvals", Some(&nav), body)))
}

/// `GET /console/approvals/list`: the inbox alone, for the page's polling.
pub(super) async fn fragment(gateway: &Gateway, signed: &Signed<'_>) -> Result<Response<GatewayBody>, Error> {
    let list = inbox(gateway, signed, &signed.nav().csrf).await?;
    Ok(layout::html(StatusCode::OK, list))
}

/// `POST /console/approvals/{id}/approve|deny` with `reason`.
pub(super) async fn decide(
    gateway: &Gateway,
    signed: &Signed<'_>,
    id: &str,
    verb: &str,
) -> Result<Response<GatewayBody>, Error> {
    let approve = verb == "approve";
    let operation = if approve { Operation::APPROVALS_APPROVE } else { Operation::APPROVALS_DENY };
    let (_, identity) = signed.caller.authorize_approval(operation, id).await?;
    let reason = signed.form.text("reason").map(str::to_owned);
    let approvals = gateway.approvals();
    let result = if approve {
        approvals.approve(id, identity, reason).await
    } else {
        approvals.deny(id, identity, reason).await
    };
    let a = result.map_err(|e| e.to_error())?;
    let id: String = a.id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    Ok(see_other(&format!("/console/approvals?decided={id}")))
}

/// The pending approvals `signed` may decide, rendered.
async fn inbox(gateway: &Gateway, signed: &Signed<'_>, csrf: &str) -> Result<Markup, Error> {
    let identity = signed.caller.authorize(Operation::new(Operation::APPROVALS_LIST))?;
    let is_admin = signed.caller.is_admin();
    let list = gateway.approvals().list(Some(ApprovalState::Pending)).await.map_err(|e| e.to_error())?;
    let visible: Vec<Approval> = list.into_iter().filter(|a| is_admin || identity.in_any_group(&a.approvers)).collect();
    Ok(html! {
        @if visible.is_empty() {
            p.empty { "No approvals are waiting for you." }
        }
        @for a in &visible { (card(a, csrf)) }
    })
}

/// One approval: who, what, which secrets where, why, what is still needed.
fn card(a: &Approval, csrf: &str) -> Markup {
    let args = serde_json::to_string_pretty(&a.arguments).unwrap_or_default();
    html! {
        article.card.approval data-approval=(a.id) {
            h2 { (a.function) " " small { "approval " code { (a.id) } } }
            dl {
                dt { "Requester" }
                dd { (a.requester.subject) " " span.muted { "(" (a.requester.issuer) ")" }
                     @if !a.requester.groups.is_empty() { " in " (a.requester.groups.join(", ")) } }
                dt { "Asked" } dd { (rfc3339(a.created_at)) " · expires " (rfc3339(a.expires_at)) }
                @if let Some(s) = &a.scope {
                    dt { "Call" }
                    dd { code { (s.method) " " (s.path) @if !s.query.is_empty() { "?" (s.query) } } }
                    @if let Some(ct) = &s.content_type { dt { "Content type" } dd { code { (ct) } } }
                    dt { "Secrets" }
                    dd {
                        @if s.placeholders.is_empty() { "none" }
                        ul { @for p in &s.placeholders {
                            li { (p.secret.as_deref().unwrap_or("(unknown)")) " in " code { (p.location) } }
                        } }
                    }
                    dt { "Body SHA-256" } dd { code.hash { (s.body_sha256) } }
                }
                dt { "Rule" } dd { (a.rule.as_deref().unwrap_or("(none)")) }
                @if let Some(why) = &a.why { dt { "Why" } dd { (why) } }
                dt { "Requirements" }
                dd { ul { @for r in &a.requirements {
                    li.met[r.met] {
                        @if r.met { "✓ " } @else { "✗ " }
                        "a member of " strong { (r.group) }
                        @if let Some(by) = &r.met_by { " — met by " (by) } @else { " — not met yet" }
                    }
                } } }
                @if !a.grants.is_empty() {
                    dt { "Approved by" }
                    dd { ul { @for g in &a.grants {
                        li { (g.subject) " (" (g.issuer) ") at " (rfc3339(g.at))
                             @if let Some(r) = &g.reason { ": " (r) } }
                    } } }
                }
            }
            h3 { "Arguments" span.muted { " (as recorded, secrets redacted)" } }
            @if let Some(bytes) = a.arguments.get("cloakroom_truncated").and_then(|t| t.get("bytes")) {
                // cloakroom_policy::shown_arguments kept only a prefix of the text.
                p.truncated {
                    strong { "Only part of the arguments is shown. " }
                    "They were " (bytes) " bytes of JSON, too many keys to keep; what decides the call may be \
                     in the part not shown. The approval is bound to the whole body (its SHA-256 above)."
                }
            }
            pre.arguments { (args) }
            form.decide method="post" action={ "/console/approvals/" (a.id) "/approve" } {
                input type="hidden" name="csrf" value=(csrf);
                label for={ "reason-" (a.id) } { "Reason" }
                // hx-preserve: the 2 s refresh keeps what is being typed here.
                textarea id={ "reason-" (a.id) } name="reason" rows="2" hx-preserve="true" {}
                button.approve type="submit" { "Approve" }
                button.deny type="submit" formaction={ "/console/approvals/" (a.id) "/deny" } { "Deny" }
            }
        }
    }
}

pub(super) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}
