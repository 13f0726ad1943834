//! Escape grammars: secrets found *through* the escapings real software applies.
//!
//! Enumerating encoded forms (`\u0073`, `%2F`, `&amp;`…) misses every mix nobody listed.
//! Instead, each grammar is a tokenizer: a token is a literal byte, an escape (`\u0073`,
//! `%2f`, `&#x73;`, `&quot;`…) standing for the bytes it decodes to, a line break that
//! decodes to nothing (inside base64), or a byte no match can contain. A *decoding view*
//! of the input is the concatenation of the decoded tokens with, for every decoded byte,
//! the span of the token it came from. The secrets (or, for base64 and hex, their encoded
//! cores) are searched in the view by an ordinary [`Matcher`] (q-gram prefilter and
//! Aho-Corasick), and a match whose first and last bytes are whole tokens replaces the
//! original span.
//!
//! Views are decoded only where they differ from the input: around escapes (found with
//! `memchr`), in *regions* covering every escape cluster plus the longest secret on each
//! side. Runs of plain text are left to the main matcher, which searches the raw bytes
//! (and the contiguous base64 and hex forms) directly. Every match is a property of the
//! input alone (the view is parsed from the start of the body), so a stream cut anywhere
//! masks exactly what the one-shot search masks: the replacer carries, for each grammar,
//! the last token boundary before its cut (see `stream.rs`).

use memchr::{memchr, memchr2, memchr3};

use crate::encoding::Encoding;
use crate::matcher::{Matcher, RawMatch, Search};

/// One escape grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grammar {
    /// JSON string escapes: `\" \\ \/ \b \f \n \r \t`, `\uXXXX` (either case),
    /// surrogate pairs.
    Json,
    /// HTML/XML character references: named (the HTML5 names of ASCII characters and
    /// `&nbsp;`), decimal `&#115;`, hex `&#x73;`, each ending in `;`.
    Html,
    /// Percent-encoding: `%XX` in either case, any set of bytes left unescaped.
    Url,
    /// Percent-encoding with `+` for space (HTML forms, Python's `quote_plus`).
    UrlPlus,
    /// Base64 and base64url with line breaks (`\n`, `\r`, and JSON-escaped `\n` `\r`;
    /// at most two in a row) anywhere.
    Base64Lines,
    /// Hexadecimal in mixed case (all-lower and all-upper are raw forms).
    HexCase,
}

/// One token of a grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A byte standing for itself.
    Lit,
    /// `len` bytes decoding to `out[..n]`.
    Esc { len: u8, out: [u8; 4], n: u8 },
    /// `len` bytes decoding to nothing (a line break inside base64).
    Skip { len: u8 },
    /// A byte no match in this view can contain.
    Stop,
    /// The bytes up to the end of the input so far could still become an escape.
    Incomplete,
}

impl Tok {
    pub(crate) fn len(self) -> usize {
        match self {
            Tok::Lit | Tok::Stop => 1,
            Tok::Esc { len, .. } | Tok::Skip { len } => usize::from(len),
            Tok::Incomplete => 0,
        }
    }
}

/// HTML5 named character references of ASCII characters (plus `nbsp`), as written by
/// HTML escapers. Longest name: 16 bytes.
const HTML_NAMES: &[(&[u8], char)] = &[
    (b"quot", '"'),
    (b"QUOT", '"'),
    (b"amp", '&'),
    (b"AMP", '&'),
    (b"lt", '<'),
    (b"LT", '<'),
    (b"gt", '>'),
    (b"GT", '>'),
    (b"apos", '\''),
    (b"nbsp", '\u{a0}'),
    (b"Tab", '\t'),
    (b"NewLine", '\n'),
    (b"excl", '!'),
    (b"num", '#'),
    (b"dollar", '$'),
    (b"percnt", '%'),
    (b"lpar", '('),
    (b"rpar", ')'),
    (b"ast", '*'),
    (b"midast", '*'),
    (b"plus", '+'),
    (b"comma", ','),
    (b"period", '.'),
    (b"sol", '/'),
    (b"colon", ':'),
    (b"semi", ';'),
    (b"equals", '='),
    (b"quest", '?'),
    (b"commat", '@'),
    (b"lsqb", '['),
    (b"lbrack", '['),
    (b"bsol", '\\'),
    (b"rsqb", ']'),
    (b"rbrack", ']'),
    (b"Hat", '^'),
    (b"lowbar", '_'),
    (b"UnderBar", '_'),
    (b"grave", '`'),
    (b"DiacriticalGrave", '`'),
    (b"lcub", '{'),
    (b"lbrace", '{'),
    (b"verbar", '|'),
    (b"vert", '|'),
    (b"VerticalLine", '|'),
    (b"rcub", '}'),
    (b"rbrace", '}'),
];
const HTML_NAME_MAX: usize = 16;
/// Digits of a numeric character reference (`&#0000115;` and `&#x00073;` at most).
const HTML_DEC_MAX: usize = 7;
const HTML_HEX_MAX: usize = 6;

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

