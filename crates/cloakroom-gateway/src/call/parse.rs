//! From a buffered request to a [`Call`].

use cloakroom_core::{Call, Error, ErrorCode, Protocol};
use http::{header, request::Parts};
use serde_json::Value;

use super::{digest::call_digest, layer::CallName};
use crate::{
    json::http_arguments,
    mcp::jsonrpc::{McpMessage, RpcError, INVALID_PARAMS, INVALID_REQUEST},
    route::{parse_query, RefusedTarget, Routed},
};

/// Headers some servers and frameworks read as the request's real method or path:
/// policy would judge one request and the upstream run another, so they are refused.
pub(crate) const OVERRIDE_HEADERS: [&str; 6] = [
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

/// The parameter Rails, Laravel and Symfony read as the method of a POST.
const METHOD_PARAMETER: &str = "_method";

/// The longest MCP tool name accepted in `tools/call` (the MCP specification asks tool
/// names to be 1 to 128 characters; docs/mcp.md).
pub(crate) const MAX_TOOL_NAME_BYTES: usize = 128;

fn bad_request(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::BadRequest, message)
}

/// What is refused from the head alone, before the body is read: a target that could
/// not be normalized, method or path override headers, and a compressed body (policy
/// and the detokenizer could not read it; it is not decompressed).
pub(crate) fn check_head(parts: &Parts) -> Result<(), Error> {
    if let Some(RefusedTarget(e)) = parts.extensions.get::<RefusedTarget>() {
        return Err(bad_request(e.to_string()));
    }
    // Methods are case-sensitive (RFC 9110), and hyper passes `post` on as a method of
    // its own, which policy and the MCP layer do not take for POST; some servers do
    // (ASP.NET Core compares methods without regard to case).
    if parts.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(bad_request(
            "a method with lower-case letters is not accepted: methods are case-sensitive (POST, not post)",
        ));
    }
    if let Some(h) = OVERRIDE_HEADERS.iter().find(|h| parts.headers.contains_key(**h)) {
        return Err(bad_request(format!("the {h} header is not accepted: the method and path are the request's own")));
    }
    for v in parts.headers.get_all(header::CONTENT_ENCODING) {
        let identity = v.to_str().is_ok_and(|v| v.split(',').all(|c| c.trim().eq_ignore_ascii_case("identity")));
        if !identity {
            return Err(bad_request(
                "compressed request bodies are not accepted (Content-Encoding other than identity)",
            ));
        }
    }
    Ok(())
}

/// Refuses a `_method` parameter in the (canonical) query, a form body or a JSON body's
/// top-level object.
fn check_method_parameter(parts: &Parts, body: &[u8], arguments: &Value) -> Result<(), Error> {
    let refuse =
        |place: &str| Err(bad_request(format!("a {METHOD_PARAMETER} parameter in the {place} is not accepted")));
    let named = |query: &str| match parse_query(query) {
        Ok(params) => params.iter().any(|(k, _)| names_the_method(k)),
        // Not parseable the strict way (a form with `;`): refused if a lenient reading
        // could find the parameter.
        Err(_) => query.to_ascii_lowercase().contains("method"),
    };
    if parts.uri.query().is_some_and(named) {
        return refuse("query");
    }
    if arguments.as_object().is_some_and(|o| o.keys().any(|k| names_the_method(k))) {
        return refuse("body");
    }
    if is_form(parts) && std::str::from_utf8(body).map(named).unwrap_or(false) {
        return refuse("body");
    }
    Ok(())
}

/// Whether a lenient form parser finds a field in `body`, a JSON document: a `&`- or
/// `;`-separated part after the first that holds a `=`. Form parsers clean names up in
/// ways no allow-list of names foresees (PHP drops leading spaces and cuts at NUL,
/// Spring reads `!name`, some match names without regard to case), so any such part
/// counts; a document sent as a form without one reads as one field with JSON
/// punctuation in its name.
fn form_reading_names_a_field(body: &[u8]) -> bool {
    body.split(|b| *b == b'&' || *b == b';').skip(1).any(|part| part.contains(&b'='))
}

