//! The command line: every verb of docs/cli.md, defined with clap's derive API.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Output;

const AFTER_HELP: &str = "\
Environment:
  CLOAKROOM_TOKEN  the admin credential (JWT, Biscuit or API key), sent as Authorization: Bearer;
                   unset: the session `cloakroom login` stored in $XDG_CONFIG_HOME/cloakroom/token
  CLOAKROOM_ADMIN  the admin API URL (as --admin)

Exit statuses:
  0 ok, 1 bad input or local failure, 2 usage, 3 audit chain broken, 4 unauthenticated,
  5 forbidden, 6 not found, 7 conflict, 8 bad request, 9 gateway or store unavailable,
  10 admin API unreachable, 11 unexpected answer (see docs/cli.md)";

/// Cloakroom: hand in secrets at the door, get placeholders back.
///
/// Talks to a running gateway's admin API (secrets, approvals, audit) or works offline
/// (policy explain, Biscuit tokens, key generation, completions).
#[derive(Debug, Parser)]
#[command(name = "cloakroom", version, propagate_version = true, max_term_width = 100, after_long_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The admin API of a running cloakroomd.
    #[arg(long, global = true, env = "CLOAKROOM_ADMIN", default_value = "http://127.0.0.1:8081", value_name = "URL")]
    pub(crate) admin: String,

    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Human)]
    pub(crate) output: Output,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store secrets and list or remove them (values are never shown).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Just-in-time approvals of calls that policy holds for a person.
    #[command(subcommand)]
    Approval(ApprovalCmd),
    /// Read, follow, verify and export the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Work with policies offline.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Create, narrow and read Biscuit tokens for callers and agents.
    #[command(subcommand)]
    Biscuit(BiscuitCmd),
    /// Sign in with your identity provider (OIDC) in a browser and keep the session.
    Login(Login),
    /// Print a fresh CLOAKROOM_PLACEHOLDER_KEY and CLOAKROOM_VAULT_KEY.
    Keygen,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// `cloakroom login`
