//! Running the real `cloakroom` binary, against a real `cloakroomd` ([`gateway`]) seen
//! through a [`wiretap`] when a test asserts what the CLI sent.
#![allow(dead_code, unreachable_pub)]

pub mod gateway;
pub mod wiretap;

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

/// The result of one run.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the run succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(self.status, Some(0), "cloakroom failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Panics unless the run exited with `code`.
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.status,
            Some(code),
            "unexpected exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

fn finish(out: Output) -> Run {
    Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// A command for the binary with a clean environment for the variables it reads.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cloakroom"));
    c.args(args).env_remove("CLOAKROOM_ADMIN").env_remove("CLOAKROOM_TOKEN").stdin(Stdio::null());
    c
}

/// Runs `cloakroom args…` with stdin closed.
pub fn run(args: &[&str]) -> Run {
    finish(cmd(args).output().expect("run cloakroom"))
}

/// Runs `cloakroom args…` with `input` on stdin and extra environment variables.
pub fn run_with(args: &[&str], env: &[(&str, &str)], input: Option<&[u8]>) -> Run {
    let mut c = cmd(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().expect("spawn cloakroom");
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(bytes).expect("write stdin");
    }
    finish(child.wait_with_output().expect("wait cloakroom"))
}
