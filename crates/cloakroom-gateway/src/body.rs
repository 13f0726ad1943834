//! The boxed body every answer of the gateway and the admin API has, and the helpers
//! that make one.

use bytes::Bytes;
use cloakroom_core::{CallId, Error};
use http::Response;
use http_body::Body;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
use tower::BoxError;

/// The response body the forwarder (and the composed gateway) answers with.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Turns a body of any type into a [`GatewayBody`].
pub fn boxed<B>(body: B) -> GatewayBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An error response as a [`GatewayBody`] response.
pub fn error_response(err: &Error, call_id: Option<&CallId>) -> Response<GatewayBody> {
    err.to_response(call_id).map(boxed)
}
