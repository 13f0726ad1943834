use std::task::{Context, Poll};

use bytes::Bytes;
use cloakroom_core::{AuditNote, Call, CallId, CallScope, ClientAddr, Decision, Effect, Error, ErrorCode, Identity};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::Service;

use super::{PendingApproval, ResponseBody, ResponseFuture, APPROVAL_HEADER};
use crate::{Approval, ApprovalState, Approvals, Policies, PolicyInput, SecretsInCall};

/// The service made by [`super::PolicyLayer`].
#[derive(Debug, Clone)]
pub struct Authorize<S> {
    inner: S,
    policies: Policies,
    approvals: Approvals,
}

impl<S> Authorize<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policies: Policies, approvals: Approvals) -> Self {
        Self { inner, policies, approvals }
    }

    /// A [`super::PolicyLayer`] making this service.
    pub fn layer(policies: Policies, approvals: Approvals) -> super::PolicyLayer {
        super::PolicyLayer::new(policies, approvals)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready inner service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (policies, approvals) = (self.policies.clone(), self.approvals.clone());
        ResponseFuture::new(Box::pin(decide(inner, policies, approvals, req)))
    }
}

async fn decide<S, ReqBody, ResBody>(
    mut inner: S,
    policies: Policies,
    approvals: Approvals,
    mut req: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let call_id = req.extensions().get::<CallId>().copied();
    let note = req.extensions().get::<AuditNote>().cloned();
    let refuse = |err: Error| Ok(err.refuse(call_id.as_ref(), note.as_ref()).map(ResponseBody::refused));

    // Fail closed: without a verified caller and a parsed call there is nothing to allow.
    let Some(identity) = req.extensions().get::<Identity>().cloned() else {
        return refuse(Error::new(ErrorCode::Forbidden, "no verified identity on the request; refused"));
    };
    let Some(call) = req.extensions().get::<Call>().cloned() else {
        return refuse(Error::new(ErrorCode::Forbidden, "no parsed call on the request; refused"));
    };
    let source_ip = identity.source_ip.or_else(|| req.extensions().get::<ClientAddr>().map(|a| a.0.ip()));
    let secrets = req.extensions().get::<SecretsInCall>().map(|s| s.0.clone()).unwrap_or_default();
    let input = PolicyInput::new(&identity, &call).with_source_ip(source_ip).with_secrets(&secrets);
    let (decision, shadow) = policies.evaluate_with_shadow(&input).await;
    if let (Some(n), false) = (&note, shadow.is_empty()) {
        n.set_shadow(&shadow);
    }
    let record = |req: &mut Request<ReqBody>, d: &Decision| {
        if let Some(n) = &note {
            n.set_decision(d);
        }
        req.extensions_mut().insert(d.clone());
    };
    record(&mut req, &decision);

    match decision.effect {
        Effect::Allow => {}
        Effect::Deny => {
            let message = match &decision.rule {
                Some(rule) => format!("denied by policy rule {rule:?}: {}", decision.reason),
                None => "denied: no policy rule allows this call".to_owned(),
            };
            return refuse(Error::new(ErrorCode::Forbidden, message));
        }
        Effect::Approve => {
            // The approval check's trace span, ended with this arm (docs/operations.md, "Traces").
            let span = tracing::debug_span!(target: "cloakroom::trace", "approvals", cloakroom.approval_id = tracing::field::Empty);
            // An approval binds the whole call: without its scope there is nothing to bind
            // it to, and without a call id nothing to record its use against.
            let (Some(scope), Some(this_call)) = (req.extensions().get::<CallScope>().cloned(), call_id) else {
                return refuse(Error::new(
                    ErrorCode::Forbidden,
                    "this call needs approval but carries no call scope or call id to bind it to; refused",
                ));
            };
            let presented = req.headers().get(APPROVAL_HEADER).map(|v| v.to_str().map(str::trim).map(str::to_owned));
            let approval = match presented {
                Some(Ok(id)) => match approvals.redeem(&id, &identity, &scope, this_call).await {
                    Ok(a) => a,
                    Err(e) => return refuse(e.to_error()),
                },
                Some(Err(_)) => {
                    return refuse(Error::new(ErrorCode::ApprovalInvalid, "the Cloakroom-Approval header is not text"))
                }
                None => {
                    let asked = match approvals
                        .request(&identity, &scope, &call.arguments, &decision, call_id.as_ref())
                        .await
                    {
                        Ok(a) => a,
                        Err(e) => return refuse(e.to_error()),
                    };
                    if let Some(n) = &note {
                        n.set_approval(asked.to_ref());
                    }
                    span.record("cloakroom.approval_id", asked.id.as_str());
                    let wait = approvals.config().wait;
                    let decided = if wait.is_zero() {
                        asked
                    } else {
                        match approvals.wait_for_decision(&asked.id, wait).await {
                            Ok(a) => a,
                            Err(e) => return refuse(e.to_error()),
                        }
                    };
                    match decided.state {
                        ApprovalState::Approved => {
                            match approvals.redeem(&decided.id, &identity, &scope, this_call).await {
                                Ok(a) => a,
                                Err(e) => return refuse(e.to_error()),
                            }
                        }
                        ApprovalState::Denied => {
                            if let Some(n) = &note {
                                n.set_approval(decided.to_ref());
                            }
                            let by = decided.decided_by.as_deref().unwrap_or("an approver");
                            return refuse(Error::new(ErrorCode::Forbidden, format!("approval denied by {by}")));
                        }
                        ApprovalState::Expired | ApprovalState::Used => {
                            return refuse(Error::new(
                                ErrorCode::ApprovalInvalid,
                                format!("the approval is {}", decided.state),
                            ))
                        }
                        ApprovalState::Pending => return Ok(pending(&decided, call_id.as_ref())),
                    }
                }
            };
            span.record("cloakroom.approval_id", approval.id.as_str());
            let allowed = approved_decision(&decision, &approval);
            if let Some(n) = &note {
                n.set_approval(approval.to_ref());
            }
            record(&mut req, &allowed);
            req.extensions_mut().insert(approval.to_ref());
        }
    }
    let res = inner.call(req).await?;
    Ok(res.map(ResponseBody::inner))
}

/// The decision a call goes ahead under once its approval is used: allow, by the rule
/// that asked for approval.
fn approved_decision(asked: &Decision, approval: &Approval) -> Decision {
    let by = approval.decided_by.as_deref().unwrap_or("an approver");
    let rule = asked.rule.clone().unwrap_or_else(|| "approval".to_owned());
    let mut d = Decision::allow(rule, format!("approved by {by} (approval {})", approval.id));
    d.approvers = asked.approvers.clone();
    d
}

fn pending<B>(approval: &Approval, call_id: Option<&CallId>) -> Response<ResponseBody<B>> {
    let body = PendingApproval::new(approval.id.clone(), call_id.map(|c| c.to_string()));
    let bytes = serde_json::to_vec(&body).expect("pending answer serializes");
    let mut res = Response::new(ResponseBody::refused(Full::new(Bytes::from(bytes))));
    *res.status_mut() = StatusCode::ACCEPTED;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.extensions_mut().insert(body);
    res
}
