//! Human and JSON output.
//!
//! Human output is for reading: aligned tables, short lines. `--output json` prints one
//! JSON document (or one JSON object per line for streams: `audit tail`) and nothing
//! else on stdout, so scripts can pipe it into `jq`.

use std::io::Write;

use serde_json::Value;

use crate::error::CliError;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Tables and sentences.
    Human,
    /// Machine-readable JSON on stdout.
    Json,
}

/// Prints `v` as pretty JSON on stdout.
pub(crate) fn print_json(v: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(|e| CliError::io("writing stdout", e.into()))?;
    writeln!(out).map_err(|e| CliError::io("writing stdout", e))
}

/// Prints one compact JSON line on stdout (streams).
pub(crate) fn print_json_line(v: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v).map_err(|e| CliError::io("writing stdout", e.into()))?;
    writeln!(out).and_then(|_| out.flush()).map_err(|e| CliError::io("writing stdout", e))
}

/// Prints text on stdout.
pub(crate) fn print_text(s: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes()).and_then(|_| out.flush()).map_err(|e| CliError::io("writing stdout", e))
}

/// A plain text table: a header row and aligned columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            s.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}

/// A JSON value as a table cell: strings bare, lists comma-joined, null as `-`.
pub(crate) fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a.iter().map(|v| cell(Some(v))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// A text cell: the text, or `-` when it is empty.
pub(crate) fn text(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

/// A list cell: comma-joined, `-` when empty.
pub(crate) fn list(items: &[String]) -> String {
    text(&items.join(","))
}

/// A time cell, as RFC 3339.
pub(crate) fn time(t: &time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A field looked up by any of several names (`a.b` paths allowed).
pub(crate) fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| {
        let mut cur = v;
        for part in n.split('.') {
            cur = cur.get(part)?;
        }
        (!cur.is_null()).then_some(cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["NAME", "X"], &[vec!["a".into(), "1".into()], vec!["long-name".into(), "2".into()]]);
        assert_eq!(t, "NAME       X\na          1\nlong-name  2\n");
    }

    #[test]
    fn cells_render_lists_and_nulls() {
        assert_eq!(cell(Some(&serde_json::json!(["a", "b"]))), "a,b");
        assert_eq!(cell(Some(&Value::Null)), "-");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&serde_json::json!(3))), "3");
    }

    #[test]
    fn typed_cells_render_empties_as_a_dash() {
        assert_eq!(text(""), "-");
        assert_eq!(list(&[]), "-");
        assert_eq!(list(&["a".into(), "b".into()]), "a,b");
        assert_eq!(time(&time::macros::datetime!(2030-01-01 0:00 UTC)), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn field_follows_paths_and_alternatives() {
        let v = serde_json::json!({"binding": {"functions": ["f"]}, "x": null});
        assert_eq!(field(&v, &["functions", "binding.functions"]), Some(&serde_json::json!(["f"])));
        assert_eq!(field(&v, &["x"]), None);
    }
}
