//! The default policies, built for `wasm32-unknown-unknown` and made components (importing nothing
//! but the contract) by `host/build.rs` from the
//! crates in `plugins/` and embedded in the operator binary.

use super::PolicyKind;

pub const UPGRADE_DEFAULT: &[u8] =
    include_bytes!(concat!(env!("PINOT_PLUGINS_WASM_DIR"), "/pinot_upgrade_default.wasm"));
pub const SCALING_DEFAULT: &[u8] =
    include_bytes!(concat!(env!("PINOT_PLUGINS_WASM_DIR"), "/pinot_scaling_default.wasm"));
pub const TENANT_DEFAULT: &[u8] = include_bytes!(concat!(env!("PINOT_PLUGINS_WASM_DIR"), "/pinot_tenant_default.wasm"));

/// The folder holding every component `plugins/` builds (defaults, examples, test modules).
pub const WASM_DIR: &str = env!("PINOT_PLUGINS_WASM_DIR");

/// The bundled default of each kind, with the name clusters use for it.
pub fn defaults() -> [(PolicyKind, &'static str, &'static [u8]); 3] {
    [
        (PolicyKind::Upgrade, "upgrade-default", UPGRADE_DEFAULT),
        (PolicyKind::Scaling, "scaling-default", SCALING_DEFAULT),
        (PolicyKind::Tenant, "tenant-default", TENANT_DEFAULT),
    ]
}
