//! Secrets found through the escapings real software applies (issue 17): random secrets
//! are encoded by the real encoders — Python's `urllib.parse.quote` / `quote_plus`,
//! `html.escape`, `json.dumps` (with and without `ensure_ascii`), `base64.encodebytes`
//! (MIME, 76 columns), PEM wrapping; Node's `encodeURIComponent`, `encodeURI`,
//! `JSON.stringify`, `Buffer.toString('base64')` — run as subprocesses (one call per
//! batch of secrets), then every form is masked in one shot and streamed split at every
//! chunk boundary: the output must be the same for every split, equal the brute-force
//! oracle, and, for the text forms, be exactly the body with the form replaced.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use cloakroom_core::Secret;
use cloakroom_mask::{oracle, Encoding, MaskEntry, MaskOptions, Matcher};
use proptest::prelude::*;

const PYTHON: &str = r#"
import base64, html, json, re, sys, urllib.parse
secrets = json.load(sys.stdin)
out = []
def b(s): return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()
for item in secrets:
    s, pre, post = item["s"], bytes.fromhex(item["pre"]), bytes.fromhex(item["post"])
    raw = s.encode()
    blob = pre + raw + post
    pem = base64.b64encode(blob).decode()
    forms = {
        "py_quote": urllib.parse.quote(s),
        "py_quote_nosafe": urllib.parse.quote(s, safe=""),
        "py_quote_plus": urllib.parse.quote_plus(s),
        "py_quote_lower_hex": re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(s, safe="")),
        "py_quote_mixed_hex": re.sub("%[0-9A-F]{2}", lambda m: m.group(0)[:2] + m.group(0)[2].lower(), urllib.parse.quote(s)),
        "py_html_escape": html.escape(s),
        "py_html_escape_noquote": html.escape(s, quote=False),
        "py_xmlcharref": html.escape(s).encode("ascii", "xmlcharrefreplace").decode(),
        "py_json": json.dumps(s)[1:-1],
        "py_json_utf8": json.dumps(s, ensure_ascii=False)[1:-1],
        "py_json_all_u": "".join("\\u%04x" % u for u in
                                 [int.from_bytes(s.encode("utf-16-be")[i:i+2], "big")
                                  for i in range(0, len(s.encode("utf-16-be")), 2)]),
    }
    texts = {k: b(v) for k, v in forms.items()}
    wrapped = {
        "py_mime": b(base64.encodebytes(blob)),
        "py_pem_crlf": b("\r\n".join(pem[i:i+64] for i in range(0, len(pem), 64))),
        "py_pem_json": b(json.dumps("\n".join(pem[i:i+64] for i in range(0, len(pem), 64)))[1:-1]),
        "py_b64url_wrapped": b("\n".join(base64.urlsafe_b64encode(blob).decode()[i:i+40]
                                         for i in range(0, len(pem), 40))),
    }
    out.append({"text": texts, "wrapped": wrapped})
json.dump(out, sys.stdout)
"#;

