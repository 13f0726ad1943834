//! The work of one request: buffer, find, check, fetch, substitute.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use cloakroom_core::{
    limits::{MAX_JSON_DEPTH, MAX_PLACEHOLDERS, MAX_POINTER_BYTES},
    ApprovalRef, AuditNote, Call, CallId, CallScope, ConsumedApproval, Decision, Error, ErrorCode, Identity,
    PlaceholderUse, SecretUse,
};
use http::{header, HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};

use super::{json, BoxError, DetokenizeLayer, SecretsFound};
use crate::{
    binding::{Found, Refusal},
    budget,
    catalog::{CatalogEntry, CatalogError},
    InFlightGuard,
};

/// How a value is written where the placeholder was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw,
    Json,
    Percent,
}

enum Place {
    Header(usize),
    Query,
    Body,
}

struct Hit {
    place: Place,
    range: Range<usize>,
    found: Found,
    entry: Arc<CatalogEntry>,
}

fn refuse(error: Error, call_id: Option<&CallId>, note: Option<&AuditNote>) -> Response<Full<Bytes>> {
    if let Some(n) = note {
        n.set_error(&error);
        if matches!(error.code, ErrorCode::SecretNotBound | ErrorCode::BudgetExhausted) {
            n.set_decision(&Decision::refused(error.code.as_str()));
        }
    }
    error.to_response(call_id)
}

fn content_kind(headers: &http::HeaderMap) -> Encoding {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime == "application/json" || mime.ends_with("+json") || mime.ends_with("/json") {
        Encoding::Json
    } else if mime == "application/x-www-form-urlencoded" {
        Encoding::Percent
    } else {
        Encoding::Raw
    }
}

/// Decodes `%XX` and `+` (as in form data) in `s`, leaving malformed escapes as they
/// are: how the detokenizer names a query parameter (`query:NAME`).
pub fn percent_decode_lossy(s: &str) -> String {
    percent_decode(s.as_bytes())
}

fn percent_decode(s: &[u8]) -> String {
    // `+` is a space in form data; a `%2B` stays a plus because it is decoded after.
    let plus_as_space: Vec<u8> = s.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&plus_as_space).decode_utf8_lossy().into_owned()
}

/// Everything but RFC 3986's unreserved characters is escaped (upper-case hex).
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn percent_encode(value: &[u8], out: &mut Vec<u8>) {
    // The pieces are slices of `value` or static `%XX` strings: no copy of the secret
    // outside `out` (which the caller zeroizes).
    for piece in percent_encoding::percent_encode(value, QUERY_VALUE) {
        out.extend_from_slice(piece.as_bytes());
    }
}

/// Writes `value` into `out` in `encoding`; `Err` when it cannot be represented.
fn encode_into(value: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> Result<(), ()> {
    match encoding {
        Encoding::Raw => out.extend_from_slice(value),
        Encoding::Percent => percent_encode(value, out),
        Encoding::Json => {
            let s = std::str::from_utf8(value).map_err(|_| ())?;
            let quoted = zeroize::Zeroizing::new(serde_json::to_string(s).map_err(|_| ())?);
            out.extend_from_slice(&quoted.as_bytes()[1..quoted.len() - 1]);
        }
    }
    Ok(())
}

/// Rebuilds `src` with each range replaced by its entry's value in `encoding`.
fn splice(src: &[u8], hits: &[(&Range<usize>, &[u8])], encoding: Encoding) -> Result<zeroize::Zeroizing<Vec<u8>>, ()> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(src.len() + hits.len() * 32));
    let mut at = 0;
    for (r, value) in hits {
        out.extend_from_slice(&src[at..r.start]);
        encode_into(value, encoding, &mut out)?;
        at = r.end;
    }
    out.extend_from_slice(&src[at..]);
    Ok(out)
}

/// The approval this call went ahead under, as the record loaded from the store says:
/// granted in full, used by this very call, and bound to this call's scope. `None` when
/// there is none, or when any of that does not hold. Never decided from the audit note
/// or from what an outer layer says about the approval beyond its id.
async fn consumed_approval(
    ext: &http::Extensions,
    config: &DetokenizeLayer,
) -> Result<Option<ConsumedApproval>, Error> {
    let (Some(lookup), Some(reference), Some(call_id), Some(scope)) =
        (&config.approvals, ext.get::<ApprovalRef>(), ext.get::<CallId>(), ext.get::<CallScope>())
    else {
        return Ok(None);
    };
    let Some(consumed) = lookup.consumed_by(&reference.id, *call_id).await? else { return Ok(None) };
    if consumed.call_id != *call_id || consumed.scope_digest != scope.digest() {
        return Ok(None);
    }
    Ok(Some(consumed))
}

