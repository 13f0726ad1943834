//! Built-in detectors: secrets the vault does not know, recognised by their shape.
//!
//! Each detector is a literal prefix (`AKIA`, `ghp_`, `xoxb-`, `sk_live_`,
//! `-----BEGIN`, `eyJ`) and an anchored regex over a bounded window after it. A literal
//! finder (Aho-Corasick) locates candidate starts; the regex decides. Because every
//! regex is a literal followed by greedy runs of character classes (or, for PEM blocks,
//! needs its whole window), a decision made on a partial stream never changes when more
//! bytes arrive: a stream holds back only from a candidate start it cannot decide yet,
//! at most one window. Matches are replaced by `[REDACTED:<kind>]`.
//!
//! Token detectors also require a boundary: the byte before and the byte after the token
//! may not be token characters (an `AKIA…` inside a longer identifier is not a key).
//!
//! ```
//! use cloakroom_mask::{MaskOptions, Matcher};
//! let matcher = Matcher::build([], &MaskOptions::default()).unwrap();
//! let out = matcher.replace(b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n").output;
//! assert_eq!(out, b"aws_access_key_id = [REDACTED:aws_access_key_id]\n");
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use bytes::Bytes;
use regex::bytes::{Regex, RegexBuilder};

use crate::stream::Out;

/// The kinds the default detectors report, as they appear in `[REDACTED:<kind>]`.
pub const DETECTOR_KINDS: [&str; 6] =
    ["aws_access_key_id", "github_token", "slack_token", "stripe_live_key", "private_key", "jwt"];

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn base64url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

struct Detector {
    kind: &'static str,
    literals: &'static [&'static str],
    re: Regex,
    /// The longest match plus one byte.
    window: usize,
    /// Token characters: the bytes around a match may not be one of these.
    token: Option<fn(u8) -> bool>,
    /// The regex can prefer a longer alternative once more bytes arrive: decide only
    /// with the whole window (or the end of the stream) in view.
    full_window: bool,
    replacement: Bytes,
}

/// The compiled set of built-in detectors.
pub(crate) struct Detectors {
    list: Vec<Detector>,
    starts: AhoCorasick,
    literals: Vec<&'static str>,
    max_literal: usize,
}

enum Decision {
    Match { end: usize, detector: usize },
    NoMatch,
    Undecided,
}

fn detector(
    kind: &'static str,
    literals: &'static [&'static str],
    re: &str,
    window: usize,
    token: Option<fn(u8) -> bool>,
    full_window: bool,
) -> Detector {
    let re = RegexBuilder::new(re).size_limit(64 << 20).build().expect("built-in detector regex compiles");
    Detector { kind, literals, re, window, token, full_window, replacement: Bytes::from(format!("[REDACTED:{kind}]")) }
}

// === impl Detectors ===

