//! A custom Cloakroom policy crate: **refunds above an amount need approval outside
//! business hours**.
//!
//! Built-in rules cannot say "outside business hours"; a few lines of Rust can. The
//! policy implements [`cloakroom_policy::Policy`] and is plugged into the policy set next
//! to the rules and Datalog files of `cloakroom.toml`, with the same deny-overrides
//! combination: it never allows anything by itself (it abstains, `None`, for calls it
//! does not care about), it only adds an approval requirement.
//!
//! ```
//! use std::sync::Arc;
//! use cloakroom_example_custom_policy::RefundHours;
//! use cloakroom_policy::{Policies, PolicyConfig, PolicySet};
//!
//! let config: PolicyConfig = toml::from_str(r#"
//!     [[rules]]
//!     name = "support may refund"
//!     effect = "allow"
//!     functions = ["payments/refund"]
//!     groups = ["support"]
//! "#).unwrap();
//! let set = PolicySet::builder()
//!     .config(&config)
//!     .custom(Arc::new(RefundHours::new(500, vec!["finance-leads".into()])))
//!     .build()
//!     .unwrap();
//! // The gateway holds the set in a `Policies` handle; reloads keep custom policies.
//! let policies = Policies::new(set);
//! policies.reload(&config).unwrap();
//! ```
//!
//! In a running gateway, the policy is added with
//! `cloakroom_gateway::Gateway::builder(config).policy(Arc::new(RefundHours::new(..)))`:
//! see docs/policy.md, "Custom policies in your own gateway", and this crate's
//! `tests/in_gateway.rs`.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::sync::Arc;

use async_trait::async_trait;
use cloakroom_core::{Decision, FunctionPatterns};
use cloakroom_policy::{Policy, PolicyInput};
use time::{OffsetDateTime, UtcOffset, Weekday};

/// What time it is, for [`RefundHours::with_clock`].
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Refunds whose `/amount` argument is above a threshold need approval when they are
/// asked for outside business hours (Monday to Friday, 09:00 to 17:00 in a given offset).
#[derive(Clone)]
pub struct RefundHours {
    functions: FunctionPatterns,
    threshold: i64,
    approvers: Vec<String>,
    offset: UtcOffset,
    open_hour: u8,
    close_hour: u8,
    clock: Option<Clock>,
}

impl std::fmt::Debug for RefundHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundHours")
            .field("functions", &self.functions)
            .field("threshold", &self.threshold)
            .field("approvers", &self.approvers)
            .field("offset", &self.offset)
            .field("open_hour", &self.open_hour)
            .field("close_hour", &self.close_hour)
            .field("clock", &self.clock.as_ref().map_or("the call's time", |_| "custom"))
            .finish()
    }
}

impl RefundHours {
    /// Refunds (`payments/refund`) above `threshold` need one of `approvers` out of
    /// hours; business hours are 09:00–17:00 UTC on weekdays.
    pub fn new(threshold: i64, approvers: Vec<String>) -> Self {
        Self {
            functions: FunctionPatterns::new(["payments/refund"]).expect("static pattern"),
            threshold,
            approvers,
            offset: UtcOffset::UTC,
            open_hour: 9,
            close_hour: 17,
            clock: None,
        }
    }

    /// Which functions are refunds (function-name globs as in `[[policy.rules]]`), instead
    /// of `payments/refund` (the `refund` tool of an MCP function `payments`), e.g. an
    /// `http` function named `refunds`.
    pub fn with_functions(
        mut self,
        patterns: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, cloakroom_core::FunctionPatternError> {
        self.functions = FunctionPatterns::new(patterns)?;
        Ok(self)
    }

    /// Business hours in another UTC offset (the finance team's local time).
    pub fn with_offset(mut self, offset: UtcOffset) -> Self {
        self.offset = offset;
        self
    }

    /// Judges calls by `clock` instead of the time each call was made (tests, and a
    /// gateway whose host clock is not the one the business runs on).
    pub fn with_clock(mut self, clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    fn in_business_hours(&self, input: &PolicyInput<'_>) -> bool {
        let now = self.clock.as_ref().map_or(input.now, |clock| clock());
        let local = now.to_offset(self.offset);
        let weekday = !matches!(local.weekday(), Weekday::Saturday | Weekday::Sunday);
        weekday && (self.open_hour..self.close_hour).contains(&local.hour())
    }

    /// The amount, whether sent as a JSON number or a numeric string. Unparseable
    /// amounts count as large: when in doubt, ask a person.
    fn amount(input: &PolicyInput<'_>) -> Option<i64> {
        let v = input.call.argument("/amount")?;
        Some(match v {
            serde_json::Value::Number(n) => n.as_i64().unwrap_or(i64::MAX),
            serde_json::Value::String(s) => s.trim().parse().unwrap_or(i64::MAX),
            _ => i64::MAX,
        })
    }
}

#[async_trait]
impl Policy for RefundHours {
    fn name(&self) -> &str {
        "refund-hours"
    }

    async fn evaluate(&self, input: &PolicyInput<'_>) -> Option<Decision> {
        if !self.functions.matches(&input.call.function) {
            return None; // not a refund: no opinion
        }
        match Self::amount(input) {
            Some(amount) if amount > self.threshold && !self.in_business_hours(input) => Some(Decision::approve(
                "refund-hours",
                format!("refunds above {} outside business hours need approval", self.threshold),
                self.approvers.clone(),
            )),
            // Small, or in business hours: no opinion; the configuration's rules decide.
            _ => None,
        }
    }
}
