//! The offline verbs, run as the real binary: keygen, biscuit, completions, policy explain.

mod common;

use common::{run, run_with};
use serde_json::Value;

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn keygen_prints_two_fresh_64_hex_keys() {
    let a = run(&["keygen"]).ok().stdout;
    let lines: Vec<&str> = a.lines().collect();
    assert_eq!(lines.len(), 2, "{a}");
    let p = lines[0].strip_prefix("CLOAKROOM_PLACEHOLDER_KEY=").expect("placeholder key line");
    let v = lines[1].strip_prefix("CLOAKROOM_VAULT_KEY=").expect("vault key line");
    assert!(is_hex64(p) && is_hex64(v), "{a}");
    assert_ne!(p, v);
    let b = run(&["keygen"]).ok().stdout;
    assert_ne!(a, b, "two runs must not print the same keys");
}

#[test]
fn keygen_json_has_both_keys() {
    let v: Value = serde_json::from_str(&run(&["keygen", "--output", "json"]).ok().stdout).unwrap();
    assert!(is_hex64(v["CLOAKROOM_PLACEHOLDER_KEY"].as_str().unwrap()));
    assert!(is_hex64(v["CLOAKROOM_VAULT_KEY"].as_str().unwrap()));
}

struct Keys {
    private: String,
    public: String,
}

fn biscuit_keys() -> Keys {
    let v: Value = serde_json::from_str(&run(&["biscuit", "keygen", "-o", "json"]).ok().stdout).unwrap();
    Keys { private: v["private_key"].as_str().unwrap().into(), public: v["public_key"].as_str().unwrap().into() }
}

#[test]
fn biscuit_keygen_prints_ed25519_keys() {
    let out = run(&["biscuit", "keygen"]).ok().stdout;
    let private = out.lines().find_map(|l| l.strip_prefix("private key: ")).expect(&out);
    let public = out.lines().find_map(|l| l.strip_prefix("public key: ")).expect(&out);
    assert!(is_hex64(private.strip_prefix("ed25519-private/").expect(private)));
    assert!(is_hex64(public.strip_prefix("ed25519/").expect(public)));
}

fn mint(keys: &Keys, extra: &[&str]) -> String {
    let mut args = vec![
        "biscuit",
        "mint",
        "--private-key-env",
        "TEST_ROOT_KEY",
        "--subject",
        "agent-7",
        "--group",
        "payments-ops",
        "--group",
        "ci",
    ];
    args.extend_from_slice(extra);
    run_with(&args, &[("TEST_ROOT_KEY", &keys.private)], None).ok().stdout.trim().to_owned()
}

fn inspect(token: &str, public: Option<&str>) -> common::Run {
    let mut args = vec!["biscuit", "inspect", token, "-o", "json"];
    if let Some(k) = public {
        args.extend_from_slice(&["--public-key", k]);
    }
    run(&args)
}

#[test]
fn biscuit_mint_attenuate_inspect_round_trip() {
    let keys = biscuit_keys();
    let token = mint(&keys, &["--ttl", "1h", "--fact", "tenant(\"acme\")"]);
    let narrowed =
        run(&["biscuit", "attenuate", &token, "--check", "check if function(\"payments/refund\")"]).ok().stdout;
    let narrowed = narrowed.trim();
    assert_ne!(narrowed, token);

    let v: Value = serde_json::from_str(&inspect(narrowed, Some(&keys.public)).ok().stdout).unwrap();
    assert_eq!(v["verified"], Value::Bool(true));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    let facts: Vec<&str> = blocks[0]["facts"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(facts, ["user(\"agent-7\")", "group(\"payments-ops\")", "group(\"ci\")", "tenant(\"acme\")"]);
    let authority_checks = blocks[0]["checks"].as_array().unwrap();
    assert_eq!(authority_checks.len(), 1);
    assert!(authority_checks[0].as_str().unwrap().contains("time($"), "{authority_checks:?}");
    assert_eq!(blocks[1]["checks"], serde_json::json!(["check if function(\"payments/refund\")"]));
    assert_eq!(blocks[1]["facts"], serde_json::json!([]));

    // The human form shows the same statements.
    let human = run(&["biscuit", "inspect", narrowed, "--public-key", &keys.public]).ok().stdout;
    assert!(
        human.contains("block 0 (authority)") && human.contains("check if function(\"payments/refund\");"),
        "{human}"
    );
    assert!(human.contains("signature: verified"), "{human}");
}

#[test]
fn biscuit_inspect_with_the_wrong_public_key_fails() {
    let keys = biscuit_keys();
    let other = biscuit_keys();
    let token = mint(&keys, &[]);
    let r = inspect(&token, Some(&other.public)).code(1);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], Value::Bool(false));
}

