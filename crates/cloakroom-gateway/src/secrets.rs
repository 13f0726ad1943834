//! Glue between the secret catalog and the rest of the data path: which secrets a call
//! refers to (for policy, before anything is substituted), approvals required by secret
//! bindings with `approvers`, and the masker as the audit log's and approvals' redactor.

use std::sync::Arc;

use async_trait::async_trait;
use cloakroom_core::Decision;
use cloakroom_mask::MaskHandle;
use cloakroom_policy::{Policy, PolicyInput};
use cloakroom_vault::Catalog;

/// The names of the known secrets whose placeholders appear in the request's header
/// values, query string or body (the `SecretsInCall` the policy layer reads).
pub fn secrets_in_request(catalog: &Catalog, parts: &http::request::Parts, body: &[u8]) -> Vec<String> {
    let snap = catalog.snapshot();
    let mut names: Vec<String> = Vec::new();
    let mut add = |haystack: &[u8]| {
        for (_, entry) in snap.find(haystack) {
            if !names.iter().any(|n| n == entry.name()) {
                names.push(entry.name().to_owned());
            }
        }
    };
    for value in parts.headers.values() {
        add(value.as_bytes());
    }
    if let Some(q) = parts.uri.query() {
        add(q.as_bytes());
    }
    add(body);
    names
}

/// A policy requiring approval for every call that uses a secret whose binding names
/// `approvers` (SPEC §3): the decision is "approve" by those groups. It has no opinion
/// about other calls.
pub struct SecretApprovers {
    catalog: Arc<Catalog>,
}

impl SecretApprovers {
    /// The policy over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl Policy for SecretApprovers {
    fn name(&self) -> &str {
        "secret-approvers"
    }

    async fn evaluate(&self, input: &PolicyInput<'_>) -> Decision {
        let snap = self.catalog.snapshot();
        let mut approvers: Vec<String> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for name in input.secrets {
            if let Some(b) = snap.by_name(name).and_then(|e| e.binding()) {
                if !b.approvers().is_empty() {
                    names.push(name);
                    for a in b.approvers() {
                        if !approvers.contains(a) {
                            approvers.push(a.clone());
                        }
                    }
                }
            }
        }
        if approvers.is_empty() {
            return Decision::default_deny();
        }
        Decision::approve(
            "secret-approvers",
            format!("secret {} needs approval for every use", names.join(", ")),
            approvers,
        )
    }
}

/// The response masker as the audit log's redactor: every known secret in every
/// encoding becomes its placeholder before a record is written.
pub struct MaskRedactor(pub MaskHandle);

impl cloakroom_audit::Redactor for MaskRedactor {
    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        self.0.load().replace(bytes).output
    }

    /// A search that stops at the first match, without building the masked copy: the
    /// audit log asks this of every record, and almost every record holds no secret.
    fn finds(&self, bytes: &[u8]) -> bool {
        self.0.load().finds(bytes)
    }
}

/// The masker applied to arguments shown to approvers.
pub fn redact_arguments(handle: &MaskHandle, arguments: &serde_json::Value) -> serde_json::Value {
    let text = arguments.to_string();
    let masked = handle.load().replace(text.as_bytes()).output;
    serde_json::from_slice(&masked).unwrap_or_else(|_| serde_json::Value::String("[REDACTED]".into()))
}

/// Formerly rebuilt the response masker here, to close a window in which the catalog
/// rebuilt it only after a change was visible. The catalog now does it itself, ordered
/// with every change: [`Catalog::attach_masker`] stores a masker before it returns and
/// `put`/`delete` return only once the new one is in `handle`. Storing one built here
/// would be unordered with concurrent changes (a masker built from an older snapshot
/// could replace a newer one), so this no longer stores anything; kept so callers
/// compile unchanged. A reload's `[masking]` goes to [`Catalog::set_masking`].
#[deprecated(note = "the catalog rebuilds the masker itself before put/delete return; remove the call")]
pub fn rebuild_masker(catalog: &Catalog, handle: &MaskHandle, masking: &cloakroom_mask::MaskingConfig) {
    let _ = (catalog, handle, masking);
}

#[cfg(test)]
mod tests {
    use cloakroom_audit::Redactor as _;
    use cloakroom_mask::{MaskEntry, MaskHandle, MaskingConfig, Matcher};

    use super::MaskRedactor;

    #[test]
    fn finds_exactly_where_redact_changes_something() {
        let secret = "sk_live_0123456789abcdefABCDEF";
        let entry = MaskEntry::new("stripe", secret.into(), "cloak_stripe");
        let matcher = Matcher::build([entry], &MaskingConfig::default().options()).unwrap();
        let redactor = MaskRedactor(MaskHandle::new(matcher));
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(secret)
        };
        let cases = [
            "nothing to see here".to_owned(),
            String::new(),
            format!("key={secret}&x=1"),
            format!("{{\"auth\":\"{b64}\"}}"),
            "AKIAIOSFODNN7EXAMPLE is a detector hit".to_owned(),
            secret[..secret.len() - 1].to_owned(),
        ];
        for case in &cases {
            let changes = redactor.redact(case.as_bytes()) != case.as_bytes();
            assert_eq!(redactor.finds(case.as_bytes()), changes, "{case:?}");
        }
        assert!(redactor.finds(format!("key={secret}").as_bytes()));
        assert!(!redactor.finds(b"nothing to see here"));
    }
}
