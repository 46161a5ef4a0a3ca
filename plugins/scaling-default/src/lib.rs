//! The bundled default scaling policy: the rules of `pinot-scaling-default-rules`, exported as
//! a component (see that crate for what they decide).

use pinot_policy_sdk::{
    Action, ClusterState, Info, State,
    scaling::{self, Guest},
};

struct DefaultScaling;

impl Guest for DefaultScaling {
    fn info() -> Info {
        pinot_policy_sdk::info("scaling-default", env!("CARGO_PKG_VERSION"))
    }

    fn plan_scaling(state: ClusterState) -> Result<Vec<Action>, String> {
        Ok(pinot_scaling_default_rules::plan(&State::new(&state)))
    }
}

scaling::export!(DefaultScaling with_types_in pinot_policy_sdk::scaling);
