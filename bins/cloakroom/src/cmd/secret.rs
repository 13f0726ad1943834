//! `cloakroom secret put|list|rm`.
//!
//! The value of `secret put` is read from stdin: with a terminal it is prompted for
//! without echo (on `/dev/tty`, see `tty.rs`), otherwise stdin is read to the end and one
//! trailing newline is dropped (so `printf %s "$KEY" | …` and `echo "$KEY" | …` store the
//! same value). The value lives in a zeroizing buffer and is never printed.

use std::io::{IsTerminal, Read};

use cloakroom_api::{
    BindingSpec, BudgetScope, PutSecret, SecretDeleted, SecretList, SecretStored, SecretUses, UsesPer,
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use zeroize::Zeroizing;

use crate::{
    cli::{SecretCmd, SecretPut},
    client::{segment, AdminClient},
    error::CliError,
    output::{list, print_json, print_text, table, Output},
};

/// Runs a `secret` verb.
pub(crate) async fn run(client: &AdminClient, out: Output, cmd: SecretCmd) -> Result<(), CliError> {
    match cmd {
        SecretCmd::Put(put) => {
            let binding = binding(&put, OffsetDateTime::now_utc())?;
            let value = read_value(&put.name)?;
            // The request borrows the value from its zeroizing buffer.
            let req = PutSecret::new(put.name.as_str(), value.as_str()).with_binding(binding);
            let res = client.post::<_, SecretStored>("/v1/secrets", &req).await?;
            drop(req);
            drop(value);
            match out {
                Output::Json => print_json(&res.json),
                Output::Human => print_text(&format!("{}\n", res.body.placeholder)),
            }
        }
        SecretCmd::List => {
            let res = client.get::<SecretList>("/v1/secrets", &[]).await?;
            match out {
                Output::Json => print_json(&res.json),
                Output::Human => {
                    let rows: Vec<Vec<String>> = res
                        .body
                        .secrets
                        .iter()
                        .map(|s| {
                            let b = s.binding.as_ref();
                            vec![
                                s.name.clone(),
                                s.placeholder.clone(),
                                b.map_or_else(|| "-".into(), |b| list(&b.functions)),
                                b.map_or_else(|| "-".into(), |b| list(&b.locations)),
                                b.map_or_else(|| "-".into(), |b| list(&b.groups)),
                                s.uses.as_ref().map_or_else(|| "-".into(), uses),
                            ]
                        })
                        .collect();
                    if rows.is_empty() {
                        return print_text("no secrets\n");
                    }
                    print_text(&table(&["NAME", "PLACEHOLDER", "FUNCTIONS", "LOCATIONS", "GROUPS", "USES"], &rows))
                }
            }
        }
        SecretCmd::Rm { name } => {
            let res = client.delete::<SecretDeleted>(&format!("/v1/secrets/{}", segment(&name))).await?;
            match out {
                Output::Json => print_json(&res.json),
                Output::Human => print_text(&format!("removed secret {}\n", res.body.name)),
            }
        }
    }
}

/// A secret's uses under its budget: `3/10` in total (of `max_uses`), then the current
/// window's `1/2 per 1h`.
fn uses(u: &SecretUses) -> String {
    let mut out = match u.max_uses {
        Some(max) => format!("{}/{max}", u.total),
        None => u.total.to_string(),
    };
    if let (Some(n), Some(per)) = (u.window_count, &u.max_uses_per) {
        out.push_str(&format!(", {n}/{} per {}", per.count, per.period));
    }
    out
}

/// The binding the flags describe; `None` when no binding flag was given (the server's
/// rules then apply, e.g. a binding declared in the config file).
fn binding(put: &SecretPut, now: OffsetDateTime) -> Result<Option<BindingSpec>, CliError> {
    let expires = put.expires.as_deref().map(|e| parse_expires(e, now)).transpose()?;
    let per = put.max_uses_per.as_deref().map(parse_uses_per).transpose()?;
    let scope = put.budget_scope.as_deref().map(parse_budget_scope).transpose()?;
    let any = !(put.functions.is_empty()
        && put.locations.is_empty()
        && put.groups.is_empty()
        && put.approvers.is_empty()
        && expires.is_none()
        && put.max_uses.is_none()
        && per.is_none()
        && scope.is_none());
    Ok(any.then(|| {
        BindingSpec::new(put.functions.clone(), put.locations.clone())
            .with_groups(put.groups.clone())
            .with_approvers(put.approvers.clone())
            .with_expires(expires)
            .with_budget(put.max_uses, per, scope)
    }))
}

/// `COUNT/PERIOD` (`100/1h`) for `--max-uses-per`; the server checks the values.
fn parse_uses_per(s: &str) -> Result<UsesPer, CliError> {
    let bad = || CliError::Input(format!("--max-uses-per {s:?}: expected COUNT/PERIOD, e.g. 100/1h"));
    let (count, period) = s.split_once('/').ok_or_else(bad)?;
    let count = count.trim().parse::<u64>().map_err(|_| bad())?;
    humantime::parse_duration(period.trim()).map_err(|_| bad())?;
    Ok(UsesPer::new(count, period.trim()))
}

/// `secret` or `caller` for `--budget-scope`.
fn parse_budget_scope(s: &str) -> Result<BudgetScope, CliError> {
    match s {
        "secret" => Ok(BudgetScope::Secret),
        "caller" => Ok(BudgetScope::Caller),
        _ => Err(CliError::Input(format!("--budget-scope {s:?}: expected secret or caller"))),
    }
}

/// RFC 3339 as given, or `now + duration`.
fn parse_expires(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, CliError> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        CliError::Input(format!("--expires {s:?}: expected RFC 3339 (2027-01-01T00:00:00Z) or a duration (30d)"))
    })?;
    let d = time::Duration::try_from(d).map_err(|e| CliError::Input(format!("--expires: {e}")))?;
    now.checked_add(d).ok_or_else(|| CliError::Input("--expires is too far in the future".into()))
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

    #[test]
    fn uses_show_the_total_of_max_uses_and_the_current_window() {
        assert_eq!(uses(&SecretUses::new(4)), "4");
        assert_eq!(uses(&SecretUses::new(4).with_limits(Some(10), None)), "4/10");
        let windowed = SecretUses::new(37)
            .with_window(Some(4), None)
            .with_limits(Some(1000), Some(cloakroom_api::UsesPer::new(100, "1h")));
        assert_eq!(uses(&windowed), "37/1000, 4/100 per 1h");
    }

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
    fn budget_flags_make_a_budgeted_binding() {
        let b = binding(
            &put(&[
                "--function",
                "payments",
                "--location",
                "body",
                "--max-uses",
                "10",
                "--max-uses-per",
                "100/1h",
                "--budget-scope",
                "caller",
            ]),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap()
        .unwrap();
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["max_uses"], 10);
        assert_eq!(v["max_uses_per"], serde_json::json!({"count": 100, "period": "1h"}));
        assert_eq!(v["budget_scope"], "caller");
        for bad in [
            ["--max-uses-per", "100"],
            ["--max-uses-per", "x/1h"],
            ["--max-uses-per", "1/soon"],
            ["--budget-scope", "everyone"],
        ] {
            let err = binding(&put(&bad), OffsetDateTime::UNIX_EPOCH).unwrap_err();
            assert!(err.to_string().contains(bad[0]), "{err}");
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
        let at = |s| crate::output::time(&parse_expires(s, now).unwrap());
        assert_eq!(at("2030-01-01T00:00:00Z"), "2030-01-01T00:00:00Z");
        assert_eq!(at("1d"), "1970-01-02T00:00:00Z");
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
