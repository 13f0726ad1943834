//! Function name patterns, shared by policy rules and secret bindings.
//!
//! A pattern is a glob over function names: `*` matches within one `/`-separated
//! segment, `**` matches across segments, `?` one character, `[abc]` a class.
//! So `payments/*` matches `payments/refund` but neither `payments` nor
//! `payments/refund/partial`; `payments/**` matches both of the latter two's
//! descendants; `*` matches every single-segment name and `**` matches every name.
//!
//! ```
//! use cloakroom_core::FunctionPatterns;
//! let p = FunctionPatterns::new(["payments", "payments/*"]).unwrap();
//! assert!(p.matches("payments"));
//! assert!(p.matches("payments/refund"));
//! assert!(!p.matches("payroll/refund"));
//! ```

use globset::{Glob, GlobBuilder, GlobMatcher};

/// One compiled function-name glob.
#[derive(Debug, Clone)]
pub struct FunctionPattern {
    source: String,
    fast: Fast,
}

/// The shapes most patterns have, matched without the glob's regex (policy rules match
/// every call against every rule's patterns). Same answers as the glob: tested below.
///
/// Only [`Fast::Glob`] holds a compiled matcher: a glob's regex takes kilobytes, and a
/// vault of 100,000 secrets bound to literal names would otherwise hold one per binding
/// pattern that is never run (docs/performance.md, "Cost per call").
#[derive(Debug, Clone)]
enum Fast {
    /// No glob syntax: the name itself.
    Exact,
    /// `<literal>/**`: every name under `<literal>/`.
    Subtree(String),
    /// Anything else: the glob.
    Glob(GlobMatcher),
}

fn is_literal(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\'))
}

/// The first `/`-separated segment of a function name (`payments` of `payments/refund`).
pub fn first_segment(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// The first segment every name a pattern matches starts with, when the pattern spells
/// it out: `payments` of `payments`, `payments/**` and `payments/{a,b}`; `None` for `*`,
/// `**`, `pay*/x`, `{a,b}/x` or `{a/b,c}`. Indexes of rules and bindings key on it: a
/// pattern with a literal first segment can only match names with that first segment.
pub fn literal_first_segment(pattern: &str) -> Option<&str> {
    let first = first_segment(pattern);
    (!first.is_empty() && is_literal(first)).then_some(first)
}

/// The distinct literal first segments of `patterns`, sorted; `None` when one of them
/// has none (see [`literal_first_segment`]). The key set under which an index files a
/// rule or binding with these patterns; an empty list gives an empty set.
pub fn literal_first_segments<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Option<Vec<&'a str>> {
    let mut segments = patterns.into_iter().map(literal_first_segment).collect::<Option<Vec<_>>>()?;
    segments.sort_unstable();
    segments.dedup();
    Some(segments)
}

impl Fast {
    fn of(pattern: &str, glob: &Glob) -> Self {
        if is_literal(pattern) {
            return Self::Exact;
        }
        match pattern.strip_suffix("/**") {
            Some(prefix) if !prefix.is_empty() && is_literal(prefix) => Self::Subtree(format!("{prefix}/")),
            _ => Self::Glob(glob.compile_matcher()),
        }
    }
}

/// A pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid function pattern {pattern:?}: {reason}")]
pub struct FunctionPatternError {
    /// The pattern as written.
    pub pattern: String,
    /// Why it does not compile.
    pub reason: String,
}

/// The glob a pattern means: `*` stops at `/`, `\\` escapes.
fn glob(pattern: &str) -> Result<Glob, FunctionPatternError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| FunctionPatternError { pattern: pattern.to_owned(), reason: e.kind().to_string() })
}

impl FunctionPattern {
    /// Compiles one pattern.
    pub fn new(pattern: &str) -> Result<Self, FunctionPatternError> {
        let glob = glob(pattern)?;
        Ok(Self { source: pattern.to_owned(), fast: Fast::of(pattern, &glob) })
    }

