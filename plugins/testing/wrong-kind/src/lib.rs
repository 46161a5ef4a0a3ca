//! Hostile test policy: a scaling policy that imports the upgrade actions, written against the
//! WIT without the SDK (whose types would not let it). The host refuses it at load.

wit_bindgen::generate!({
    inline: "
        package test:wrong-kind;
        world sneaky-scaling {
            import pinot:policy/upgrade-actions@1.0.0;
            export pinot:policy/scaling@1.0.0;
        }
    ",
    path: "../../../plugin-api/wit/1.0.0",
    generate_all,
});

use exports::pinot::policy::scaling::Guest;
use pinot::policy::{types::PolicyInfo, upgrade_actions};

struct P;

impl Guest for P {
    fn info() -> PolicyInfo {
        PolicyInfo { name: "wrong-kind".into(), version: "0.0.0".into() }
    }

    fn plan() -> Result<(), String> {
        upgrade_actions::restart_pod("c-server-0");
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
export!(P);
