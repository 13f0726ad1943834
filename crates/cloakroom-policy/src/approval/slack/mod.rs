//! Slack approvals: new approvals posted to a channel with Approve / Deny buttons, and
//! clicks on them decided as the Cloakroom identity the Slack user maps to.
//!
//! Posting (`chat.postMessage`, the bot token as `Authorization: Bearer`) runs in a
//! spawned task, retried a bounded number of times, so a call is never delayed or failed
//! by Slack. Where each approval's message is (channel and `ts`) is kept in memory on
//! the replica that posted it, and every click carries its own message's channel and
//! `ts` too: a click handled on any replica updates the message in place, and a decision
//! made through the admin API updates it when this replica posted it (on another replica
//! the message keeps its buttons, and a click then answers that it is already decided).
//! Keeping the `ts` in memory rather than in the approval store avoids a schema change
//! for something that is only presentation.
//!
//! The bot token is never logged: requests are logged by Slack method name, and
//! transport errors by their kind only.

mod blocks;
mod interaction;
mod signature;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cloakroom_core::{AuthMethod, Identity};
use serde_json::Value;

pub use blocks::{escape, APPROVE_ACTION, DENY_ACTION};
pub use interaction::{parse as parse_interaction, Click, Interaction, Verdict};
pub use signature::{sign, SignatureError, SignatureVerifier, WINDOW};

use crate::{config::SlackConfig, Approval, ApprovalState};

/// Attempts per Web API call (the first and the retries).
const ATTEMPTS: u32 = 4;
/// Delay before the first retry; doubled after each (or Slack's `Retry-After`).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest `Retry-After` honoured, so a retry loop stays bounded in time.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Per-attempt timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a posted message's location is kept (longer than any sensible
/// `approvals.ttl`; an approval past it is expired anyway).
const KEEP_MESSAGES: Duration = Duration::from_secs(48 * 3600);

/// A configured Slack app: its Web API client, signature verifier and user mapping.
/// Clones share everything.
#[derive(Clone)]
pub struct SlackApp {
    inner: Arc<Inner>,
}

struct Inner {
    config: SlackConfig,
    token: String,
    verifier: SignatureVerifier,
    client: reqwest::Client,
    messages: Mutex<HashMap<String, Message>>,
    first_backoff: Duration,
}

/// Where an approval's message is, by approval id.
enum Message {
    /// `chat.postMessage` has not answered yet. A change shown meanwhile is kept here and
    /// shown once the post answers: a decision made while the message was being posted
    /// (an approver in the console, one second after the call) still updates it.
    Posting { latest: Option<Box<Approval>>, at: Instant },
    /// The message is `ts` in `channel`.
    Posted { channel: String, ts: String, at: Instant },
}

impl Message {
    /// Where a message went, as Slack (or a click on it) said, from now.
    fn posted(channel: &str, ts: &str) -> Self {
        Message::Posted { channel: channel.to_owned(), ts: ts.to_owned(), at: Instant::now() }
    }

    fn at(&self) -> Instant {
        match self {
            Message::Posting { at, .. } | Message::Posted { at, .. } => *at,
        }
    }
}

impl std::fmt::Debug for SlackApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the signing secret.
        f.debug_struct("SlackApp").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// Why the Slack app could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("approvals.slack: {0}")]
pub struct SlackSetupError(String);

