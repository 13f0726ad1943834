//! `cloakroom policy explain`: what policy decides for a call, and why — offline.
//! (`policy diff` is in [`super::policy_diff`].)
//!
//! Reads only what policy needs from the config file: `[policy]` (rules, Datalog files
//! relative to the file's directory, limits) and `[identity.biscuit] root_public_key`
//! (for `--token`). Other sections are not validated here, so a config whose vault or
//! identity provider is unreachable from the operator's laptop can still be explained;
//! `cloakroomd` validates the whole file when it loads it. The decision comes from the
//! same `cloakroom_policy::PolicySet` the gateway runs.

use std::path::Path;

use cloakroom_core::{AuthMethod, BiscuitToken, Call, Identity, Protocol};
use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet};
use serde::Deserialize;

use crate::{
    cli::{PolicyCmd, PolicyExplain, ProtocolArg},
    client::AdminClient,
    error::CliError,
    output::{print_json, print_text, Output},
};

/// Runs a `policy` verb; `admin` connects to the admin API (only `diff` without
/// `--from` needs it).
pub(crate) async fn run(
    out: Output,
    cmd: PolicyCmd,
    admin: impl FnOnce() -> Result<AdminClient, CliError>,
) -> Result<(), CliError> {
    match cmd {
        PolicyCmd::Explain(e) => explain(out, e).await,
        PolicyCmd::Diff(d) => super::policy_diff::run(out, d, admin).await,
    }
}

/// The parts of `cloakroom.toml` that policy needs; every other key is ignored.
#[derive(Deserialize)]
struct PolicyFile {
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    identity: IdentityPart,
}

#[derive(Deserialize, Default)]
struct IdentityPart {
    #[serde(default)]
    biscuit: Option<BiscuitPart>,
}

#[derive(Deserialize)]
struct BiscuitPart {
    root_public_key: String,
}

/// Builds the policy set the gateway would build from `path`.
pub(crate) fn load(path: &Path) -> Result<PolicySet, CliError> {
    let source = std::fs::read_to_string(path).map_err(|e| CliError::io(format!("reading {}", path.display()), e))?;
    let file: PolicyFile = toml::from_str(&source)
        .map_err(|e| CliError::Input(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builder = PolicySet::builder().config(&file.policy).base_dir(base);
    if let Some(b) = &file.identity.biscuit {
        builder = builder
            .biscuit_root_key_str(&b.root_public_key)
            .map_err(|e| CliError::Input(format!("{}: identity.biscuit.root_public_key: {e}", path.display())))?;
    }
    builder.build().map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

async fn explain(out: Output, e: PolicyExplain) -> Result<(), CliError> {
    let set = load(&e.config)?;
    let arguments = match &e.args {
        Some(a) => serde_json::from_str(a).map_err(|err| CliError::Input(format!("--args is not JSON: {err}")))?,
        None => serde_json::Value::Null,
    };
    let biscuit = match &e.token {
        Some(t) => {
            let bytes = biscuit_auth::UnverifiedBiscuit::from_base64(t.trim())
                .and_then(|b| b.to_vec())
                .map_err(|err| CliError::Input(format!("--token is not a Biscuit token: {err}")))?;
            // Unverified here: the policy set verifies it with its root key, as it would
            // a token it was handed without a verified form.
            Some(BiscuitToken::from_bytes(bytes))
        }
        None => None,
    };
    let identity = Identity::new(
        e.subject.clone(),
        "explain".into(),
        if biscuit.is_some() { AuthMethod::Biscuit } else { AuthMethod::ApiKey },
    )
    .with_groups(e.groups.clone())
    .with_source_ip(e.source_ip)
    .with_biscuit(biscuit);
    let call = Call::new(
        e.function.clone(),
        match e.protocol {
            ProtocolArg::Http => Protocol::Http,
            ProtocolArg::Mcp => Protocol::Mcp,
        },
    )
    .with_arguments(arguments)
    .with_method(e.method.to_ascii_uppercase())
    .with_digest(String::new());
    let input = PolicyInput::new(&identity, &call).with_source_ip(e.source_ip).with_secrets(&e.secrets);
    let explanation = set.explain(&input).await;
    match out {
        Output::Json => print_json(
            &serde_json::to_value(&explanation).map_err(|err| CliError::Protocol(format!("explanation: {err}")))?,
        ),
        Output::Human => print_text(&explanation.to_string()),
    }
}
