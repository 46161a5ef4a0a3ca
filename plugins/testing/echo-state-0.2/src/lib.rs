//! Test policy: `echo-state` built against contract 0.2.0 (flat records), so the host can check
//! that a 0.2.0 module still loads and reads exactly the state a 0.3.0 module reads.
use pinot_policy_sdk_0_2::{
    Action, ClusterState, Info, State,
    upgrade::{self, Guest},
};

#[path = "../../echo-state/src/render.rs"]
mod render;
use pinot_policy_sdk_0_2 as sdk;

struct P;

impl Guest for P {
    fn info() -> Info {
        pinot_policy_sdk_0_2::info("echo-state-0.2", "0.0.0")
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        let state = State::new(&state);
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        Err(render::render(&state))
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_2::upgrade);
