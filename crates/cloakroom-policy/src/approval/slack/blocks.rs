//! The Block Kit messages for an approval: the request with Approve / Deny buttons, and
//! the same message updated with each decision.
//!
//! Everything a caller chose (function name, path, query, subject, rule text) is shown
//! through [`text`]: Rust-quoted and cut (so it cannot break lines or run on), then
//! escaped for Slack's mrkdwn (`&`, `<`, `>`), which is what makes `<!channel>`,
//! `<@U…>` and `<https://…|link>` impossible: Slack only parses those inside angle
//! brackets. Nothing caller-chosen goes inside a code span (a backtick in it would end
//! the span). Arguments are never shown (they may be sensitive); the query is the one the
//! gateway already masked for approvers, and secrets appear by name and location only.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use cloakroom_core::quoted;

use crate::{Approval, ApprovalState};

/// The action id prefix of the Approve button; the approval id follows.
pub const APPROVE_ACTION: &str = "cloakroom_approve:";
/// The action id prefix of the Deny button; the approval id follows.
pub const DENY_ACTION: &str = "cloakroom_deny:";

/// `s` escaped for mrkdwn: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;` (Slack's own rule:
/// these three are the control characters of its markup).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Caller-chosen text for a message: quoted (control characters escaped, cut after a
/// bound) and mrkdwn-escaped.
pub(super) fn text(s: &str) -> String {
    escape(&quoted(s).to_string())
}

fn time(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The lines describing the call and what it needs.
fn details(a: &Approval) -> String {
    let mut lines = vec![
        format!("*Requester:* {} ({})", text(&a.requester.subject), text(&a.requester.issuer)),
        format!("*Function:* {}", text(&a.function)),
    ];
    if let Some(s) = &a.scope {
        let target = if s.query.is_empty() { s.path.clone() } else { format!("{}?{}", s.path, s.query) };
        lines.push(format!("*Method:* {}", text(&s.method)));
        lines.push(format!("*Path:* {}", text(&target)));
        let secrets: Vec<String> = s
            .placeholders
            .iter()
            .map(|u| format!("{} at {}", text(u.secret.as_deref().unwrap_or("unknown secret")), text(&u.location)))
            .collect();
        lines.push(format!("*Secrets:* {}", if secrets.is_empty() { "none".into() } else { secrets.join(", ") }));
    }
    if let Some(rule) = &a.rule {
        lines.push(format!("*Rule:* {}", text(rule)));
    }
    if let Some(why) = &a.why {
        lines.push(format!("*Why:* {}", text(why)));
    }
    let needs: Vec<String> = a
        .requirements
        .iter()
        .map(|r| match &r.met_by {
            Some(by) if r.met => format!("{} (met by {})", text(&r.group), text(by)),
            _ => format!("{} (unmet)", text(&r.group)),
        })
        .collect();
    lines.push(format!("*Needs one approver from each of:* {}", needs.join(", ")));
    lines.push(format!("*Approval:* {}", text(&a.id)));
    lines.push(format!("*Expires:* {}", time(a.expires_at)));
    lines.join("\n")
}

fn section(mrkdwn: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": mrkdwn } })
}

fn buttons(a: &Approval) -> Value {
    json!({
        "type": "actions",
        "block_id": "cloakroom_decision",
        "elements": [
            { "type": "button", "style": "primary", "text": { "type": "plain_text", "text": "Approve" },
              "action_id": format!("{APPROVE_ACTION}{}", a.id), "value": a.id },
            { "type": "button", "style": "danger", "text": { "type": "plain_text", "text": "Deny" },
              "action_id": format!("{DENY_ACTION}{}", a.id), "value": a.id },
        ]
    })
}

/// The one-line summary Slack shows in notifications (and clients without blocks).
fn summary(a: &Approval) -> String {
    format!("Cloakroom: {} asks to call {}", text(&a.requester.subject), text(&a.function))
}

/// The outcome so far: who approved (and when), what is still needed, or who denied.
fn outcome(a: &Approval) -> Option<String> {
    let grants: Vec<String> = a.grants.iter().map(|g| format!("{} at {}", text(&g.subject), time(g.at))).collect();
    match a.state {
        ApprovalState::Denied => Some(format!(
            ":no_entry: *Denied* by {} at {}{}",
            text(a.decided_by.as_deref().unwrap_or("an approver")),
            a.decided_at.map(time).unwrap_or_default(),
            a.reason.as_deref().map(|r| format!(": {}", text(r))).unwrap_or_default()
        )),
        ApprovalState::Approved | ApprovalState::Used => {
            Some(format!(":white_check_mark: *Approved* by {}", grants.join(", ")))
        }
        ApprovalState::Expired => Some(":hourglass: *Expired* without a decision".into()),
        ApprovalState::Pending if !grants.is_empty() => {
            let missing: Vec<String> = a.requirements.iter().filter(|r| !r.met).map(|r| text(&r.group)).collect();
            Some(format!(
                ":hourglass_flowing_sand: Approved by {}; still needs an approver from: {}",
                grants.join(", "),
                missing.join(", ")
            ))
        }
        ApprovalState::Pending => None,
    }
}

/// The blocks for `a` as it stands: details, the outcome so far, and the buttons while
/// it is still pending.
pub(super) fn blocks(a: &Approval) -> Value {
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": "Approval requested" } }),
        section(details(a)),
    ];
    if let Some(o) = outcome(a) {
        blocks.push(section(o));
    }
    if a.state == ApprovalState::Pending {
        blocks.push(buttons(a));
    }
    Value::Array(blocks)
}

/// The `chat.postMessage` body for a new approval in `channel`.
pub(super) fn post_message(channel: &str, a: &Approval) -> Value {
    // `parse: none` and no `link_names`: Slack must not turn bare names or URLs in the
    // text into mentions or links.
    json!({ "channel": channel, "text": summary(a), "blocks": blocks(a), "parse": "none", "unfurl_links": false, "unfurl_media": false })
}

/// The `chat.update` body for the message `ts` in `channel` showing `a` as it stands.
pub(super) fn update_message(channel: &str, ts: &str, a: &Approval) -> Value {
    json!({ "channel": channel, "ts": ts, "text": summary(a), "blocks": blocks(a), "parse": "none" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_slack_markup() {
        assert_eq!(escape("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(escape("<!channel>"), "&lt;!channel&gt;");
        assert_eq!(escape("<@U123>"), "&lt;@U123&gt;");
        assert_eq!(escape("<https://evil.example|click>"), "&lt;https://evil.example|click&gt;");
        // Already-escaped text is escaped again: it is shown as typed, not decoded.
        assert_eq!(escape("&lt;!here&gt;"), "&amp;lt;!here&amp;gt;");
    }

    #[test]
    fn caller_text_is_quoted_escaped_and_kept_on_one_line() {
        let t = text("refund\n*Approved* by <@U999> <!channel>");
        assert!(!t.contains('\n') && !t.contains('<') && !t.contains('>'), "{t}");
        assert!(t.starts_with('"') && t.contains("\\n"), "{t}");
        let long = text(&"x".repeat(10_000));
        assert!(long.len() < 1000, "cut: {}", long.len());
    }
}
