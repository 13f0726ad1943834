//! Reading a secret from the terminal without echo.
//!
//! Echo is turned off on `/dev/tty` *before* the prompt is written, so nothing typed
//! after the prompt appears can be echoed (rpassword writes the prompt first and leaves
//! a short window). The terminal's settings are restored on every path out, including
//! errors, by a guard.

use std::io::{BufRead, BufReader, Write};

use zeroize::Zeroizing;

#[cfg(unix)]
pub(crate) fn prompt_hidden(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};

    struct Restore<'a> {
        tty: &'a std::fs::File,
        saved: Termios,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = tcsetattr(self.tty, OptionalActions::Now, &self.saved);
        }
    }

    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let saved = tcgetattr(&tty)?;
    let mut hidden = saved.clone();
    hidden.local_modes.remove(LocalModes::ECHO);
    // Still echo the newline, so the next output starts on its own line.
    hidden.local_modes.insert(LocalModes::ECHONL);
    let guard = Restore { tty: &tty, saved };
    tcsetattr(&tty, OptionalActions::Flush, &hidden)?;
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = Zeroizing::new(String::new());
    BufReader::new(&tty).read_line(&mut line)?;
    drop(guard);
    let trimmed = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(trimmed);
    Ok(line)
}

#[cfg(not(unix))]
pub(crate) fn prompt_hidden(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt).map(Zeroizing::new)
}
