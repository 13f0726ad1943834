//! The [`ResponseFuture`] of the [`NameCall`](super::NameCall).
//!
//! A state machine instead of a boxed `async` block: reading the body, then calling the
//! inner service, then (MCP only, and only when the answer needs re-rendering) the
//! rescue step. Refusals found before the body is read are ready at once. The rescue
//! step stays a boxed future: it reads a `tools/list` body and awaits one policy
//! evaluation per tool, and it runs only for MCP refusals, pending approvals and
//! `tools/list` results, not on the common path.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use cloakroom_core::{AuditNote, CallId, Error, ErrorCode, Identity, Protocol, ResponseBody};
use http::{request::Parts, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{combinators::Collect, BodyExt, Full, Limited};
use pin_project_lite::pin_project;

use super::{
    layer::CallLayer,
    parse::{http_call, mcp_call, named_call, McpRefusal},
    refuse::{rpc_response, too_large},
    rescue,
    scope::call_scope,
    CallBody,
};
use crate::{forward::BoxError, mcp::jsonrpc::McpMessage, route::Routed};

/// What the body-reading state carries into the call.
struct Pending<S> {
    inner: S,
    parts: Parts,
    /// `None`: the layer's naming closure names the call.
    routed: Option<Routed>,
    layer: CallLayer,
    call_id: Option<CallId>,
    note: Option<AuditNote>,
}

/// What the rescue step needs once the inner service answered an MCP request.
struct Rescue {
    message: McpMessage,
    call_id: Option<CallId>,
    identity: Option<Identity>,
    routed: Routed,
    layer: CallLayer,
}

type BoxedRescue<ResBody> = Pin<Box<dyn Future<Output = Response<CallBody<ResBody>>> + Send>>;

pin_project! {
    /// The response future of [`NameCall`](super::NameCall).
    pub struct ResponseFuture<S, B, ResBody>
    where
        S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, ResBody>
    where
        S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        /// Answered without calling the inner service.
        Ready { res: Option<Response<CallBody<ResBody>>> },
        /// Reading the request body.
        Reading { #[pin] collect: Collect<Limited<B>>, pending: Option<Pending<S>> },
        /// Waiting for the inner service.
        Calling { #[pin] fut: S::Future, rescue: Option<Rescue> },
        /// The MCP rescue step.
        Rescuing { fut: BoxedRescue<ResBody> },
    }
}

impl<S, B, ResBody> ResponseFuture<S, B, ResBody>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// Already answered.
    pub(super) fn ready(res: Response<CallBody<ResBody>>) -> Self {
        Self { state: State::Ready { res: Some(res) } }
    }

    /// Reads `body` (up to the layer's limit), then calls `inner`.
    pub(super) fn reading(
        inner: S,
        parts: Parts,
        body: B,
        routed: Option<Routed>,
        layer: CallLayer,
        call_id: Option<CallId>,
        note: Option<AuditNote>,
    ) -> Self {
        let limit = usize::try_from(layer.max_body_bytes).unwrap_or(usize::MAX);
        let collect = Limited::new(body, limit).collect();
        Self {
            state: State::Reading { collect, pending: Some(Pending { inner, parts, routed, layer, call_id, note }) },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B, ResBody>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<CallBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { res } => {
                    return Poll::Ready(Ok(res.take().expect("ResponseFuture polled after completion")));
                }
                StateProj::Reading { collect, pending } => {
                    let collected = ready!(collect.poll(cx));
                    let pending = pending.take().expect("ResponseFuture polled after completion");
                    let next = match collected {
                        Ok(c) => start_call(pending, c.to_bytes()),
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                            let Pending { routed, layer, call_id, note, .. } = pending;
                            Next::Ready(too_large(routed.as_ref(), &layer, call_id.as_ref(), note.as_ref()))
                        }
                        Err(_) => {
                            let err = Error::new(ErrorCode::BadRequest, "the request body could not be read");
                            Next::Ready(
                                err.refuse(pending.call_id.as_ref(), pending.note.as_ref()).map(ResponseBody::refused),
                            )
                        }
                    };
                    match next {
                        Next::Ready(res) => state.set(State::Ready { res: Some(res) }),
                        Next::Call(fut, rescue) => state.set(State::Calling { fut, rescue }),
                    }
                }
                StateProj::Calling { fut, rescue } => {
                    let res = ready!(fut.poll(cx))?;
                    let Some(rescue) = rescue.take() else {
                        return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                    };
                    if !rescue::needs_rescue(&res, &rescue.message, rescue.layer.tool_visibility.is_some()) {
                        return Poll::Ready(Ok(res.map(ResponseBody::inner)));
                    }
                    let fut: BoxedRescue<ResBody> = Box::pin(async move {
                        let Rescue { message, call_id, identity, routed, layer } = rescue;
                        rescue::rescue(
                            res,
                            &message,
                            call_id.as_ref(),
                            identity.as_ref(),
                            &routed,
                            layer.tool_visibility.as_ref(),
                        )
                        .await
                    });
                    state.set(State::Rescuing { fut });
                }
                StateProj::Rescuing { fut } => return fut.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

enum Next<F, ResBody> {
    Ready(Response<CallBody<ResBody>>),
    Call(F, Option<Rescue>),
}

/// Builds the call from the buffered request and calls the inner service.
fn start_call<S, ResBody>(pending: Pending<S>, body: Bytes) -> Next<S::Future, ResBody>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
{
    let Pending { mut inner, parts, routed, layer, call_id, note } = pending;
    let identity = parts.extensions.get::<Identity>().cloned();
    let refuse = |err: Error| Next::Ready(err.refuse(call_id.as_ref(), note.as_ref()).map(ResponseBody::refused));
    let (call, message) = match routed.as_ref().map(|r| (r, r.function.protocol())) {
        None => {
            let named = layer.namer.as_ref().and_then(|name| name(&parts, &body));
            let Some(named) = named else {
                return refuse(Error::new(ErrorCode::NotFound, "no function at this path"));
            };
            match named_call(named, &parts, &body) {
                Ok(call) => (call, None),
                Err(err) => return refuse(err),
            }
        }
        Some((routed, Protocol::Http)) => match http_call(routed, &parts, &body) {
            Ok(call) => (call, None),
            Err(err) => return refuse(err),
        },
        Some((routed, Protocol::Mcp)) => match mcp_call(routed, &parts, &body) {
            Ok(parsed) => parsed,
            Err(McpRefusal::Malformed(e)) => {
                return Next::Ready(rpc_response(StatusCode::BAD_REQUEST, &e, note.as_ref(), ErrorCode::BadRequest))
            }
            Err(McpRefusal::Answer(e)) => {
                return Next::Ready(rpc_response(StatusCode::OK, &e, note.as_ref(), ErrorCode::BadRequest))
            }
        },
    };
    if let Some(note) = &note {
        note.set_call(&call);
    }
    let uses = layer.secret_scanner.as_ref().map(|scan| scan(&parts, &body));
    let scope = identity
        .as_ref()
        .map(|id| call_scope(id, &call, &parts, &body, message.as_ref(), uses.clone().unwrap_or_default()));
    let mut req = Request::from_parts(parts, Full::new(body));
    if let Some(uses) = uses {
        let mut names: Vec<String> = Vec::new();
        for u in uses {
            if let Some(name) = u.secret {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        req.extensions_mut().insert(cloakroom_policy::SecretsInCall(names));
    }
    if let Some(scope) = scope {
        req.extensions_mut().insert(scope);
    }
    req.extensions_mut().insert(call);
    let rescue = message.zip(routed).map(|(message, routed)| Rescue { message, call_id, identity, routed, layer });
    Next::Call(inner.call(req), rescue)
}
