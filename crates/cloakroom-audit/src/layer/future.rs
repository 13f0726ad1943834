use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::Response;
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;

use super::{BoxError, Outcome, ResponseBody, Sealer};

pin_project! {
    /// The response future of [`Audit`](super::Audit).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        sealer: Option<Sealer>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, sealer: Sealer) -> Self {
        Self { kind: Kind::Inner { future }, sealer: Some(sealer) }
    }

    pub(crate) fn refused(response: Response<Full<Bytes>>, sealer: Sealer) -> Self {
        Self { kind: Kind::Refused { response: Some(response) }, sealer: Some(sealer) }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.kind.project() {
            KindProj::Inner { future } => match ready!(future.poll(cx)) {
                Ok(res) => res.map(ResponseBody::inner),
                Err(e) => {
                    if let Some(mut sealer) = this.sealer.take() {
                        if let Some(fut) = sealer.finish(Outcome::ServiceError) {
                            tokio::spawn(fut);
                        }
                    }
                    return Poll::Ready(Err(e));
                }
            },
            KindProj::Refused { response } => {
                response.take().expect("ResponseFuture polled after completion").map(ResponseBody::error)
            }
        };
        let mut sealer = this.sealer.take().expect("ResponseFuture polled after completion");
        if let Some(err) = response.extensions().get::<cloakroom_core::Error>() {
            // A short-circuit reply of an inner layer: its error is the call's outcome.
            if let Some(s) = &sealer.state {
                s.note.set_error(err);
            }
        }
        let expected_len = response.body().size_hint().exact();
        sealer.respond(response.status(), response.headers(), expected_len);
        Poll::Ready(Ok(response.map(|body| body.with_sealer(sealer))))
    }
}