/// Whether a form field or query parameter named `key` is read as `_method` by some
/// framework: PHP drops leading spaces, cuts the name at NUL and turns ` ` and `.` into
/// `_`; names are compared without regard to case.
fn names_the_method(key: &str) -> bool {
    let key = key.trim_start_matches(' ');
    let key = key.split('\0').next().unwrap_or("");
    let key: String = key.chars().map(|c| if c == ' ' || c == '.' { '_' } else { c.to_ascii_lowercase() }).collect();
    key == METHOD_PARAMETER
}

/// Whether the content type says form (`application/x-www-form-urlencoded`), read from
/// the raw bytes the way lenient servers read it: after leading whitespace, in any case,
/// followed by the end or by anything that cannot continue a media type (`;`, `,`, a
/// space, a byte that is not ASCII): PHP cuts the type at `,` or a space, and Go parses
/// a form whose parameters are not valid.
///
/// Any of several `Content-Type` headers counts: servers disagree on which one wins.
fn is_form(parts: &Parts) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    parts.headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let v = v.as_bytes();
        let v = &v[v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len())..];
        v.len() >= FORM.len()
            && v[..FORM.len()].eq_ignore_ascii_case(FORM)
            && v.get(FORM.len()).is_none_or(|b| !(b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(b)))
    })
}

/// The arguments of a form body (`application/x-www-form-urlencoded`): an object of
/// its fields as strings, parsed like the query (`+` is a space, strict escapes, no
/// `;`). A field given twice is refused: servers disagree on which one counts.
fn form_arguments(body: &[u8]) -> Result<Value, Error> {
    let text = std::str::from_utf8(body).map_err(|_| bad_request("the form body is not UTF-8"))?;
    let fields = parse_query(text).map_err(|e| bad_request(format!("the form body: {e}")))?;
    let mut out = serde_json::Map::new();
    for (key, value) in fields {
        if out.contains_key(&key) {
            return Err(bad_request("the form body names a field more than once"));
        }
        out.insert(key, Value::String(value.unwrap_or_default()));
    }
    Ok(Value::Object(out))
}

/// The call of an `http` function; `Err` refuses it with `bad_request` before policy.
pub(crate) fn http_call(routed: &Routed, parts: &Parts, body: &[u8]) -> Result<Call, Error> {
    let path = routed.rest.split('?').next().unwrap_or("");
    let detail = path.split('/').find(|s| !s.is_empty()).map(str::to_owned);
    named_call(CallName::new(routed.function.name()).detail(detail), parts, body)
}

/// The call a [`CallName`] names (from a naming closure or the gateway's routes): its
/// arguments are the name's own, or the body read as for `http` functions.
pub(crate) fn named_call(name: CallName, parts: &Parts, body: &[u8]) -> Result<Call, Error> {
    if name.function.is_empty() {
        return Err(Error::new(ErrorCode::NotFound, "no function at this path"));
    }
    let mut arguments = match name.arguments {
        Some(arguments) => arguments,
        None => {
            let arguments = http_arguments(parts, body).map_err(|e| bad_request(e.to_string()))?;
            // Policy reads the JSON document and the upstream's form parser the fields:
            // `{"amount": 5, "x": "&amount=999999&"}` is `amount=999999` to it. A form
            // that is JSON and in which a form parser finds a field is refused.
            if !arguments.is_null() && is_form(parts) && form_reading_names_a_field(body) {
                return Err(bad_request(
                    "a form body (application/x-www-form-urlencoded) that is also a JSON document naming form \
                     fields is ambiguous; send JSON as application/json",
                ));
            }
            arguments
        }
    };
    // A form is read by every upstream framework: it is arguments too, so that rules on
    // `/field` see it.
    if arguments.is_null() && is_form(parts) && !body.is_empty() {
        arguments = form_arguments(body)?;
    }
    check_method_parameter(parts, body, &arguments)?;
    Ok(Call::new(name.function, Protocol::Http)
        .with_digest(call_digest(&arguments, body))
        .with_arguments(arguments)
        .with_detail(name.detail)
        .with_method(parts.method.to_string()))
}

