//! Reading a button click from Slack's interaction payload (after its signature
//! verified: nothing here runs on an unauthenticated body).

use serde::Deserialize;

use super::blocks::{APPROVE_ACTION, DENY_ACTION};

/// What the click asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The Approve button.
    Approve,
    /// The Deny button.
    Deny,
}

/// A click on one of an approval message's buttons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// The Slack user who clicked (`U…`).
    pub user: String,
    /// Their workspace (`T…`), when Slack says.
    pub team: Option<String>,
    /// Approve or deny.
    pub verdict: Verdict,
    /// The approval the button is for.
    pub approval_id: String,
    /// The channel and timestamp of the message clicked, to update it in place.
    pub message: Option<(String, String)>,
}

/// What an interaction is, once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A click on an Approve or Deny button.
    Click(Click),
    /// Anything else Slack may send (other block actions, shortcuts, …): acknowledged,
    /// nothing done.
    Other,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: Option<Id>,
    team: Option<Id>,
    container: Option<Container>,
    channel: Option<Id>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Container {
    message_ts: Option<String>,
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
}

/// Decodes the form body Slack posts (`payload=<JSON>`).
pub fn parse(body: &[u8]) -> Result<Interaction, String> {
    let payload = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or("the body has no payload field")?;
    let p: Payload = serde_json::from_str(&payload).map_err(|e| format!("the payload is not an interaction: {e}"))?;
    if p.kind != "block_actions" {
        return Ok(Interaction::Other);
    }
    // One click is one action; a payload naming several is not one Slack sends for a
    // button, and acting on the first of many would be a guess.
    let [action] = p.actions.as_slice() else { return Ok(Interaction::Other) };
    let (verdict, id) = if let Some(id) = action.action_id.strip_prefix(APPROVE_ACTION) {
        (Verdict::Approve, id)
    } else if let Some(id) = action.action_id.strip_prefix(DENY_ACTION) {
        (Verdict::Deny, id)
    } else {
        return Ok(Interaction::Other);
    };
    let user = p.user.map(|u| u.id).filter(|u| !u.is_empty()).ok_or("the payload names no user")?;
    let message = p.container.and_then(|c| {
        let channel = c.channel_id.or(p.channel.map(|c| c.id))?;
        Some((channel, c.message_ts?))
    });
    Ok(Interaction::Click(Click { user, team: p.team.map(|t| t.id), verdict, approval_id: id.to_owned(), message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(json: &serde_json::Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new()).append_pair("payload", &json.to_string()).finish().into_bytes()
    }

    #[test]
    fn a_button_click_names_the_user_the_verdict_and_the_message() {
        let body = form(&serde_json::json!({
            "type": "block_actions", "user": {"id": "U1"}, "team": {"id": "T1"},
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
            "actions": [{"action_id": "cloakroom_deny:abc", "value": "abc"}]
        }));
        let Interaction::Click(c) = parse(&body).unwrap() else { panic!("not a click") };
        assert_eq!((c.user.as_str(), c.verdict, c.approval_id.as_str()), ("U1", Verdict::Deny, "abc"));
        assert_eq!(c.message, Some(("C1".into(), "1.2".into())));
        assert_eq!(c.team.as_deref(), Some("T1"));
    }

    #[test]
    fn other_interactions_and_malformed_bodies_are_not_clicks() {
        assert_eq!(parse(&form(&serde_json::json!({"type": "shortcut"}))).unwrap(), Interaction::Other);
        let two = serde_json::json!({"type": "block_actions", "user": {"id": "U1"},
            "actions": [{"action_id": "cloakroom_approve:a"}, {"action_id": "cloakroom_approve:b"}]});
        assert_eq!(parse(&form(&two)).unwrap(), Interaction::Other);
        assert!(parse(b"payload=%7Bnot json").is_err());
        assert!(parse(b"nothing=here").is_err());
        let anonymous = serde_json::json!({"type": "block_actions", "actions": [{"action_id": "cloakroom_approve:a"}]});
        assert!(parse(&form(&anonymous)).is_err());
    }
}
