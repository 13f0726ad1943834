use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`super::PolicyService`]: the layer's own short answer
    /// (403, 202) or the inner service's body.
    #[project = BodyProj]
    // pin-project-lite takes no docs on enum fields; each variant is documented.
    #[allow(missing_docs)]
    pub enum ResponseBody<B> {
        /// An answer made by the policy layer.
        Short { body: Full<Bytes> },
        /// The inner service's body.
        Inner { #[pin] body: B },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn short(body: Full<Bytes>) -> Self {
        ResponseBody::Short { body }
    }

    pub(crate) fn inner(body: B) -> Self {
        ResponseBody::Inner { body }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            BodyProj::Short { body } => Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            BodyProj::Inner { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Short { body } => body.is_end_stream(),
            ResponseBody::Inner { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Short { body } => body.size_hint(),
            ResponseBody::Inner { body } => body.size_hint(),
        }
    }
}
