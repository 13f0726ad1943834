//! Finding placeholder-shaped strings in bytes.
//!
//! This is the seam between the detokenizer and the matching engine. A placeholder has a
//! fixed shape (`cloak_` + 26 lowercase base32 characters), so the scan looks for the
//! prefix with `memchr::memmem` and checks the 26 characters after it; the catalog then
//! looks the candidate up in a hash map. The cost is linear in the input and does not
//! grow with the number of secrets in the catalog.

use std::{ops::Range, sync::LazyLock};

use cloakroom_core::{PLACEHOLDER_BODY_LEN, PLACEHOLDER_LEN, PLACEHOLDER_PREFIX};
use memchr::memmem::Finder;

static PREFIX: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(PLACEHOLDER_PREFIX.as_bytes()));

fn is_base32_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)
}

/// Byte ranges of every placeholder-shaped string in `haystack`, left to right, not
/// overlapping.
pub(crate) fn candidates(haystack: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < haystack.len() {
            let at = pos + PREFIX.find(&haystack[pos..])?;
            let body = at + PLACEHOLDER_PREFIX.len();
            if haystack.len() >= at + PLACEHOLDER_LEN
                && haystack[body..body + PLACEHOLDER_BODY_LEN].iter().all(|&b| is_base32_lower(b))
            {
                pos = at + PLACEHOLDER_LEN;
                return Some(at..at + PLACEHOLDER_LEN);
            }
            pos = at + 1;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_shaped_strings_only() {
        let p = "cloak_abcdefghijklmnopqrstuvwxyz";
        let text = format!("x{p}y cloak_short cloak_ABCDEFGHIJKLMNOPQRSTUVWXYZ {p}");
        let found: Vec<_> = candidates(text.as_bytes()).collect();
        assert_eq!(found, vec![1..33, text.len() - 32..text.len()]);
        assert_eq!(candidates(b"cloak_").count(), 0);
        assert_eq!(candidates(b"").count(), 0);
    }

    #[test]
    fn a_prefix_inside_a_false_candidate_is_still_found() {
        let text = b"cloak_cloak_abcdefghijklmnopqrstuvwxyz";
        assert_eq!(candidates(text).collect::<Vec<_>>(), vec![6..38]);
    }
}
