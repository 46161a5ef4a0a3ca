//! Bindings of the previous contract, `pinot:policy@0.2.0` (the state in flat records: one
//! text, `text` spans and `range`s), with the views the SDK had for it. A copy of the state
//! echo is built against it, so the tests prove that the operator keeps loading 0.2.0 modules
//! and gives them exactly the state it gives 0.3.0 ones.

mod view;

pub use upgrade::pinot::policy::types::{Action, ClusterState, Info};
pub use view::*;

/// The contract version of these bindings.
pub const API_VERSION: &str = "pinot:policy@0.2.0";

/// What a policy says about itself, with this contract version.
pub fn info(name: &str, version: &str) -> Info {
    Info { name: name.into(), version: version.into(), api_version: API_VERSION.into() }
}

/// `upgrade-policy` of 0.2.0.
pub mod upgrade {
    wit_bindgen::generate!({
        world: "upgrade-policy",
        path: "../../../plugin-api/wit/0.2.0",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}
