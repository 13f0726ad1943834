//! `cloakroom policy explain`: offline, from a config file.

use crate::{cli::PolicyCmd, error::CliError, output::Output};

/// Runs a `policy` verb.
pub(crate) async fn run(_out: Output, _cmd: PolicyCmd) -> Result<(), CliError> {
    Err(CliError::Unavailable("policy explain is not available in this build".into()))
}
