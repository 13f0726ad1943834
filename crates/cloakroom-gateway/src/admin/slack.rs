//! Slack approvals: `POST /v1/slack/interactions`, where Slack sends clicks on the
//! Approve / Deny buttons of approval messages (docs/policy.md, "Slack approvals").
//!
//! Nothing in the request is decoded before Slack's signature over the raw body has
//! verified (with a fresh timestamp, and not seen before): a request that fails is
//! answered `401 unauthenticated` and changes nothing. A verified click is decided as
//! the Cloakroom identity its Slack user maps to (`approvals.slack.users`), under the
//! same rules as the admin API (`Approvals::approve` / `deny`: not the requester, a
//! member of a required group, each requirement a distinct approver); an unmapped user
//! or a refused decision gets a private (ephemeral) explanation. Slack wants an answer
//! within 3 seconds: the decision is one store update, and every message to Slack
//! (the update in place, the explanation) is sent in the background.

use std::{net::SocketAddr, time::SystemTime};

use crate::admin::AdminBody;
use bytes::Bytes;
use cloakroom_core::{Error, ErrorCode};
use cloakroom_policy::{
    slack::{parse_interaction, Click, Interaction, Verdict},
    ApprovalError, SlackApp,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::respond::{not_found, read_body};
use crate::{
    forward::{boxed, GatewayBody},
    Gateway,
};

/// `/v1/slack/…`; `segments` is the path after it.
pub(super) async fn handle(
    gateway: &Gateway,
    _peer: Option<SocketAddr>,
    req: Request<AdminBody>,
    method: &Method,
    segments: &[&str],
) -> Result<Response<GatewayBody>, Error> {
    if segments != ["interactions"] || method != Method::POST {
        return Err(not_found());
    }
    let Some(app) = gateway.approvals().slack() else {
        return Err(Error::new(ErrorCode::NotFound, "Slack approvals are not configured ([approvals.slack])"));
    };
    let headers = req.headers().clone();
    let body = read_body(gateway, req).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = app.verifier().verify(
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        SystemTime::now(),
    ) {
        tracing::warn!(reason = %e, "Slack interaction refused");
        return Err(Error::new(ErrorCode::Unauthenticated, format!("not a request from Slack: {e}")));
    }
    let interaction = parse_interaction(&body).map_err(|e| Error::new(ErrorCode::BadRequest, e))?;
    if let Interaction::Click(click) = interaction {
        decide(gateway, &app, click).await;
    }
    let mut res = Response::new(boxed(Full::new(Bytes::new())));
    *res.status_mut() = StatusCode::OK;
    Ok(res)
}

/// Decides `click` as its mapped identity; tells the user privately when it cannot.
async fn decide(gateway: &Gateway, app: &SlackApp, click: Click) {
    let id = click.approval_id.as_str();
    let tell = |text: &str| match &click.message {
        Some((channel, _)) => app.tell(channel, &click.user, text, id),
        None => {
            tracing::info!(approval = %cloakroom_core::quoted(id), "no channel to explain a refused Slack click in")
        }
    };
    let approver = match app.approver(&click) {
        Ok(identity) => identity,
        Err(why) => {
            tracing::info!(slack_user = %cloakroom_core::quoted(&click.user), approval = %cloakroom_core::quoted(id), "Slack click from a user who cannot decide");
            tell(&why);
            return;
        }
    };
    if let Some((channel, ts)) = &click.message {
        // The click says where the message is: a replica that did not post it can still
        // update it in place.
        app.remember(id, channel, ts);
    }
    let approvals = gateway.approvals();
    let result = match click.verdict {
        Verdict::Approve => approvals.approve(id, &approver, None).await,
        Verdict::Deny => approvals.deny(id, &approver, None).await,
    };
    match result {
        // `approve` / `deny` update the message with the outcome.
        Ok(_) => {}
        Err(e) => {
            let why = e.to_error().message;
            tracing::info!(
                approval = %cloakroom_core::quoted(id),
                subject = %approver.subject,
                reason = %why,
                "Slack decision refused"
            );
            tell(&format!("Cloakroom refused your decision: {why}"));
            if matches!(e, ApprovalError::NotPending { .. }) {
                // Decided elsewhere (the admin API, another replica): bring the message
                // up to date so its buttons go away.
                if let Ok(a) = approvals.get(id).await {
                    app.show(&a);
                }
            }
        }
    }
}
