//! The contract between the error bodies the gateway renders (`cloakroom_core::Error`)
//! and the ones clients read (`cloakroom_api::ErrorBody`): every code the gateway can
//! send is a known code here, with the same status.

use cloakroom_api::{ErrorBody, ErrorCode};
use cloakroom_core::{CallId, Error};

#[test]
fn every_gateway_error_body_reads_as_an_error_body_with_a_known_code() {
    for code in cloakroom_core::ErrorCode::ALL {
        let err = Error::new(code, "a message");
        for call_id in [None, Some(CallId::new())] {
            let body: ErrorBody = serde_json::from_slice(&err.to_json_body(call_id.as_ref())).unwrap();
            assert!(body.error.code.is_known(), "{code} is not known to cloakroom-api");
            assert_eq!(body.error.code.as_str(), code.as_str());
            assert_eq!(body.error.code.status(), Some(code.status().as_u16()), "{code}");
            assert_eq!(body.error.message, "a message");
            assert_eq!(body.error.call_id, call_id.map(|c| c.to_string()));
        }
    }
}

#[test]
fn the_gateway_and_the_api_write_the_same_body() {
    let err = Error::new(cloakroom_core::ErrorCode::Conflict, "the configuration wins");
    let ours = ErrorBody::new(ErrorCode::Conflict, "the configuration wins");
    assert_eq!(err.to_json_body(None), serde_json::to_vec(&ours).unwrap());
}
