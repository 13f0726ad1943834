//! Shared builders for the policy tests.
#![allow(dead_code, unreachable_pub)]

use cloakroom_core::{AuthMethod, Call, Identity, Protocol};
use cloakroom_policy::{PolicyConfig, PolicyInput, PolicySet};

pub fn who(subject: &str, groups: &[&str]) -> Identity {
    Identity::new(subject.into(), "api_key".into(), AuthMethod::ApiKey)
        .with_groups(groups.iter().map(|g| g.to_string()).collect())
}

pub fn call(function: &str, arguments: serde_json::Value) -> Call {
    let digest = format!("digest-of-{arguments}");
    Call::new(function.into(), Protocol::Http).with_arguments(arguments).with_method("POST".into()).with_digest(digest)
}

pub fn config(toml_text: &str) -> PolicyConfig {
    toml::from_str(toml_text).expect("test config parses")
}

pub fn set(toml_text: &str) -> PolicySet {
    PolicySet::builder().config(&config(toml_text)).build().expect("test policy builds")
}

pub async fn decide(set: &PolicySet, id: &Identity, c: &Call) -> cloakroom_core::Decision {
    set.evaluate(&PolicyInput::new(id, c)).await
}

/// The scope of `c` by `id`: a POST of its arguments to `/fn/<function>`.
pub fn scope_for(id: &Identity, c: &Call) -> cloakroom_core::CallScope {
    cloakroom_core::CallScope {
        issuer: id.issuer.clone(),
        subject: id.subject.clone(),
        function: c.function.clone(),
        method: c.method.clone(),
        path: format!("/fn/{}", c.function),
        query: String::new(),
        content_type: Some("application/json".into()),
        placeholders: vec![],
        body_sha256: cloakroom_core::CallScope::body_digest(c.arguments.to_string().as_bytes()),
    }
}
