//! Shared helpers: the testkit's local OIDC issuer and an authenticator trusting it.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use cloakroom_testkit::{
    unix_now as now, OidcIssuer as TestIssuer, OidcTestKey as TestKey, OIDC_TEST_AUDIENCE as AUDIENCE,
};

/// A `[[identity.oidc]]` entry for `issuer`, accepting its audience and one more.
pub fn config(issuer: &TestIssuer) -> cloakroom_identity::OidcIssuerConfig {
    cloakroom_identity::OidcIssuerConfig::new(
        issuer.issuer.clone(),
        vec![AUDIENCE.to_owned(), "other-audience".to_owned()],
    )
}

/// An authenticator trusting only `issuer` (with `edit` applied to its entry).
pub fn authenticator(
    issuer: &TestIssuer,
    edit: impl FnOnce(&mut cloakroom_identity::OidcIssuerConfig),
) -> cloakroom_identity::Authenticator {
    let mut c = config(issuer);
    edit(&mut c);
    let config = cloakroom_identity::IdentityConfig { oidc: vec![c], ..Default::default() };
    cloakroom_identity::Authenticator::new(&config).unwrap()
}
