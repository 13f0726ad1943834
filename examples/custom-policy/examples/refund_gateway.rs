//! A gateway binary with a custom policy: what `cloakroomd` does, plus `RefundHours`.
//!
//! `cargo run -p cloakroom-example-custom-policy --example refund_gateway -- cloakroom.toml`

use std::{path::PathBuf, sync::Arc};

use cloakroom_example_custom_policy::RefundHours;
use cloakroom_gateway::{
    server::{serve, ServingThreads},
    Config, Gateway,
};
use tokio::{
    net::TcpListener,
    signal::unix::{signal, SignalKind},
    sync::watch,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(std::env::args().nth(1).ok_or("usage: refund_gateway <cloakroom.toml>")?);
    let config = Config::load(&path)?;
    let (listen, admin_listen, grace) =
        (config.server.listen, config.server.admin_listen, config.server.shutdown_grace);
    let threads = config.server.serving_threads();

    // What cloakroomd cannot do: add a policy written in Rust. It is kept across reloads.
    let gateway = Gateway::builder(config)
        .config_path(&path)
        .policy(Arc::new(RefundHours::new(500, vec!["finance-leads".into()])))
        .start()
        .await?;

    // The two listeners, served as cloakroomd serves them, until told to stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let g = gateway.clone();
    let serving = ServingThreads::start(threads, move |peer| g.service(Some(peer)), grace)?;
    let calls = TcpListener::bind(listen).await?;
    let calls = tokio::spawn(serving.serve(calls, stopped(stop_rx.clone())));
    let g = gateway.clone();
    let admin = TcpListener::bind(admin_listen).await?;
    let admin = tokio::spawn(serve(admin, move |peer| g.admin_service(Some(peer)), stopped(stop_rx.clone()), grace));

    // SIGHUP reloads the file (RefundHours stays); SIGTERM or Ctrl-C stops gracefully.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = gateway.reload().await {
                    eprintln!("reload refused, the running configuration stays in force: {e}");
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = stop_tx.send(true);
    let _ = calls.await;
    let _ = admin.await;
    gateway.close().await; // flushes the audit log
    Ok(())
}
