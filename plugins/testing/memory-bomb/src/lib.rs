//! Hostile test policy: allocates until it is stopped.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info {
            name: "memory-bomb".into(),
            version: "0.0.0".into(),
            api_version: pinot_policy_sdk_0_1::API_VERSION.into(),
        }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        if state.name == "smoke-test" {
            return Ok(vec![]);
        }
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
