//! Hostile test policy: asks for a pod that does not exist.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info {
            name: "invalid-actions".into(),
            version: "0.0.0".into(),
            api_version: pinot_policy_sdk_0_1::API_VERSION.into(),
        }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        let _ = state;
        Ok(vec![Action::Wait("fine".into()), Action::RestartPod("no-such-pod-0".into())])
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
