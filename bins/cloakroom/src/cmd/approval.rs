//! `cloakroom approval list|show|approve|deny`.
//!
//! The list shows what an approver needs to decide: who asked, for which call (method and
//! path), with which arguments (as the gateway redacted them for approvers), which
//! approver groups are still needed, and until when. `show` prints the whole call the
//! approval is bound to: query (masked), content type, secrets by name and location, body
//! digest, and each requirement with who met it.

use serde_json::{json, Value};

use crate::{
    cli::ApprovalCmd,
    client::{items, segment, AdminClient},
    error::CliError,
    output::{cell, field, print_json, print_text, table, Output},
};

/// Runs an `approval` verb.
pub(crate) async fn run(client: &AdminClient, out: Output, cmd: ApprovalCmd) -> Result<(), CliError> {
    match cmd {
        ApprovalCmd::List { state } => {
            let query = if state == "all" { Vec::new() } else { vec![("state", state.clone())] };
            let res = client.get("/v1/approvals", &query).await?;
            match out {
                Output::Json => print_json(&res),
                Output::Human => {
                    let list = items(res, &["approvals"])?;
                    if list.is_empty() {
                        let what = if state == "all" { String::new() } else { format!("{state} ") };
                        return print_text(&format!("no {what}approvals\n"));
                    }
                    let rows: Vec<Vec<String>> = list.iter().map(row).collect();
                    print_text(&table(
                        &["ID", "STATE", "REQUESTER", "FUNCTION", "CALL", "ARGUMENTS", "NEEDS", "EXPIRES"],
                        &rows,
                    ))
                }
            }
        }
        ApprovalCmd::Show { id } => {
            let res = client.get(&format!("/v1/approvals/{}", segment(&id)), &[]).await?;
            match out {
                Output::Json => print_json(&res),
                Output::Human => print_text(&show(&res)),
            }
        }
        ApprovalCmd::Approve { id } => {
            let res = client.post(&format!("/v1/approvals/{}/approve", segment(&id)), &json!({})).await?;
            decided(out, &id, "approved", res)
        }
        ApprovalCmd::Deny { id, reason } => {
            let res =
                client.post(&format!("/v1/approvals/{}/deny", segment(&id)), &json!({ "reason": reason })).await?;
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

/// `METHOD /path` of the call an approval is bound to.
fn call_line(a: &Value) -> String {
    match (field(a, &["scope.method"]), field(a, &["scope.path"])) {
        (Some(m), Some(p)) => {
            let q = field(a, &["scope.query"]).and_then(Value::as_str).filter(|q| !q.is_empty());
            format!("{} {}{}", cell(Some(m)), cell(Some(p)), q.map(|q| format!("?{q}")).unwrap_or_default())
        }
        _ => "-".into(),
    }
}

/// Each requirement as `group✓(who)` or `group✗`.
fn needs(a: &Value) -> String {
    match field(a, &["requirements"]).and_then(Value::as_array) {
        Some(reqs) if !reqs.is_empty() => reqs
            .iter()
            .map(|r| {
                let group = cell(field(r, &["group"]));
                match field(r, &["met_by"]).and_then(Value::as_str) {
                    Some(who) => format!("{group}✓({who})"),
                    None => format!("{group}✗"),
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => cell(field(a, &["approvers"])),
    }
}

fn row(a: &Value) -> Vec<String> {
    let args = field(a, &["arguments"]).map(|v| cut(v.to_string(), 60)).unwrap_or_else(|| "-".into());
    vec![
        cell(field(a, &["id"])),
        cell(field(a, &["state", "status"])),
        cell(field(a, &["requester.subject", "requested_by", "requester"])),
        cell(field(a, &["function"])),
        cut(call_line(a), 60),
        args,
        needs(a),
        cell(field(a, &["expires_at", "expires"])),
    ]
}

/// The whole approval, one fact a line.
fn show(a: &Value) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<14}{v}\n"));
    kv("id", cell(field(a, &["id"])));
    kv("state", cell(field(a, &["state"])));
    let issuer = cell(field(a, &["requester.issuer"]));
    kv("requester", format!("{} ({issuer})", cell(field(a, &["requester.subject"]))));
    kv("function", cell(field(a, &["function"])));
    kv("call", call_line(a));
    kv("content type", cell(field(a, &["scope.content_type"])));
    let secrets = match field(a, &["scope.placeholders"]).and_then(Value::as_array) {
        Some(uses) if !uses.is_empty() => uses
            .iter()
            .map(|u| format!("{} at {}", cell(field(u, &["secret", "placeholder"])), cell(field(u, &["location"]))))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    };
    kv("secrets", secrets);
    kv("body sha256", cell(field(a, &["scope.body_sha256"])));
    kv("arguments", field(a, &["arguments"]).map(Value::to_string).unwrap_or_else(|| "-".into()));
    kv("why", cell(field(a, &["why", "rule"])));
    kv("needs", needs(a));
    kv("expires", cell(field(a, &["expires_at"])));
    if let Some(used) = field(a, &["used_by_call"]) {
        kv("used by call", cell(Some(used)));
    }
    out
}

fn decided(out: Output, id: &str, verb: &str, res: Value) -> Result<(), CliError> {
    match out {
        Output::Json => print_json(&res),
        Output::Human => {
            let mut line = format!("{verb} {id}");
            if let Some(f) = field(&res, &["function"]).and_then(Value::as_str) {
                line.push_str(&format!(" ({f}"));
                if let Some(who) = field(&res, &["requester.subject", "requested_by"]).and_then(Value::as_str) {
                    line.push_str(&format!(" for {who}"));
                }
                line.push(')');
            }
            let state = field(&res, &["state"]).and_then(Value::as_str).unwrap_or("");
            if verb == "approved" && state == "pending" {
                line = format!("approval recorded for {id}; still needs {}", needs(&res));
            } else if let Some(exp) = field(&res, &["expires_at"]).and_then(Value::as_str) {
                if verb == "approved" {
                    line.push_str(&format!("; usable once until {exp}"));
                }
            }
            print_text(&format!("{line}\n"))
        }
    }
}
