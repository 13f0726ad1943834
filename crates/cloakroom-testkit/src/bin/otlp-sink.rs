//! `otlp-sink`: an OTLP trace receiver that counts and discards spans, for measuring
//! cloakroomd with `[telemetry]` on (the load benchmark).
//!
//! ```text
//! otlp-sink [--grpc] [--listen 127.0.0.1:4318]
//! ```
//!
//! Listens on `--listen` (default `127.0.0.1:4318`; with `--grpc` `127.0.0.1:4317`),
//! prints `otlp-sink listening on http://ADDR (http|grpc)` once ready, then every 10
//! seconds and at SIGTERM/Ctrl-C the spans and export requests received so far
//! (`spans=N requests=M`).

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use cloakroom_testkit::{OtlpProtocol, OtlpReceiver};

const USAGE: &str = "usage: otlp-sink [--grpc] [--listen 127.0.0.1:4318]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut protocol = OtlpProtocol::Http;
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--grpc" => protocol = OtlpProtocol::Grpc,
            "--http" => protocol = OtlpProtocol::Http,
            "--listen" => match args.next().and_then(|a| a.parse().ok()) {
                Some(addr) => listen = Some(addr),
                None => {
                    eprintln!("otlp-sink: --listen needs an address like 127.0.0.1:4318\n{USAGE}");
                    return ExitCode::FAILURE;
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("otlp-sink: unknown argument {other:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let port = if protocol == OtlpProtocol::Grpc { 4317 } else { 4318 };
    let addr = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    let sink = match OtlpReceiver::counting(protocol, addr).await {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("otlp-sink: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("otlp-sink listening on {} ({})", sink.endpoint(), protocol.as_str());
    let report = |sink: &OtlpReceiver| println!("spans={} requests={}", sink.span_count(), sink.request_count());
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        eprintln!("otlp-sink: cannot handle SIGTERM");
        return ExitCode::FAILURE;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => report(&sink),
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    report(&sink);
    ExitCode::SUCCESS
}
