//! Finding matches: the probes and their confirmation over the long patterns, the
//! short-pattern automaton, and [`Search`], the leftmost-longest union of those and of
//! every decoding view.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Matcher {
    /// The leftmost-longest long-pattern match starting at or after `pos`, ending by `end`.
    fn long_find(&self, hay: &[u8], pos: usize, end: usize) -> Option<RawMatch> {
        let long = self.long.as_ref()?;
        if let Some((ac, ids)) = &long.direct {
            return ac.find(Input::new(hay).span(pos..end)).map(|m| RawMatch {
                pattern: ids[m.pattern().as_usize()],
                start: m.start(),
                end: m.end(),
                view: 0,
            });
        }
        let s = long.filter.stride();
        let mut q = pos;
        let mut best: Option<RawMatch> = None;
        // Probe windows must end by `limit`; once a match is found, only probes whose
        // candidates could start before it (hit + 1 - s < best.start) are still looked at.
        let mut limit = end;
        while let Some((hit, cands)) = long.filter.next_hit(hay, q, limit) {
            // The window occurs at offset `o` of the candidates' patterns: an occurrence
            // may start at hit - o. Candidates come grouped by offset, highest first, so
            // starts are tried leftmost first; a group holds every pattern that can
            // occur at its start, longest first.
            let mut rest = cands.as_slice();
            while let Some(first) = rest.first() {
                let o = first.offset();
                let n = rest.iter().position(|c| c.offset() != o).unwrap_or(rest.len());
                let (group, tail) = rest.split_at(n);
                rest = tail;
                let Some(x) = hit.checked_sub(o) else { continue };
                if x < pos {
                    continue;
                }
                if best.is_some_and(|b| x >= b.start) {
                    break;
                }
                let found = if group.len() <= long.compare_max {
                    Self::longest_among(long, group, hay, x, end)
                } else {
                    Self::longest_at(long, hay, x, end)
                };
                if let Some(m) = found {
                    best = Some(m);
                    limit = end.min(m.start + s + Q - 2);
                    break;
                }
            }
            q = hit + s;
        }
        best
    }

    /// The longest of `group` (candidates sorted longest first) occurring at exactly
    /// `at` and ending by `end`, by comparing bytes.
    #[inline]
    fn longest_among(long: &LongSet, group: &[Cand], hay: &[u8], at: usize, end: usize) -> Option<RawMatch> {
        group.iter().find_map(|&c| {
            let (pattern, bytes) = long.filter.pattern(c);
            let stop = at + bytes.len();
            (stop <= end && hay[at..stop] == *bytes).then_some(RawMatch { pattern, start: at, end: stop, view: 0 })
        })
    }

    /// The longest long pattern occurring at exactly `at` (anchored Aho-Corasick).
    fn longest_at(long: &LongSet, hay: &[u8], at: usize, end: usize) -> Option<RawMatch> {
        let mut best: Option<RawMatch> = None;
        for (ac, ids) in &long.shards {
            if let Some(m) = ac.find(Input::new(hay).span(at..end).anchored(Anchored::Yes)) {
                if best.is_none_or(|b| m.end() > b.end) {
                    best = Some(RawMatch {
                        pattern: ids[m.pattern().as_usize()],
                        start: m.start(),
                        end: m.end(),
                        view: 0,
                    });
                }
            }
        }
        best
    }

    fn short_find(&self, hay: &[u8], pos: usize, end: usize) -> Option<RawMatch> {
        let short = self.short.as_ref()?;
        short.ac.find(Input::new(hay).span(pos..end)).map(|m| RawMatch {
            pattern: short.ids[m.pattern().as_usize()],
            start: m.start(),
            end: m.end(),
            view: 0,
        })
    }
}

/// Leftmost-longest search over the union of the long and short pattern sets and of
/// every decoding view, for non-decreasing start positions. Each set's last answer is
/// kept while still valid, so a match of one set never makes the others rescan. At the
/// same start the longest match wins; at the same span, the input's own bytes, then the
/// views in order.
pub(crate) struct Search<'m, 'h> {
    matcher: &'m Matcher,
    hay: &'h [u8],
    end: usize,
    last: bool,
    long: Option<Option<RawMatch>>,
    short: Option<Option<RawMatch>>,
    views: Vec<ViewSearch>,
}

impl<'m, 'h> Search<'m, 'h> {
    /// A search over the whole input `hay[..end]`, every view parsed from offset 0.
    pub(crate) fn new(matcher: &'m Matcher, hay: &'h [u8], end: usize) -> Self {
        let views = matcher.views.iter().map(|_| ViewSearch::new(0)).collect();
        Self { matcher, hay, end, last: true, long: None, short: None, views }
    }

    /// A search over a stream's buffer: `last` when `end` ends the body; view `k` is
    /// parsed from `syncs[k]`, a token boundary of its grammar.
    pub(crate) fn streaming(matcher: &'m Matcher, hay: &'h [u8], end: usize, last: bool, syncs: &[usize]) -> Self {
        let views = matcher.views.iter().enumerate().map(|(k, _)| ViewSearch::new(syncs[k])).collect();
        Self { matcher, hay, end, last, long: None, short: None, views }
    }

    /// The leftmost-longest match starting at or after `pos`.
    pub(crate) fn next_from(&mut self, pos: usize) -> Option<RawMatch> {
        let valid =
            |c: &Option<Option<RawMatch>>| matches!(c, Some(None)) || matches!(c, Some(Some(m)) if m.start >= pos);
        if !valid(&self.long) {
            self.long = Some(self.matcher.long_find(self.hay, pos, self.end));
        }
        if !valid(&self.short) {
            self.short = Some(self.matcher.short_find(self.hay, pos, self.end));
        }
        let mut best = match (self.long.flatten(), self.short.flatten()) {
            (Some(l), Some(s)) => {
                // Same start: the long pattern is the longer one.
                if s.start < l.start {
                    Some(s)
                } else {
                    Some(l)
                }
            }
            (l, s) => l.or(s),
        };
        for (k, (view, vs)) in self.matcher.views.iter().zip(&mut self.views).enumerate() {
            let target = &self.matcher.targets[view.target];
            if let Some(m) = vs.next_from(view, target, self.hay, self.end, self.last, pos, k as u8) {
                if best.is_none_or(|b| m.start < b.start || (m.start == b.start && m.end > b.end)) {
                    best = Some(m);
                }
            }
        }
        best
    }
}

/// Iterator returned by [`Matcher::find_iter`].
pub struct FindIter<'m, 'h> {
    pub(super) search: Search<'m, 'h>,
    pub(super) pos: usize,
}

impl fmt::Debug for FindIter<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FindIter").field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl Iterator for FindIter<'_, '_> {
    type Item = SecretMatch;

    fn next(&mut self) -> Option<SecretMatch> {
        let m = self.search.next_from(self.pos)?;
        self.pos = m.end;
        let matcher = self.search.matcher;
        let info = matcher.pattern_info(m.pattern);
        let encoding = match m.view.checked_sub(1).map(|k| matcher.views[usize::from(k)].grammar) {
            None | Some(Grammar::Base64Lines) => info.encoding,
            Some(g) => g.encoding(),
        };
        Some(SecretMatch { entry: info.entry as usize, encoding, range: m.start..m.end })
    }
}
