//! `cloakroom biscuit keygen|mint|attenuate|inspect`: tokens for operators who hand
//! agents narrowed credentials.
//!
//! A token minted here carries the authority facts the gateway's identity layer reads —
//! `user($subject)` and one `group($g)` per group — signed by the root key whose public
//! half is `[identity.biscuit] root_public_key`. Anyone holding a token can narrow it
//! with `attenuate` (no key needed): the new block's checks run wherever the token is
//! presented — against every call (`check if function("payments/refund")`) and every
//! admin operation (`check if operation("approvals:approve"), function($f),
//! $f.starts_with("refund")`); docs/identity.md lists the facts. A `--check` is Datalog
//! as biscuit-auth reads it; the leading `check if` may be left out.

use std::{io::Read, str::FromStr, time::SystemTime};

use biscuit_auth::{
    builder::{self, Algorithm},
    builder_ext::BuilderExt,
    Biscuit, BlockBuilder, KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit,
};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::{
    cli::{BiscuitAttenuate, BiscuitCmd, BiscuitInspect, BiscuitMint, PrivateKeySource},
    error::CliError,
    output::{print_json, print_text, Output},
};

/// Runs a `biscuit` verb.
pub(crate) fn run(out: Output, cmd: BiscuitCmd) -> Result<(), CliError> {
    match cmd {
        BiscuitCmd::Keygen => keygen(out),
        BiscuitCmd::Mint(m) => mint(out, m),
        BiscuitCmd::Attenuate(a) => attenuate(out, a),
        BiscuitCmd::Inspect(i) => inspect(out, i),
    }
}

fn keygen(out: Output) -> Result<(), CliError> {
    let kp = KeyPair::new_with_algorithm(Algorithm::Ed25519);
    let private = Zeroizing::new(kp.private().to_prefixed_string());
    let public = kp.public().to_string();
    match out {
        Output::Json => print_json(&json!({ "private_key": private.as_str(), "public_key": public })),
        Output::Human => print_text(&format!("private key: {}\npublic key: {public}\n", private.as_str())),
    }
}

/// Reads the root private key: `ed25519-private/<hex>` (as `keygen` prints it) or
/// `ed25519/<hex>`.
fn private_key(src: &PrivateKeySource) -> Result<KeyPair, CliError> {
    let text = Zeroizing::new(match (&src.private_key_file, &src.private_key_env) {
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|e| CliError::io(format!("reading {}", path.display()), e))?
        }
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| CliError::Input(format!("environment variable {var} is not set (or not UTF-8)")))?,
        (None, None) => return Err(CliError::Input("give --private-key-file or --private-key-env".into())),
    });
    let text = text.trim();
    let key = match text.strip_prefix("ed25519/") {
        Some(hex) => PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519),
        None => PrivateKey::from_str(text),
    }
    // The parse error can quote the input; say only what shape was expected.
    .map_err(|_| CliError::Input("the private key is not valid: expected ed25519-private/<64 hex>".into()))?;
    Ok(KeyPair::from(&key))
}

fn expiry(ttl: std::time::Duration) -> Result<SystemTime, CliError> {
    SystemTime::now().checked_add(ttl).ok_or_else(|| CliError::Input("--ttl is too long".into()))
}

fn datalog_error(what: &str, src: &str, e: biscuit_auth::error::Token) -> CliError {
    CliError::Input(format!("{what} {src:?} is not valid Datalog: {e}"))
}

