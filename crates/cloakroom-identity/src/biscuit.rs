//! Biscuit tokens: signatures checked with the root public key, identity read from the
//! authority block.
//!
//! The authority block (the one the root key signed) must hold exactly one `user($s)`
//! fact; its `group($g)` facts are the caller's groups. Facts added by attenuation
//! blocks are not trusted for this (Datalog's default scope trusts the authority block
//! only), so a holder cannot append `user("admin")` to their own token. The token's
//! bytes are kept in [`Identity::biscuit`] so that the policy layer can run the token's
//! checks (`check if function("payments/refund")`) against the call.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey};
use cloakroom_core::{AuthMethod, BiscuitToken, Identity};

use crate::{error::ConfigError, AuthError};

/// The issuer recorded for Biscuit identities.
pub const BISCUIT_ISSUER: &str = "biscuit";

const B64URL_ANY_PAD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Bounds on reading a token's facts. Facts and iterations bound the work whatever the
/// token's blocks hold; the time is wall-clock time, so it is only a backstop: at
/// biscuit-auth's default of 1 ms a thread descheduled on a busy host refused a valid
/// token as invalid (401).
const READ_LIMITS: AuthorizerLimits =
    AuthorizerLimits { max_facts: 1000, max_iterations: 100, max_time: Duration::from_millis(100) };

/// Verifies Biscuit tokens against one root public key.
pub(crate) struct BiscuitVerifier {
    root: PublicKey,
}

impl std::fmt::Debug for BiscuitVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiscuitVerifier").field("root", &self.root.to_string()).finish()
    }
}

impl BiscuitVerifier {
    /// From the `ed25519/<hex>` form `biscuit-auth` prints.
    pub(crate) fn new(root_public_key: &str) -> Result<Self, ConfigError> {
        let root: PublicKey = root_public_key
            .trim()
            .parse()
            .map_err(|e: biscuit_auth::error::Format| ConfigError::BiscuitRootKey(e.to_string()))?;
        Ok(Self { root })
    }

    /// The identity a base64url-encoded token proves.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let bytes = B64URL_ANY_PAD.decode(token.as_bytes()).map_err(|_| AuthError::Malformed)?;
        let biscuit = Biscuit::from(&bytes, self.root).map_err(|e| {
            tracing::debug!(error = %e, "biscuit token refused");
            match e {
                biscuit_auth::error::Token::Format(biscuit_auth::error::Format::DeserializationError(_)) => {
                    AuthError::Malformed
                }
                _ => AuthError::InvalidBiscuit,
            }
        })?;
        let mut authorizer =
            AuthorizerBuilder::new().set_limits(READ_LIMITS).build(&biscuit).map_err(|_| AuthError::InvalidBiscuit)?;
        let users: Vec<(String,)> =
            authorizer.query("cloakroom_user($s) <- user($s)").map_err(|_| AuthError::InvalidBiscuit)?;
        let [(subject,)] = <[(String,); 1]>::try_from(users).map_err(|_| AuthError::InvalidBiscuit)?;
        let mut groups: Vec<(String,)> =
            authorizer.query("cloakroom_group($g) <- group($g)").map_err(|_| AuthError::InvalidBiscuit)?;
        groups.sort();
        groups.dedup();
        Ok(Identity {
            subject,
            issuer: BISCUIT_ISSUER.to_owned(),
            method: AuthMethod::Biscuit,
            groups: groups.into_iter().map(|(g,)| g).collect(),
            source_ip: None,
            biscuit: Some(BiscuitToken(Arc::from(bytes))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::{builder::BlockBuilder, KeyPair};

    #[test]
    fn root_key_in_printed_form_round_trips() {
        let kp = KeyPair::new();
        let printed = kp.public().to_string();
        assert!(printed.starts_with("ed25519/"), "{printed}");
        assert!(BiscuitVerifier::new(&printed).is_ok());
        assert!(matches!(BiscuitVerifier::new("ed25519/zz"), Err(ConfigError::BiscuitRootKey(_))));
    }

    #[test]
    fn user_and_groups_come_from_the_authority_block_only() {
        let root = KeyPair::new();
        let token = Biscuit::builder()
            .code(r#"user("agent-7"); group("payments-ops"); group("ci");"#)
            .unwrap()
            .build(&root)
            .unwrap()
            .append(BlockBuilder::new().code(r#"user("admin"); group("cloakroom-admins");"#).unwrap())
            .unwrap();
        let v = BiscuitVerifier::new(&root.public().to_string()).unwrap();
        let id = v.verify(&token.to_base64().unwrap()).unwrap();
        assert_eq!(id.subject, "agent-7");
        assert_eq!(id.groups, vec!["ci".to_owned(), "payments-ops".to_owned()]);
        assert_eq!(id.biscuit.unwrap().0.as_ref(), token.to_vec().unwrap().as_slice());
    }

    #[test]
    fn a_token_whose_rules_take_more_than_a_millisecond_is_accepted() {
        // 12 groups and a rule deriving their 144 pairs: a few ms in a
        // debug build, like a descheduled thread on a busy host. At biscuit-auth's
        // default 1 ms limit this valid token was refused.
        let root = KeyPair::new();
        let groups: String = (0..12).map(|i| format!("group(\"g{i}\");")).collect();
        let code = format!("user(\"agent-7\"); pair($a, $b) <- group($a), group($b); {groups}");
        let token = Biscuit::builder().code(code.as_str()).unwrap().build(&root).unwrap();
        let v = BiscuitVerifier::new(&root.public().to_string()).unwrap();
        let id = v.verify(&token.to_base64().unwrap()).unwrap();
        assert_eq!((id.subject.as_str(), id.groups.len()), ("agent-7", 12));
    }

    #[test]
    fn a_token_without_exactly_one_user_is_refused() {
        let root = KeyPair::new();
        let v = BiscuitVerifier::new(&root.public().to_string()).unwrap();
        let none = Biscuit::builder().code(r#"group("x");"#).unwrap().build(&root).unwrap();
        assert_eq!(v.verify(&none.to_base64().unwrap()), Err(AuthError::InvalidBiscuit));
        let two = Biscuit::builder().code(r#"user("a"); user("b");"#).unwrap().build(&root).unwrap();
        assert_eq!(v.verify(&two.to_base64().unwrap()), Err(AuthError::InvalidBiscuit));
    }
}