#[test]
fn biscuit_inspect_without_key_reads_but_does_not_vouch() {
    let keys = biscuit_keys();
    let token = mint(&keys, &[]);
    let r = run(&["biscuit", "inspect", &token]).ok();
    assert!(r.stdout.contains("user(\"agent-7\");"), "{}", r.stdout);
    assert!(r.stdout.contains("not verified"), "{}", r.stdout);
}

#[test]
fn biscuit_mint_reads_the_key_from_a_file_in_either_prefix_form() {
    let keys = biscuit_keys();
    let dir = tempfile::tempdir().unwrap();
    let hex = keys.private.strip_prefix("ed25519-private/").unwrap();
    for content in [keys.private.clone(), format!("ed25519/{hex}\n")] {
        let path = dir.path().join("root.key");
        std::fs::write(&path, content).unwrap();
        let token =
            run(&["biscuit", "mint", "--private-key-file", path.to_str().unwrap(), "--subject", "s"]).ok().stdout;
        inspect(token.trim(), Some(&keys.public)).ok();
    }
}

#[test]
fn biscuit_mint_rejects_a_bad_key_without_echoing_it() {
    let r = run_with(
        &["biscuit", "mint", "--private-key-env", "K", "--subject", "s"],
        &[("K", "ed25519-private/not-a-key-SECRETISH")],
        None,
    )
    .code(1);
    assert!(r.stderr.contains("private key is not valid"), "{}", r.stderr);
    assert!(!r.stderr.contains("SECRETISH"), "{}", r.stderr);
}

#[test]
fn biscuit_mint_rejects_bad_datalog() {
    let keys = biscuit_keys();
    let r = run_with(
        &["biscuit", "mint", "--private-key-env", "K", "--subject", "s", "--check", "check if ((("],
        &[("K", &keys.private)],
        None,
    )
    .code(1);
    assert!(r.stderr.contains("--check"), "{}", r.stderr);
}

#[test]
fn biscuit_attenuate_reads_the_token_from_stdin() {
    let keys = biscuit_keys();
    let token = mint(&keys, &[]);
    let out = run_with(&["biscuit", "attenuate", "-", "--ttl", "5m"], &[], Some(token.as_bytes())).ok().stdout;
    let v: Value = serde_json::from_str(&inspect(out.trim(), Some(&keys.public)).ok().stdout).unwrap();
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    assert!(v["blocks"][1]["checks"][0].as_str().unwrap().contains("time($"));
}

#[test]
fn completions_for_each_shell_name_the_verbs() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef cloakroom"), ("fish", "complete -c cloakroom")] {
        let out = run(&["completions", shell]).ok().stdout;
        assert!(out.contains(marker), "{shell}: {out:.200}");
        for verb in ["secret", "approval", "audit", "biscuit", "keygen"] {
            assert!(out.contains(verb), "{shell} completion lacks {verb}");
        }
    }
    run(&["completions", "powershell-ish"]).code(2);
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:8081"

[vault]
backend = "openbao"

[[policy.rules]]
name = "payments-ops may call payments"
effect = "allow"
functions = ["payments/*"]
groups = ["payments-ops"]

[[policy.rules]]
name = "no drop table"
effect = "deny"
functions = ["db/*"]
arguments = { "/sql" = "(?i)\\bdrop\\s+table\\b" }

[[policy.rules]]
name = "refunds need finance"
effect = "approve"
functions = ["payments/refund"]
approvers = ["finance-leads"]

[[policy.rules]]
name = "local db access"
effect = "allow"
functions = ["db/*"]
source_cidrs = ["127.0.0.0/8"]

[[policy.datalog]]
file = "policies/tools.datalog"
"#;

const DATALOG: &str = r#"
allow if user("ops-bot"), function("tools/restart");
"#;

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cloakroom.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/tools.datalog"), DATALOG).unwrap();
    dir
}

fn explain(dir: &tempfile::TempDir, args: &[&str]) -> Value {
    let config = dir.path().join("cloakroom.toml");
    let mut argv = vec!["policy", "explain", "--config", config.to_str().unwrap(), "-o", "json"];
    argv.extend_from_slice(args);
    serde_json::from_str(&run(&argv).ok().stdout).unwrap()
}

