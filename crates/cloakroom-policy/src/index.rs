//! Which built-in rules can match a call, found without looking at every rule.
//!
//! Every condition of a rule must hold for it to match, so a rule can only match a call
//! whose function's first segment it names (when every one of its patterns starts with a
//! literal segment: `payments`, `payments/**`, `tools/search`), and only a caller in one
//! of its `groups` (or, without groups, with one of its `subjects`). The index keeps each
//! rule under those keys twice over (by function, by caller) and a call looks at the
//! smaller of its two candidate lists, in configuration order, so the rules' order still
//! decides (docs/policy.md). A rule it cannot key, such as `functions = ["**"]` or no
//! caller condition, is a candidate for every call on that side.
//!
//! With 5,000 rules for one function, each for another group, a call evaluates the few
//! rules of its caller's groups instead of all 5,000 (docs/performance.md, "Cost per call").

use std::collections::HashMap;

use cloakroom_core::{first_segment, literal_first_segments};

use crate::{rule::Rule, PolicyInput};

/// Rule positions by function segment and by caller; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    by_function: HashMap<String, Vec<u32>>,
    any_function: Vec<u32>,
    by_group: HashMap<String, Vec<u32>>,
    by_subject: HashMap<String, Vec<u32>>,
    any_caller: Vec<u32>,
}

impl RuleIndex {
    pub(crate) fn new(rules: &[Rule]) -> Self {
        let mut index = Self::default();
        for (i, rule) in rules.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 rules");
            let patterns = rule.patterns();
            // A rule without `functions` matches every function.
            match literal_first_segments(patterns.iter().copied()).filter(|_| !patterns.is_empty()) {
                Some(segments) => file(&mut index.by_function, segments, i),
                None => index.any_function.push(i),
            }
            if !rule.groups().is_empty() {
                file(&mut index.by_group, rule.groups(), i);
            } else if !rule.subjects().is_empty() {
                file(&mut index.by_subject, rule.subjects(), i);
            } else {
                index.any_caller.push(i);
            }
        }
        index
    }

    /// The positions of every rule that can match `input`, ascending (a superset of the
    /// rules that do match: the caller still checks each).
    pub(crate) fn candidates(&self, input: &PolicyInput<'_>) -> Vec<u32> {
        let segment = first_segment(&input.call.function);
        let by_function = [self.by_function.get(segment).map(Vec::as_slice).unwrap_or(&[]), &self.any_function];
        let mut by_caller: Vec<&[u32]> = Vec::with_capacity(input.identity.groups.len() + 2);
        by_caller.extend(input.identity.groups.iter().filter_map(|g| self.by_group.get(g)).map(Vec::as_slice));
        by_caller.extend(self.by_subject.get(&input.identity.subject).map(Vec::as_slice));
        by_caller.push(&self.any_caller);
        let len = |lists: &[&[u32]]| lists.iter().map(|l| l.len()).sum::<usize>();
        if len(&by_function) <= len(&by_caller) {
            merge(&by_function)
        } else {
            merge(&by_caller)
        }
    }
}

/// Files rule `i` under each of `keys` (once per key, however often a key is repeated).
fn file(map: &mut HashMap<String, Vec<u32>>, keys: impl IntoIterator<Item = impl AsRef<str>>, i: u32) {
    for key in keys {
        let bucket = map.entry(key.as_ref().to_owned()).or_default();
        if bucket.last() != Some(&i) {
            bucket.push(i);
        }
    }
}

/// The union of ascending lists, ascending and without repeats.
fn merge(lists: &[&[u32]]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(lists.iter().map(|l| l.len()).sum());
    for l in lists {
        out.extend_from_slice(l);
    }
    if lists.iter().filter(|l| !l.is_empty()).count() > 1 {
        out.sort_unstable();
        out.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use cloakroom_core::{AuthMethod, Call, Effect, Identity, Protocol};
    use proptest::prelude::*;

    use super::*;
    use crate::RuleConfig;

    const FUNCTIONS: [&str; 12] = [
        "pay",
        "pay/*",
        "pay/**",
        "pay/refund",
        "tools",
        "tools/search",
        "*",
        "**",
        "p*",
        "*/search",
        "{pay,tools}",
        "t?ols/*",
    ];
    const NAMES: [&str; 6] = ["pay", "pay/refund", "pay/refund/partial", "tools", "tools/search", "other"];
    const GROUPS: [&str; 3] = ["a", "b", "c"];
    const SUBJECTS: [&str; 2] = ["alice", "bob"];

    fn rule_config() -> impl Strategy<Value = RuleConfig> {
        (
            proptest::sample::subsequence(FUNCTIONS.to_vec(), 0..3),
            proptest::sample::subsequence(GROUPS.to_vec(), 0..3),
            proptest::sample::subsequence(SUBJECTS.to_vec(), 0..2),
            prop_oneof![Just(Effect::Allow), Just(Effect::Deny)],
        )
            .prop_map(|(functions, groups, subjects, effect)| RuleConfig {
                name: String::new(),
                effect,
                functions: functions.into_iter().map(str::to_owned).collect(),
                groups: groups.into_iter().map(str::to_owned).collect(),
                subjects: subjects.into_iter().map(str::to_owned).collect(),
                source_cidrs: Vec::new(),
                methods: Vec::new(),
                arguments: Default::default(),
                approvers: Vec::new(),
                mode: Default::default(),
            })
    }

    proptest! {
        /// Every rule that matches a call is among the index's candidates, which are
        /// ascending (configuration order).
        #[test]
        fn candidates_hold_every_matching_rule(
            configs in proptest::collection::vec(rule_config(), 0..24),
            name in proptest::sample::select(NAMES.to_vec()),
            mcp in any::<bool>(),
            tools_call in any::<bool>(),
            groups in proptest::sample::subsequence(GROUPS.to_vec(), 0..3),
            subject in proptest::sample::select(SUBJECTS.to_vec()),
        ) {
            let rules: Vec<Rule> = configs
                .iter()
                .enumerate()
                .map(|(i, c)| Rule::compile(&RuleConfig { name: format!("r{i}"), ..c.clone() }, i).unwrap())
                .collect();
            let index = RuleIndex::new(&rules);
            let protocol = if mcp { Protocol::Mcp } else { Protocol::Http };
            let call = Call::new(name.to_owned(), protocol).with_detail(tools_call.then(|| "tools/call".to_owned()));
            let id = Identity::new(subject.to_owned(), "test".into(), AuthMethod::ApiKey)
                .with_groups(groups.into_iter().map(str::to_owned).collect());
            let input = PolicyInput::new(&id, &call);
            let candidates = index.candidates(&input);
            prop_assert!(candidates.windows(2).all(|w| w[0] < w[1]), "{candidates:?}");
            for (i, rule) in rules.iter().enumerate() {
                if rule.matches(&input) {
                    prop_assert!(candidates.contains(&(i as u32)), "rule {i} {:?} matches {name:?} but is no candidate", configs[i]);
                }
            }
        }
    }

    #[test]
    fn merge_is_an_ascending_union() {
        assert_eq!(merge(&[&[1, 4, 9], &[], &[2, 4, 10]]), vec![1, 2, 4, 9, 10]);
        assert_eq!(merge(&[&[3, 5]]), vec![3, 5]);
        assert!(merge(&[&[], &[]]).is_empty());
    }
}
