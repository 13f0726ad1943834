//! `cloakroom approval list|approve|deny`.
//!
//! The list shows what an approver needs to decide: who asked, for which function, with
//! which arguments (as the gateway redacted them for approvers), and until when.

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
                        &["ID", "STATE", "REQUESTER", "FUNCTION", "ARGUMENTS", "APPROVERS", "EXPIRES"],
                        &rows,
                    ))
                }
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

fn row(a: &Value) -> Vec<String> {
    let args = match field(a, &["arguments"]) {
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(59).collect::<String>())
            } else {
                s
            }
        }
        None => "-".into(),
    };
    vec![
        cell(field(a, &["id"])),
        cell(field(a, &["state", "status"])),
        cell(field(a, &["requester.subject", "requested_by", "requester"])),
        cell(field(a, &["function"])),
        args,
        cell(field(a, &["approvers"])),
        cell(field(a, &["expires_at", "expires"])),
    ]
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
            if let Some(exp) = field(&res, &["expires_at"]).and_then(Value::as_str) {
                if verb == "approved" {
                    line.push_str(&format!("; usable once until {exp}"));
                }
            }
            print_text(&format!("{line}\n"))
        }
    }
}
