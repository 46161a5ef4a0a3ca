//! Hostile test policy: allocates until it is stopped.
use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};

struct P;

impl UpgradePolicy for P {
    const NAME: &'static str = "memory-bomb";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

pinot_policy_sdk::export_upgrade_policy!(P);