fn esc_char(len: usize, c: char) -> Tok {
    let mut out = [0u8; 4];
    let n = c.encode_utf8(&mut out).len();
    Tok::Esc { len: len as u8, out, n: n as u8 }
}

fn esc_byte(len: usize, b: u8) -> Tok {
    Tok::Esc { len: len as u8, out: [b, 0, 0, 0], n: 1 }
}

/// Reads `digits` hex digits at `at`: `Ok(Some(v))`, `Ok(None)` when a non-hex byte is
/// in the way, `Err(())` when the input ends first (all bytes seen so far were hex).
fn hex4(hay: &[u8], at: usize, end: usize) -> Result<Option<u16>, ()> {
    let mut v = 0u16;
    for i in 0..4 {
        let Some(&b) = hay.get(at + i).filter(|_| at + i < end) else { return Err(()) };
        match hexval(b) {
            Some(d) => v = v << 4 | u16::from(d),
            None => return Ok(None),
        }
    }
    Ok(Some(v))
}

impl Grammar {
    /// The encoding reported for a match in this view (base64 reports its target's).
    pub(crate) fn encoding(self) -> Encoding {
        match self {
            Grammar::Json => Encoding::Json,
            Grammar::Html => Encoding::Html,
            Grammar::Url | Grammar::UrlPlus => Encoding::Url,
            Grammar::Base64Lines => Encoding::Base64,
            Grammar::HexCase => Encoding::Hex,
        }
    }

    /// The longest token, in bytes.
    pub(crate) fn max_token(self) -> usize {
        match self {
            Grammar::Json => 12,
            Grammar::Html => (HTML_NAME_MAX + 2).max(3 + HTML_HEX_MAX + 1).max(2 + HTML_DEC_MAX + 1),
            Grammar::Url | Grammar::UrlPlus => 3,
            Grammar::Base64Lines => 2,
            Grammar::HexCase => 1,
        }
    }

    /// The longest span a match of `len` decoded bytes can cover.
    pub(crate) fn max_span(self, len: usize) -> usize {
        match self {
            // `\u0073`: six bytes for one.
            Grammar::Json => 6 * len,
            Grammar::Html => self.max_token() * len,
            Grammar::Url | Grammar::UrlPlus => 3 * len,
            // Two line breaks of up to two bytes between characters.
            Grammar::Base64Lines => len + 4 * len.saturating_sub(1),
            Grammar::HexCase => len,
        }
    }

