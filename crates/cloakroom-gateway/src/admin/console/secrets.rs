//! The secrets page: names, placeholders, bindings and origin (never values); put a
//! secret through a form; delete one. Admin-only, the same operations as the JSON API
//! (`secrets:list`, `secrets:put` on the name, `secrets:delete` on the name).
//!
//! The value field is `type=password autocomplete=off`, and the value is never echoed:
//! a refused form is shown again with its other fields and an empty value field, and no
//! message quotes what was sent.

use cloakroom_core::{Error, ErrorCode, Secret};
use cloakroom_identity::Operation;
use cloakroom_vault::BindingSpec;
use http::{Response, StatusCode};
use maud::html;

use super::{form::Form, layout, see_other, Signed};
use crate::{admin::respond::param, forward::GatewayBody, Gateway};

/// What the page says after a put or delete.
pub(super) enum Outcome<'f> {
    /// Refused: the message, and the form (its value is not shown again).
    Refused(String, &'f Form),
}

/// `GET /console/secrets`.
pub(super) async fn page(
    gateway: &Gateway,
    signed: &Signed<'_>,
    outcome: Option<Outcome<'_>>,
) -> Result<Response<GatewayBody>, Error> {
    signed.caller.authorize_admin(Operation::new(Operation::SECRETS_LIST))?;
    let nav = signed.nav();
    let list = gateway.catalog().list();
    // What a put or delete redirected here with: a name only. The message is built
    // from the catalog, so a crafted link cannot show a placeholder that is not real.
    let done = match (param(&signed.query, "stored"), param(&signed.query, "deleted")) {
        (Some(n), _) => list
            .iter()
            .find(|s| s.name == n)
            .map(|s| format!("Stored {}; its placeholder is {}", s.name, s.placeholder.as_str())),
        (None, Some(n)) => Some(format!("Deleted the value of {n}")),
        _ => None,
    };
    let (status, refused, kept) = match &outcome {
        Some(Outcome::Refused(m, f)) => (StatusCode::BAD_REQUEST, Some(m.as_str()), Some(*f)),
        None => (StatusCode::OK, None, None),
    };
    let keep = |n: &str| kept.and_then(|f| f.get(n)).unwrap_or("").to_owned();
    let body = html! {
        @if let Some(d) = done { p.notice { (d) } }
        @if let Some(m) = refused { p.error { (m) } }
        table.secrets {
            thead { tr { th { "Name" } th { "Placeholder" } th { "Binding" } th { "Origin" } th { "Value" } th {} } }
            tbody { @for s in &list {
                tr {
                    td { (s.name) }
                    td { code { (s.placeholder.as_str()) } }
                    td { @if let Some(b) = &s.binding {
                            "functions " code { (b.functions.join(", ")) } br;
                            "locations " code { (b.locations.join(", ")) }
                            @if !b.groups.is_empty() { br; "groups " (b.groups.join(", ")) }
                            @if !b.approvers.is_empty() { br; "approvers " (b.approvers.join(", ")) }
                            @if let Some(e) = b.expires { br; "expires " (super::approvals::rfc3339(e)) }
                         } @else { span.muted { "unbound" } } }
                    td { (serde_json::to_value(s.origin).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                    td { @if s.has_value { "stored" } @else { span.muted { "none" } } }
                    td { @if s.has_value {
                        form.delete method="post" action={ "/console/secrets/" (urlencode(&s.name)) "/delete" }
                            data-confirm={ "Delete the value of " (s.name) "?" } {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            button.deny type="submit" { "Delete" }
                        }
                    } }
                }
            } }
        }
        h2 { "Put a secret" }
        form.card.put method="post" action="/console/secrets" autocomplete="off" {
            input type="hidden" name="csrf" value=(nav.csrf);
            label { "Name" input name="name" required value=(keep("name")); }
            // Never pre-filled: a value is typed, sent once and forgotten by the page.
            label { "Value" input type="password" name="value" autocomplete="off" required; }
            label { "Functions (comma-separated globs)" input name="functions" value=(keep("functions")); }
            label { "Locations (header:NAME, query:NAME, json:/pointer, body)" input name="locations" value=(keep("locations")); }
            label { "Groups" input name="groups" value=(keep("groups")); }
            label { "Approvers" input name="approvers" value=(keep("approvers")); }
            p.muted { "Leave functions and locations empty to keep the binding declared in the configuration." }
            button type="submit" { "Put" }
        }
    };
    Ok(layout::html(status, layout::page("Secrets", Some(&nav), body)))
}

/// `POST /console/secrets`: `name`, `value`, and a binding from `functions`,
/// `locations`, `groups`, `approvers` (none of them: the configured binding, if any).
pub(super) async fn put(gateway: &Gateway, signed: &Signed<'_>) -> Result<Response<GatewayBody>, Error> {
    let f = &signed.form;
    let Some(name) = f.text("name") else {
        signed.caller.authorize_admin(Operation::new(Operation::SECRETS_PUT))?;
        return page(gateway, signed, Some(Outcome::Refused("A secret needs a name.".into(), f))).await;
    };
    signed.caller.authorize_admin(Operation::new(Operation::SECRETS_PUT).secret(name))?;
    let Some(value) = f.get("value").filter(|v| !v.is_empty()) else {
        return page(gateway, signed, Some(Outcome::Refused("A secret needs a value.".into(), f))).await;
    };
    let (functions, locations) = (f.list("functions"), f.list("locations"));
    let (groups, approvers) = (f.list("groups"), f.list("approvers"));
    let binding = if functions.is_empty() && locations.is_empty() && groups.is_empty() && approvers.is_empty() {
        None
    } else {
        Some(BindingSpec { functions, locations, groups, approvers, ..BindingSpec::default() })
    };
    match gateway.catalog().put(name, Secret::from(value.to_owned()), binding).await {
        Ok(_) => Ok(see_other(&format!("/console/secrets?stored={}", urlencode(name)))),
        // The catalog's messages name the secret and the binding, never the value.
        Err(e) => {
            let e = e.to_error();
            if matches!(e.code, ErrorCode::BadRequest | ErrorCode::Conflict) {
                page(gateway, signed, Some(Outcome::Refused(e.message, f))).await
            } else {
                Err(e)
            }
        }
    }
}

/// `POST /console/secrets/<name>/delete`.
pub(super) async fn delete(gateway: &Gateway, signed: &Signed<'_>, name: &str) -> Result<Response<GatewayBody>, Error> {
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned();
    signed.caller.authorize_admin(Operation::new(Operation::SECRETS_DELETE).secret(&name))?;
    if !gateway.catalog().delete(&name).await.map_err(|e| e.to_error())? {
        return Err(Error::new(ErrorCode::NotFound, format!("no value is stored for secret {name:?}")));
    }
    Ok(see_other(&format!("/console/secrets?deleted={}", urlencode(&name))))
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
