//! `cloakroom secret put|list|rm`.
//!
//! The value of `secret put` is read from stdin: with a terminal it is prompted for
//! without echo (on `/dev/tty`, see `tty.rs`), otherwise stdin is read to the end and one
//! trailing newline is dropped (so `printf %s "$KEY" | …` and `echo "$KEY" | …` store the
//! same value). The value lives in a zeroizing buffer and is never printed.

use std::io::{IsTerminal, Read};

use serde::Serialize;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use zeroize::Zeroizing;

use crate::{
    cli::{SecretCmd, SecretPut},
    client::{items, segment, AdminClient},
    error::CliError,
    output::{cell, field, print_json, print_text, table, Output},
};

/// Runs a `secret` verb.
pub(crate) async fn run(client: &AdminClient, out: Output, cmd: SecretCmd) -> Result<(), CliError> {
    match cmd {
        SecretCmd::Put(put) => {
            let binding = binding(&put, OffsetDateTime::now_utc())?;
            let value = read_value(&put.name)?;
            let res = client.post("/v1/secrets", &PutBody { name: &put.name, value: value.as_str(), binding }).await?;
            drop(value);
            match out {
                Output::Json => print_json(&res),
                Output::Human => {
                    let placeholder = res
                        .get("placeholder")
                        .and_then(Value::as_str)
                        .ok_or_else(|| CliError::Protocol("POST /v1/secrets: no placeholder in the answer".into()))?;
                    print_text(&format!("{placeholder}\n"))
                }
            }
        }
        SecretCmd::List => {
            let res = client.get("/v1/secrets", &[]).await?;
            match out {
                Output::Json => print_json(&res),
                Output::Human => {
                    let rows: Vec<Vec<String>> = items(res, &["secrets"])?
                        .iter()
                        .map(|s| {
                            vec![
                                cell(field(s, &["name"])),
                                cell(field(s, &["placeholder"])),
                                cell(field(s, &["binding.functions", "functions"])),
                                cell(field(s, &["binding.locations", "locations"])),
                                cell(field(s, &["binding.groups", "groups"])),
                            ]
                        })
                        .collect();
                    if rows.is_empty() {
                        return print_text("no secrets\n");
                    }
                    print_text(&table(&["NAME", "PLACEHOLDER", "FUNCTIONS", "LOCATIONS", "GROUPS"], &rows))
                }
            }
        }
        SecretCmd::Rm { name } => {
            let res = client.delete(&format!("/v1/secrets/{}", segment(&name))).await?;
            match out {
                Output::Json => print_json(&if res.is_null() { json!({ "name": name, "deleted": true }) } else { res }),
                Output::Human => print_text(&format!("removed secret {name}\n")),
            }
        }
    }
}

/// The body of `POST /v1/secrets`. Not `Debug`: it holds the value.
#[derive(Serialize)]
struct PutBody<'a> {
    name: &'a str,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    binding: Option<Binding>,
}

/// A binding as in `[[secrets]]` (SPEC §3).
#[derive(Debug, Serialize, PartialEq)]
struct Binding {
    functions: Vec<String>,
    locations: Vec<String>,
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    approvers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

/// The binding the flags describe; `None` when no binding flag was given (the server's
/// rules then apply, e.g. a binding declared in the config file).
fn binding(put: &SecretPut, now: OffsetDateTime) -> Result<Option<Binding>, CliError> {
    let expires = put.expires.as_deref().map(|e| parse_expires(e, now)).transpose()?;
    let any = !(put.functions.is_empty()
        && put.locations.is_empty()
        && put.groups.is_empty()
        && put.approvers.is_empty()
        && expires.is_none());
    Ok(any.then(|| Binding {
        functions: put.functions.clone(),
        locations: put.locations.clone(),
        groups: put.groups.clone(),
        approvers: put.approvers.clone(),
        expires,
    }))
}

/// RFC 3339 as given, or `now + duration`.
fn parse_expires(s: &str, now: OffsetDateTime) -> Result<String, CliError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return t.format(&Rfc3339).map_err(|e| CliError::Input(format!("--expires: {e}")));
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        CliError::Input(format!("--expires {s:?}: expected RFC 3339 (2027-01-01T00:00:00Z) or a duration (30d)"))
    })?;
    let d = time::Duration::try_from(d).map_err(|e| CliError::Input(format!("--expires: {e}")))?;
    let at = now.checked_add(d).ok_or_else(|| CliError::Input("--expires is too far in the future".into()))?;
    at.format(&Rfc3339).map_err(|e| CliError::Input(format!("--expires: {e}")))
}

/// Reads the secret value from the terminal (no echo) or from piped stdin.
fn read_value(name: &str) -> Result<Zeroizing<String>, CliError> {
    let stdin = std::io::stdin();
    let value = if stdin.is_terminal() {
        crate::tty::prompt_hidden(&format!("Value for {name}: "))
            .map_err(|e| CliError::io("reading the value from the terminal", e))?
    } else {
        let mut buf = Zeroizing::new(Vec::new());
        stdin.lock().read_to_end(&mut buf).map_err(|e| CliError::io("reading the value from stdin", e))?;
        let mut text = Zeroizing::new(
            String::from_utf8(std::mem::take(&mut *buf))
                .map_err(|_| CliError::Input("the value on stdin is not UTF-8".into()))?,
        );
        strip_one_newline(&mut text);
        text
    };
    if value.is_empty() {
        return Err(CliError::Input("the value is empty; pipe it on stdin or type it at the prompt".into()));
    }
    Ok(value)
}

fn strip_one_newline(s: &mut String) {
    if s.ends_with("\r\n") {
        s.truncate(s.len() - 2);
    } else if s.ends_with('\n') {
        s.truncate(s.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(args: &[&str]) -> SecretPut {
        use clap::Parser;
        let mut argv = vec!["cloakroom", "secret", "put", "k"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Secret(SecretCmd::Put(p)) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_binding_flags_send_no_binding() {
        assert_eq!(binding(&put(&[]), OffsetDateTime::UNIX_EPOCH).unwrap(), None);
    }

    #[test]
    fn binding_flags_repeat() {
        let b = binding(
            &put(&[
                "--function",
                "payments/*",
                "--function",
                "payments",
                "--location",
                "header:Authorization",
                "--group",
                "ops",
            ]),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.functions, ["payments/*", "payments"]);
        assert_eq!(b.locations, ["header:Authorization"]);
        assert_eq!(b.groups, ["ops"]);
        let v = serde_json::to_value(&b).unwrap();
        assert!(v.get("approvers").is_none() && v.get("expires").is_none(), "{v}");
    }

    #[test]
    fn expires_takes_a_date_or_a_duration() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(parse_expires("2030-01-01T00:00:00Z", now).unwrap(), "2030-01-01T00:00:00Z");
        assert_eq!(parse_expires("1d", now).unwrap(), "1970-01-02T00:00:00Z");
        assert!(parse_expires("soon", now).is_err());
    }

    #[test]
    fn one_trailing_newline_is_dropped() {
        let mut s = String::from("v\n\n");
        strip_one_newline(&mut s);
        assert_eq!(s, "v\n");
        let mut s = String::from("v\r\n");
        strip_one_newline(&mut s);
        assert_eq!(s, "v");
    }
}
