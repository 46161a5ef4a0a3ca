//! Hostile test policy: an upgrade policy that imports an interface of its own making (a way
//! out to somewhere). The host refuses it at load, naming the import.

wit_bindgen::generate!({
    inline: "
        package test:exfil;
        interface network {
            send: func(data: string);
        }
        world leaky-upgrade {
            import network;
            import pinot:policy/state@1.0.0;
            export pinot:policy/upgrade@1.0.0;
        }
    ",
    path: "../../../plugin-api/wit/1.0.0",
    generate_all,
});

use exports::pinot::policy::upgrade::Guest;
use pinot::policy::{state, types::PolicyInfo};

struct P;

impl Guest for P {
    fn info() -> PolicyInfo {
        PolicyInfo { name: "foreign-import".into(), version: "0.0.0".into() }
    }

    fn plan() -> Result<(), String> {
        test::exfil::network::send(&state::cluster().name);
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
export!(P);
