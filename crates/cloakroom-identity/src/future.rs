//! [`ResponseFuture`]: verify the credential, then call the inner service.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use cloakroom_core::{AuditNote, CallId, ClientAddr, Identity};
use http::{header, HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::{AuthError, Authenticator, Credential, ResourceMetadata, ResponseBody};

type Verify = Pin<Box<dyn Future<Output = Result<Identity, AuthError>> + Send>>;

pin_project! {
    /// The response future of [`crate::Authenticate`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            verify: Verify,
            header: Option<HeaderName>,
            request: Option<Request<ReqBody>>,
            inner: Option<S>,
            authenticator: Arc<Authenticator>,
            resource_metadata: Option<Arc<str>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn new(
        credential: Result<Credential, AuthError>,
        request: Request<ReqBody>,
        inner: S,
        authenticator: Arc<Authenticator>,
        resource_metadata: Option<Arc<str>>,
    ) -> Self {
        let (verify, header): (Verify, _) = match credential {
            Ok(Credential { header, token }) => {
                let auth = authenticator.clone();
                (Box::pin(async move { auth.verify_token(&token).await }), Some(header))
            }
            Err(e) => (Box::pin(std::future::ready(Err(e))), None),
        };
        Self {
            state: State::Verifying {
                verify,
                header,
                request: Some(request),
                inner: Some(inner),
                authenticator,
                resource_metadata,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { verify, header, request, inner, authenticator, resource_metadata } => {
                    let result = ready!(verify.as_mut().poll(cx));
                    let mut request = request.take().expect("polled after completion");
                    let note = request.extensions().get::<AuditNote>().cloned();
                    match result {
                        Ok(mut identity) => {
                            let peer = request.extensions().get::<ClientAddr>().map(|c| c.0);
                            identity.source_ip = authenticator.source_ip(request.headers(), peer);
                            if let Some(h) = header.take() {
                                // The credential was for the gateway, not the function.
                                request.headers_mut().remove(h);
                            }
                            if let Some(note) = &note {
                                note.set_identity(&identity);
                            }
                            request.extensions_mut().insert(identity);
                            let mut svc = inner.take().expect("polled after completion");
                            let future = svc.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(e) => {
                            let metadata = request
                                .extensions()
                                .get::<ResourceMetadata>()
                                .map(|m| m.0.as_str())
                                .or(resource_metadata.as_deref());
                            let challenge = e.www_authenticate(metadata);
                            let error = e.to_error();
                            tracing::debug!(reason = %e, "request refused: not authenticated");
                            let response = error.refuse(request.extensions().get::<CallId>(), note.as_ref());
                            let (mut parts, body) = response.into_parts();
                            if let Ok(value) = HeaderValue::from_str(&challenge) {
                                parts.headers.insert(header::WWW_AUTHENTICATE, value);
                            } else {
                                parts.headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                            }
                            return Poll::Ready(Ok(Response::from_parts(parts, ResponseBody::refused(body))));
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
            }
        }
    }
}
