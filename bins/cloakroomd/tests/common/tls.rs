//! TLS upstreams: a private CA and a certificate for 127.0.0.1 signed by it, made with
//! the `openssl` command, and a server process (Python or Node) serving with them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl").args(&args).current_dir(dir).output().expect("the openssl command");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes `ca.pem`, `server.pem` and `server.key` (P-256; SAN IP:127.0.0.1) into `dir`.
pub fn make_certs(dir: &Path) {
    openssl(dir, "ecparam -name prime256v1 -genkey -noout -out ca.key");
    openssl(dir, "req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=cloakroom-test-CA");
    openssl(dir, "ecparam -name prime256v1 -genkey -noout -out server.key");
    openssl(dir, "req -new -key server.key -out server.csr -subj /CN=127.0.0.1");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
}

/// A TLS server process on a free port, killed on drop.
pub struct TlsUpstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    _process: cloakroom_testkit::ServerProcess,
}

impl TlsUpstream {
    /// Makes the certificates, runs `program flag script <port> <cert> <key>` (for example
    /// `python3 -c …` or `node -e …`) and waits until it serves.
    pub async fn start(program: &str, flag: &str, script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        make_certs(dir.path());
        let process = cloakroom_testkit::ServerProcess::start(
            &format!("the {program} TLS upstream"),
            &dir.path().join("server.log"),
            |port| {
                let mut command = Command::new(program);
                command
                    .arg(flag)
                    .arg(script)
                    .arg(port.to_string())
                    .arg(dir.path().join("server.pem"))
                    .arg(dir.path().join("server.key"));
                command
            },
        )
        .await;
        Self { port: process.port, dir, _process: process }
    }

    /// The CA certificate that signed the server's, for a function's `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}