impl SlackApp {
    /// The app `config` describes, its bot token and signing secret read from the
    /// environment variables it names (each must be set and non-empty).
    pub fn from_env(config: &SlackConfig) -> Result<Self, SlackSetupError> {
        let read = |var: &str, what: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| SlackSetupError(format!("the {what} environment variable {var} is not set")))
        };
        let token = read(&config.bot_token_env, "bot token")?;
        let secret = read(&config.signing_secret_env, "signing secret")?;
        if config.channel.trim().is_empty() {
            return Err(SlackSetupError("channel is empty".into()));
        }
        Ok(Self::new(config.clone(), token, secret))
    }

    /// The app with `token` and signing `secret` given directly.
    pub fn new(config: SlackConfig, token: String, secret: String) -> Self {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                config,
                token,
                verifier: SignatureVerifier::new(secret.into_bytes()),
                client,
                messages: Mutex::new(HashMap::new()),
                first_backoff: FIRST_BACKOFF,
            }),
        }
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &SlackConfig {
        &self.inner.config
    }

    /// The verifier of Slack's request signatures.
    pub fn verifier(&self) -> &SignatureVerifier {
        &self.inner.verifier
    }

    /// The Cloakroom identity the clicking user decides as, or why they cannot decide:
    /// a workspace other than `team_id`, or a user not in `users`. The identity carries
    /// only the mapped groups: what the approval rules check.
    pub fn approver(&self, click: &Click) -> Result<Identity, String> {
        if let Some(team) = &self.inner.config.team_id {
            if click.team.as_deref() != Some(team.as_str()) {
                return Err("this Slack workspace cannot decide Cloakroom approvals".into());
            }
        }
        let user = self.inner.config.users.get(&click.user).ok_or_else(|| {
            "your Slack account is not mapped to a Cloakroom identity (approvals.slack.users), so you cannot \
             decide approvals here"
                .to_owned()
        })?;
        Ok(Identity::new(user.subject.clone(), user.issuer.clone(), AuthMethod::Slack).with_groups(user.groups.clone()))
    }

    /// Posts the message for new approval `a` in the background, remembering where it
    /// went; then shows whatever changed while it was being posted.
    pub fn notify(&self, a: &Approval) {
        self.messages().insert(a.id.clone(), Message::Posting { latest: None, at: Instant::now() });
        let this = self.clone();
        let body = blocks::post_message(&self.inner.config.channel, a);
        let id = a.id.clone();
        tokio::spawn(async move {
            let answer = this.call("chat.postMessage", &body, &id).await;
            let place = answer.as_ref().and_then(|res| {
                Some((res.get("channel").and_then(Value::as_str)?, res.get("ts").and_then(Value::as_str)?))
            });
            let changed = {
                let mut m = this.messages();
                let changed = match m.remove(&id) {
                    Some(Message::Posting { latest, .. }) => latest,
                    // A click on the message said where it is first.
                    Some(posted @ Message::Posted { .. }) => {
                        m.insert(id.clone(), posted);
                        return;
                    }
                    None => None,
                };
                if let Some((channel, ts)) = place {
                    m.insert(id.clone(), Message::posted(channel, ts));
                }
                changed
            };
            if let Some(latest) = changed {
                this.show(&latest);
            }
        });
    }

    fn messages(&self) -> std::sync::MutexGuard<'_, HashMap<String, Message>> {
        let mut m = self.inner.messages.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, p| p.at().elapsed() < KEEP_MESSAGES);
        m
    }

    /// Records that approval `id`'s message is `ts` in `channel` (a click says so).
    pub fn remember(&self, id: &str, channel: &str, ts: &str) {
        self.messages().insert(id.to_owned(), Message::posted(channel, ts));
    }

    /// Updates approval `a`'s message (if this replica knows where it is) to show `a` as
    /// it stands, in the background; while the message is still being posted, once it
    /// is. Once `a` is final its location is forgotten.
    pub fn show(&self, a: &Approval) {
        let place = {
            let mut m = self.messages();
            match m.get_mut(&a.id) {
                Some(Message::Posting { latest, .. }) => {
                    // Two decisions racing to be shown: the later revision is the truth.
                    if latest.as_ref().is_none_or(|l| l.revision <= a.revision) {
                        *latest = Some(Box::new(a.clone()));
                    }
                    return;
                }
                Some(Message::Posted { channel, ts, .. }) if a.state == ApprovalState::Pending => {
                    (channel.clone(), ts.clone())
                }
                Some(Message::Posted { .. }) => match m.remove(&a.id) {
                    Some(Message::Posted { channel, ts, .. }) => (channel, ts),
                    _ => return,
                },
                None => return,
            }
        };
        let (channel, ts) = place;
        let body = blocks::update_message(&channel, &ts, a);
        let this = self.clone();
        let id = a.id.clone();
        tokio::spawn(async move {
            this.call("chat.update", &body, &id).await;
        });
    }

    /// Tells `user` privately in `channel` (an ephemeral message), in the background.
    pub fn tell(&self, channel: &str, user: &str, text: &str, approval: &str) {
        let body = serde_json::json!({ "channel": channel, "user": user, "text": escape(text), "parse": "none" });
        let this = self.clone();
        let id = approval.to_owned();
        tokio::spawn(async move {
            this.call("chat.postEphemeral", &body, &id).await;
        });
    }

    /// Calls Web API `method` with `body`, retrying transport failures, server errors and
    /// rate limits; returns Slack's answer when it says `"ok": true`.
    async fn call(&self, method: &str, body: &Value, approval: &str) -> Option<Value> {
        let url = format!("{}/{method}", self.inner.config.api_url.trim_end_matches('/'));
        let mut backoff = self.inner.first_backoff;
        for attempt in 1..=ATTEMPTS {
            let sent = self.inner.client.post(&url).bearer_auth(&self.inner.token).json(body).send().await;
            let (failure, wait) = match sent {
                Ok(res) if res.status().is_success() => {
                    let answer: Value = res.json().await.unwrap_or(Value::Null);
                    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
                        return Some(answer);
                    }
                    // Slack's error codes (`channel_not_found`, `invalid_auth`, …) are
                    // fixed names, safe to log; retrying them would not help.
                    let code = answer.get("error").and_then(Value::as_str).unwrap_or("no error code");
                    tracing::error!(method, approval, error = %cloakroom_core::quoted(code), "Slack refused the request");
                    return None;
                }
                Ok(res) => {
                    let status = res.status();
                    let retry_after = res
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    if status.is_client_error() && status.as_u16() != 429 {
                        tracing::error!(method, approval, status = status.as_u16(), "Slack refused the request");
                        return None;
                    }
                    (format!("status {}", status.as_u16()), retry_after)
                }
                // Not `%e`: keep whatever reqwest puts in its errors out of the logs.
                Err(e) => (if e.is_timeout() { "timeout" } else { "connection failed" }.to_owned(), None),
            };
            tracing::warn!(method, approval, attempt, %failure, "Slack request failed");
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait.unwrap_or(backoff)).await;
                backoff *= 2;
            }
        }
        tracing::error!(method, approval, "Slack request gave up after {ATTEMPTS} attempts");
        None
    }
}
