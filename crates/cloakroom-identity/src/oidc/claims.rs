//! Reading what a verified JWT says: subject, groups, expiry.

use serde_json::{Map, Value};

/// The caller's groups at `path` in `claims`.
///
/// The claim name is first looked up as it is (namespaced claims such as
/// `https://example.com/groups` contain dots); otherwise it is read as a dotted path into
/// nested objects (`realm_access.roles`). A string is one group, an array gives its
/// string members, anything else (or nothing) gives no groups.
pub(crate) fn groups_at(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    let value = claims.get(path).or_else(|| {
        let mut parts = path.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.as_object()?.get(p))
    });
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn plain_dotted_and_namespaced_claims() {
        let c = claims(json!({
            "groups": ["a", "b", 3],
            "realm_access": {"roles": ["admin"]},
            "role": "ops",
            "https://example.com/groups": ["ns"],
        }));
        assert_eq!(groups_at(&c, "groups"), vec!["a", "b"]);
        assert_eq!(groups_at(&c, "realm_access.roles"), vec!["admin"]);
        assert_eq!(groups_at(&c, "role"), vec!["ops"]);
        assert_eq!(groups_at(&c, "https://example.com/groups"), vec!["ns"]);
        assert!(groups_at(&c, "realm_access.missing").is_empty());
        assert!(groups_at(&c, "realm_access").is_empty());
        assert!(groups_at(&c, "nope").is_empty());
    }
}
