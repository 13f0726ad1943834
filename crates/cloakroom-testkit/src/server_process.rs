//! A server a test runs as a process of its own (a Python or Node script), on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server process, killed and reaped on drop.
///
/// It is ready when *it* is alive and its port accepts connections: a port that accepts
/// while the process has exited belongs to somebody else. A process that exits because
/// its port was taken after [`crate::free_port`] handed it out (a race of the test, not
/// the server's failure) is started again on another port, at most twice.
pub struct ServerProcess {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Runs `command(port)` with its stdout and stderr appended to `log`, and waits (at
    /// most 30 s) until it serves. `what` names it in a panic, which carries its log.
    pub async fn start(what: &str, log: &Path, command: impl Fn(u16) -> Command) -> Self {
        for attempt in 0..3 {
            let port = crate::free_port();
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
            let err = out.try_clone().expect("clone the log handle");
            let child = command(port)
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}"));
            let mut me = Self { child, port, log: log.to_owned() };
            match me.wait_ready().await {
                Ok(()) => return me,
                Err(status) => {
                    let log = me.log();
                    let lost_port =
                        log.contains("ddress already in use") || log.contains("EADDRINUSE") || log.contains("Errno 98");
                    if !(lost_port && attempt < 2) {
                        panic!("{what} exited with {status} before it served on port {port}:\n{log}");
                    }
                }
            }
        }
        unreachable!("the last attempt panics")
    }

    async fn wait_ready(&mut self) -> Result<(), std::process::ExitStatus> {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(status);
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                // Whoever accepted, it was not this process if it has gone since.
                return match self.child.try_wait().expect("try_wait") {
                    Some(status) => Err(status),
                    None => Ok(()),
                };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server on port {} did not accept connections within 30 s:\n{}", self.port, self.log());
    }

    /// What the process has written to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server logged (its last lines).
        if std::thread::panicking() {
            eprintln!("--- the server on port {} logged:\n{}", self.port, crate::last_lines(&self.log(), 200));
        }
    }
}
