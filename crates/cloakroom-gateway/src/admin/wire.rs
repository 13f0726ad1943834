//! From the stores' types to the admin API's wire types ([`cloakroom_api`]) and back.
//!
//! The stores keep their own types (with what they need to store and compare); what an
//! endpoint answers is the wire type, built here, so the contract the CLI reads is the
//! one place a field is added or renamed. Each conversion names every field, so a field
//! added to a store's type does not reach the wire unnoticed.

use cloakroom_api as api;

use cloakroom_core::{Error, ErrorCode};
use humantime_serde::re::humantime;

/// A window's `{count, period}` as the wire (and the stores) write it (`"1h"`).
fn uses_per(p: cloakroom_vault::UsesPer) -> api::UsesPer {
    api::UsesPer::new(p.count, humantime::format_duration(p.period).to_string())
}

/// A binding as stored, as the wire shows it.
pub(super) fn binding(b: cloakroom_vault::BindingSpec) -> api::BindingSpec {
    let cloakroom_vault::BindingSpec {
        functions,
        locations,
        groups,
        approvers,
        expires,
        max_uses,
        max_uses_per,
        budget_scope,
    } = b;
    let scope = match budget_scope {
        cloakroom_vault::BudgetScope::Secret => None,
        cloakroom_vault::BudgetScope::Caller => Some(api::BudgetScope::Caller),
    };
    api::BindingSpec::new(functions, locations)
        .with_groups(groups)
        .with_approvers(approvers)
        .with_expires(expires)
        .with_budget(max_uses, max_uses_per.map(uses_per), scope)
}

/// A binding from the wire, for the catalog (which compiles and checks it); a period
/// or scope that does not parse is `bad_request`.
pub(super) fn binding_spec(b: api::BindingSpec) -> Result<cloakroom_vault::BindingSpec, Error> {
    let bad = |what: String| Error::new(ErrorCode::BadRequest, what);
    let max_uses_per = match b.max_uses_per {
        Some(p) => Some(cloakroom_vault::UsesPer {
            count: p.count,
            period: humantime::parse_duration(&p.period).map_err(|_| {
                bad(format!("max_uses_per.period {:?} is not a duration such as \"30s\" or \"1h\"", p.period))
            })?,
        }),
        None => None,
    };
    let budget_scope = match b.budget_scope {
        None | Some(api::BudgetScope::Secret) => cloakroom_vault::BudgetScope::Secret,
        Some(api::BudgetScope::Caller) => cloakroom_vault::BudgetScope::Caller,
        Some(other) => return Err(bad(format!("budget_scope {:?} is not \"secret\" or \"caller\"", other.as_str()))),
    };
    Ok(cloakroom_vault::BindingSpec {
        functions: b.functions,
        locations: b.locations,
        groups: b.groups,
        approvers: b.approvers,
        expires: b.expires,
        max_uses: b.max_uses,
        max_uses_per,
        budget_scope,
    })
}

/// One secret of `GET /v1/secrets`, with its uses when its binding has a budget.
pub(super) fn secret(s: cloakroom_vault::SecretInfo, uses: Option<cloakroom_vault::BudgetUses>) -> api::SecretSummary {
    let cloakroom_vault::SecretInfo { name, placeholder, binding: spec, origin, has_value } = s;
    let origin = match origin {
        cloakroom_vault::Origin::Config => api::SecretOrigin::Config,
        cloakroom_vault::Origin::Api => api::SecretOrigin::Api,
    };
    let limits = spec.as_ref().map(|b| (b.max_uses, b.max_uses_per));
    let uses = uses.map(|u| {
        let cloakroom_vault::BudgetUses { total, window_count, window_resets_at } = u;
        let resets_at = window_resets_at
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
        let (max_uses, max_uses_per) = limits.unwrap_or_default();
        api::SecretUses::new(total)
            .with_window(window_count, resets_at)
            .with_limits(max_uses, max_uses_per.map(uses_per))
    });
    api::SecretSummary::new(name, placeholder.as_str(), spec.map(binding), origin, has_value).with_uses(uses)
}

fn approval_state(s: cloakroom_policy::ApprovalState) -> api::ApprovalState {
    use cloakroom_policy::ApprovalState as S;
    match s {
        S::Pending => api::ApprovalState::Pending,
        S::Approved => api::ApprovalState::Approved,
        S::Denied => api::ApprovalState::Denied,
        S::Expired => api::ApprovalState::Expired,
        S::Used => api::ApprovalState::Used,
    }
}

fn scope(s: cloakroom_core::CallScope) -> api::CallScope {
    let cloakroom_core::CallScope {
        issuer,
        subject,
        function,
        method,
        path,
        query,
        content_type,
        placeholders,
        body_sha256,
    } = s;
    let mut out = api::CallScope::new(issuer, subject, function);
    out.method = method;
    out.path = path;
    out.query = query;
    out.content_type = content_type;
    out.placeholders =
        placeholders.into_iter().map(|p| api::PlaceholderUse::new(p.placeholder, p.secret, p.location)).collect();
    out.body_sha256 = body_sha256;
    out
}