impl Detectors {
    /// AWS access key ids, GitHub tokens, Slack tokens, Stripe live keys, PEM private
    /// key blocks and JWTs.
    pub(crate) fn default_set() -> Self {
        let list = vec![
            detector(
                "aws_access_key_id",
                &["AKIA", "ASIA", "ABIA", "ACCA"],
                r"^(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
                21,
                Some(alnum),
                false,
            ),
            detector(
                "github_token",
                &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
                r"^(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82,251})",
                264,
                Some(alnum_underscore),
                false,
            ),
            detector(
                "slack_token",
                &["xoxb-", "xoxp-", "xoxa-", "xoxe-", "xoxo-", "xoxr-", "xoxs-"],
                r"^xox[bpaeors]-[0-9]{6,20}-[A-Za-z0-9-]{8,200}",
                227,
                Some(alnum_dash),
                false,
            ),
            detector(
                "stripe_live_key",
                &["sk_live_", "rk_live_"],
                r"^[sr]k_live_[A-Za-z0-9]{24,247}",
                256,
                Some(alnum_underscore),
                false,
            ),
            detector(
                "private_key",
                &["-----BEGIN"],
                r"(?s-u)^-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----(?:.{0,8192}?-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\r\n\t :,\-]{0,8192})",
                8192 + 2 * 72 + 1,
                None,
                true,
            ),
            detector(
                "jwt",
                &["eyJ"],
                r"^eyJ[A-Za-z0-9_-]{5,2048}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,2048}",
                2048 + 8192 + 2048 + 9,
                Some(base64url_char),
                false,
            ),
        ];
        let literals: Vec<&'static str> = list.iter().flat_map(|d| d.literals.iter().copied()).collect();
        let starts = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&literals)
            .expect("detector literals compile");
        let max_literal = literals.iter().map(|l| l.len()).max().unwrap_or(1);
        Self { list, starts, literals, max_literal }
    }

    /// The default set, compiled once per process (the PEM and JWT regexes take a few
    /// milliseconds to compile; matchers are rebuilt on every secret change).
    pub(crate) fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<Detectors>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(Self::default_set())).clone()
    }

    /// Masks a whole haystack in one go.
    pub(crate) fn replace_all(&self, hay: &[u8]) -> (Vec<u8>, BTreeMap<&'static str, u64>) {
        let mut state = DetectState::default();
        let mut out = Out::default();
        state.push(self, Bytes::copy_from_slice(hay), true, &mut out);
        (out.finish().concat(), state.kinds)
    }

    /// Whether [`replace_all`](Self::replace_all) would replace anything in `hay`: the
    /// same search, stopped at its first match, without building the output.
    pub(crate) fn finds(&self, hay: &[u8]) -> bool {
        let mut from = 0;
        while let Some((y, decision)) = self.next_candidate(hay, from, |y| y.checked_sub(1).map(|p| hay[p]), true) {
            if let Decision::Match { .. } = decision {
                return true;
            }
            from = y + 1;
        }
        false
    }

    /// The next candidate start at or after `from` (a literal found by the Aho-Corasick
    /// finder) and the regexes' decision there; `prev(y)` is the byte before `y`, the
    /// left boundary. `None` when no literal starts in `buf[from..]`.
    fn next_candidate(
        &self,
        buf: &[u8],
        from: usize,
        prev: impl Fn(usize) -> Option<u8>,
        last: bool,
    ) -> Option<(usize, Decision)> {
        if from >= buf.len() {
            return None;
        }
        let y = self.starts.find(Input::new(buf).span(from..buf.len()))?.start();
        Some((y, self.decide(buf, y, prev(y), last)))
    }

    fn decide(&self, buf: &[u8], y: usize, prev: Option<u8>, last: bool) -> Decision {
        let n = buf.len();
        for (i, d) in self.list.iter().enumerate() {
            if !d.literals.iter().any(|l| buf[y..].starts_with(l.as_bytes())) {
                continue;
            }
            if let (Some(token), Some(p)) = (d.token, prev) {
                if token(p) {
                    continue;
                }
            }
            let wend = n.min(y + d.window);
            match d.re.find(&buf[y..wend]) {
                Some(m) => {
                    let end = y + m.end();
                    if !last && (end == n || (d.full_window && y + d.window > n)) {
                        return Decision::Undecided;
                    }
                    if let Some(token) = d.token {
                        if end < n && token(buf[end]) {
                            continue;
                        }
                    }
                    return Decision::Match { end, detector: i };
                }
                None => {
                    if !last && y + d.window > n {
                        return Decision::Undecided;
                    }
                }
            }
        }
        Decision::NoMatch
    }
}

/// The detector stage of one stream.
#[derive(Default)]
pub(crate) struct DetectState {
    pub(crate) held: Vec<u8>,
    /// The last byte sent on (or `]` after a replacement): the left boundary of `held`.
    prev: Option<u8>,
    pub(crate) count: u64,
    kinds: BTreeMap<&'static str, u64>,
}

impl DetectState {
    pub(crate) fn push(&mut self, det: &Detectors, chunk: Bytes, last: bool, out: &mut Out) {
        let buf = if self.held.is_empty() {
            chunk
        } else {
            let mut joined = std::mem::take(&mut self.held);
            joined.extend_from_slice(&chunk);
            Bytes::from(joined)
        };
        let n = buf.len();
        let mut pos = 0;
        let mut from = 0;
        let mut hold = n;
        loop {
            let prev = |y: usize| if y > pos { Some(buf[y - 1]) } else { self.prev };
            let Some((y, decision)) = det.next_candidate(&buf, from, prev, last) else { break };
            match decision {
                Decision::Match { end, detector } => {
                    out.slice(&buf, pos, y);
                    let d = &det.list[detector];
                    out.bytes(&d.replacement);
                    self.count += 1;
                    *self.kinds.entry(d.kind).or_default() += 1;
                    self.prev = Some(b']');
                    pos = end;
                    from = end;
                }
                Decision::NoMatch => from = y + 1,
                Decision::Undecided => {
                    hold = y;
                    break;
                }
            }
        }
        if !last {
            // A tail that is the beginning of a literal may still become a candidate.
            let lo = pos.max(n.saturating_sub(det.max_literal - 1));
            for y in lo..hold {
                let tail = &buf[y..];
                if det.literals.iter().any(|l| l.len() > tail.len() && l.as_bytes().starts_with(tail)) {
                    hold = y;
                    break;
                }
            }
        } else {
            hold = n;
        }
        if hold > pos {
            out.slice(&buf, pos, hold);
            self.prev = Some(buf[hold - 1]);
        }
        self.held.extend_from_slice(&buf[hold..]);
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
