use std::time::Duration;

use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:18081"
max_body_bytes = 1024
upstream_timeout = "2s"

[[functions]]
name = "payments"
upstream = "http://127.0.0.1:9000"
route = "/fn/payments"

[[functions]]
name = "tools"
protocol = "mcp"
upstream = "http://127.0.0.1:9001/mcp"
route = "/mcp/tools"
"#;

fn err(src: &str) -> ConfigError {
    Config::from_toml_str("test.toml", src).unwrap_err()
}

#[test]
fn a_good_file_loads_with_durations_and_defaults() {
    let c = Config::from_toml_str("test.toml", GOOD).unwrap();
    assert_eq!(c.server.upstream_timeout, Duration::from_secs(2));
    assert_eq!(c.server.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.server.max_body_bytes, 1024);
    assert_eq!(c.functions[1].protocol, cloakroom_core::Protocol::Mcp);
    assert!(!c.functions[0].preserve_host);
}

#[test]
fn an_empty_file_is_the_defaults() {
    let c = Config::from_toml_str("test.toml", "").unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert!(c.functions.is_empty());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err("[server]\nlisten = \"127.0.0.1:1\"\nlistne = \"x\"\n");
    assert_eq!(e.line(), Some(3), "{e}");
    assert_eq!(e.key(), Some("server.listne"), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("test.toml:3: server.listne:"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn unknown_key_in_a_function_names_its_index() {
    let src = GOOD.replace("route = \"/mcp/tools\"", "route = \"/mcp/tools\"\ntimeout = \"1s\"");
    let e = err(&src);
    assert_eq!(e.key(), Some("functions[1].timeout"), "{e}");
    assert_eq!(e.line(), Some(18), "{e}");
}

#[test]
fn wrong_type_says_what_was_expected() {
    let e = err("[server]\nmax_body_bytes = \"lots\"\n");
    assert_eq!(e.key(), Some("server.max_body_bytes"), "{e}");
    assert_eq!(e.line(), Some(2));
    assert!(e.to_string().contains("expected"), "{e}");
}

#[test]
fn bad_duration_is_refused() {
    let e = err("[server]\nupstream_timeout = \"thirty seconds\"\n");
    assert_eq!(e.key(), Some("server.upstream_timeout"), "{e}");
}

#[test]
fn missing_required_key_names_the_table() {
    let e = err("[[functions]]\nname = \"a\"\nroute = \"/a\"\n");
    assert!(e.to_string().contains("upstream"), "{e}");
    assert_eq!(e.key(), Some("functions[0]"), "{e}");
}

#[test]
fn duplicate_function_names_are_refused() {
    let src = GOOD.replace("name = \"tools\"", "name = \"payments\"");
    let e = err(&src);
    assert_eq!(e.key(), Some("functions[1].name"), "{e}");
    assert_eq!(e.line(), Some(14), "{e}");
    assert!(e.to_string().contains("unique"), "{e}");
}

#[test]
fn duplicate_routes_are_refused() {
    let src = GOOD.replace("route = \"/mcp/tools\"", "route = \"/fn/payments\"");
    let e = err(&src);
    assert_eq!(e.key(), Some("functions[1].route"), "{e}");
}

#[test]
fn listen_and_admin_listen_must_differ() {
    let e = err("[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:1\"\n");
    assert_eq!(e.key(), Some("server.admin_listen"));
    assert_eq!(e.line(), Some(3));
}

#[test]
fn bad_names_routes_and_upstreams_are_refused() {
    for (from, to, key) in [
        ("name = \"payments\"", "name = \"pay/ments\"", "functions[0].name"),
        ("route = \"/fn/payments\"", "route = \"fn/payments\"", "functions[0].route"),
        ("route = \"/fn/payments\"", "route = \"/fn/payments/\"", "functions[0].route"),
        ("route = \"/fn/payments\"", "route = \"/fn/../x\"", "functions[0].route"),
        ("upstream = \"http://127.0.0.1:9000\"", "upstream = \"ftp://h\"", "functions[0].upstream"),
        ("upstream = \"http://127.0.0.1:9000\"", "upstream = \"http://h:1/?q\"", "functions[0].upstream"),
        ("protocol = \"mcp\"", "protocol = \"grpc\"", "functions[1].protocol"),
    ] {
        let e = err(&GOOD.replace(from, to));
        assert_eq!(e.key(), Some(key), "{to}: {e}");
    }
}

#[test]
fn zero_body_limit_is_refused() {
    assert_eq!(err("[server]\nmax_body_bytes = 0\n").key(), Some("server.max_body_bytes"));
}

#[test]
fn syntax_errors_name_the_line() {
    let e = err("[server]\nlisten = \"127.0.0.1:1\n");
    assert_eq!(e.line(), Some(2), "{e}");
}

#[test]
fn rules_and_secrets_must_name_configured_functions() {
    let rule = format!(
        "{GOOD}\n[[policy.rules]]\nname = \"r\"\neffect = \"allow\"\nfunctions = [\"payments\", \"paymnets/*\"]\n"
    );
    let e = err(&rule);
    assert_eq!(e.key(), Some("policy.rules[0].functions[1]"), "{e}");
    assert!(e.to_string().contains("paymnets"), "{e}");
    let secret =
        format!("{GOOD}\n[[secrets]]\nname = \"k\"\nfunctions = [\"tools/*\", \"nope\"]\nlocations = [\"body\"]\n");
    assert_eq!(err(&secret).key(), Some("secrets[0].functions[1]"));
    let globs =
        format!("{GOOD}\n[[policy.rules]]\nname = \"r\"\neffect = \"deny\"\nfunctions = [\"**\", \"pay*/x\"]\n");
    Config::from_toml_str("test.toml", &globs).unwrap();
}

#[test]
fn restart_changes_names_exactly_the_keys_a_reload_cannot_apply() {
    let old = Config::from_toml_str("test.toml", GOOD).unwrap();
    let edit = |extra: &str, replace: (&str, &str)| {
        Config::from_toml_str("test.toml", &format!("{}{extra}", GOOD.replace(replace.0, replace.1))).unwrap()
    };
    let none = ("", "");
    // What a reload applies.
    for applied in [
        edit("", ("max_body_bytes = 1024", "max_body_bytes = 2048")),
        edit("\n[audit]\nrecord_bodies = false\nmax_body_record_bytes = 100\n", none),
        edit("\n[approvals]\nwait = \"3s\"\nttl = \"2m\"\nwebhooks = [\"http://127.0.0.1:9/h\"]\n", none),
        edit("\n[masking]\nreplacement = \"redact\"\nencodings = [\"raw\"]\ndetectors = \"none\"\n", none),
        edit("", ("route = \"/fn/payments\"", "route = \"/fn/pay\"")),
    ] {
        assert_eq!(old.restart_changes(&applied), Vec::<&str>::new());
    }
    // What needs a restart, each named.
    let cases = [
        (edit("", ("listen = \"127.0.0.1:18080\"", "listen = \"127.0.0.1:18090\"")), vec!["server.listen"]),
        (
            edit("", ("upstream_timeout = \"2s\"", "upstream_timeout = \"3s\"\nworkers = 1")),
            vec!["server.upstream_timeout", "server.workers"],
        ),
        (
            edit("\n[audit]\nsink = \"postgres\"\ndurability = \"batched\"\non_failure = \"continue\"\n", none),
            vec!["audit.sink", "audit.durability", "audit.on_failure"],
        ),
        (edit("\n[approvals]\nstore = \"postgres\"\n", none), vec!["approvals.store"]),
        (edit("\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n", none), vec!["[telemetry]"]),
        (edit("\n[vault]\nkeys_file = \"/etc/cloakroom/keys\"\n", none), vec!["[vault]"]),
        (
            edit("\n[identity.saml]\nidp_metadata = \"https://idp.test/md\"\nentity_id = \"sp\"\n", none),
            vec!["[identity.saml]"],
        ),
    ];
    for (new, keys) in cases {
        assert_eq!(old.restart_changes(&new), keys);
    }
}

#[test]
fn telemetry_defaults_and_refusals_name_their_key() {
    let load = |t: &str| Config::from_toml_str("test.toml", &format!("{GOOD}\n[telemetry]\n{t}\n"));
    if cfg!(feature = "otel") {
        let t = load("otlp_endpoint = \"http://127.0.0.1:4318\"").unwrap().telemetry.unwrap();
        assert_eq!((t.protocol, t.sample_ratio, t.service_name.as_str()), (OtlpProtocol::Http, 1.0, "cloakroomd"));
        let t = load(
            "otlp_endpoint = \"http://collector:4317\"\nprotocol = \"grpc\"\nsample_ratio = 0\nservice_name = \"edge\"",
        )
        .unwrap()
        .telemetry
        .unwrap();
        assert_eq!((t.protocol, t.sample_ratio, t.service_name.as_str()), (OtlpProtocol::Grpc, 0.0, "edge"));
        for (bad, key) in [
            ("otlp_endpoint = \"http://h:4318\"\nsample_ratio = 1.01", "telemetry.sample_ratio"),
            ("otlp_endpoint = \"http://h:4318\"\nsample_ratio = -1", "telemetry.sample_ratio"),
            ("otlp_endpoint = \"h:4318\"", "telemetry.otlp_endpoint"),
            ("otlp_endpoint = \"https://h:4318\"", "telemetry.otlp_endpoint"),
            ("otlp_endpoint = \"http://h:4318/?x=1\"", "telemetry.otlp_endpoint"),
            ("otlp_endpoint = \"http://h:4318\"\nservice_name = \" \"", "telemetry.service_name"),
        ] {
            let e = load(bad).unwrap_err();
            assert_eq!(e.key(), Some(key), "{bad}: {e}");
        }
    } else {
        let e = load("otlp_endpoint = \"http://127.0.0.1:4318\"").unwrap_err();
        assert_eq!(e.key(), Some("telemetry.otlp_endpoint"), "{e}");
        assert!(e.to_string().contains("cargo feature `otel`"), "{e}");
    }
    assert_eq!(load("protocol = \"http\"").unwrap_err().key(), Some("telemetry"));
    assert_eq!(load("otlp_endpoint = \"http://h:1\"\nendpoint = \"x\"").unwrap_err().key(), Some("telemetry.endpoint"));
}

// === cargo features ===

/// The stores that are always there, so a file loads whatever features this build has.
const MEMORY_STORES: &str = "[vault]\nbackend = \"memory\"\n[approvals]\nstore = \"memory\"\n";

#[test]
fn a_backend_compiled_out_is_refused_at_load_naming_its_feature() {
    let cases = [
        (
            "[vault]\nbackend = \"openbao\"\n[vault.openbao]\naddress = \"http://127.0.0.1:8200\"\ntoken_env = \"T\"\n\
             [approvals]\nstore = \"memory\"\n",
            "vault.backend",
            "openbao",
            cfg!(feature = "openbao"),
        ),
        ("[vault]\n[approvals]\nstore = \"memory\"\n", "vault.backend", "sled", cfg!(feature = "sled")),
        (&format!("{MEMORY_STORES}[audit]\nsink = \"postgres\"\n"), "audit.sink", "postgres", cfg!(feature = "postgres")),
        ("[vault]\nbackend = \"memory\"\n[approvals]\nstore = \"postgres\"\n", "approvals.store", "postgres", cfg!(feature = "postgres")),
        (
            &format!("{MEMORY_STORES}webhooks = [\"https://hooks.example/T/B/X\"]\n"),
            "approvals.webhooks",
            "webhooks",
            cfg!(feature = "webhooks"),
        ),
        (
            &format!("{MEMORY_STORES}[approvals.slack]\nbot_token_env = \"T\"\nsigning_secret_env = \"S\"\nchannel = \"C1\"\n"),
            "approvals.slack",
            "webhooks",
            cfg!(feature = "webhooks"),
        ),
    ];
    for (text, key, feature, compiled) in cases {
        match Config::from_toml_str("test.toml", text) {
            Ok(_) => assert!(compiled, "{key} loaded without the feature {feature}"),
            Err(e) => {
                assert!(!compiled, "{key} refused with the feature {feature}: {e}");
                assert_eq!(e.key(), Some(key), "{e}");
                assert!(e.to_string().contains(&format!("cargo feature `{feature}`")), "{e}");
            }
        }
    }
    assert!(Config::from_toml_str("test.toml", MEMORY_STORES).is_ok(), "the memory stores are always there");
}

#[test]
fn the_refusal_of_a_missing_feature_points_at_its_key_and_offers_memory_for_embedded_stores() {
    let source = "[vault]\nbackend = \"embedded\"\n[approvals]\nwebhooks = []\n";
    let at = Locator::new("test.toml", source);
    let e = missing_feature(&at, &cloakroom_core::MissingFeature::new("sled", "vault.backend = \"embedded\""));
    assert_eq!((e.key(), e.line()), (Some("vault.backend"), Some(2)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("cargo feature `sled`") && msg.contains("set it to \"memory\""), "{msg}");
    for (what, feature, key) in [
        ("approvals.store = \"embedded\"", "sled", "approvals.store"),
        ("approvals.store = \"postgres\"", "postgres", "approvals.store"),
        ("audit.sink = \"postgres\"", "postgres", "audit.sink"),
        ("vault.backend = \"openbao\"", "openbao", "vault.backend"),
        ("approvals.webhooks", "webhooks", "approvals.webhooks"),
        ("[approvals.slack]", "webhooks", "approvals.slack"),
    ] {
        let e = missing_feature(&at, &cloakroom_core::MissingFeature::new(feature, what));
        assert_eq!(e.key(), Some(key), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(what) && msg.contains(&format!("cargo feature `{feature}`")), "{msg}");
        assert_eq!(msg.contains("\"memory\""), feature == "sled", "{msg}");
    }
}
