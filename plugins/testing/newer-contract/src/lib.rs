//! Test policy built against the 1.3.0 DRAFT of the contract (`tests/contract/1.3.0`): it reads
//! the new `pod-zone` column and asks for the new `evict-pod` action. The 1.2.0 operator refuses
//! it at load, naming what it lacks; the draft host of `host/tests/contract_evolution.rs` runs it.

wit_bindgen::generate!({
    world: "upgrade-policy",
    path: "../../../tests/contract/1.3.0",
});

use exports::pinot::policy::upgrade::Guest;
use pinot::policy::{state, types::PolicyInfo, upgrade_actions};

struct P;

impl Guest for P {
    fn info() -> PolicyInfo {
        PolicyInfo { name: "newer-contract".into(), version: "0.0.0".into() }
    }

    /// Evicts the first pod of the zone named by the `zone` setting.
    fn plan() -> Result<(), String> {
        let Some(zone) = state::config("zone") else { return Ok(()) };
        let names = state::pods().name;
        for (row, z) in state::pod_zone().into_iter().enumerate() {
            if z.is_some_and(|z| state::read_text(z) == zone) {
                upgrade_actions::evict_pod(&state::read_text(names[row]));
                break;
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
export!(P);
