//! Redacting a record's strings before it is sealed: the one pass that decides whether
//! a record holds a secret, and the per-string pass that replaces it.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Whether the redactor finds anything in any string (or object key) of the record.
///
/// The strings are joined with NUL bytes and scanned once. Every occurrence inside one
/// string is an occurrence in the joined bytes, and a NUL is no word character, so the
/// built-in detectors' boundary checks see a string's edges as they would alone; a match
/// that spans two strings only makes this answer `true`, which costs the per-string
/// pass and nothing else. So `false` means no string would be changed by
/// [`redact_strings`].
pub(super) fn holds_secret(rendered: &Rendered, redactor: &dyn Redactor) -> bool {
    redactor.finds(rendered.strings())
}

/// Runs the redactor over every string (and object key) of a JSON value.
pub(super) fn redact_strings(value: &mut serde_json::Value, redactor: &dyn Redactor) -> Result<(), AuditError> {
    use serde_json::Value;
    let redact = |s: &str| -> Result<Option<String>, AuditError> {
        let out = redactor.redact(s.as_bytes());
        if out == s.as_bytes() {
            return Ok(None);
        }
        String::from_utf8(out).map(Some).map_err(|_| AuditError::Redaction("the redactor returned non-UTF-8".into()))
    };
    match value {
        Value::String(s) => {
            if let Some(r) = redact(s)? {
                *s = r;
            }
        }
        Value::Array(items) => {
            for item in items {
                redact_strings(item, redactor)?;
            }
        }
        Value::Object(map) => {
            let mut renamed = Vec::new();
            for (key, v) in map.iter_mut() {
                redact_strings(v, redactor)?;
                if let Some(new) = redact(key)? {
                    renamed.push((key.clone(), new));
                }
            }
            for (old, new) in renamed {
                if let Some(v) = map.remove(&old) {
                    map.insert(new, v);
                }
            }
        }
        _ => {}
    }
    Ok(())
}
