//! MCP sessions (`Mcp-Session-Id`) bound to the identity that opened them.
//!
//! An MCP server that keeps sessions names one in the `Mcp-Session-Id` header of its
//! answer to `initialize`, and the client sends it on every later request. The session
//! id is a bearer value: whoever presents it continues the session, with whatever the
//! server keeps in it. So the gateway records, per function, which identity (issuer and
//! subject) the upstream gave each session id to, and a request presenting a session id
//! is forwarded only for that identity. Any other identity — and any id the gateway did
//! not see being issued — gets the answer the MCP specification gives for an unknown
//! session: HTTP 404, here with a JSON-RPC error, identical in both cases, and nothing is
//! forwarded. A `DELETE` the upstream accepts ends the session.
//!
//! The table is in memory, per gateway process: bounded by [`MAX_SESSIONS`] (least
//! recently used sessions are forgotten first) and [`SESSION_IDLE_TTL`] of disuse. A
//! forgotten session, or one opened through another replica or before a restart, is
//! unknown here: the client gets 404 and, as the specification asks, opens a new one.
//! Behind a load balancer, route MCP traffic stickily (e.g. on `Mcp-Session-Id`).
//!
//! [`McpSessionLayer`] sits after the identity layer (it reads the [`Identity`]) and
//! before the call layer, so a refusal is audited and never reaches the JSON-RPC rescue.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Identity, Protocol, ResponseBody};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::jsonrpc::{error_object, REFUSED};
use crate::route::Routed;

/// The MCP session header.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
/// Most sessions remembered at once (all functions).
pub const MAX_SESSIONS: usize = 100_000;
/// A session unused this long is forgotten.
pub const SESSION_IDLE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest session id accepted (the MCP specification asks for visible ASCII; SDKs use UUIDs).
const MAX_SESSION_ID_LEN: usize = 256;

#[derive(Debug, PartialEq, Eq)]
struct Owner {
    issuer: String,
    subject: String,
}

impl Owner {
    fn of(identity: &Identity) -> Self {
        Self { issuer: identity.issuer.clone(), subject: identity.subject.clone() }
    }
}

/// The table of MCP sessions and who opened them, (function, session id) -> owner.
/// Cheap to clone (shared).
///
/// A moka cache: bounded, least-recently-used eviction (a new session is always
/// admitted, the least recently used one goes) and an idle timeout, each in constant
/// time — a hand-written table scanned all of its 100,000 entries for every session
/// opened once it was full.
#[derive(Clone)]
pub struct McpSessions {
    table: moka::sync::Cache<(String, Vec<u8>), Arc<Owner>>,
}

impl std::fmt::Debug for McpSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSessions").field("len", &self.table.entry_count()).finish()
    }
}

impl Default for McpSessions {
    fn default() -> Self {
        Self::new(MAX_SESSIONS, SESSION_IDLE_TTL)
    }
}

impl McpSessions {
    /// A table of at most `capacity` sessions, each forgotten after `idle_ttl` unused.
    pub fn new(capacity: usize, idle_ttl: Duration) -> Self {
        let table = moka::sync::Cache::builder()
            .max_capacity(capacity.max(1) as u64)
            .time_to_idle(idle_ttl)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .build();
        Self { table }
    }

    /// Whether session `id` of `function` was opened by `identity` (and is still
    /// remembered); a use keeps it alive.
    pub fn check(&self, function: &str, id: &[u8], identity: &Identity) -> bool {
        self.table
            .get(&(function.to_owned(), id.to_vec()))
            .is_some_and(|o| o.issuer == identity.issuer && o.subject == identity.subject)
    }

    /// Records that the upstream of `function` opened session `id` for `identity`. An id
    /// already held by another identity keeps its owner.
    pub fn open(&self, function: &str, id: &[u8], identity: &Identity) {
        let owner = Arc::new(Owner::of(identity));
        let entry = self.table.entry((function.to_owned(), id.to_vec())).or_insert_with(|| owner.clone());
        if !entry.is_fresh() && *entry.value() != owner {
            tracing::warn!(function, "an upstream issued an MCP session id it had already issued to another identity");
        }
    }

    /// Forgets session `id` of `function`.
    pub fn close(&self, function: &str, id: &[u8]) {
        self.table.invalidate(&(function.to_owned(), id.to_vec()));
    }

    /// Number of sessions remembered (after pending evictions are applied).
    pub fn len(&self) -> usize {
        self.table.run_pending_tasks();
        usize::try_from(self.table.entry_count()).unwrap_or(usize::MAX)
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Binds MCP sessions to identities (see the module docs).
#[derive(Debug, Clone)]
pub struct McpSessionLayer {
    sessions: McpSessions,
}

impl McpSessionLayer {
    /// A layer over `sessions`.
    pub fn new(sessions: McpSessions) -> Self {
        Self { sessions }
    }
}

impl<S> tower::Layer<S> for McpSessionLayer {
    type Service = McpSession<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpSession::new(inner, self.sessions.clone())
    }
}

/// The service of [`McpSessionLayer`].
#[derive(Debug, Clone)]
pub struct McpSession<S> {
    inner: S,
    sessions: McpSessions,
}

impl<S> McpSession<S> {
    /// Wraps `inner`, binding sessions in `sessions`.
    pub fn new(inner: S, sessions: McpSessions) -> Self {
        Self { inner, sessions }
    }

