//! Hostile test policy: claims a contract version the host does not support.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info { name: "wrong-api-version".into(), version: "0.0.0".into(), api_version: "pinot:policy@9.9.9".into() }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        let _ = state;
        Ok(vec![])
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
