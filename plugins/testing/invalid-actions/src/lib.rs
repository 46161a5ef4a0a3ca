//! Hostile test policy: asks for a pod that does not exist; with `flood` in its configuration,
//! asks for far more actions than a plan may hold.
use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};

struct P;

impl UpgradePolicy for P {
    const NAME: &'static str = "invalid-actions";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        if state.config("flood").is_some() {
            return Ok((0..20_000).map(|i| UpgradeAction::Wait(format!("wait {i}"))).collect());
        }
        Ok(vec![UpgradeAction::Wait("fine".into()), UpgradeAction::RestartPod("no-such-pod-0".into())])
    }
}

pinot_policy_sdk::export_upgrade_policy!(P);
