//! `cloakroom completions bash|zsh|fish`.

use clap::CommandFactory;

use crate::{
    cli::{Cli, Shell},
    error::CliError,
};

/// Writes the completion script for `shell` to stdout.
pub(crate) fn run(shell: Shell) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "cloakroom", &mut std::io::stdout());
    Ok(())
}
