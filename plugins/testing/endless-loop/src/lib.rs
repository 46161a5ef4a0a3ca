//! Hostile test policy: spins forever when asked to decide.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info {
            name: "endless-loop".into(),
            version: "0.0.0".into(),
            api_version: pinot_policy_sdk_0_1::API_VERSION.into(),
        }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        // Never returns, but only on a real decision: the smoke test must pass.
        if state.name == "smoke-test" {
            return Ok(vec![]);
        }
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
