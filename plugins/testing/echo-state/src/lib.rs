//! Test policy: reads every field of the state through the SDK's views and refuses with all
//! of it as text, so the host can check that the 0.3.0 columns and the views carry exactly the
//! state it built (`host/tests/policy_runtime.rs` renders the same text from its side). The
//! same rendering built against contract 0.2.0 is `echo-state-0.2`.
use pinot_policy_sdk::{
    Action, ClusterState, Info, State,
    upgrade::{self, Guest},
};

/// What both echo modules render; it names the SDK as `sdk`.
mod render;
use pinot_policy_sdk as sdk;

struct P;

impl Guest for P {
    fn info() -> Info {
        pinot_policy_sdk::info("echo-state", "0.0.0")
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        let state = State::new(&state);
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        Err(render::render(&state))
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk::upgrade);