/// The call of an `mcp` function, with the parsed message (`None` for GET and DELETE).
///
/// The second error kind is a refusal that answers a well-formed request (HTTP 200
/// with a JSON-RPC error) rather than a malformed one (HTTP 400).
pub(crate) fn mcp_call(routed: &Routed, parts: &Parts, body: &[u8]) -> Result<(Call, Option<McpMessage>), McpRefusal> {
    let name = routed.function.name();
    let base = |function: String, arguments: Value, detail: Option<String>| {
        Call::new(function, Protocol::Mcp)
            .with_digest(call_digest(&arguments, body))
            .with_arguments(arguments)
            .with_detail(detail)
            .with_method(parts.method.to_string())
    };
    if parts.method != http::Method::POST {
        return Ok((base(name.to_owned(), Value::Null, None), None));
    }
    let message = McpMessage::parse(body).map_err(McpRefusal::Malformed)?;
    message.check_headers(&parts.headers).map_err(McpRefusal::Malformed)?;
    let call = match &message {
        McpMessage::Request { method, params, id } if method == "tools/call" => {
            // Looked up as case-blind servers read them (`Arguments` is `arguments` to a Go
            // server); the strict parser let no second key of the same folded name in.
            let member = |name: &str| params.as_object().and_then(|o| cloakroom_core::get_folded(o, name));
            let Some(tool) = member("name").and_then(Value::as_str) else {
                return Err(McpRefusal::Answer(RpcError {
                    code: INVALID_PARAMS,
                    message: "Invalid params: tools/call needs params.name".into(),
                    id: id.clone(),
                }));
            };
            if tool.is_empty() {
                return Err(McpRefusal::Answer(RpcError {
                    code: INVALID_PARAMS,
                    message: "Invalid params: empty tool name".into(),
                    id: id.clone(),
                }));
            }
            if tool.len() > MAX_TOOL_NAME_BYTES {
                // The name goes into the function name, the audit record, metrics labels and
                // trace spans: a caller must not make those as large as a body.
                return Err(McpRefusal::Answer(RpcError {
                    code: INVALID_PARAMS,
                    message: format!("Invalid params: tool name longer than {MAX_TOOL_NAME_BYTES} bytes"),
                    id: id.clone(),
                }));
            }
            let arguments = member("arguments").cloned().unwrap_or(Value::Null);
            base(format!("{name}/{tool}"), arguments, Some(method.clone()))
        }
        McpMessage::Batch(_) if message.has_tool_call() => {
            // One call, one policy decision: a batch could otherwise carry a second tool
            // past the decision made for the first.
            return Err(McpRefusal::Malformed(RpcError {
                code: INVALID_REQUEST,
                message: "Invalid Request: batches containing tools/call are not accepted; send each call on its own"
                    .into(),
                id: Value::Null,
            }));
        }
        McpMessage::Batch(_) => base(name.to_owned(), Value::Null, Some("batch".into())),
        McpMessage::Request { method, .. } | McpMessage::Notification { method } => {
            base(name.to_owned(), Value::Null, Some(method.clone()))
        }
        McpMessage::Response { .. } => base(name.to_owned(), Value::Null, Some("response".into())),
    };
    Ok((call, Some(message)))
}

/// Why an MCP request is refused before policy.
#[derive(Debug)]
pub(crate) enum McpRefusal {
    /// Malformed: HTTP 400 with the JSON-RPC error.
    Malformed(RpcError),
    /// Well-formed but invalid: HTTP 200 with the JSON-RPC error for its id.
    Answer(RpcError),
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
