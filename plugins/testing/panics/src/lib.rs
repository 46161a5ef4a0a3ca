//! Hostile test policy: panics when asked to decide.
use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};

struct P;

impl UpgradePolicy for P {
    const NAME: &'static str = "panics";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        panic!("policy bug: {} pools", state.pools().len())
    }
}

pinot_policy_sdk::export_upgrade_policy!(P);
