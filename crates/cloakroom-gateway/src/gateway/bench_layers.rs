//! The cost-per-call waterfall of `benches/load/run.sh` (docs/performance.md): the same
//! server, routing and forwarder as the gateway, with the layers of the data path added
//! one at a time. Compiled only with the cargo feature `bench-layers`, which no shipped
//! build enables: a stack without identity or policy is not a gateway.
//!
//! `CLOAKROOM_BENCH_LAYERS` names the last layer kept, in the order the waterfall adds
//! them: `forward` (routing and forwarding only), `identity`, `policy` (call naming and
//! the rules), `detokenize`, `mask`. Unset or `all`: the whole data path, audit included.

use std::sync::Arc;

use cloakroom_identity::{Authenticator, IdentityLayer};
use cloakroom_mask::MaskLayer;
use cloakroom_policy::PolicyLayer;
use http::Request;
use tower::{util::BoxCloneSyncService, ServiceBuilder, ServiceExt};

use super::{box_response, detokenize_layer, Parts, StackService};
use crate::{call::CallLayer, mcp::session::McpSessionLayer};

/// How much of the data path a waterfall step keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Forward,
    Identity,
    Policy,
    Detokenize,
    Mask,
}

/// The step `CLOAKROOM_BENCH_LAYERS` asks for; `None` for the whole data path.
pub(super) fn step() -> Option<Step> {
    let value = std::env::var("CLOAKROOM_BENCH_LAYERS").ok()?;
    let step = match value.as_str() {
        "forward" => Step::Forward,
        "identity" => Step::Identity,
        "policy" => Step::Policy,
        "detokenize" => Step::Detokenize,
        "mask" => Step::Mask,
        "all" | "" => return None,
        other => {
            panic!("CLOAKROOM_BENCH_LAYERS={other:?}: expected forward, identity, policy, detokenize, mask or all")
        }
    };
    tracing::warn!(
        ?step,
        "bench-layers build: the data path is cut short for the cost waterfall; never serve traffic with it"
    );
    Some(step)
}

/// The data path up to `step`, over the gateway's forwarder.
pub(super) fn stack(
    step: Step,
    p: &Parts<'_>,
    authenticator: &Arc<Authenticator>,
    call: CallLayer,
    max_body: u64,
) -> StackService {
    let base = ServiceBuilder::new().layer(super::sensitive_headers()).layer(super::trace_layer());
    let forwarder = p.forwarder.clone();
    let identity = IdentityLayer::new(authenticator.clone());
    let sessions = McpSessionLayer::new(p.sessions.clone());
    let policy = PolicyLayer::new(p.policies.clone(), p.approvals.clone());
    let detokenize = detokenize_layer(p.catalog, p.inflight, p.approvals, max_body);
    let mask = MaskLayer::new(p.mask.clone());
    macro_rules! boxed {
        ($svc:expr) => {
            BoxCloneSyncService::new(ServiceExt::<Request<hyper::body::Incoming>>::map_response($svc, box_response))
        };
    }
    match step {
        Step::Forward => boxed!(base.service(forwarder)),
        Step::Identity => boxed!(base.layer(identity).service(forwarder)),
        Step::Policy => boxed!(base.layer(identity).layer(sessions).layer(call).layer(policy).service(forwarder)),
        Step::Detokenize => {
            boxed!(base.layer(identity).layer(sessions).layer(call).layer(policy).layer(detokenize).service(forwarder))
        }
        Step::Mask => boxed!(base
            .layer(identity)
            .layer(sessions)
            .layer(call)
            .layer(policy)
            .layer(detokenize)
            .layer(mask)
            .service(forwarder)),
    }
}
