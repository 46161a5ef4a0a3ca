//! Hostile test policy: tries to read files and the environment. Built for `wasm32-wasip2`, so
//! it imports WASI (as componentize-py's modules do) and the host links it with an empty one.
use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};

struct P;

impl UpgradePolicy for P {
    const NAME: &'static str = "snoop";
    const VERSION: &'static str = "0.0.0";

    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
        // Tries to read the host's files and environment; the host gives it none.
        let file = std::fs::read_to_string("/etc/hostname");
        let env: Vec<(String, String)> = std::env::vars().collect();
        let dir = std::fs::read_dir("/").map(|d| d.count());
        if state.name() == "smoke-test" {
            return Ok(vec![]);
        }
        Err(format!("file: {file:?}; env vars: {}; root dir: {dir:?}", env.len()))
    }
}

pinot_policy_sdk::export_upgrade_policy!(P);
