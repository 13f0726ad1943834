//! [`ResponseFuture`]: detokenize, then call the inner service.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::Service;

use super::{body::InFlightBody, ResponseBody};
use crate::InFlightGuard;

pub(crate) type Prepared = Result<(Request<Full<Bytes>>, Option<InFlightGuard>), Response<Full<Bytes>>>;
pub(crate) type Prepare = Pin<Box<dyn Future<Output = Prepared> + Send>>;

pin_project! {
    /// The response future of [`crate::Detokenize`].
    pub struct ResponseFuture<S>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S>
    where
        S: Service<Request<Full<Bytes>>>,
    {
        Preparing {
            prepare: Prepare,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
            guard: Option<InFlightGuard>,
        },
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<Request<Full<Bytes>>>,
{
    pub(crate) fn new(prepare: Prepare, inner: S) -> Self {
        Self { state: State::Preparing { prepare, inner: Some(inner) } }
    }
}

impl<S, ResBody> Future for ResponseFuture<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Preparing { prepare, inner } => {
                    let prepared = ready!(prepare.as_mut().poll(cx));
                    match prepared {
                        Ok((req, guard)) => {
                            let mut inner = inner.take().expect("polled after completion");
                            let future = inner.call(req);
                            this.state.set(State::Calling { future, guard });
                        }
                        Err(refusal) => return Poll::Ready(Ok(refusal.map(ResponseBody::refused))),
                    }
                }
                StateProj::Calling { future, guard } => {
                    let res = ready!(future.poll(cx))?;
                    let guard = guard.take();
                    return Poll::Ready(Ok(res.map(|b| ResponseBody::inner(InFlightBody::new(b, guard)))));
                }
            }
        }
    }
}