const NODE: &str = r#"
const secrets = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const b = (s) => Buffer.from(s).toString('base64');
const out = secrets.map(({ s, pre, post }) => {
  const blob = Buffer.concat([Buffer.from(pre, 'hex'), Buffer.from(s), Buffer.from(post, 'hex')]);
  const text = {
    node_encodeURIComponent: b(encodeURIComponent(s)),
    node_encodeURI: b(encodeURI(s)),
    node_json: b(JSON.stringify(s).slice(1, -1)),
    node_json_slash: b(JSON.stringify(s).slice(1, -1).replace(/\//g, '\\/')),
  };
  const wrapped = {
    node_base64: b(blob.toString('base64')),
    node_base64url: b(blob.toString('base64url')),
    node_base64_mime: b(blob.toString('base64').replace(/(.{76})/g, '$1\r\n')),
    node_hex: b(Buffer.from(s).toString('hex')),
  };
  return { text, wrapped };
});
process.stdout.write(JSON.stringify(out));
"#;

/// One secret with the bytes around it inside the base64 blobs.
#[derive(Debug, Clone)]
struct Case {
    secret: String,
    pre: Vec<u8>,
    post: Vec<u8>,
}

fn run(program: &str, args: &[&str], input: &str) -> serde_json::Value {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("encoder output");
    assert!(out.status.success(), "{program} failed");
    serde_json::from_slice(&out.stdout).expect("encoder JSON")
}

/// For each case, (encoder name, encoded bytes, whether it is a text form).
fn encode(cases: &[Case]) -> Vec<Vec<(String, Vec<u8>, bool)>> {
    let input = serde_json::Value::Array(
        cases
            .iter()
            .map(|c| {
                serde_json::json!({
                    "s": c.secret,
                    "pre": c.pre.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    "post": c.post.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                })
            })
            .collect(),
    )
    .to_string();
    let py = run("python3", &["-c", PYTHON], &input);
    let node = run("node", &["-e", NODE], &input);
    let mut all = Vec::new();
    for i in 0..cases.len() {
        let mut forms = Vec::new();
        for result in [&py, &node] {
            for (kind, text) in [("text", true), ("wrapped", false)] {
                let map = result[i][kind].as_object().expect("forms");
                for (name, v) in map {
                    let bytes = STANDARD.decode(v.as_str().expect("base64 string")).expect("base64");
                    forms.push((name.clone(), bytes, text));
                }
            }
        }
        // Hex in mixed case: every other digit upper-cased.
        let hex: String = cases[i]
            .secret
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .chars()
            .enumerate()
            .map(|(j, c)| if j % 3 == 0 { c.to_ascii_uppercase() } else { c })
            .collect();
        forms.push(("hex_mixed_case".into(), hex.into_bytes(), false));
        all.push(forms);
    }
    all
}

fn streamed_split(m: &Arc<Matcher>, body: &[u8], cut: usize) -> Vec<u8> {
    let mut s = m.stream();
    let mut out = s.push(Bytes::copy_from_slice(&body[..cut])).concat();
    out.extend(s.push(Bytes::copy_from_slice(&body[cut..])).concat());
    out.extend(s.finish().concat());
    out
}

fn secret_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::char::range('!', '~'),
        1 => Just(' '),
        1 => prop::sample::select(vec!['é', 'ü', '€', '😀', '中', '\n', '\t']),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(secret_char(), 8..40),
        prop::collection::vec(any::<u8>(), 0..70),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(chars, pre, post)| Case { secret: chars.into_iter().collect(), pre, post })
}

fn options() -> MaskOptions {
    MaskOptions { encodings: Encoding::ALL.to_vec(), detectors: false }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn secrets_encoded_by_real_encoders_are_masked_at_every_chunk_boundary(
        cases in prop::collection::vec(case(), 16)
    ) {
        let entries: Vec<MaskEntry> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| MaskEntry::new(format!("s{i}"), Secret::from(c.secret.as_str()), format!("<CLOAK{i}>")))
            .collect();
        let matcher = Arc::new(Matcher::build(entries.clone(), &options()).expect("build"));
        for (i, forms) in encode(&cases).into_iter().enumerate() {
            let replacement = format!("<CLOAK{i}>").into_bytes();
            for (name, form, text) in forms {
                let mut body = b"\x00".to_vec();
                body.extend_from_slice(&form);
                body.push(0);
                let one_shot = matcher.replace(&body);
                let expected = oracle::replace(&entries, &options(), &body);
                prop_assert_eq!(&one_shot.output, &expected, "{} differs from the oracle", name);
                if text {
                    // Exactly the form replaced, nothing else changed.
                    let mut want = b"\x00".to_vec();
                    want.extend_from_slice(&replacement);
                    want.push(0);
                    prop_assert_eq!(&one_shot.output, &want, "{} not masked exactly: {:?}", name, String::from_utf8_lossy(&form));
                } else {
                    prop_assert!(one_shot.counts.get(&format!("s{i}")).copied().unwrap_or(0) >= 1,
                        "{} not masked: {:?}", name, String::from_utf8_lossy(&form));
                    // What is left of the encoded form are edge characters: at most two
                    // base64 or hex characters on each side of the replacement.
                    let out = &one_shot.output;
                    let at = out.windows(replacement.len()).position(|w| w == replacement).expect("replacement");
                    let before = &out[..at];
                    let left = before.iter().rev().take_while(|b| b.is_ascii_alphanumeric() || b"+/-_\r\n".contains(b))
                        .filter(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(b)).count();
                    // The blob's own prefix bytes may encode to characters before the secret.
                    prop_assert!(left <= 2 || !cases[i].pre.is_empty(), "{}: {} characters left before", name, left);
                }
                for cut in 0..=body.len() {
                    prop_assert_eq!(&streamed_split(&matcher, &body, cut), &one_shot.output, "{} split at {}", name, cut);
                }
            }
        }
    }
}

