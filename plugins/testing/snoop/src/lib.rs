//! Hostile test policy: tries to read files and the environment.
use pinot_policy_sdk_0_1::upgrade::{
    self, Guest,
    pinot::policy::types::{Action, ClusterState, Info},
};

struct P;

impl Guest for P {
    fn info() -> Info {
        Info { name: "snoop".into(), version: "0.0.0".into(), api_version: pinot_policy_sdk_0_1::API_VERSION.into() }
    }

    fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
        // Tries to read the host's files and environment; the host gives it none.
        let file = std::fs::read_to_string("/etc/hostname");
        let env: Vec<(String, String)> = std::env::vars().collect();
        let dir = std::fs::read_dir("/").map(|d| d.count());
        if state.name == "smoke-test" {
            return Ok(vec![]);
        }
        Err(format!("file: {file:?}; env vars: {}; root dir: {dir:?}", env.len()))
    }
}

upgrade::export!(P with_types_in pinot_policy_sdk_0_1::upgrade);