#[derive(Debug, Args)]
pub(crate) struct Login {
    /// Which `[[identity.oidc]]` issuer: its index or URL (default: the only one with a client_id).
    #[arg(long)]
    pub(crate) issuer: Option<String>,
    /// Print `export CLOAKROOM_TOKEN=…` instead of storing the session in the token file.
    #[arg(long)]
    pub(crate) print: bool,
    /// Only print the URL to open; do not start a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// How long to wait for the sign-in to finish.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// `cloakroom secret …`
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCmd {
    /// Store a secret; the value is read from stdin (without echo on a terminal).
    ///
    /// Prints the placeholder callers send instead of the value. Binding flags say where
    /// the secret may be substituted; without any, the server's default (or the binding
    /// declared in the config file) applies.
    Put(SecretPut),
    /// List secrets: names, placeholders and bindings (never values).
    #[command(alias = "ls")]
    List,
    /// Remove a secret.
    #[command(alias = "remove", alias = "delete")]
    Rm {
        /// The secret's name.
        name: String,
    },
}

/// `cloakroom secret put`
#[derive(Debug, Args)]
pub(crate) struct SecretPut {
    /// The secret's name.
    pub(crate) name: String,
    /// A function (glob: `payments/*`, `**`) the secret may be sent to. Repeatable.
    #[arg(long = "function", value_name = "GLOB")]
    pub(crate) functions: Vec<String>,
    /// Where in a request it may be substituted: `header:NAME`, `query:NAME`,
    /// `json:/pointer` or `body`. Repeatable.
    #[arg(long = "location", value_name = "LOCATION")]
    pub(crate) locations: Vec<String>,
    /// A group allowed to use it. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// A group whose members must approve every use. Repeatable.
    #[arg(long = "approver", value_name = "GROUP")]
    pub(crate) approvers: Vec<String>,
    /// When the secret stops being usable: RFC 3339 (`2027-01-01T00:00:00Z`) or a
    /// duration from now (`30d`, `12h`).
    #[arg(long, value_name = "WHEN")]
    pub(crate) expires: Option<String>,
    /// Use budget: at most N calls may use the secret, ever (docs/policy.md, "Use budgets").
    #[arg(long, value_name = "N")]
    pub(crate) max_uses: Option<u64>,
    /// Use budget per window: `COUNT/PERIOD`, e.g. `100/1h` (at most 100 calls an hour).
    #[arg(long, value_name = "COUNT/PERIOD")]
    pub(crate) max_uses_per: Option<String>,
    /// Whose uses a budget counts: `secret` (every caller together, the default) or
    /// `caller` (each caller has the whole budget).
    #[arg(long, value_name = "SCOPE")]
    pub(crate) budget_scope: Option<String>,
}

/// `cloakroom approval …`
#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalCmd {
    /// List approvals (pending ones unless --state says otherwise).
    #[command(alias = "ls")]
    List {
        /// Which approvals: pending, approved, denied, used, expired, or all.
        #[arg(long, default_value = "pending")]
        state: String,
    },
    /// Show one approval: the whole call it is for, its requirements and who met them.
    Show {
        /// The approval id.
        id: String,
    },
    /// Approve a pending call.
    Approve {
        /// The approval id.
        id: String,
    },
    /// Deny a pending call.
    Deny {
        /// The approval id.
        id: String,
        /// Why (shown to the caller and kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// `cloakroom audit …`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Print the most recent calls, then follow new ones as they are recorded.
    Tail(AuditTail),
    /// Show one call the way an auditor reads it.
    Show {
        /// The call id (the `Cloakroom-Call-Id` header the caller saw).
        id: String,
    },
    /// Verify every hash chain; exit status 0 only when all verify.
    Verify,
    /// Export records as JSON lines.
    Export(AuditExport),
}

/// `cloakroom audit tail`
#[derive(Debug, Args)]
pub(crate) struct AuditTail {
    /// How many recent records to print first.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub(crate) lines: usize,
    /// Print the recent records and stop instead of following.
    #[arg(long)]
    pub(crate) no_follow: bool,
    /// How often to ask for new records while following.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) interval: std::time::Duration,
}

/// `cloakroom audit export`
#[derive(Debug, Args)]
pub(crate) struct AuditExport {
    /// The export format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub(crate) format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Records per request to the admin API.
    #[arg(long, default_value_t = 500)]
    pub(crate) page_size: usize,
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ExportFormat {
    /// One JSON record per line, in chain order.
    Jsonl,
}

/// `cloakroom policy …`
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Explain what policy decides for a call, and why, from a config file (offline).
    Explain(PolicyExplain),
    /// Replay recorded calls against a new configuration's policy and show what would
    /// change (allowed calls now denied or held, and the reverse).
    Diff(PolicyDiff),
}

/// `cloakroom policy diff`
#[derive(Debug, Args)]
pub(crate) struct PolicyDiff {
    /// The new cloakroom.toml whose `[policy]` the recorded calls are replayed against.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Only calls recorded this recently (`7d`, `24h`, `30m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) since: Option<std::time::Duration>,
    /// Only calls to this function (a glob: `payments/*`).
    #[arg(long, value_name = "FUNCTION")]
    pub(crate) function: Option<String>,
    /// Read the records from an exported JSON-lines file (`cloakroom audit export`)
    /// instead of the admin API: no gateway needed.
    #[arg(long, value_name = "FILE.jsonl")]
    pub(crate) from: Option<PathBuf>,
}

/// `cloakroom policy explain`
#[derive(Debug, Args)]
pub(crate) struct PolicyExplain {
    /// The cloakroom.toml to read `[policy]` from.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The caller's subject.
    #[arg(long)]
    pub(crate) subject: String,
    /// A group of the caller. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// The function called (`payments`, `tools/search`).
    #[arg(long)]
    pub(crate) function: String,
    /// The call's arguments as JSON.
    #[arg(long, value_name = "JSON")]
    pub(crate) args: Option<String>,
    /// The function's protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Http)]
    pub(crate) protocol: ProtocolArg,
    /// The caller's address.
    #[arg(long, value_name = "IP")]
    pub(crate) source_ip: Option<std::net::IpAddr>,
    /// The HTTP method of the call.
    #[arg(long, default_value = "POST")]
    pub(crate) method: String,
    /// A secret the call uses (its name; the Datalog fact `secret($name)`). Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    pub(crate) secrets: Vec<String>,
    /// The caller's Biscuit token (base64url): its checks are run against the call, as
    /// the gateway does (signature checked with `[identity.biscuit] root_public_key`).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ProtocolArg {
    /// Plain HTTP function.
    Http,
    /// MCP tool call.
    Mcp,
}

/// `cloakroom biscuit …`
#[derive(Debug, Subcommand)]
pub(crate) enum BiscuitCmd {
    /// Generate a root key pair (ed25519).
    Keygen,
    /// Mint a token for a subject and its groups, signed with the root private key.
    Mint(BiscuitMint),
    /// Narrow a token by appending a block of checks (no key needed).
    Attenuate(BiscuitAttenuate),
    /// Print a token's blocks, facts and checks; verify it against a public key if given.
    Inspect(BiscuitInspect),
}

/// Where the root private key comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PrivateKeySource {
    /// A file holding the private key (`ed25519-private/<hex>`).
    #[arg(long, value_name = "FILE")]
    pub(crate) private_key_file: Option<PathBuf>,
    /// An environment variable holding the private key.
    #[arg(long, value_name = "VAR")]
    pub(crate) private_key_env: Option<String>,
}

/// `cloakroom biscuit mint`
#[derive(Debug, Args)]
pub(crate) struct BiscuitMint {
    /// The root private key.
    #[command(flatten)]
    pub(crate) key: PrivateKeySource,
    /// The subject: becomes the authority fact `user($subject)`.
    #[arg(long)]
    pub(crate) subject: String,
    /// A group: becomes the authority fact `group($group)`. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// An extra authority fact in Datalog (`tenant("acme")`). Repeatable.
    #[arg(long = "fact", value_name = "DATALOG")]
    pub(crate) facts: Vec<String>,
    /// An authority check in Datalog (`check if function("payments/refund")`). Repeatable.
    #[arg(long = "check", value_name = "DATALOG")]
    pub(crate) checks: Vec<String>,
    /// Lifetime: adds `check if time($t), $t <= <now + ttl>` (`1h`, `30d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) ttl: Option<std::time::Duration>,
}

/// `cloakroom biscuit attenuate`
#[derive(Debug, Args)]
pub(crate) struct BiscuitAttenuate {
    /// The token to narrow (base64url); `-` reads it from stdin.
    pub(crate) token: String,
    /// A check in Datalog. Repeatable; at least one check or --ttl.
    #[arg(long = "check", value_name = "DATALOG")]
    pub(crate) checks: Vec<String>,
    /// Adds an expiry check to the new block (`10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) ttl: Option<std::time::Duration>,
}

/// `cloakroom biscuit inspect`
#[derive(Debug, Args)]
pub(crate) struct BiscuitInspect {
    /// The token (base64url); `-` reads it from stdin.
    pub(crate) token: String,
    /// Verify the signatures against this root public key (`ed25519/<hex>`).
    #[arg(long, value_name = "KEY")]
    pub(crate) public_key: Option<String>,
}