    /// The token at `p` (`p < end`). Unless `last`, a token running into `end` may be
    /// [`Tok::Incomplete`].
    pub(crate) fn token_at(self, hay: &[u8], p: usize, end: usize, last: bool) -> Tok {
        let b = hay[p];
        let incomplete = if last { Tok::Lit } else { Tok::Incomplete };
        match self {
            Grammar::Json => {
                if b != b'\\' {
                    return Tok::Lit;
                }
                if p + 1 >= end {
                    return incomplete;
                }
                let c = match hay[p + 1] {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let u = match hex4(hay, p + 2, end) {
                            Err(()) => return incomplete,
                            Ok(None) => return Tok::Lit,
                            Ok(Some(u)) => u,
                        };
                        return match u {
                            0xD800..=0xDBFF => {
                                // A high surrogate is an escape only with its low half.
                                let q = p + 6;
                                for (i, want) in [b'\\', b'u'].into_iter().enumerate() {
                                    if q + i >= end {
                                        return incomplete;
                                    }
                                    if hay[q + i] != want {
                                        return Tok::Lit;
                                    }
                                }
                                match hex4(hay, q + 2, end) {
                                    Err(()) => incomplete,
                                    Ok(Some(lo @ 0xDC00..=0xDFFF)) => {
                                        let c = 0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                                        char::from_u32(c).map_or(Tok::Lit, |c| esc_char(12, c))
                                    }
                                    Ok(_) => Tok::Lit,
                                }
                            }
                            0xDC00..=0xDFFF => Tok::Lit,
                            _ => char::from_u32(u32::from(u)).map_or(Tok::Lit, |c| esc_char(6, c)),
                        };
                    }
                    _ => return Tok::Lit,
                };
                esc_byte(2, c)
            }
            Grammar::Html => {
                if b != b'&' {
                    return Tok::Lit;
                }
                let at = |i: usize| if p + i < end { Some(hay[p + i]) } else { None };
                match at(1) {
                    None => incomplete,
                    Some(b'#') => {
                        let (hex, first) = match at(2) {
                            None => return incomplete,
                            Some(b'x' | b'X') => (true, 3),
                            Some(_) => (false, 2),
                        };
                        let max = if hex { HTML_HEX_MAX } else { HTML_DEC_MAX };
                        let mut v: u32 = 0;
                        let mut i = first;
                        loop {
                            let Some(c) = at(i) else { return incomplete };
                            let d = if hex { hexval(c) } else { c.is_ascii_digit().then(|| c - b'0') };
                            match d {
                                Some(d) if i - first < max => {
                                    v = v * if hex { 16 } else { 10 } + u32::from(d);
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        if i == first || at(i) != Some(b';') {
                            return Tok::Lit;
                        }
                        char::from_u32(v).map_or(Tok::Lit, |c| esc_char(i + 1, c))
                    }
                    Some(_) => {
                        let mut i = 1;
                        loop {
                            let Some(c) = at(i) else { return incomplete };
                            if c.is_ascii_alphanumeric() && i <= HTML_NAME_MAX {
                                i += 1;
                                continue;
                            }
                            if c != b';' || i == 1 {
                                return Tok::Lit;
                            }
                            let name = &hay[p + 1..p + i];
                            return HTML_NAMES
                                .iter()
                                .find(|(n, _)| *n == name)
                                .map_or(Tok::Lit, |&(_, ch)| esc_char(i + 1, ch));
                        }
                    }
                }
            }
            Grammar::Url | Grammar::UrlPlus => {
                if b == b'+' && self == Grammar::UrlPlus {
                    return esc_byte(1, b' ');
                }
                if b != b'%' {
                    return Tok::Lit;
                }
                let mut v = 0u8;
                for i in 1..3 {
                    if p + i >= end {
                        return incomplete;
                    }
                    match hexval(hay[p + i]) {
                        Some(d) => v = v << 4 | d,
                        None => return Tok::Lit,
                    }
                }
                esc_byte(3, v)
            }
            Grammar::Base64Lines => match b {
                b'\n' | b'\r' => Tok::Skip { len: 1 },
                b'\\' => {
                    if p + 1 >= end {
                        return if last { Tok::Stop } else { Tok::Incomplete };
                    }
                    if matches!(hay[p + 1], b'n' | b'r') {
                        Tok::Skip { len: 2 }
                    } else {
                        Tok::Stop
                    }
                }
                _ if is_b64(b) => Tok::Lit,
                _ => Tok::Stop,
            },
            Grammar::HexCase => match b {
                b'0'..=b'9' | b'a'..=b'f' => Tok::Lit,
                b'A'..=b'F' => esc_byte(1, b.to_ascii_lowercase()),
                _ => Tok::Stop,
            },
        }
    }

    /// The next byte at or after `from` (before `end`) that may begin a token other
    /// than a literal.
    fn next_trigger(self, hay: &[u8], from: usize, end: usize) -> Option<usize> {
        let h = &hay[from..end];
        match self {
            Grammar::Json => memchr(b'\\', h),
            Grammar::Html => memchr(b'&', h),
            Grammar::Url => memchr(b'%', h),
            Grammar::UrlPlus => memchr2(b'%', b'+', h),
            Grammar::Base64Lines => memchr3(b'\n', b'\r', b'\\', h),
            Grammar::HexCase => h.iter().position(|b| matches!(b, b'A'..=b'F')),
        }
        .map(|i| from + i)
    }

    /// The last byte in `from..end` that may begin a token other than a literal (past
    /// it, the view decodes to the input's own bytes).
    pub(crate) fn last_trigger(self, hay: &[u8], from: usize, end: usize) -> Option<usize> {
        let h = &hay[from..end];
        match self {
            Grammar::Json => memchr::memrchr(b'\\', h),
            Grammar::Html => memchr::memrchr(b'&', h),
            Grammar::Url => memchr::memrchr(b'%', h),
            Grammar::UrlPlus => memchr::memrchr2(b'%', b'+', h),
            Grammar::Base64Lines => memchr::memrchr3(b'\n', b'\r', b'\\', h),
            Grammar::HexCase => h.iter().rposition(|b| matches!(b, b'A'..=b'F')),
        }
        .map(|i| from + i)
    }

    /// The last token boundary at or before `h`, given that `sync <= h` is one (`hay`
    /// holds at least one whole token after `h`, or ends the input so far at `end`).
    pub(crate) fn boundary_before(self, hay: &[u8], sync: usize, h: usize, end: usize) -> usize {
        match self {
            Grammar::HexCase => h,
            Grammar::Base64Lines => {
                if h > sync && hay[h - 1] == b'\\' && h < end && matches!(hay[h], b'n' | b'r') {
                    h - 1
                } else {
                    h
                }
            }
            // Escapes contain no trigger byte: every trigger begins a token.
            Grammar::Html | Grammar::Url | Grammar::UrlPlus => {
                let lo = h.saturating_sub(self.max_token() - 1).max(sync);
                for t in lo..h {
                    if matches!(hay[t], b'&' | b'%' | b'+') {
                        let tok = self.token_at(hay, t, end, false);
                        if tok == Tok::Incomplete || t + tok.len() > h {
                            return t;
                        }
                    }
                }
                h
            }
            Grammar::Json => {
                // No backslash in the 11 bytes before `h`: no token can straddle it.
                let lo = h.saturating_sub(11).max(sync);
                if memchr(b'\\', &hay[lo..h]).is_none() {
                    return h;
                }
                let mut p = sync;
                while let Some(q) = self.next_trigger(hay, p, h) {
                    let tok = self.token_at(hay, q, end, false);
                    if tok == Tok::Incomplete || q + tok.len() > h {
                        return q;
                    }
                    p = q + tok.len();
                }
                h
            }
        }
    }

    /// The first token boundary at or after `x`, given that `sync <= x` is one and
    /// that `hay[..end]` holds every token that starts before `x`.
    pub(crate) fn boundary_after(self, hay: &[u8], sync: usize, x: usize, end: usize) -> usize {
        let b = self.boundary_before(hay, sync, x, end);
        if b == x {
            return x;
        }
        match self.token_at(hay, b, end, false) {
            Tok::Incomplete => b,
            tok => b + tok.len(),
        }
    }
}

/// A grammar with the matcher searched in its view.
pub(crate) struct View {
    pub(crate) grammar: Grammar,
    /// Index into the matcher's view targets.
    pub(crate) target: usize,
}

/// The patterns a view's decoded bytes are searched for, with their ids in the outer
/// matcher's pattern table starting at `offset`.
pub(crate) struct Target {
    pub(crate) matcher: Matcher,
    pub(crate) offset: u32,
    pub(crate) bytes: Vec<Vec<u8>>,
    pub(crate) max_len: usize,
    pub(crate) min_len: usize,
    /// Bit `b` set when some target holds the byte `b`: an escape decoding to any other
    /// byte cannot be inside a match, so it starts no region.
    pub(crate) byte_set: [u64; 4],
}

impl Target {
    fn holds(&self, tok: Tok) -> bool {
        match tok {
            Tok::Esc { out, n, .. } => {
                out[..usize::from(n)].iter().all(|&b| self.byte_set[usize::from(b >> 6)] >> (b & 63) & 1 != 0)
            }
            _ => true,
        }
    }
}

/// A decoded region: `dec[i]` came from the token `src[i]..src_end[i]`.
struct Region {
    re: usize,
    dec: Vec<u8>,
    src: Vec<usize>,
    src_end: Vec<usize>,
}

impl Region {
    fn first(&self, a: usize) -> bool {
        a == 0 || self.src[a - 1] != self.src[a]
    }
    fn last(&self, b: usize) -> bool {
        b == self.dec.len() || self.src[b] != self.src[b - 1]
    }
}

/// The search state of one view over one buffer.
pub(crate) struct ViewSearch {
    /// A token boundary: the region finder goes on from here.
    parse: usize,
    /// Every token in `lit_from..parse` is a literal.
    lit_from: usize,
    region: Option<Region>,
    done: bool,
    cache: Option<(usize, Option<RawMatch>)>,
}

impl ViewSearch {
    pub(crate) fn new(sync: usize) -> Self {
        Self { parse: sync, lit_from: sync, region: None, done: false, cache: None }
    }

    /// The leftmost-longest match of `view` starting at or after `pos`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn next_from(
        &mut self,
        view: &View,
        target: &Target,
        hay: &[u8],
        end: usize,
        last: bool,
        pos: usize,
        view_index: u8,
    ) -> Option<RawMatch> {
        if let Some((from, m)) = self.cache {
            if from <= pos && m.is_none_or(|m| m.start >= pos) {
                return m;
            }
        }
        loop {
            if let Some(r) = &self.region {
                if r.re > pos {
                    if let Some(m) = search_region(r, target, view.grammar, hay, pos, view_index) {
                        self.cache = Some((pos, Some(m)));
                        return Some(m);
                    }
                }
            }
            if self.done {
                self.cache = Some((pos, None));
                return None;
            }
            self.region = None;
            match self.next_region(view.grammar, target, hay, end, last, pos) {
                Some(r) => self.region = Some(r),
                None => self.done = true,
            }
        }
    }

    fn next_region(
        &mut self,
        g: Grammar,
        target: &Target,
        hay: &[u8],
        end: usize,
        last: bool,
        pos: usize,
    ) -> Option<Region> {
        let l = target.max_len;
        if g == Grammar::HexCase {
            return self.next_hex_region(target, hay, end, last, pos);
        }
        // The first escape at or after `parse`.
        let (p1, tok1) = loop {
            let q = g.next_trigger(hay, self.parse, end)?;
            match g.token_at(hay, q, end, last) {
                Tok::Lit | Tok::Stop => self.parse = q + 1,
                Tok::Incomplete => {
                    self.parse = q;
                    return None;
                }
                tok if !target.holds(tok) => {
                    // An escape of a byte no target holds: no match contains it.
                    self.parse = q + tok.len();
                    self.lit_from = self.parse;
                }
                tok => {
                    if g == Grammar::Base64Lines && !(q > self.lit_from.max(pos) && is_b64(hay[q - 1])) {
                        // A break not preceded by base64 text starts no match.
                        self.parse = q + tok.len();
                        self.lit_from = self.parse;
                        continue;
                    }
                    break (q, tok);
                }
            }
        };
        // Up to l - 1 literal bytes before it (for base64, only base64 characters).
        let lo = self.lit_from.max(p1.saturating_sub(l - 1));
        let mut rs = p1;
        if g == Grammar::Base64Lines {
            while rs > lo && is_b64(hay[rs - 1]) {
                rs -= 1;
            }
        } else {
            rs = lo;
        }
        // Escapes closer than l literals to the previous one join the region.
        let mut last_end = p1 + tok1.len();
        let mut re;
        let mut breaks = 1usize;
        if g == Grammar::Base64Lines {
            let mut gap = 0usize;
            let mut p = last_end;
            re = p;
            while p < end && gap < l {
                match g.token_at(hay, p, end, last) {
                    Tok::Lit => {
                        gap += 1;
                        breaks = 0;
                        p += 1;
                        re = p;
                    }
                    Tok::Skip { len } => {
                        breaks += 1;
                        if breaks > 2 {
                            break;
                        }
                        p += usize::from(len);
                        last_end = p;
                        gap = 0;
                    }
                    Tok::Stop | Tok::Incomplete | Tok::Esc { .. } => break,
                }
            }
            self.parse = last_end.max(re);
            self.lit_from = last_end;
        } else {
            loop {
                let window = end.min(last_end + l);
                match g.next_trigger(hay, last_end, window) {
                    Some(q) => match g.token_at(hay, q, end, last) {
                        Tok::Lit | Tok::Stop => {
                            // A trigger byte that is a literal: look on past it.
                            let mut p = q + 1;
                            let mut found = None;
                            while let Some(q2) = g.next_trigger(hay, p, window) {
                                match g.token_at(hay, q2, end, last) {
                                    Tok::Lit | Tok::Stop => p = q2 + 1,
                                    tok => {
                                        found = Some((q2, tok));
                                        break;
                                    }
                                }
                            }
                            match found {
                                Some((q2, tok)) if tok == Tok::Incomplete || !target.holds(tok) => {
                                    re = q2;
                                    self.parse = q2;
                                    break;
                                }
                                Some((q2, tok)) => last_end = q2 + tok.len(),
                                None => {
                                    re = window.min(last_end + l - 1);
                                    self.parse = last_end;
                                    break;
                                }
                            }
                        }
                        tok if tok == Tok::Incomplete || !target.holds(tok) => {
                            re = q;
                            self.parse = q;
                            break;
                        }
                        tok => last_end = q + tok.len(),
                    },
                    None => {
                        re = window.min(last_end + l - 1);
                        self.parse = last_end;
                        break;
                    }
                }
            }
            self.lit_from = last_end;
        }
        Some(decode(g, hay, rs, re, end, last))
    }

    fn next_hex_region(&mut self, target: &Target, hay: &[u8], end: usize, last: bool, pos: usize) -> Option<Region> {
        // Probe every `s` bytes: an all-hex run of `min_len` or more holds a probe window.
        let m = target.min_len;
        let s = m.saturating_sub(7).max(1);
        let is_hex = |b: u8| b.is_ascii_hexdigit();
        let mut q = self.parse.max(pos);
        while q + 8 <= end {
            if hay[q..q + 8].iter().all(|&b| is_hex(b)) {
                let mut a = q;
                while a > self.lit_from && is_hex(hay[a - 1]) {
                    a -= 1;
                }
                let mut b = q + 8;
                while b < end && is_hex(hay[b]) {
                    b += 1;
                }
                self.parse = b;
                self.lit_from = b;
                let run = &hay[a..b];
                if b - a >= m
                    && run.iter().any(|c| matches!(c, b'A'..=b'F'))
                    && run.iter().any(|c| matches!(c, b'a'..=b'f'))
                {
                    return Some(decode(Grammar::HexCase, hay, a, b, end, last));
                }
                q = b + 1;
            } else {
                q += s;
            }
        }
        self.parse = end;
        None
    }
}

/// Decodes the tokens of `hay[rs..re]`.
fn decode(g: Grammar, hay: &[u8], rs: usize, re: usize, end: usize, last: bool) -> Region {
    let mut r = Region { re, dec: Vec::with_capacity(re - rs), src: Vec::with_capacity(re - rs), src_end: Vec::new() };
    r.src_end.reserve(re - rs);
    let mut p = rs;
    while p < re {
        match g.token_at(hay, p, end, last) {
            Tok::Esc { len, out, n } => {
                let len = usize::from(len);
                for &b in &out[..usize::from(n)] {
                    r.dec.push(b);
                    r.src.push(p);
                    r.src_end.push(p + len);
                }
                p += len;
            }
            Tok::Skip { len } => p += usize::from(len),
            // Literals; a stop or an incomplete token cannot be inside a region.
            _ => {
                r.dec.push(hay[p]);
                r.src.push(p);
                r.src_end.push(p + 1);
                p += 1;
            }
        }
    }
    r
}

/// The leftmost-longest match in `r` whose first and last bytes are whole tokens and
/// which starts at or after `pos`.
///
/// In the JSON, HTML and URL views a span without any escape is skipped: it is the
/// secret's raw form, which the input's own bytes find with the same span. Reporting it
/// here would be wrong when the region was cut short: a region ends `l - 1` literal
/// bytes after its last escape, so the longest match at a start in that literal tail may
/// be a shorter secret there, while a longer one at the same start runs on into the next
/// region's escape (`aaaaaaaa/\"//c` after another one: the second `aaaaaaaa` must not
/// win over the `\"`-escaped longer secret, or the rest of it leaks).
fn search_region(r: &Region, target: &Target, g: Grammar, hay: &[u8], pos: usize, view_index: u8) -> Option<RawMatch> {
    let da = r.src.partition_point(|&s| s < pos);
    let mut search = Search::new(&target.matcher, &r.dec, r.dec.len());
    let mut d = da;
    let raw_targets = matches!(g, Grammar::Json | Grammar::Html | Grammar::Url | Grammar::UrlPlus);
    while let Some(m) = search.next_from(d) {
        let a = m.start;
        // The longest match at `a` is as written in the input: so is every shorter one.
        if raw_targets && hay[r.src[a]..r.src_end[m.end - 1]] == r.dec[a..m.end] {
            d = a + 1;
            continue;
        }
        if r.first(a) {
            if r.last(m.end) {
                return Some(map(r, target, m.pattern, a, m.end, view_index));
            }
            // The longest pattern here ends inside a token: the longest that does not.
            let mut best: Option<(usize, usize)> = None;
            for (i, p) in target.bytes.iter().enumerate() {
                let b = a + p.len();
                if b <= r.dec.len() && r.dec[a..b] == p[..] && r.last(b) && best.is_none_or(|(_, bl)| p.len() > bl) {
                    best = Some((i, p.len()));
                }
            }
            if let Some((i, len)) = best {
                // Target patterns are numbered in the order of `bytes`.
                return Some(map(r, target, i as u32, a, a + len, view_index));
            }
        }
        d = a + 1;
    }
    None
}

fn map(r: &Region, target: &Target, pattern: u32, a: usize, b: usize, view_index: u8) -> RawMatch {
    RawMatch { pattern: target.offset + pattern, start: r.src[a], end: r.src_end[b - 1], view: view_index + 1 }
}

/// Whether a match in view `g` of `target` could start at `y` and run past `end`.
pub(crate) fn could_start(g: Grammar, target: &Target, hay: &[u8], y: usize, end: usize, dec: &mut Vec<u8>) -> bool {
    dec.clear();
    let mut n = 0usize;
    let mut p = y;
    let mut breaks = 0;
    while p < end {
        match g.token_at(hay, p, end, false) {
            Tok::Incomplete => return true,
            Tok::Stop => return false,
            Tok::Skip { len } => {
                breaks += 1;
                if n == 0 || breaks > 2 {
                    return false;
                }
                p += usize::from(len);
                continue;
            }
            Tok::Esc { len, out, n: k } => {
                let k = usize::from(k);
                if n + k > target.max_len {
                    return false;
                }
                dec.extend_from_slice(&out[..k]);
                n += k;
                p += usize::from(len);
            }
            Tok::Lit => {
                if n + 1 > target.max_len {
                    return false;
                }
                dec.push(hay[p]);
                n += 1;
                p += 1;
            }
        }
        breaks = 0;
        if !target.matcher.could_start_match(&dec[..n]) {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[path = "grammar_tests.rs"]
mod tests;