    /// A layer (same as [`McpSessionLayer::new`]).
    pub fn layer(sessions: McpSessions) -> McpSessionLayer {
        McpSessionLayer::new(sessions)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The answer for a session id the gateway does not hold for this caller.
fn unknown_session<B>(call_id: Option<&CallId>, note: Option<&AuditNote>) -> Response<ResponseBody<B>> {
    let error = Error::new(ErrorCode::NotFound, "no such MCP session; start a new one with initialize");
    if let Some(n) = note {
        n.set_error(&error);
    }
    let body = error_object(&serde_json::Value::Null, REFUSED, &error.message, Some(error.to_json_value(None)));
    let mut res = Response::new(ResponseBody::refused(Full::new(Bytes::from(body.to_string()))));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = call_id.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        res.headers_mut().insert(crate::forward::CALL_ID_HEADER, id);
    }
    res.extensions_mut().insert(error);
    res
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for McpSession<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let function = req
            .extensions()
            .get::<Routed>()
            .filter(|r| r.function.protocol() == Protocol::Mcp)
            .map(|r| r.function.name().to_owned());
        let (Some(function), Some(identity)) = (function, req.extensions().get::<Identity>().cloned()) else {
            return Box::pin(async move { Ok(inner.call(req).await?.map(ResponseBody::inner)) });
        };
        let call_id = req.extensions().get::<CallId>().copied();
        let note = req.extensions().get::<AuditNote>().cloned();
        let mut presented = req.headers().get_all(SESSION_HEADER).iter();
        let session = match (presented.next(), presented.next()) {
            (None, _) => None,
            (Some(id), None) if !id.is_empty() && id.len() <= MAX_SESSION_ID_LEN => Some(id.as_bytes().to_vec()),
            // Repeated, empty or oversized: no session this gateway issued looks like that.
            _ => return Box::pin(async move { Ok(unknown_session(call_id.as_ref(), note.as_ref())) }),
        };
        let sessions = self.sessions.clone();
        if let Some(id) = &session {
            if !sessions.check(&function, id, &identity) {
                tracing::info!(function, subject = %identity.subject, "MCP session refused: unknown to this caller");
                return Box::pin(async move { Ok(unknown_session(call_id.as_ref(), note.as_ref())) });
            }
        }
        let is_delete = req.method() == Method::DELETE;
        Box::pin(async move {
            let res = inner.call(req).await?;
            match &session {
                // `initialize` (or any request without a session) that opened one.
                None => {
                    if let Some(id) = res.headers().get(SESSION_HEADER) {
                        if !id.is_empty() && id.len() <= MAX_SESSION_ID_LEN {
                            sessions.open(&function, id.as_bytes(), &identity);
                        }
                    }
                }
                Some(id) if is_delete && res.status().is_success() => sessions.close(&function, id),
                Some(_) => {}
            }
            Ok(res.map(ResponseBody::inner))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloakroom_core::AuthMethod;

    fn who(issuer: &str, subject: &str) -> Identity {
        Identity::new(subject.into(), issuer.into(), AuthMethod::ApiKey)
    }

    #[test]
    fn a_session_answers_only_the_identity_that_opened_it() {
        let s = McpSessions::default();
        let alice = who("api_key", "alice");
        s.open("tools", b"s-1", &alice);
        assert!(s.check("tools", b"s-1", &alice));
        assert!(!s.check("tools", b"s-1", &who("api_key", "bob")));
        assert!(!s.check("tools", b"s-1", &who("biscuit", "alice")), "same subject, another issuer");
        assert!(!s.check("other", b"s-1", &alice), "sessions are per function");
        assert!(!s.check("tools", b"s-2", &alice));
        // Another identity cannot take an id over.
        s.open("tools", b"s-1", &who("api_key", "bob"));
        assert!(s.check("tools", b"s-1", &alice));
        s.close("tools", b"s-1");
        assert!(!s.check("tools", b"s-1", &alice));
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_idle_sessions() {
        let s = McpSessions::new(8, Duration::from_secs(3600));
        let alice = who("api_key", "alice");
        for i in 0..100u32 {
            s.open("tools", &i.to_be_bytes(), &alice);
            assert!(s.len() <= 8);
        }
        assert!(s.check("tools", &99u32.to_be_bytes(), &alice), "the newest is kept");
        assert!(!s.check("tools", &0u32.to_be_bytes(), &alice), "the oldest went first");
        let idle = McpSessions::new(8, Duration::ZERO);
        idle.open("tools", b"x", &alice);
        std::thread::sleep(Duration::from_millis(2));
        assert!(!idle.check("tools", b"x", &alice));
        assert!(idle.is_empty());
    }
}
