//! Guest SDK for policy plugins of the Pinot control plane.
//!
//! A policy is a `cdylib` crate that implements the `Guest` trait of one world and exports
//! it; `cargo build --target wasm32-wasip2 --release` then emits a WebAssembly component.
//!
//! ```ignore
//! use pinot_policy_sdk::upgrade::{self, Guest, pinot::policy::types::{Action, ClusterState, Info}};
//!
//! struct MyPolicy;
//! impl Guest for MyPolicy {
//!     fn info() -> Info { Info { name: "mine".into(), version: "1.0.0".into(), api_version: pinot_policy_sdk::API_VERSION.into() } }
//!     fn plan_upgrade(state: ClusterState) -> Result<Vec<Action>, String> { Ok(vec![]) }
//! }
//! upgrade::export!(MyPolicy with_types_in pinot_policy_sdk::upgrade);
//! ```

/// The contract version this SDK implements; a policy's `info().api-version` must say it.
pub const API_VERSION: &str = "pinot:policy@0.1.0";

/// The `upgrade-policy` world: `plan-upgrade` decides which pods restart next.
pub mod upgrade {
    wit_bindgen::generate!({
        world: "upgrade-policy",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

/// The `scaling-policy` world: `plan-scaling` decides replicas, drains and rebalances.
pub mod scaling {
    wit_bindgen::generate!({
        world: "scaling-policy",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

/// The `tenant-policy` world: `plan-tenants` decides which instances carry which tenant tags.
pub mod tenant {
    wit_bindgen::generate!({
        world: "tenant-policy",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}
