//! The host side of the WIT package `pinot:policy`: the bindings of the contract this operator
//! implements ([`v1`], `pinot:policy@1.2.0` and every 1.x before it, whose modules read the host's model through
//! [`pinot_policy_model::Columns`]) and the one adapter for the previous contract ([`v0_3`]).

pub mod v0_3;
pub mod v1;

/// Every contract version this operator loads modules of, newest first (the first is the one
/// `pinot-policy-sdk` builds for).
pub const SUPPORTED_API_VERSIONS: [&str; 2] = [v1::API_VERSION, v0_3::API_VERSION];
