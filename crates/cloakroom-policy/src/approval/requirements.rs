//! The requirement algebra: which approver groups a call needs, and whether the people
//! who approved meet them.
//!
//! A call needs one approval per distinct group among every matching `approve` rule's
//! approvers and every used secret's `approvers`. Each requirement must be met by a
//! distinct person who is in that group and is not the requester. Whether a set of
//! approvers meets every requirement is a bipartite matching between requirements and
//! approvers (a person in two groups may meet either, but not both); the matching is
//! recomputed from the grants every time, so the order in which people approve does not
//! matter.
//!
//! ```
//! use cloakroom_policy::approval_requirements::{assign, Grant};
//!
//! let needs = vec!["finance".to_owned(), "security".to_owned()];
//! let bob = Grant::new("bob", "api_key", vec!["finance".into(), "security".into()]);
//! let carol = Grant::new("carol", "api_key", vec!["finance".into()]);
//! assert_eq!(assign(&needs, &[bob.clone()]), vec![Some(0), None]); // one person, one requirement
//! assert_eq!(assign(&needs, &[bob, carol]), vec![Some(1), Some(0)]); // carol: finance, bob: security
//! ```

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One approver group a call needs, and who met it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// The group whose member must approve.
    pub group: String,
    /// Whether a distinct approver meets it.
    pub met: bool,
    /// The subject of the approver who meets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met_by: Option<String>,
}

/// One person's approval of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The approver's subject.
    pub subject: String,
    /// The approver's issuer.
    pub issuer: String,
    /// The approver's groups, as far as they are requirement groups, when they approved.
    pub groups: Vec<String>,
    /// When they approved.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The reason they gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Grant {
    /// A grant by `subject` of `issuer`, a member of `groups`, now.
    pub fn new(subject: impl Into<String>, issuer: impl Into<String>, groups: Vec<String>) -> Self {
        Self { subject: subject.into(), issuer: issuer.into(), groups, at: OffsetDateTime::UNIX_EPOCH, reason: None }
    }
}

/// The distinct groups of `groups`, in first-seen order: the requirements of a call.
pub fn requirement_groups<'a>(groups: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in groups {
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

/// For each requirement, the index of the grant that meets it in a maximum matching
/// (one grant meets at most one requirement, and only one of its groups).
pub fn assign(requirements: &[String], grants: &[Grant]) -> Vec<Option<usize>> {
    // Kuhn's augmenting paths: sizes are a handful, so O(R·G·E) is nothing.
    let mut owner: Vec<Option<usize>> = vec![None; grants.len()];
    for r in 0..requirements.len() {
        let mut seen = vec![false; grants.len()];
        augment(r, requirements, grants, &mut owner, &mut seen);
    }
    let mut out = vec![None; requirements.len()];
    for (g, r) in owner.iter().enumerate() {
        if let Some(r) = r {
            out[*r] = Some(g);
        }
    }
    out
}

fn augment(r: usize, reqs: &[String], grants: &[Grant], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for (g, grant) in grants.iter().enumerate() {
        if seen[g] || !grant.groups.contains(&reqs[r]) {
            continue;
        }
        seen[g] = true;
        let free = match owner[g] {
            None => true,
            Some(other) => augment(other, reqs, grants, owner, seen),
        };
        if free {
            owner[g] = Some(r);
            return true;
        }
    }
    false
}

/// The requirements with who meets each, from a maximum matching of `grants`.
pub fn requirements(groups: &[String], grants: &[Grant]) -> Vec<Requirement> {
    let assigned = assign(groups, grants);
    groups
        .iter()
        .zip(assigned)
        .map(|(g, a)| Requirement { group: g.clone(), met: a.is_some(), met_by: a.map(|i| grants[i].subject.clone()) })
        .collect()
}

/// How many requirements `grants` meet at most.
pub fn met_count(groups: &[String], grants: &[Grant]) -> usize {
    assign(groups, grants).iter().filter(|a| a.is_some()).count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn g(subject: &str, groups: &[&str]) -> Grant {
        Grant::new(subject, "api_key", groups.iter().map(|s| (*s).to_owned()).collect())
    }

    fn reqs(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_person_meets_one_requirement_only() {
        let r = reqs(&["finance", "security"]);
        assert_eq!(met_count(&r, &[g("bob", &["finance", "security"])]), 1);
    }

    #[test]
    fn a_late_approver_can_take_over_a_requirement() {
        // bob meets finance first; carol can only meet finance; bob moves to security.
        let r = reqs(&["finance", "security"]);
        let grants = [g("bob", &["finance", "security"]), g("carol", &["finance"])];
        let out = requirements(&r, &grants);
        assert!(out.iter().all(|x| x.met));
        assert_eq!(out[0].met_by.as_deref(), Some("carol"));
        assert_eq!(out[1].met_by.as_deref(), Some("bob"));
    }

    #[test]
    fn two_members_of_the_same_group_do_not_meet_another_group() {
        let r = reqs(&["finance", "leads"]);
        assert_eq!(met_count(&r, &[g("a", &["finance"]), g("b", &["finance"])]), 1);
    }

    #[test]
    fn requirement_groups_are_a_set_union() {
        let rule = reqs(&["leads", "finance"]);
        let secret = reqs(&["finance", "security"]);
        assert_eq!(requirement_groups(rule.iter().chain(secret.iter())), reqs(&["leads", "finance", "security"]));
    }

    /// Brute force: is there an injective map requirements -> grants with membership?
    fn brute(reqs: &[String], grants: &[Grant]) -> usize {
        fn go(i: usize, reqs: &[String], grants: &[Grant], used: &mut Vec<bool>) -> usize {
            if i == reqs.len() {
                return 0;
            }
            let mut best = go(i + 1, reqs, grants, used); // leave requirement i unmet
            for (j, gr) in grants.iter().enumerate() {
                if !used[j] && gr.groups.contains(&reqs[i]) {
                    used[j] = true;
                    best = best.max(1 + go(i + 1, reqs, grants, used));
                    used[j] = false;
                }
            }
            best
        }
        go(0, reqs, grants, &mut vec![false; grants.len()])
    }

    proptest! {
        #[test]
        fn matching_is_maximum_and_valid(
            nreq in 0usize..5,
            grants in proptest::collection::vec(proptest::collection::vec(0usize..5, 0..4), 0..6),
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let r: Vec<String> = names[..nreq].iter().map(|s| (*s).to_owned()).collect();
            let gs: Vec<Grant> = grants
                .iter()
                .enumerate()
                .map(|(i, groups)| g(&format!("p{i}"), &groups.iter().map(|k| names[*k]).collect::<Vec<_>>()))
                .collect();
            let assigned = assign(&r, &gs);
            // Valid: each grant at most once, and only for a group it is in.
            let mut used = std::collections::HashSet::new();
            for (ri, a) in assigned.iter().enumerate() {
                if let Some(gi) = a {
                    prop_assert!(used.insert(*gi));
                    prop_assert!(gs[*gi].groups.contains(&r[ri]));
                }
            }
            // Maximum, and independent of the order people approved in.
            prop_assert_eq!(used.len(), brute(&r, &gs));
            let mut rev = gs.clone();
            rev.reverse();
            prop_assert_eq!(met_count(&r, &rev), used.len());
        }
    }
}