/// Whether `consumed` covers a use of `entry` at `found`: the approval was granted for a
/// call carrying this placeholder there, and an approver of every group the binding
/// names met a requirement.
fn approval_covers(consumed: &ConsumedApproval, entry: &CatalogEntry, found: &Found, approvers: &[String]) -> bool {
    let location = found.to_string();
    let loc = PlaceholderUse::scope_location(&location);
    let carried = consumed
        .placeholders
        .iter()
        .any(|u| u.placeholder == entry.placeholder().as_str() && u.location.eq_ignore_ascii_case(loc));
    carried && approvers.iter().all(|g| consumed.groups_met.contains(g))
}

pub(crate) async fn prepare<B>(req: Request<B>, config: DetokenizeLayer) -> super::future::Prepared
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = req.into_parts();
    let call_id = parts.extensions.get::<CallId>().copied();
    let note = parts.extensions.get::<AuditNote>().cloned();
    let refuse = |e: Error| refuse(e, call_id.as_ref(), note.as_ref());

    // Buffer the whole body first: a refusal must come before any byte is forwarded.
    let body = match Limited::new(body, config.max_body_bytes).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let too_large = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            return Err(refuse(if too_large {
                Error::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body is larger than {} bytes", config.max_body_bytes),
                )
            } else {
                Error::new(ErrorCode::BadRequest, "the request body could not be read")
            }));
        }
    };

    let snap = config.catalog.snapshot();
    let mut hits: Vec<Hit> = Vec::new();
    for (i, (name, value)) in parts.headers.iter().enumerate() {
        for (range, entry) in snap.find(value.as_bytes()).take(MAX_PLACEHOLDERS + 1) {
            hits.push(Hit {
                place: Place::Header(i),
                range,
                found: Found::Header(name.as_str().to_owned()),
                entry: entry.clone(),
            });
        }
    }
    if let Some(q) = parts.uri.query() {
        let base = q.as_ptr() as usize;
        for pair in q.split('&') {
            let off = pair.as_ptr() as usize - base;
            let key = pair.split('=').next().unwrap_or("");
            for (range, entry) in snap.find(pair.as_bytes()) {
                hits.push(Hit {
                    place: Place::Query,
                    range: off + range.start..off + range.end,
                    found: Found::Query(percent_decode(key.as_bytes())),
                    entry: entry.clone(),
                });
            }
        }
    }
    let first_body_hit = hits.len();
    for (range, entry) in snap.find(&body).take(MAX_PLACEHOLDERS + 1) {
        hits.push(Hit { place: Place::Body, range, found: Found::Body(None), entry: entry.clone() });
    }
    // Bounded work: each placeholder costs a binding check, a pointer and a splice.
    if hits.len() > MAX_PLACEHOLDERS {
        return Err(refuse(Error::new(
            ErrorCode::BadRequest,
            format!("the request carries more than {MAX_PLACEHOLDERS} placeholders"),
        )));
    }
    // A body that parses as JSON is JSON whatever its content type (docs/reference.md, the data path, layer 4):
    // its placeholders sit at pointers and take JSON-escaped values. One that claims JSON
    // and is not, or is nested too deep to locate, is refused rather than treated as
    // opaque bytes.
    let mut body_kind = content_kind(&parts.headers);
    if hits.len() > first_body_hit {
        let ranges: Vec<Range<usize>> = hits[first_body_hit..].iter().map(|h| h.range.clone()).collect();
        match json::locate(&body, &ranges) {
            Ok(pointers) => {
                body_kind = Encoding::Json;
                for (h, p) in hits[first_body_hit..].iter_mut().zip(pointers) {
                    h.found = Found::Body(p);
                }
            }
            Err(json::LocateError::NotJson) if body_kind != Encoding::Json => {}
            Err(e) => {
                let why = match e {
                    json::LocateError::NotJson => "the body claims JSON and is not valid JSON".to_owned(),
                    json::LocateError::TooDeep => {
                        format!("the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
                    }
                    json::LocateError::PointerTooLong => {
                        format!("a placeholder sits at a JSON pointer longer than {MAX_POINTER_BYTES} bytes")
                    }
                };
                return Err(refuse(Error::new(ErrorCode::BadRequest, why)));
            }
        }
    }

    let call = parts.extensions.get::<Call>();
    let identity = parts.extensions.get::<Identity>();
    let consumed = match consumed_approval(&parts.extensions, &config).await {
        Ok(c) => c,
        Err(e) => return Err(refuse(e)),
    };
    let (issuer, subject) = identity.map(|i| (i.issuer.as_str(), i.subject.as_str())).unwrap_or(("", ""));
    let mut guard: Option<InFlightGuard> = match (&config.inflight, call, call_id) {
        (Some(reg), Some(call), Some(id)) => {
            let groups = identity.map(|i| i.groups.as_slice()).unwrap_or(&[]);
            let met = consumed.as_ref().map(|c| c.groups_met.as_slice()).unwrap_or(&[]);
            Some(reg.register(id, &call.function, (issuer, subject), groups, met))
        }
        _ => None,
    };
    // The call's redemption credential rides in the extensions to the forwarder, which
    // alone writes `Cloakroom-*` headers upstream.
    let redeem_token = guard.as_mut().and_then(InFlightGuard::take_redeem_token);

    if hits.is_empty() {
        if let Some(t) = redeem_token {
            parts.extensions.insert(t);
        }
        return Ok((Request::from_parts(parts, Full::new(body)), guard));
    }

    // Check every use before fetching or substituting anything.
    let now = time::OffsetDateTime::now_utc();
    let groups: &[String] = identity.map(|i| i.groups.as_slice()).unwrap_or(&[]);
    for h in &hits {
        let denied = |why: String| {
            Error::new(
                ErrorCode::SecretNotBound,
                format!("placeholder {} found at {} cannot be used: {why}", h.entry.placeholder(), h.found),
            )
        };
        let Some(call) = call else {
            return Err(refuse(denied("the call's function is not known".into())));
        };
        let Some(binding) = h.entry.binding() else {
            return Err(refuse(denied(Refusal::Unbound.to_string())));
        };
        if let Err(r) = binding.check(&call.function, &h.found, groups, now) {
            return Err(refuse(denied(r.to_string())));
        }
        if !binding.approvers().is_empty() {
            let covered =
                consumed.as_ref().is_some_and(|c| approval_covers(c, &h.entry, &h.found, binding.approvers()));
            if !covered {
                return Err(refuse(denied(format!(
                    "its binding requires this exact call to be approved by {:?}",
                    binding.approvers()
                ))));
            }
        }
    }

    // Fetch each value once; a store that is down fails the call closed.
    let mut values: Vec<(String, cloakroom_core::Secret)> = Vec::new();
    for h in &hits {
        if values.iter().any(|(n, _)| n == h.entry.name()) {
            continue;
        }
        match config.catalog.value_of(&h.entry).await {
            Ok(v) => values.push((h.entry.name().to_owned(), v)),
            Err(CatalogError::NoValue(_)) => {
                return Err(refuse(Error::new(
                    ErrorCode::SecretNotBound,
                    format!(
                        "placeholder {} cannot be used: its secret has no value in the vault",
                        h.entry.placeholder()
                    ),
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "secret store unavailable; refusing the call");
                return Err(refuse(Error::new(
                    ErrorCode::VaultUnavailable,
                    "the secret store is unavailable; the call was not forwarded",
                )));
            }
        }
    }
    let value_of =
        |h: &Hit| values.iter().find(|(n, _)| n == h.entry.name()).map(|(_, v)| v.expose()).unwrap_or_default();

    // Headers.
    let header_hits: Vec<usize> = {
        let mut idx: Vec<usize> =
            hits.iter().filter_map(|h| if let Place::Header(i) = h.place { Some(i) } else { None }).collect();
        idx.dedup();
        idx
    };
    if !header_hits.is_empty() {
        let old = std::mem::take(&mut parts.headers);
        let mut new = http::HeaderMap::with_capacity(old.len());
        for (i, (name, value)) in old.iter().enumerate() {
            if header_hits.contains(&i) {
                let these: Vec<(&Range<usize>, &[u8])> = hits
                    .iter()
                    .filter(|h| matches!(h.place, Place::Header(j) if j == i))
                    .map(|h| (&h.range, value_of(h)))
                    .collect();
                let bytes = splice(value.as_bytes(), &these, Encoding::Raw).expect("raw encoding cannot fail");
                let Ok(mut v) = HeaderValue::from_bytes(&bytes) else {
                    return Err(refuse(Error::new(
                        ErrorCode::BadRequest,
                        format!("the secret for header {name} is not a valid header value"),
                    )));
                };
                // Keep substituted secrets out of HPACK tables and debug output.
                v.set_sensitive(true);
                new.append(name.clone(), v);
            } else {
                new.append(name.clone(), value.clone());
            }
        }
        parts.headers = new;
    }

    // Query.
    let query_hits: Vec<(&Range<usize>, &[u8])> =
        hits.iter().filter(|h| matches!(h.place, Place::Query)).map(|h| (&h.range, value_of(h))).collect();
    if !query_hits.is_empty() {
        let q = parts.uri.query().unwrap_or_default();
        let new_q = splice(q.as_bytes(), &query_hits, Encoding::Percent).expect("percent encoding cannot fail");
        let new_q = std::str::from_utf8(&new_q).expect("percent-encoded is ASCII");
        let path = parts.uri.path();
        let mut uri = http::uri::Builder::new();
        if let Some(s) = parts.uri.scheme() {
            uri = uri.scheme(s.clone());
        }
        if let Some(a) = parts.uri.authority() {
            uri = uri.authority(a.clone());
        }
        parts.uri = match uri.path_and_query(format!("{path}?{new_q}")).build() {
            Ok(u) => u,
            Err(_) => return Err(refuse(Error::new(ErrorCode::BadRequest, "invalid request URI after substitution"))),
        };
    }

    // Body.
    let body_hits: Vec<(&Range<usize>, &[u8])> =
        hits.iter().filter(|h| matches!(h.place, Place::Body)).map(|h| (&h.range, value_of(h))).collect();
    let body = if body_hits.is_empty() {
        body
    } else {
        match splice(&body, &body_hits, body_kind) {
            Ok(b) => Bytes::from(b.to_vec()),
            Err(()) => {
                return Err(refuse(Error::new(
                    ErrorCode::BadRequest,
                    "a secret that is not UTF-8 cannot be placed in a JSON body",
                )))
            }
        }
    };
    // The body's length changed: fix Content-Length (a chunked request stays chunked).
    if (parts.headers.contains_key(header::CONTENT_LENGTH) || !body_hits.is_empty())
        && !parts.headers.contains_key(header::TRANSFER_ENCODING)
    {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }

    // Spend the use budgets last, when nothing else can refuse the call: one use per
    // secret however many times it occurs, all of the call's secrets or none
    // (docs/policy.md, "Use budgets"). A secret without a budget costs no store call.
    let mut budgeted: Vec<(&str, &budget::Budget)> = Vec::new();
    for h in &hits {
        if let Some(b) = h.entry.binding().and_then(|b| b.budget()) {
            if !budgeted.iter().any(|(n, _)| *n == h.entry.name()) {
                budgeted.push((h.entry.name(), b));
            }
        }
    }
    if !budgeted.is_empty() {
        let store = config.catalog.budget_store();
        let caller = budget::caller_key(issuer, subject);
        if let Err(refusal) = budget::spend(&*store, &budgeted, &caller, budget::unix_now()).await {
            if let budget::BudgetRefusal::Unavailable(e) = &refusal {
                tracing::warn!(error = %e, "use budget store unavailable; refusing the call");
            }
            return Err(refuse(refusal.to_error()));
        }
        if let Some(g) = &guard {
            g.spent(budgeted.iter().map(|(n, _)| *n));
        }
    }

    // Record what was used and where.
    let mut used: Vec<SecretUse> = Vec::new();
    for h in &hits {
        let u = SecretUse {
            name: h.entry.name().to_owned(),
            placeholder: h.entry.placeholder().clone(),
            location: h.found.to_string(),
        };
        if !used.contains(&u) {
            used.push(u);
        }
    }
    if let Some(n) = &note {
        for u in &used {
            n.add_secret_used(u.clone());
        }
    }
    parts.extensions.insert(SecretsFound(used));
    if let Some(t) = redeem_token {
        parts.extensions.insert(t);
    }
    Ok((Request::from_parts(parts, Full::new(body)), guard))
}
