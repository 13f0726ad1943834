//! One module per verb group.

pub(crate) mod approval;
pub(crate) mod audit;
pub(crate) mod biscuit;
pub(crate) mod completions;
pub(crate) mod keygen;
pub(crate) mod login;
pub(crate) mod policy;
pub(crate) mod policy_diff;
pub(crate) mod secret;
