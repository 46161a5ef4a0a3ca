//! Hostile test policy: spins forever when asked to decide (but not in the load's smoke test).
use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};

struct P;

impl UpgradePolicy for P {
    const NAME: &'static str = "endless-loop";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

pinot_policy_sdk::export_upgrade_policy!(P);