fn mint(out: Output, m: BiscuitMint) -> Result<(), CliError> {
    let root = private_key(&m.key)?;
    let mut b = Biscuit::builder()
        .fact(builder::fact("user", &[builder::string(&m.subject)]))
        .map_err(|e| CliError::Input(format!("--subject: {e}")))?;
    for g in &m.groups {
        b = b
            .fact(builder::fact("group", &[builder::string(g)]))
            .map_err(|e| CliError::Input(format!("--group: {e}")))?;
    }
    for f in &m.facts {
        b = b.fact(f.as_str()).map_err(|e| datalog_error("--fact", f, e))?;
    }
    for c in &m.checks {
        b = b.check(c.as_str()).map_err(|e| datalog_error("--check", c, e))?;
    }
    let expires = m.ttl.map(expiry).transpose()?;
    if let Some(at) = expires {
        b = b.check_expiration_date(at);
    }
    let token = b
        .build(&root)
        .and_then(|t| t.to_base64())
        .map_err(|e| CliError::Input(format!("cannot build the token: {e}")))?;
    match out {
        Output::Json => print_json(&json!({
            "token": token,
            "subject": m.subject,
            "groups": m.groups,
            "expires": expires.map(rfc3339),
        })),
        Output::Human => print_text(&format!("{token}\n")),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn read_token(arg: &str) -> Result<Zeroizing<String>, CliError> {
    if arg == "-" {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin().read_to_string(&mut s).map_err(|e| CliError::io("reading the token from stdin", e))?;
        Ok(Zeroizing::new(s.trim().to_owned()))
    } else {
        Ok(Zeroizing::new(arg.trim().to_owned()))
    }
}

fn parse_token(text: &str) -> Result<UnverifiedBiscuit, CliError> {
    UnverifiedBiscuit::from_base64(text).map_err(|e| CliError::Input(format!("not a Biscuit token: {e}")))
}

fn attenuate(out: Output, a: BiscuitAttenuate) -> Result<(), CliError> {
    if a.checks.is_empty() && a.ttl.is_none() {
        return Err(CliError::Input("attenuate needs at least one --check or a --ttl".into()));
    }
    let token = parse_token(&read_token(&a.token)?)?;
    let expires = a.ttl.map(expiry).transpose()?;
    let narrowed = narrow(&token, &a.checks, expires)?;
    match out {
        Output::Json => print_json(&json!({ "token": narrowed })),
        Output::Human => print_text(&format!("{narrowed}\n")),
    }
}

/// A check as given to `--check`: full Datalog (`check if …`, `check all …`,
/// `reject if …`), or just its body, which is read as `check if <body>`.
fn check_source(c: &str) -> String {
    let t = c.trim().trim_end_matches(';');
    if ["check if ", "check all ", "reject if "].iter().any(|p| t.starts_with(p)) {
        t.to_owned()
    } else {
        format!("check if {t}")
    }
}

/// `token` with a new block of `checks` (and an expiry check), base64url.
fn narrow(token: &UnverifiedBiscuit, checks: &[String], expires: Option<SystemTime>) -> Result<String, CliError> {
    let mut block = BlockBuilder::new();
    for c in checks {
        block = block.check(check_source(c).as_str()).map_err(|e| datalog_error("--check", c, e))?;
    }
    if let Some(at) = expires {
        block = block.check_expiration_date(at);
    }
    token
        .append(block)
        .and_then(|t| t.to_base64())
        .map_err(|e| CliError::Input(format!("cannot append the block: {e}")))
}

/// One block's statements, sorted by kind.
fn block_json(index: usize, source: &str) -> Value {
    let (mut facts, mut rules, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    for stmt in source.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let stmt = stmt.trim_end_matches(';').to_owned();
        if stmt.starts_with("check ") || stmt.starts_with("reject if") || stmt.starts_with("deny if") {
            checks.push(stmt);
        } else if stmt.contains("<-") {
            rules.push(stmt);
        } else if !stmt.starts_with("trusting ") {
            facts.push(stmt);
        }
    }
    json!({ "index": index, "authority": index == 0, "facts": facts, "rules": rules, "checks": checks, "source": source })
}

fn inspect(out: Output, i: BiscuitInspect) -> Result<(), CliError> {
    let text = read_token(&i.token)?;
    let token = parse_token(&text)?;
    let mut blocks = Vec::new();
    for n in 0..token.block_count() {
        let source = token.print_block_source(n).map_err(|e| CliError::Input(format!("block {n}: {e}")))?;
        blocks.push(block_json(n, &source));
    }
    let verified = match &i.public_key {
        None => None,
        Some(k) => {
            let key = PublicKey::from_str(k.trim())
                .map_err(|e| CliError::Input(format!("--public-key is not a public key (ed25519/<hex>): {e}")))?;
            Some(token.clone().verify(key).is_ok())
        }
    };
    match out {
        Output::Json => print_json(&json!({ "blocks": blocks, "verified": verified }))?,
        Output::Human => {
            let mut s = String::new();
            for b in &blocks {
                let n = b["index"].as_u64().unwrap_or(0);
                s.push_str(&if n == 0 { "block 0 (authority)\n".to_owned() } else { format!("block {n}\n") });
                // Datalog as written: facts, then rules, then checks.
                for key in ["facts", "rules", "checks"] {
                    for st in b[key].as_array().into_iter().flatten() {
                        s.push_str(&format!("  {};\n", st.as_str().unwrap_or_default()));
                    }
                }
            }
            match verified {
                None => s.push_str("signature: not verified (give --public-key)\n"),
                Some(true) => s.push_str("signature: verified against the given public key\n"),
                Some(false) => {}
            }
            print_text(&s)?;
        }
    }
    match verified {
        Some(false) => Err(CliError::Input("signature does not verify against the given public key".into())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "approve refunds for one hour" token of docs/identity.md, as the CLI makes it,
    /// judged the way the admin API judges it (operation facts, then the token's checks).
    #[test]
    fn attenuate_expresses_approve_refunds_for_one_hour() {
        let root = KeyPair::new();
        let lead = Biscuit::builder().code(r#"user("lead"); group("admins");"#).unwrap().build(&root).unwrap();
        let unverified = UnverifiedBiscuit::from_base64(lead.to_base64().unwrap()).unwrap();
        let check = r#"check if operation("approvals:approve"), function($f), $f.starts_with("refund")"#;
        let in_an_hour = SystemTime::now() + std::time::Duration::from_secs(3600);
        let narrowed = narrow(&unverified, &[check.to_owned()], Some(in_an_hour)).unwrap();
        let narrowed = Biscuit::from_base64(&narrowed, root.public()).unwrap();
        let allows = |op: &str, function: &str, at: SystemTime| {
            let mut b = biscuit_auth::AuthorizerBuilder::new()
                .fact(builder::fact("operation", &[builder::string(op)]))
                .unwrap()
                .fact(builder::fact("function", &[builder::string(function)]))
                .unwrap()
                .fact(builder::fact("time", &[builder::date(&at)]))
                .unwrap()
                .policy("allow if true")
                .unwrap()
                .build(&narrowed)
                .unwrap();
            b.authorize().is_ok()
        };
        let now = SystemTime::now();
        assert!(allows("approvals:approve", "refund", now));
        assert!(!allows("approvals:approve", "payments", now));
        assert!(!allows("secrets:list", "refund", now));
        assert!(!allows("approvals:approve", "refund", now + std::time::Duration::from_secs(7200)));
        // The body alone reads as the same check.
        assert_eq!(check_source(r#"operation("reload");"#), r#"check if operation("reload")"#);
        assert_eq!(check_source(check), check);
        assert!(narrow(&unverified, &["check if (".to_owned()], None).is_err());
    }

    #[test]
    fn block_statements_are_sorted_by_kind() {
        let b = block_json(
            0,
            "user(\"a\");\ngroup(\"g\");\nx($a) <- user($a);\ncheck if time($t), $t <= 2030-01-01T00:00:00Z;\n",
        );
        assert_eq!(b["facts"], json!(["user(\"a\")", "group(\"g\")"]));
        assert_eq!(b["rules"], json!(["x($a) <- user($a)"]));
        assert_eq!(b["checks"], json!(["check if time($t), $t <= 2030-01-01T00:00:00Z"]));
    }
}
