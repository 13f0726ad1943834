//! Turns byte spans of a TOML document into `line` and dotted `key` for error messages.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// The 1-based line of byte offset `at` in `source`.
pub(crate) fn line_of(source: &str, at: usize) -> usize {
    source.as_bytes()[..at.min(source.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The dotted key path (`functions[1].route`) of the innermost key or value that
/// contains `span`, if any.
pub(crate) fn key_at(source: &str, span: &Range<usize>) -> Option<String> {
    let doc = DeTable::parse(source).ok()?;
    let mut path = Vec::new();
    walk_table(doc.get_ref(), span, &mut path);
    (!path.is_empty()).then(|| join(&path))
}

/// The span of the value at `path` (keys and array indices).
pub(crate) fn span_of(source: &str, path: &[PathPart<'_>]) -> Option<Range<usize>> {
    let doc = DeTable::parse(source).ok()?;
    let mut span = doc.span();
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for part in path {
        let next = match (part, table, value) {
            (PathPart::Key(k), Some(t), _) => t.get(*k),
            (PathPart::Key(k), None, Some(v)) => v.as_table().and_then(|t| t.get(*k)),
            (PathPart::Index(i), _, Some(v)) => v.as_array().and_then(|a| a.get(*i)),
            _ => None,
        }?;
        span = next.span();
        value = Some(next.get_ref());
        table = None;
    }
    Some(span)
}

/// One step of a path into a TOML document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathPart<'a> {
    /// A table key.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn join(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && !(outer.start == 0 && outer.end == 0)
}

fn walk_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Step>) -> bool {
    for (key, value) in table.iter() {
        if contains(&key.span(), span) {
            path.push(Step::Key(key.get_ref().to_string()));
            return true;
        }
        if contains(&value.span(), span) || descend_contains(value.get_ref(), span) {
            path.push(Step::Key(key.get_ref().to_string()));
            walk_value(value.get_ref(), span, path);
            return true;
        }
    }
    false
}

fn walk_value(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Step>) {
    match value {
        DeValue::Table(t) => {
            walk_table(t, span, path);
        }
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                if contains(&item.span(), span) || descend_contains(item.get_ref(), span) {
                    path.push(Step::Index(i));
                    walk_value(item.get_ref(), span, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Whether any key or value below `value` contains `span` (array-of-tables headers
/// give the array itself an unhelpful span, so look inside).
fn descend_contains(value: &DeValue<'_>, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(t) => t.iter().any(|(k, v)| {
            contains(&k.span(), span) || contains(&v.span(), span) || descend_contains(v.get_ref(), span)
        }),
        DeValue::Array(a) => a.iter().any(|v| contains(&v.span(), span) || descend_contains(v.get_ref(), span)),
        _ => false,
    }
}
