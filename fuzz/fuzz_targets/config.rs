//! Loads fuzzer-chosen text as `cloakroom.toml` through `Config::from_toml_str`. It must
//! never panic, and every error must render with the file name and a line number
//! (`cloakroom.toml:<line>: ...`) except read errors, which cannot happen here.
#![no_main]

use cloakroom_gateway::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::from_toml_str("cloakroom.toml", source) {
        let text = e.to_string();
        let rest = text.strip_prefix("cloakroom.toml:").unwrap_or_else(|| panic!("error without file name: {text}"));
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        assert!(digits > 0, "error without a line number: {text}");
    }
});
