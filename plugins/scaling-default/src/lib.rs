//! The bundled default scaling policy: the rules of `pinot-scaling-default-rules`, exported as
//! a component (see that crate for what they decide).

use pinot_policy_sdk::{ScalingAction, ScalingPolicy, State};

struct DefaultScaling;

impl ScalingPolicy for DefaultScaling {
    const NAME: &'static str = "scaling-default";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn plan(state: &State) -> Result<Vec<ScalingAction>, String> {
        Ok(pinot_scaling_default_rules::plan(state))
    }
}

pinot_policy_sdk::export_scaling_policy!(DefaultScaling);