/// An approval as approvers and the CLI see it.
pub(super) fn approval(a: cloakroom_policy::Approval) -> api::Approval {
    let cloakroom_policy::Approval {
        id,
        requester,
        function,
        digest,
        scope: call_scope,
        arguments,
        call_id,
        rule,
        why,
        created_at,
        expires_at,
        approvers,
        requirements,
        grants,
        state,
        decided_by,
        decided_at,
        reason,
        used_at,
        used_by_call,
        revision,
    } = a;
    let requester = api::Requester::new(requester.subject, requester.issuer, requester.groups);
    let mut out = api::Approval::new(id, requester, function, created_at, expires_at, approval_state(state));
    out.digest = digest;
    out.scope = call_scope.map(scope);
    out.arguments = arguments;
    out.call_id = call_id;
    out.rule = rule;
    out.why = why;
    out.approvers = approvers;
    out.requirements = requirements
        .into_iter()
        .map(|r| {
            let mut wire = api::Requirement::new(r.group, r.met_by);
            wire.met = r.met;
            wire
        })
        .collect();
    out.grants = grants
        .into_iter()
        .map(|g| {
            let mut wire = api::Grant::new(g.subject, g.issuer, g.groups, g.at);
            wire.reason = g.reason;
            wire
        })
        .collect();
    out.decided_by = decided_by;
    out.decided_at = decided_at;
    out.reason = reason;
    out.used_at = used_at;
    out.used_by_call = used_by_call;
    out.revision = revision;
    out
}

/// The report of `GET /v1/audit/verify`.
pub(super) fn verify_report(r: cloakroom_audit::VerifyReport) -> api::VerifyReport {
    use cloakroom_audit::BreakKind as K;
    let chains = r
        .chains
        .into_iter()
        .map(|c| {
            let first_break = c.first_break.map(|b| {
                let kind = match b.kind {
                    K::Altered { detail } => api::BreakKind::Altered { detail },
                    K::Removed { from, to } => api::BreakKind::Removed { from, to },
                    K::Inserted { detail } => api::BreakKind::Inserted { detail },
                    K::Reordered { expected, found } => api::BreakKind::Reordered { expected, found },
                };
                api::ChainBreak::new(b.position, b.expected_seq, kind)
            });
            api::ChainReport::new(c.chain_id, c.records, c.head_seq, c.head_hash, first_break)
        })
        .collect();
    api::VerifyReport::new(chains)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_survives_the_wire_both_ways() {
        let stored = cloakroom_vault::BindingSpec {
            functions: vec!["payments/*".into()],
            locations: vec!["header:x-api-key".into()],
            groups: vec!["agents".into()],
            approvers: vec!["leads".into()],
            expires: Some(time::macros::datetime!(2030-01-01 0:00 UTC)),
            max_uses: Some(10),
            max_uses_per: Some(cloakroom_vault::UsesPer { count: 100, period: std::time::Duration::from_secs(3600) }),
            budget_scope: cloakroom_vault::BudgetScope::Caller,
        };
        assert_eq!(binding_spec(binding(stored.clone())).unwrap(), stored);
        // Written the same way as the stores write it.
        assert_eq!(serde_json::to_value(binding(stored.clone())).unwrap(), serde_json::to_value(&stored).unwrap());
    }

    #[test]
    fn an_approval_is_written_as_the_store_writes_it() {
        let mut scope = cloakroom_core::CallScope {
            issuer: "biscuit".into(),
            subject: "agent-7".into(),
            function: "refunds".into(),
            method: "POST".into(),
            path: "/fn/refunds".into(),
            query: String::new(),
            content_type: Some("application/json".into()),
            placeholders: vec![cloakroom_core::PlaceholderUse::new("cloak_x", Some("k"), "body")],
            body_sha256: "ab".into(),
        };
        scope.normalize();
        let created = time::macros::datetime!(2026-11-25 21:00 UTC);
        let a = cloakroom_policy::Approval {
            id: "ap-1".into(),
            requester: cloakroom_policy::Requester {
                subject: "agent-7".into(),
                issuer: "biscuit".into(),
                groups: vec!["agents".into()],
            },
            function: "refunds".into(),
            digest: scope.digest(),
            scope: Some(scope),
            arguments: serde_json::json!({"amount": 5000}),
            call_id: Some("c1".into()),
            rule: Some("refunds need a lead".into()),
            why: None,
            created_at: created,
            expires_at: created + time::Duration::minutes(15),
            approvers: vec!["leads".into(), "security".into()],
            requirements: vec![
                cloakroom_policy::Requirement { group: "leads".into(), met: true, met_by: Some("fin-lead".into()) },
                cloakroom_policy::Requirement { group: "security".into(), met: false, met_by: None },
            ],
            grants: vec![cloakroom_policy::Grant {
                reason: Some("fine".into()),
                at: created,
                ..cloakroom_policy::Grant::new("fin-lead", "biscuit", vec!["leads".into()])
            }],
            state: cloakroom_policy::ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            reason: None,
            used_at: None,
            used_by_call: None,
            revision: 2,
        };
        assert_eq!(serde_json::to_value(approval(a.clone())).unwrap(), serde_json::to_value(&a).unwrap());
    }

    #[test]
    fn a_verify_report_is_written_as_the_audit_crate_writes_it() {
        use cloakroom_audit::{BreakKind, ChainBreak, ChainReport, VerifyReport};
        let chain = |id: &str, kind: Option<BreakKind>| ChainReport {
            chain_id: id.into(),
            records: 9,
            head_seq: 4,
            head_hash: "h".into(),
            first_break: kind.map(|kind| ChainBreak { position: 4, expected_seq: 5, kind }),
        };
        let report = VerifyReport {
            chains: vec![
                chain("a", None),
                chain("b", Some(BreakKind::Altered { detail: "hash".into() })),
                chain("c", Some(BreakKind::Removed { from: 5, to: 6 })),
                chain("d", Some(BreakKind::Inserted { detail: "dup".into() })),
                chain("e", Some(BreakKind::Reordered { expected: 5, found: 7 })),
            ],
        };
        let wire = verify_report(report.clone());
        assert!(!wire.ok);
        let v = serde_json::to_value(&wire).unwrap();
        assert_eq!(v["chains"], serde_json::to_value(&report.chains).unwrap());
    }
}