    /// Whether `function` matches.
    pub fn matches(&self, function: &str) -> bool {
        match &self.fast {
            Fast::Exact => function == self.source,
            Fast::Subtree(prefix) => function.starts_with(prefix.as_str()),
            Fast::Glob(matcher) => matcher.is_match(function),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A list of patterns; matches when any of them does. An empty list matches nothing.
#[derive(Debug, Clone, Default)]
pub struct FunctionPatterns(Vec<FunctionPattern>);

impl FunctionPatterns {
    /// Compiles every pattern; the first bad one is the error.
    pub fn new<I, S>(patterns: I) -> Result<Self, FunctionPatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        patterns.into_iter().map(|p| FunctionPattern::new(p.as_ref())).collect::<Result<Vec<_>, _>>().map(Self)
    }

    /// Whether any pattern matches `function`.
    pub fn matches(&self, function: &str) -> bool {
        self.0.iter().any(|p| p.matches(function))
    }

    /// The first pattern that matches `function`.
    pub fn first_match(&self, function: &str) -> Option<&FunctionPattern> {
        self.0.iter().find(|p| p.matches(function))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns.
    pub fn iter(&self) -> impl Iterator<Item = &FunctionPattern> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_first_segments_of_patterns() {
        assert_eq!(literal_first_segment("payments"), Some("payments"));
        assert_eq!(literal_first_segment("payments/**"), Some("payments"));
        assert_eq!(literal_first_segment("tools/{a,b}"), Some("tools"));
        assert_eq!(literal_first_segment("*"), None);
        assert_eq!(literal_first_segment("**"), None);
        assert_eq!(literal_first_segment("pay*/x"), None);
        assert_eq!(literal_first_segment("{a,b}/x"), None);
        assert_eq!(literal_first_segment("{a/b,c}"), None);
        assert_eq!(literal_first_segment("[ab]"), None);
        assert_eq!(literal_first_segment(""), None);
        assert_eq!(literal_first_segments(["pay/**", "tools", "pay"]), Some(vec!["pay", "tools"]));
        assert_eq!(literal_first_segments(["pay", "*"]), None);
        assert_eq!(literal_first_segments([]), Some(vec![]));
    }

    #[test]
    fn star_stays_within_a_segment() {
        let p = FunctionPattern::new("payments/*").unwrap();
        assert!(p.matches("payments/refund"));
        assert!(!p.matches("payments"));
        assert!(!p.matches("payments/refund/partial"));
        let p = FunctionPattern::new("payments/**").unwrap();
        assert!(p.matches("payments/refund/partial"));
        let p = FunctionPattern::new("*").unwrap();
        assert!(p.matches("echo"));
        assert!(!p.matches("echo/tool"));
        assert!(FunctionPattern::new("**").unwrap().matches("echo/tool"));
    }

    #[test]
    fn fast_paths_agree_with_the_glob() {
        let patterns =
            ["payments", "payments/**", "a", "a/**", "a/b/**", "a.b/**", "pay ments/**", "é/**", "a/*", "**"];
        let names = [
            "",
            "a",
            "a/",
            "a/b",
            "a/b/",
            "a/b/c",
            "a//",
            "a//b",
            "ab",
            "ab/c",
            "b/a",
            "a/b/c/d",
            "payments",
            "payments/",
            "payments/refund",
            "payments/refund/partial",
            "paymentsx",
            "Payments",
            "a.b",
            "a.b/c",
            "axb/c",
            "pay ments/x",
            "é",
            "é/x",
            "/a",
            "/",
            "//",
        ];
        for p in patterns {
            let fp = FunctionPattern::new(p).unwrap();
            let reference = glob(p).unwrap().compile_matcher();
            for n in names {
                assert_eq!(fp.matches(n), reference.is_match(n), "pattern {p:?} on {n:?}");
            }
        }
        assert!(matches!(FunctionPattern::new("payments").unwrap().fast, Fast::Exact));
        assert!(matches!(FunctionPattern::new("payments/**").unwrap().fast, Fast::Subtree(_)));
        assert!(matches!(FunctionPattern::new("pay*/**").unwrap().fast, Fast::Glob(_)));
    }

    #[test]
    fn bad_pattern_names_itself() {
        let err = FunctionPattern::new("payments/[").unwrap_err();
        assert_eq!(err.pattern, "payments/[");
        assert!(err.to_string().contains("payments/["));
    }

    #[test]
    fn empty_list_matches_nothing() {
        assert!(!FunctionPatterns::default().matches("anything"));
    }
}