/// The four leaks of the issue, each written as it was found.
#[test]
fn the_issue_leaks_are_masked() {
    let secret = "s3cr3t/<k&y>\"q'uote\"-0123456789";
    let entries = [MaskEntry::new("k", Secret::from(secret), "cloak_k")];
    let m = Arc::new(Matcher::build(entries, &options()).expect("build"));
    let html = "s3cr3t/&lt;k&amp;y&gt;&quot;q&#x27;uote&quot;-0123456789";
    let quote = "s3cr3t/%3Ck%26y%3E%22q%27uote%22-0123456789";
    let all_u: String = secret.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
    let mime = STANDARD.encode(format!("{}{}{}", "x".repeat(50), secret, "y".repeat(40)));
    let mime: String = mime.as_bytes().chunks(76).map(|l| String::from_utf8_lossy(l).into_owned() + "\r\n").collect();
    for body in [html.to_owned(), quote.to_owned(), all_u, mime] {
        let out = m.replace(body.as_bytes());
        assert!(out.total() >= 1, "not masked: {body}");
        for cut in 0..=body.len() {
            assert_eq!(streamed_split(&m, body.as_bytes(), cut), out.output);
        }
    }
}

/// Long bodies of escaped secrets streamed in chunks long enough for the zero-copy seam
/// path (each chunk handled in place after the held bytes), cut at every offset of a
/// window: each grammar's parse resumes at the right token boundary in the chunk.
#[test]
fn long_bodies_stream_like_one_shot_through_the_seam_path() {
    let secrets = ["p@ss/w0rd&<tag>\"q\"+ok", "ünïcødé-sécret-😀-value", "plain-alnum-secret-0123456789"];
    let entries: Vec<MaskEntry> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| MaskEntry::new(format!("s{i}"), Secret::from(*s), format!("<CLOAK{i}>")))
        .collect();
    let m = Arc::new(Matcher::build(entries.clone(), &options()).expect("build"));
    let mut body = Vec::new();
    let mut n = 0usize;
    while body.len() < 40_000 {
        for s in secrets {
            for enc in Encoding::ALL {
                for form in enc.forms(s.as_bytes()) {
                    n += 1;
                    body.extend_from_slice(format!("{n} \\\\ %2 &amp ").as_bytes());
                    // Escapes near the cut points: a backslash run, a split `%`, `&`.
                    body.extend_from_slice(&form);
                    body.extend_from_slice(b" \\\\\\u00");
                }
            }
            let all_u: String = s.encode_utf16().map(|u| format!("\\u{u:04X}")).collect();
            body.extend_from_slice(all_u.as_bytes());
            let mime = STANDARD.encode(format!("{n}{s}"));
            for line in mime.as_bytes().chunks(7) {
                body.extend_from_slice(line);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    let one_shot = m.replace(&body);
    assert_eq!(one_shot.output, oracle::replace(&entries, &options(), &body));
    assert!(one_shot.total() > 100);
    let max = m.max_pattern_len();
    for chunk in [2 * max + 200, 3 * max + 7, 4096] {
        for shift in (0..12).chain((chunk - 12)..chunk) {
            let mut s = m.stream();
            let mut out = s.push(Bytes::copy_from_slice(&body[..shift])).concat();
            let mut at = shift;
            while at < body.len() {
                let end = (at + chunk).min(body.len());
                out.extend(s.push(Bytes::copy_from_slice(&body[at..end])).concat());
                assert!(s.held_back() < max);
                at = end;
            }
            out.extend(s.finish().concat());
            assert_eq!(out, one_shot.output, "chunk {chunk}, shift {shift}");
        }
    }
}
