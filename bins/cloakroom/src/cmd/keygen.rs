//! `cloakroom keygen`: a fresh placeholder key and embedded-vault key.
//!
//! 32 bytes each from the operating system's CSPRNG, as 64 lowercase hex characters,
//! printed as shell assignments so `eval "$(cloakroom keygen)"` or a systemd
//! `EnvironmentFile=` can take them as they are.

use rand::{rngs::OsRng, RngCore};
use serde_json::json;
use zeroize::Zeroizing;

use crate::{
    error::CliError,
    output::{print_json, print_text, Output},
};

fn key_hex() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(hex::encode(bytes.as_ref()))
}

/// Prints the pair.
pub(crate) fn run(out: Output) -> Result<(), CliError> {
    let placeholder = key_hex();
    let vault = key_hex();
    match out {
        Output::Json => print_json(&json!({
            "CLOAKROOM_PLACEHOLDER_KEY": placeholder.as_str(),
            "CLOAKROOM_VAULT_KEY": vault.as_str(),
        })),
        Output::Human => print_text(&format!(
            "CLOAKROOM_PLACEHOLDER_KEY={}\nCLOAKROOM_VAULT_KEY={}\n",
            placeholder.as_str(),
            vault.as_str()
        )),
    }
}
