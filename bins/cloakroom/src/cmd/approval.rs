//! `cloakroom approval list|show|approve|deny`.
//!
//! The list shows what an approver needs to decide: who asked, for which call (method and
//! path), with which arguments (as the gateway redacted them for approvers), which
//! approver groups are still needed, and until when. `show` prints the whole call the
//! approval is bound to: query (masked), content type, secrets by name and location, body
//! digest, and each requirement with who met it.

use cloakroom_api::{Approval, ApprovalList, ApprovalState, DecideApproval};

use crate::{
    cli::ApprovalCmd,
    client::{segment, AdminClient, Answer},
    error::CliError,
    output::{list, print_json, print_text, table, text, time, Output},
};

/// Runs an `approval` verb.
pub(crate) async fn run(client: &AdminClient, out: Output, cmd: ApprovalCmd) -> Result<(), CliError> {
    match cmd {
        ApprovalCmd::List { state } => {
            let query = if state == "all" { Vec::new() } else { vec![("state", state.clone())] };
            let res = client.get::<ApprovalList>("/v1/approvals", &query).await?;
            match out {
                Output::Json => print_json(&res.json),
                Output::Human => {
                    if res.body.approvals.is_empty() {
                        let what = if state == "all" { String::new() } else { format!("{state} ") };
                        return print_text(&format!("no {what}approvals\n"));
                    }
                    let rows: Vec<Vec<String>> = res.body.approvals.iter().map(row).collect();
                    print_text(&table(
                        &["ID", "STATE", "REQUESTER", "FUNCTION", "CALL", "ARGUMENTS", "NEEDS", "EXPIRES"],
                        &rows,
                    ))
                }
            }
        }
        ApprovalCmd::Show { id } => {
            let res = client.get::<Approval>(&format!("/v1/approvals/{}", segment(&id)), &[]).await?;
            match out {
                Output::Json => print_json(&res.json),
                Output::Human => print_text(&show(&res.body)),
            }
        }
        ApprovalCmd::Approve { id } => {
            let path = format!("/v1/approvals/{}/approve", segment(&id));
            let res = client.post(&path, &DecideApproval::default()).await?;
            decided(out, &id, "approved", res)
        }
        ApprovalCmd::Deny { id, reason } => {
            let path = format!("/v1/approvals/{}/deny", segment(&id));
            let res = client.post(&path, &DecideApproval::new(Some(reason))).await?;
            decided(out, &id, "denied", res)
        }
    }
}

fn cut(s: String, max: usize) -> String {
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    } else {
        s
    }
}

/// `METHOD /path?query` of the call an approval is bound to.
fn call_line(a: &Approval) -> String {
    match &a.scope {
        Some(s) => {
            let q = if s.query.is_empty() { String::new() } else { format!("?{}", s.query) };
            format!("{} {}{q}", s.method, s.path)
        }
        None => "-".into(),
    }
}

/// Each requirement as `group✓(who)` or `group✗`.
fn needs(a: &Approval) -> String {
    if a.requirements.is_empty() {
        return list(&a.approvers);
    }
    a.requirements
        .iter()
        .map(|r| match &r.met_by {
            Some(who) => format!("{}✓({who})", r.group),
            None => format!("{}✗", r.group),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The arguments as approvers see them, compact.
fn arguments(a: &Approval) -> String {
    if a.arguments.is_null() {
        "-".into()
    } else {
        a.arguments.to_string()
    }
}

fn row(a: &Approval) -> Vec<String> {
    vec![
        a.id.clone(),
        a.state.to_string(),
        a.requester.subject.clone(),
        a.function.clone(),
        cut(call_line(a), 60),
        cut(arguments(a), 60),
        needs(a),
        time(&a.expires_at),
    ]
}

/// The whole approval, one fact a line.
fn show(a: &Approval) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    kv("id", a.id.clone());
    kv("state", a.state.to_string());
    kv("requester", format!("{} ({})", a.requester.subject, a.requester.issuer));
    kv("function", a.function.clone());
    kv("call", call_line(a));
    let scope = a.scope.as_ref();
    kv("content type", text(scope.and_then(|s| s.content_type.as_deref()).unwrap_or_default()));
    let secrets = match scope.map(|s| &s.placeholders) {
        Some(uses) if !uses.is_empty() => uses
            .iter()
            .map(|u| format!("{} at {}", u.secret.as_deref().unwrap_or(&u.placeholder), u.location))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    };
    kv("secrets", secrets);
    kv("body sha256", text(scope.map(|s| s.body_sha256.as_str()).unwrap_or_default()));
    kv("arguments", arguments(a));
    kv("why", text(a.why.as_deref().or(a.rule.as_deref()).unwrap_or_default()));
    kv("needs", needs(a));
    kv("expires", time(&a.expires_at));
    if let Some(used) = &a.used_by_call {
        kv("used by call", used.clone());
    }
    out
}

fn decided(out: Output, id: &str, verb: &str, res: Answer<Approval>) -> Result<(), CliError> {
    let a = &res.body;
    match out {
        Output::Json => print_json(&res.json),
        Output::Human => {
            let line = if verb == "approved" && a.state == ApprovalState::Pending {
                format!("approval recorded for {id}; still needs {}", needs(a))
            } else {
                let mut line = format!("{verb} {id} ({} for {})", a.function, a.requester.subject);
                if verb == "approved" {
                    line.push_str(&format!("; usable once until {}", time(&a.expires_at)));
                }
                line
            };
            print_text(&format!("{line}\n"))
        }
    }
}
