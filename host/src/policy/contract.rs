//! Host bindings of `pinot:policy@0.1.0`. The three worlds share one set of types (those of
//! the upgrade world), so a [`types::ClusterState`] can be given to any kind of policy.

/// `upgrade-policy`.
pub mod upgrade {
    wasmtime::component::bindgen!({
        world: "upgrade-policy",
        path: "../plugin-api/wit",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

/// `scaling-policy`.
pub mod scaling {
    wasmtime::component::bindgen!({
        world: "scaling-policy",
        path: "../plugin-api/wit",
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/host": super::upgrade::pinot::policy::host,
        },
    });
}

/// `tenant-policy`.
pub mod tenant {
    wasmtime::component::bindgen!({
        world: "tenant-policy",
        path: "../plugin-api/wit",
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/host": super::upgrade::pinot::policy::host,
        },
    });
}

pub use upgrade::pinot::policy::{host, types};

/// The contract version the host's bindings implement.
pub const API_VERSION: &str = "pinot:policy@0.1.0";
