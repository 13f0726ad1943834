//! Biscuit tokens: signatures checked with the root public key, identity read from the
//! authority block.
//!
//! The authority block (the one the root key signed) must hold exactly one `user($s)`
//! fact; its `group($g)` facts are the caller's groups. Facts added by attenuation
//! blocks are not trusted for this (Datalog's default scope trusts the authority block
//! only), so a holder cannot append `user("admin")` to their own token. The verified
//! token is kept in [`Identity::biscuit`] so that the token's own checks run, without a
//! second verification, wherever it is used: against the call in the policy layer
//! (`check if function("payments/refund")`), against each admin operation in
//! [`authorize`] (`check if operation("approvals:approve")`).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use biscuit_auth::{
    error::{Logic, Token},
    AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey,
};
use cloakroom_core::{AuthMethod, BiscuitToken, Identity};

use crate::{error::ConfigError, session::SESSION_ROOT_KEY_ID, AuthError, AuthzError, Operation};

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
/// token as invalid (401), and at 100 ms a person's session still failed now and then
/// under the full test suite on 2 cores (a SAML session refused as "unknown API key").
/// One second is far above what 1,000 facts and 100 iterations can take.
const READ_LIMITS: AuthorizerLimits =
    AuthorizerLimits { max_facts: 1000, max_iterations: 100, max_time: Duration::from_secs(1) };

/// Verifies Biscuit tokens: operator-minted ones against the configured root public key,
/// session tokens ([`SESSION_ROOT_KEY_ID`]) against the gateway's session key.
pub(crate) struct BiscuitVerifier {
    root: Option<PublicKey>,
    session: Option<PublicKey>,
}

impl std::fmt::Debug for BiscuitVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BiscuitVerifier")
            .field("root", &self.root.map(|k| k.to_string()))
            .field("session", &self.session.map(|k| k.to_string()))
            .finish()
    }
}

impl BiscuitVerifier {
    /// From the `ed25519/<hex>` form `biscuit-auth` prints.
    pub(crate) fn new(root_public_key: &str) -> Result<Self, ConfigError> {
        let root: PublicKey = root_public_key
            .trim()
            .parse()
            .map_err(|e: biscuit_auth::error::Format| ConfigError::BiscuitRootKey(e.to_string()))?;
        Ok(Self { root: Some(root), session: None })
    }

    /// A verifier of session tokens only (no `[identity.biscuit]` root key configured).
    pub(crate) fn sessions_only(session: PublicKey) -> Self {
        Self { root: None, session: Some(session) }
    }

    /// Also accepts session tokens signed by `session`.
    pub(crate) fn with_session_key(mut self, session: PublicKey) -> Self {
        self.session = Some(session);
        self
    }

    /// Whether operator-minted tokens (a configured root key) are accepted.
    pub(crate) fn has_root(&self) -> bool {
        self.root.is_some()
    }

    /// The key a token naming `key_id` must be signed by. A session token is never
    /// checked against the operator's root key, nor an operator's token against the
    /// session key, so neither can pass for the other.
    fn choose(&self, key_id: Option<u32>) -> Result<PublicKey, biscuit_auth::error::Format> {
        let key = match key_id {
            Some(SESSION_ROOT_KEY_ID) => self.session,
            _ => self.root,
        };
        key.ok_or(biscuit_auth::error::Format::UnknownPublicKey)
    }