#[test]
fn policy_explain_allows_by_the_matching_rule() {
    let dir = config_dir();
    let v = explain(&dir, &["--subject", "bob", "--group", "payments-ops", "--function", "payments/charge"]);
    assert_eq!(v["decision"]["effect"], "allow");
    assert_eq!(v["decision"]["rule"], "payments-ops may call payments");
}

#[test]
fn policy_explain_says_which_field_did_not_match() {
    let dir = config_dir();
    let v = explain(&dir, &["--subject", "bob", "--group", "dev", "--function", "payments/charge"]);
    assert_eq!(v["decision"]["effect"], "deny");
    let rule = v["rules"].as_array().unwrap().iter().find(|r| r["name"] == "payments-ops may call payments").unwrap();
    assert_eq!(rule["matched"], false);
    assert_eq!(rule["field"], "groups");
}

#[test]
fn policy_explain_deny_overrides_on_arguments() {
    let dir = config_dir();
    let args = ["--subject", "bob", "--function", "db/query", "--source-ip", "127.0.0.1"];
    let allowed = explain(&dir, &[&args[..], &["--args", r#"{"sql":"select 1"}"#]].concat());
    assert_eq!(allowed["decision"]["effect"], "allow", "{allowed}");
    let denied = explain(&dir, &[&args[..], &["--args", r#"{"sql":"DROP TABLE users"}"#]].concat());
    assert_eq!(denied["decision"]["effect"], "deny");
    assert_eq!(denied["decision"]["rule"], "no drop table");
}

#[test]
fn policy_explain_source_ip_is_checked() {
    let dir = config_dir();
    let v = explain(&dir, &["--subject", "bob", "--function", "db/query", "--source-ip", "10.1.2.3"]);
    assert_eq!(v["decision"]["effect"], "deny", "{v}");
}

#[test]
fn policy_explain_approval_names_approvers() {
    let dir = config_dir();
    let v = explain(
        &dir,
        &["--subject", "bob", "--group", "payments-ops", "--function", "payments/refund", "--protocol", "mcp"],
    );
    assert_eq!(v["decision"]["effect"], "approve");
    assert_eq!(v["decision"]["approvers"], serde_json::json!(["finance-leads"]));
}

#[test]
fn policy_explain_runs_datalog_files_relative_to_the_config() {
    let dir = config_dir();
    let v = explain(&dir, &["--subject", "ops-bot", "--function", "tools/restart"]);
    assert_eq!(v["decision"]["effect"], "allow", "{v}");
    assert!(v["rules"].as_array().unwrap().iter().any(|r| r["kind"] == "datalog" && r["matched"] == true), "{v}");
}

#[test]
fn policy_explain_human_output_lists_every_rule() {
    let dir = config_dir();
    let config = dir.path().join("cloakroom.toml");
    let out = run(&[
        "policy",
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--subject",
        "bob",
        "--group",
        "payments-ops",
        "--function",
        "payments/charge",
    ])
    .ok()
    .stdout;
    assert!(out.starts_with("decision: allow"), "{out}");
    for name in ["payments-ops may call payments", "no drop table", "refunds need finance", "local db access"] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
}

#[test]
fn policy_explain_runs_the_tokens_checks() {
    let keys = biscuit_keys();
    let dir = config_dir();
    let with_key = format!("{CONFIG}\n[identity.biscuit]\nroot_public_key = \"{}\"\n", keys.public);
    std::fs::write(dir.path().join("cloakroom.toml"), with_key).unwrap();
    let token = mint(&keys, &[]);
    let narrowed =
        run(&["biscuit", "attenuate", &token, "--check", "check if function(\"payments/refund\")"]).ok().stdout;
    let args = ["--subject", "agent-7", "--group", "payments-ops", "--token", narrowed.trim()];
    let v = explain(&dir, &[&args[..], &["--function", "payments/charge"]].concat());
    assert_eq!(v["decision"]["effect"], "deny", "{v}");
    let v = explain(&dir, &[&args[..], &["--function", "payments/refund"]].concat());
    assert_eq!(v["decision"]["effect"], "approve", "{v}");
}

#[test]
fn policy_explain_reports_a_bad_config_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[policy.rules]]\nname = \"x\"\neffect = \"maybe\"\n").unwrap();
    let r =
        run(&["policy", "explain", "--config", path.to_str().unwrap(), "--subject", "s", "--function", "f"]).code(1);
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);
    let r = run(&["policy", "explain", "--config", "/nonexistent/c.toml", "--subject", "s", "--function", "f"]).code(1);
    assert!(r.stderr.contains("/nonexistent/c.toml"), "{}", r.stderr);
}
