//! Caller-chosen strings in log lines and notification texts: quoted, escaped and cut.
//!
//! A tool name, a path or a header value comes from the caller: written as it is into a
//! log line it can forge fields (`\n`, `"`), hide itself (control characters) or make
//! every line megabytes long. [`quoted`] is the one way such a string is written.
//!
//! ```
//! use cloakroom_core::quoted;
//! assert_eq!(quoted("search").to_string(), r#""search""#);
//! assert_eq!(quoted("a\"b\nc").to_string(), r#""a\"b\nc""#);
//! let long = "x".repeat(1000);
//! assert_eq!(quoted(&long).to_string(), format!("\"{}\"…(1000 chars)", "x".repeat(128)));
//! ```

use std::fmt;

use crate::limits::MAX_QUOTED_CHARS;

/// A caller-chosen string as it is written in logs: see [`quoted`].
#[derive(Clone, Copy)]
pub struct Quoted<'a>(&'a str);

/// `s` in double quotes with Rust's escapes (quotes, backslashes, control and
/// non-printing characters), cut after [`MAX_QUOTED_CHARS`] characters with the
/// original length appended.
pub fn quoted(s: &str) -> Quoted<'_> {
    Quoted(s)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut total = 0;
        for (i, c) in self.0.chars().enumerate() {
            if i < MAX_QUOTED_CHARS {
                write!(f, "{}", c.escape_debug())?;
            }
            total = i + 1;
        }
        f.write_str("\"")?;
        if total > MAX_QUOTED_CHARS {
            write!(f, "…({total} chars)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