    /// The identity a base64url-encoded token proves.
    pub(crate) fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let bytes = B64URL_ANY_PAD.decode(token.as_bytes()).map_err(|_| AuthError::Malformed)?;
        self.verify_bytes(&bytes)
    }

    /// The identity serialized token bytes prove.
    pub(crate) fn verify_bytes(&self, bytes: &[u8]) -> Result<Identity, AuthError> {
        let biscuit = Biscuit::from(bytes, |id| self.choose(id)).map_err(|e| {
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
        let (issuer, method) = if biscuit.root_key_id() == Some(SESSION_ROOT_KEY_ID) {
            // Verified with the session key (`choose`): the gateway wrote these facts.
            let issuers: Vec<(String,)> = authorizer
                .query("cloakroom_issuer($i) <- session_issuer($i)")
                .map_err(|_| AuthError::InvalidBiscuit)?;
            let methods: Vec<(String,)> = authorizer
                .query("cloakroom_method($m) <- session_method($m)")
                .map_err(|_| AuthError::InvalidBiscuit)?;
            let (Ok([(issuer,)]), Ok([(method,)])) =
                (<[(String,); 1]>::try_from(issuers), <[(String,); 1]>::try_from(methods))
            else {
                return Err(AuthError::InvalidBiscuit);
            };
            (issuer, crate::session::method_named(&method).ok_or(AuthError::InvalidBiscuit)?)
        } else {
            (BISCUIT_ISSUER.to_owned(), AuthMethod::Biscuit)
        };
        Ok(Identity::new(subject, issuer, method)
            .with_groups(groups.into_iter().map(|(g,)| g).collect())
            .with_biscuit(Some(BiscuitToken::verified(bytes, biscuit))))
    }
}

/// Runs the checks of a verified token (authority and attenuation blocks) against the
/// facts of `operation` at `now`. The token's facts are its own: nothing the caller adds
/// can satisfy a check the operation's facts do not.
pub(crate) fn authorize(token: &Biscuit, operation: &Operation, now: SystemTime) -> Result<(), AuthzError> {
    let unevaluated = |reason: String| AuthzError::Unevaluated { operation: operation.to_string(), reason };
    let mut builder = AuthorizerBuilder::new().set_limits(READ_LIMITS);
    for fact in operation.facts(now) {
        builder = builder.fact(fact).map_err(|e| unevaluated(e.to_string()))?;
    }
    let builder = builder.policy("allow if true").map_err(|e| unevaluated(e.to_string()))?;
    let outcome = builder.build(token).and_then(|mut a| a.authorize());
    match outcome {
        Ok(_) => Ok(()),
        Err(Token::FailedLogic(Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks })) => {
            let checks = checks.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ");
            Err(AuthzError::CheckFailed { operation: operation.to_string(), checks })
        }
        Err(e) => Err(unevaluated(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::{builder::BlockBuilder, builder_ext::BuilderExt, KeyPair};

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
        let kept = id.biscuit.unwrap();
        assert_eq!(kept.bytes(), token.to_vec().unwrap().as_slice());
        // The verified token itself is kept, for the checks to run without a second verification.
        assert_eq!(kept.get::<Biscuit>().unwrap().to_vec().unwrap(), token.to_vec().unwrap());
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

    // === the token's own checks against an operation ===

    const ALL_ADMIN_OPERATIONS: [&str; 10] = [
        Operation::SECRETS_LIST,
        Operation::SECRETS_PUT,
        Operation::SECRETS_DELETE,
        Operation::APPROVALS_LIST,
        Operation::APPROVALS_READ,
        Operation::APPROVALS_APPROVE,
        Operation::APPROVALS_DENY,
        Operation::AUDIT_READ,
        Operation::AUDIT_VERIFY,
        Operation::RELOAD,
    ];

    fn admin_token(root: &KeyPair) -> Biscuit {
        Biscuit::builder().code(r#"user("ops-1"); group("cloakroom-admins");"#).unwrap().build(root).unwrap()
    }

    fn narrowed(token: &Biscuit, code: &str) -> Biscuit {
        token.append(BlockBuilder::new().code(code).unwrap()).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn an_unattenuated_token_allows_every_operation() {
        let t = admin_token(&KeyPair::new());
        for op in ALL_ADMIN_OPERATIONS {
            assert_eq!(authorize(&t, &Operation::new(op), at(NOW)), Ok(()), "{op}");
        }
    }

    #[test]
    fn an_expired_token_is_refused_for_every_operation() {
        let t = admin_token(&KeyPair::new());
        let t = t.append(BlockBuilder::new().check_expiration_date(at(NOW + 1))).unwrap();
        for op in ALL_ADMIN_OPERATIONS.iter().chain(&[Operation::CALL]) {
            assert_eq!(authorize(&t, &Operation::new(op), at(NOW)), Ok(()), "{op} before expiry");
            let err = authorize(&t, &Operation::new(op), at(NOW + 2)).unwrap_err();
            assert!(matches!(err, AuthzError::CheckFailed { .. }), "{op}: {err}");
        }
    }

    #[test]
    fn a_check_that_never_holds_refuses_every_operation() {
        let t = narrowed(&admin_token(&KeyPair::new()), r#"check if operation("no-such-operation");"#);
        for op in ALL_ADMIN_OPERATIONS {
            let refused = authorize(&t, &Operation::new(op).on("x"), at(NOW)).unwrap_err();
            assert_eq!(refused.to_error().code, cloakroom_core::ErrorCode::Forbidden);
            assert!(refused.to_string().contains("no-such-operation"), "{refused}");
        }
    }

    #[test]
    fn approve_refunds_for_one_hour_as_a_function_check() {
        let t = narrowed(
            &admin_token(&KeyPair::new()),
            &format!(
                r#"check if operation("approvals:approve"), function($f), $f.starts_with("refund");
                   check if time($t), $t <= {};"#,
                time::OffsetDateTime::from_unix_timestamp(NOW as i64 + 3600)
                    .unwrap()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            ),
        );
        let approve = |function: &str| Operation::new(Operation::APPROVALS_APPROVE).approval("a-1", function);
        assert_eq!(authorize(&t, &approve("refund"), at(NOW)), Ok(()));
        assert_eq!(authorize(&t, &approve("refund/issue"), at(NOW + 3599)), Ok(()));
        assert!(authorize(&t, &approve("refund"), at(NOW + 3601)).is_err(), "after the hour");
        assert!(authorize(&t, &approve("payments"), at(NOW)).is_err(), "another function");
        let deny = Operation::new(Operation::APPROVALS_DENY).approval("a-1", "refund");
        assert!(authorize(&t, &deny, at(NOW)).is_err(), "another verb");
        for op in ALL_ADMIN_OPERATIONS.iter().filter(|o| **o != Operation::APPROVALS_APPROVE) {
            assert!(authorize(&t, &Operation::new(op), at(NOW)).is_err(), "{op}");
        }
    }

    #[test]
    fn approve_refunds_as_a_resource_check() {
        let t = narrowed(
            &admin_token(&KeyPair::new()),
            r#"check if operation("approvals:approve"), resource($r), $r.starts_with("refund");"#,
        );
        let approve = |function: &str| Operation::new(Operation::APPROVALS_APPROVE).approval("a-1", function);
        assert_eq!(authorize(&t, &approve("refund"), at(NOW)), Ok(()));
        assert!(authorize(&t, &approve("payments"), at(NOW)).is_err());
        assert!(authorize(&t, &Operation::new(Operation::SECRETS_LIST), at(NOW)).is_err());
        // The approval id is its own fact, never the resource: an id cannot pass for a function.
        let t = narrowed(&admin_token(&KeyPair::new()), r#"check if approval("a-1");"#);
        assert_eq!(authorize(&t, &approve("payments"), at(NOW)), Ok(()));
        assert!(authorize(&t, &Operation::new(Operation::APPROVALS_APPROVE).approval("a-2", "x"), at(NOW)).is_err());
    }

    #[test]
    fn a_secret_operation_names_the_secret() {
        let t = narrowed(
            &admin_token(&KeyPair::new()),
            r#"check if operation("secrets:put"), secret($s), $s.starts_with("stripe_");"#,
        );
        assert_eq!(authorize(&t, &Operation::new(Operation::SECRETS_PUT).secret("stripe_key"), at(NOW)), Ok(()));
        assert!(authorize(&t, &Operation::new(Operation::SECRETS_PUT).secret("db_password"), at(NOW)).is_err());
        assert!(authorize(&t, &Operation::new(Operation::SECRETS_DELETE).secret("stripe_key"), at(NOW)).is_err());
    }

    #[test]
    fn a_later_block_cannot_satisfy_an_earlier_check() {
        let t = narrowed(&admin_token(&KeyPair::new()), r#"check if operation("audit:read");"#);
        // The holder appends the facts the check wants: a block's facts are not trusted
        // by the checks of the blocks before it.
        let forged = narrowed(&t, r#"operation("audit:read"); operation("secrets:list"); time(2000-01-01T00:00:00Z);"#);
        assert!(authorize(&forged, &Operation::new(Operation::SECRETS_LIST), at(NOW)).is_err());
        assert_eq!(authorize(&forged, &Operation::new(Operation::AUDIT_READ), at(NOW)), Ok(()));
        // Nor can the authority block's checks be satisfied by a later block.
        let root = KeyPair::new();
        let t = Biscuit::builder().code(r#"user("a"); check if operation("reload");"#).unwrap().build(&root).unwrap();
        let forged = narrowed(&t, r#"operation("reload");"#);
        assert!(authorize(&forged, &Operation::new(Operation::SECRETS_LIST), at(NOW)).is_err());
    }

    #[test]
    fn a_token_whose_checks_run_away_is_refused() {
        let root = KeyPair::new();
        // 100 facts whose pairs are 10 000 derived facts, past the limit of 1000.
        let facts: String = (0..100).map(|i| format!("n({i});")).collect();
        let t = narrowed(&admin_token(&root), &format!("{facts} pair($a, $b) <- n($a), n($b); check if n(1);"));
        let err = authorize(&t, &Operation::new(Operation::SECRETS_LIST), at(NOW)).unwrap_err();
        assert!(matches!(err, AuthzError::Unevaluated { .. }), "{err}");
    }
}
