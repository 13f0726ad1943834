//! Notifying people of new approval requests through webhooks.
//!
//! The body is a Slack-compatible incoming-webhook message, `{"text": "…"}`, with a
//! link-free summary: who asked, for exactly which call (method, path, query as masked
//! for approvers, secrets by name and location), why, which approver groups are needed,
//! the approval id and when it expires. Never the arguments (they may be sensitive).
//! Delivery runs in a spawned task: failures are logged and retried with backoff, and
//! the call that asked is never delayed.

use std::{sync::Arc, time::Duration};

use time::format_description::well_known::Rfc3339;

use cloakroom_core::quoted;

use super::Approval;

/// Attempts per URL (the first and the retries).
const ATTEMPTS: u32 = 4;
/// Delay before the first retry; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Per-attempt timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts approval requests to webhook URLs.
#[derive(Clone)]
pub struct WebhookNotifier {
    urls: Arc<[String]>,
    client: reqwest::Client,
    first_backoff: Duration,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Webhook URLs embed their own credential (Slack's path token): do not print them.
        f.debug_struct("WebhookNotifier").field("urls", &self.urls.len()).finish()
    }
}

impl WebhookNotifier {
    /// A notifier posting to `urls`.
    pub fn new(urls: Vec<String>) -> Self {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
        Self { urls: urls.into(), client, first_backoff: FIRST_BACKOFF }
    }

    /// The same notifier with another first retry delay (tests use a short one).
    pub fn with_backoff(mut self, first: Duration) -> Self {
        self.first_backoff = first;
        self
    }

    /// The message for `approval`: who asks, for exactly which call (method, path, query
    /// as masked for approvers, secrets by name and location), under which rules, which
    /// approver groups are needed, and until when. Caller-chosen text is quoted and cut.
    pub fn message(approval: &Approval) -> serde_json::Value {
        let expires = approval.expires_at.format(&Rfc3339).unwrap_or_default();
        let rule = approval.rule.as_deref().map(|r| format!(" under rule {}", quoted(r))).unwrap_or_default();
        let why = approval.why.as_deref().map(|w| format!(" ({})", quoted(w))).unwrap_or_default();
        let call = match &approval.scope {
            Some(s) => {
                let query = if s.query.is_empty() { String::new() } else { format!("?{}", s.query) };
                let secrets: Vec<String> = s
                    .placeholders
                    .iter()
                    .map(|u| format!("{} at {}", u.secret.as_deref().unwrap_or("unknown secret"), quoted(&u.location)))
                    .collect();
                let secrets = if secrets.is_empty() {
                    "no secrets".to_owned()
                } else {
                    format!("secrets: {}", secrets.join(", "))
                };
                format!(" {} {}; {secrets}", s.method, quoted(&format!("{}{query}", s.path)))
            }
            None => String::new(),
        };
        let text = format!(
            "Cloakroom: {} ({}) asks to call `{}`:{}{}{}. Needs one approver from each of: {}. Approval id: {} — \
             decide with `cloakroom approval approve {}` or `cloakroom approval deny {}` before {}.",
            quoted(&approval.requester.subject),
            quoted(&approval.requester.issuer),
            quoted(&approval.function),
            call,
            rule,
            why,
            approval.approvers.join(", "),
            approval.id,
            approval.id,
            approval.id,
            expires,
        );
        serde_json::json!({ "text": text })
    }

    /// Sends the message for `approval` to every URL in the background.
    pub fn notify(&self, approval: &Approval) -> tokio::task::JoinHandle<()> {
        let body = Self::message(approval);
        let this = self.clone();
        let id = approval.id.clone();
        tokio::spawn(async move {
            for (i, url) in this.urls.iter().enumerate() {
                this.deliver(i, url, &body, &id).await;
            }
        })
    }

    async fn deliver(&self, index: usize, url: &str, body: &serde_json::Value, id: &str) {
        let mut backoff = self.first_backoff;
        for attempt in 1..=ATTEMPTS {
            let outcome = self.client.post(url).json(body).send().await;
            let failure = match outcome {
                Ok(res) if res.status().is_success() => return,
                Ok(res) => format!("status {}", res.status().as_u16()),
                // Not `%e`: reqwest errors include the URL, which carries the webhook's token.
                Err(e) => if e.is_timeout() { "timeout" } else { "connection failed" }.to_owned(),
            };
            tracing::warn!(webhook = index, approval = %id, attempt, %failure, "approval webhook delivery failed");
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        tracing::error!(webhook = index, approval = %id, "approval webhook gave up after {ATTEMPTS} attempts");
    }
}
