//! `cloakroomd`: the Cloakroom gateway (docs/cli.md). Thin: parse arguments, load the
//! configuration, run [`cloakroom_gateway::Gateway`] on its two listeners.
//!
//! - `cloakroomd --config cloakroom.toml` runs the gateway;
//! - `cloakroomd --config cloakroom.toml --check` validates the file and exits
//!   (status 0 when valid, 1 with the error otherwise);
//! - `cloakroomd --dev` runs it with no configuration at all.
//!
//! SIGHUP reloads functions, identity and policies from the file; SIGTERM or Ctrl-C
//! stops accepting, lets in-flight calls finish (`server.shutdown_grace`) and flushes
//! the audit log.

mod log;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use cloakroom_gateway::{
    dev::DevSetup,
    server::{serve_with, ConnectionLimits, ServingThreads},
    telemetry::otel::Telemetry,
    Config, Gateway,
};
use tokio::sync::watch;

/// jemalloc: a quarter less CPU per call than glibc's malloc under load (every layer
/// allocates per call), while a 256 MiB streamed response still peaks under 50 MiB of
/// RSS (docs/performance.md). The library crates leave the allocator to the embedder.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Cloakroom gateway.
#[derive(Debug, Parser)]
#[command(name = "cloakroomd", version, about)]
struct Args {
    /// The configuration file.
    #[arg(long, short, value_name = "FILE", env = "CLOAKROOM_CONFIG", required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long, requires = "config")]
    check: bool,
    /// Run with no configuration: temporary stores, fresh keys, a built-in echo function.
    #[arg(long, conflicts_with_all = ["config", "check"])]
    dev: bool,
    /// Override `server.listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Override `server.admin_listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.check {
        let path = args.config.as_deref().expect("clap requires --config with --check");
        return match Config::load(path) {
            Ok(config) => {
                // Rules that can never do anything: worth a look, not a reason to refuse.
                for w in config.warnings() {
                    eprintln!("warning: {}: {w}", path.display());
                }
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    // The configuration is read before the log is set up: `[telemetry]` adds a layer.
    let loaded = match &args.config {
        Some(path) if !args.dev => match Config::load(path) {
            Ok(config) => Some(config),
            Err(e) => {
                eprintln!("cloakroomd: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    // Calls are served on their own threads (`server.workers`, ServingThreads); this
    // runtime accepts, serves the admin API and runs the background work (audit writer,
    // renewals, reloads, span export), for which one worker thread is plenty.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloakroomd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (telemetry, log) = match start_telemetry(&runtime, loaded.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cloakroomd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args, loaded));
    // Off the runtime's threads, while it still runs the exporter: the last spans.
    if let Some(t) = telemetry {
        t.shutdown();
    }
    // The log's last lines are written out before the reason the process stops.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloakroomd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the log (stderr; `CLOAKROOM_LOG`) and, with `[telemetry]`, the OTLP trace
/// export (docs/operations.md, "Traces"), each with its own filter. The guard writes out
/// the log's last lines when dropped.
fn start_telemetry(
    runtime: &tokio::runtime::Runtime,
    config: Option<&Config>,
) -> anyhow::Result<(Option<Telemetry>, log::LogGuard<std::io::Stderr>)> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _, Layer as _};
    // h2 logs every HTTP/2 connection a client's resets get closed for at `warn`: a
    // client could write the log at will (rapid reset), so by default only its errors.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CLOAKROOM_LOG").unwrap_or_else(|_| "info,h2=error".into());
    // Lines go to a buffer that a thread of its own writes out every 20 ms (log.rs).
    let (writer, guard) = log::buffered(std::io::stderr(), log::FLUSH_EVERY);
    // Colours only for a person at a terminal, not in files and journals.
    let log = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(true)
        .with_filter(filter);
    let telemetry = match config.and_then(|c| c.telemetry.as_ref()) {
        Some(t) => {
            // The exporter's tasks run on this runtime.
            let _guard = runtime.enter();
            Some(Telemetry::start(t)?)
        }
        None => None,
    };
    let traces = telemetry.as_ref().map(|t| t.layer());
    tracing_subscriber::registry().with(log).with(traces).init();
    Ok((telemetry, guard))
}

async fn run(args: Args, loaded: Option<Config>) -> anyhow::Result<()> {
    // Before anything listens: from then on a SIGHUP (reload) or SIGTERM must not meet
    // the default action, which ends the process. Signals that arrive while starting
    // are handled once the gateway runs.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let listen = args
        .listen
        .or(loaded.as_ref().map(|c| c.server.listen))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let admin_listen = args
        .admin_listen
        .or(loaded.as_ref().map(|c| c.server.admin_listen))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081)));
    anyhow::ensure!(listen != admin_listen, "--listen and --admin-listen must differ");
    // Both ports are taken before anything else opens a socket: dev mode's echo function
    // and the gateway's clients bind ephemeral ports, and one of them could otherwise land
    // on a port the operator (or a test) chose a moment earlier and make the bind fail.
    let gw_listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let admin_listener =
        tokio::net::TcpListener::bind(admin_listen).await.with_context(|| format!("binding {admin_listen}"))?;
    let mut dev = None;
    let (mut config, path) = match loaded {
        Some(config) => (config, args.config.clone()),
        None => {
            let setup = DevSetup::create(listen, admin_listen).await?;
            let config = setup.config.clone();
            dev = Some(setup);
            (config, None)
        }
    };
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    config.server.listen = listen;
    config.server.admin_listen = admin_listen;
    let grace = config.server.shutdown_grace;
    let threads = config.server.serving_threads();
    // Both listeners get the same protections, each with its own counts.
    let limits = ConnectionLimits::from(&config.server);
    let keys = dev.as_ref().map(|d| d.keys.clone());
    let gateway = Gateway::start_with_keys(config, path, keys).await?;
    if let Some(dev) = &mut dev {
        dev.store_demo_secret(&gateway).await?;
    }
    let g = gateway.clone();
    let serving = ServingThreads::start_with(threads, move |peer| g.service(Some(peer)), grace, limits.clone())
        .context("starting the serving threads")?;
    tracing::info!(%listen, %admin_listen, threads, "cloakroomd listening");
    if let Some(dev) = &dev {
        // Not println!: a closed stdout must not bring the gateway down.
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), "{}", dev.banner());
        let _ = std::io::stdout().flush();
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let gw = tokio::spawn(serving.serve(gw_listener, stopped(stop_rx.clone())));
    let g = gateway.clone();
    let admin = tokio::spawn(serve_with(
        admin_listener,
        move |peer| g.admin_service(Some(peer)),
        stopped(stop_rx.clone()),
        grace,
        limits,
    ));

    loop {
        tokio::select! {
            _ = hup.recv() => match gateway.reload().await {
                Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload refused; the running configuration stays in force"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = gw.await;
    let _ = admin.await;
    gateway.close().await;
    drop(dev);
    Ok(())
}
