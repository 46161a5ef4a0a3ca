//! Guest SDK for policy plugins of the Pinot control plane.
//!
//! A policy is a `cdylib` crate that implements the `Guest` trait of one world and exports
//! it; `cargo build --target wasm32-wasip2 --release` then emits a WebAssembly component. The
//! state crosses into the module laid out in columns (contract `pinot:policy@0.3.0`); [`State`] reads
//! it without copying: `state.pools()`, `pool.pods()`, `pod.instance()`, `instance.tags()`, ...
//!
//! ```ignore
//! use pinot_policy_sdk::{Action, ClusterState, Info, State, upgrade::{self, Guest}};
//!
//! struct MyPolicy;
//! impl Guest for MyPolicy {
//!     fn info() -> Info { pinot_policy_sdk::info("mine", "1.0.0") }
//!     fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> {
//!         let state = State::new(&state);
//!         Ok(state.pools().flat_map(|p| p.pods()).filter(|p| !p.ready()).map(|p| Action::RestartPod(p.name().into())).collect())
//!     }
//! }
//! upgrade::export!(MyPolicy with_types_in pinot_policy_sdk::upgrade);
//! ```
//!
//! Modules built against the previous contracts (`pinot:policy@0.1.0`, nested records with a
//! string per name; `pinot:policy@0.2.0`, flat records) still load: the operator keeps the
//! bindings of every version.

mod view;

pub use upgrade::pinot::policy::types::{Action, ClusterState, Info, InstanceTags, SetReplicas};
pub use view::*;

/// The contract version this SDK implements; a policy's `info().api-version` must say it.
pub const API_VERSION: &str = "pinot:policy@0.3.0";

/// What a policy says about itself, with this SDK's contract version.
pub fn info(name: &str, version: &str) -> Info {
    Info { name: name.into(), version: version.into(), api_version: API_VERSION.into() }
}

/// Sends a line to the operator's log, attributed to the policy.
pub fn log(level: upgrade::pinot::policy::host::Level, message: &str) {
    upgrade::pinot::policy::host::log(level, message)
}

/// The `upgrade-policy` world: `plan-upgrade` decides which pods restart next.
pub mod upgrade {
    wit_bindgen::generate!({
        world: "upgrade-policy",
        path: "wit/0.3.0",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

/// The `scaling-policy` world: `plan-scaling` decides replicas, drains and rebalances.
pub mod scaling {
    wit_bindgen::generate!({
        world: "scaling-policy",
        path: "wit/0.3.0",
        with: {
            "pinot:policy/types@0.3.0": crate::upgrade::pinot::policy::types,
            "pinot:policy/host@0.3.0": crate::upgrade::pinot::policy::host,
        },
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

/// The `tenant-policy` world: `plan-tenants` decides which instances carry which tenant tags.
pub mod tenant {
    wit_bindgen::generate!({
        world: "tenant-policy",
        path: "wit/0.3.0",
        with: {
            "pinot:policy/types@0.3.0": crate::upgrade::pinot::policy::types,
            "pinot:policy/host@0.3.0": crate::upgrade::pinot::policy::host,
        },
        pub_export_macro: true,
        export_macro_name: "export",
    });
}
