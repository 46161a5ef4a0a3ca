//! Hostile test policy: panics when asked to decide.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info { name: "panics".into(), version: "0.0.0".into(), api_version: pinot_policy_sdk_0_1::API_VERSION.into() }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        if state.name == "smoke-test" {
            return Ok(vec![]);
        }
        panic!("policy bug: {} pools", state.pools.len())
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
