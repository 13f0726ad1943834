//! Glue between the secret catalog and the rest of the data path: the `CallLayer`'s
//! scanner (the vault finds the placeholders), approvals required by secret
//! bindings with `approvers`, and the masker as the audit log's and approvals' redactor.

use std::sync::Arc;

use async_trait::async_trait;
use cloakroom_core::Decision;
use cloakroom_mask::MaskHandle;
use cloakroom_policy::{Policy, PolicyInput};
use cloakroom_vault::Catalog;

/// The `CallLayer`'s scanner: the vault's [`Catalog::placeholder_uses`].
pub(crate) fn scanner(catalog: &Arc<Catalog>) -> crate::call::SecretScanner {
    let catalog = catalog.clone();
    Arc::new(move |parts, body| catalog.placeholder_uses(parts, body))
}

/// A policy requiring approval for every call that uses a secret whose binding names
/// `approvers` (docs/reference.md, placeholders): the decision is "approve" by those groups. It has no opinion
/// about other calls.
pub(crate) struct SecretApprovers {
    catalog: Arc<Catalog>,
}

impl SecretApprovers {
    /// The policy over `catalog`.
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl Policy for SecretApprovers {
    fn name(&self) -> &str {
        "secret-approvers"
    }

    async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
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
            return None;
        }
        Some(Decision::approve(
            "secret-approvers",
            format!("secret {} needs approval for every use", names.join(", ")),
            approvers,
        ))
    }
}

/// The response masker as the audit log's redactor: every known secret in every
/// encoding becomes its placeholder before a record is written.
pub(crate) struct MaskRedactor(pub(crate) MaskHandle);

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

/// The masker applied to what approvers are shown: the arguments and the query string.
pub(crate) struct ApproverRedactor(pub(crate) MaskHandle);

impl cloakroom_policy::ArgumentRedactor for ApproverRedactor {
    fn redact(&self, arguments: &serde_json::Value) -> serde_json::Value {
        redact_arguments(&self.0, arguments)
    }

    fn redact_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.0.load().replace(text.as_bytes()).output).into_owned()
    }
}

/// The masker applied to arguments shown to approvers.
pub(crate) fn redact_arguments(handle: &MaskHandle, arguments: &serde_json::Value) -> serde_json::Value {
    let text = arguments.to_string();
    let masked = handle.load().replace(text.as_bytes()).output;
    serde_json::from_slice(&masked).unwrap_or_else(|_| serde_json::Value::String("[REDACTED]".into()))
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
