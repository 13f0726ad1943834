//! docs/configuration.md cannot drift from the config structs:
//! every ```toml block loads with the real loader, and every key the structs accept
//! (found by reflection, see `Config::documented_keys`) is documented.
//!
//! Blocks: a block whose first line is `# fragment` is part of a file; it is loaded as
//! it is, together with the functions the examples refer to (prepended below), and must
//! load. A block whose first line is `# complete` must load on its own.

use cloakroom_gateway::config::Config;

const DOC: &str = include_str!("../../../docs/configuration.md");

/// `[[functions]]` entries fragments may refer to (bindings and rules name functions).
const FRAGMENT_PRELUDE: &str = r#"
[[functions]]
name = "payments"
upstream = "http://127.0.0.1:9000"
route = "/fn/payments"

[[functions]]
name = "github"
upstream = "http://127.0.0.1:9001"
route = "/fn/github"
"#;

fn toml_blocks(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => current = Some((i + 1, String::new())),
            Some(_) if line.trim_start().starts_with("```") => out.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```toml block");
    out
}

#[test]
fn every_toml_block_loads_with_the_real_loader() {
    let blocks = toml_blocks(DOC);
    assert!(blocks.len() >= 2, "expected the complete example and fragments");
    let mut complete = 0;
    for (line, text) in &blocks {
        let first = text.lines().next().unwrap_or("").trim();
        let source = match first {
            "# complete" => {
                complete += 1;
                text.clone()
            }
            "# fragment" => format!("{FRAGMENT_PRELUDE}\n{text}"),
            other => panic!("docs/configuration.md:{line}: a toml block must start with `# complete` or `# fragment`, found {other:?}"),
        };
        if let Err(e) = Config::from_toml_str(&format!("docs/configuration.md:{line}"), &source) {
            panic!("docs/configuration.md block at line {line} does not load: {e}");
        }
    }
    assert_eq!(complete, 1, "exactly one complete example");
}

#[test]
fn every_key_the_config_accepts_is_documented() {
    let keys = Config::documented_keys();
    // The reflection itself must see the nested structures, or this test proves nothing.
    for expected in ["server.listen", "functions[].name", "vault.openbao", "secrets[].functions", "audit"] {
        assert!(keys.iter().any(|k| k == expected), "reflection missed {expected}: {keys:?}");
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !DOC.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "keys not documented in docs/configuration.md (as `key`): {missing:#?}");
}

#[test]
fn the_document_names_no_key_the_config_does_not_accept() {
    // Table rows start with a backticked dotted key; each must be a real key.
    let keys = Config::documented_keys();
    for line in DOC.lines().filter(|l| l.starts_with("| `")) {
        let key = line[3..].split('`').next().unwrap();
        assert!(keys.iter().any(|k| k == key), "docs/configuration.md documents unknown key {key:?}");
    }
}
