//! `cloakroom`: the command-line client of docs/cli.md.
//!
//! Thin by design: the admin verbs (`secret`, `approval`, `audit`) are JSON requests to a
//! running `cloakroomd`'s admin API; the offline verbs (`policy explain`, `biscuit`,
//! `keygen`, `completions`) work from files and keys without a gateway. Errors go to
//! stderr with a distinct exit status per kind of failure (docs/cli.md lists them).
//!
//! ```text
//! $ export CLOAKROOM_TOKEN=…            # an admin credential
//! $ cloakroom secret put stripe_key --function 'payments/*' --location header:Authorization < key.txt
//! cloak_…
//! $ cloakroom audit verify && echo intact
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod cli;
mod client;
mod cmd;
mod error;
mod output;
mod tty;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    cli::{Cli, Command},
    client::AdminClient,
    error::CliError,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloakroom: cannot start the async runtime: {e}");
            return ExitCode::from(error::exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloakroom: error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let out = cli.output;
    let admin = || AdminClient::new(&cli.admin, cmd::login::token());
    match cli.command {
        Command::Secret(c) => cmd::secret::run(&admin()?, out, c).await,
        Command::Approval(c) => cmd::approval::run(&admin()?, out, c).await,
        Command::Audit(c) => cmd::audit::run(&admin()?, out, c).await,
        Command::Policy(c) => cmd::policy::run(out, c, admin).await,
        Command::Biscuit(c) => cmd::biscuit::run(out, c),
        Command::Login(c) => cmd::login::run(&AdminClient::new(&cli.admin, None)?, c).await,
        Command::Keygen => cmd::keygen::run(out),
        Command::Completions { shell } => cmd::completions::run(shell),
    }
}
