//! Guest SDK for policy plugins of the Pinot control plane (contract `pinot:policy@1.2.0`).
//!
//! A policy is a `cdylib` crate with one type that implements [`UpgradePolicy`],
//! [`ScalingPolicy`] or [`TenantPolicy`] and one `export_*_policy!` line. Its `plan` reads the
//! observed state through [`State`] (`state.pools()`, `pool.pods()`, `pod.instance()`,
//! `instance.tags()`, ...) and returns the actions of its kind; the type system keeps an
//! upgrade policy from asking for a scale-in.
//!
//! ```ignore
//! use pinot_policy_sdk::{State, UpgradeAction, UpgradePolicy};
//!
//! struct Mine;
//! impl UpgradePolicy for Mine {
//!     const NAME: &'static str = "mine";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     fn plan(state: &State) -> Result<Vec<UpgradeAction>, String> {
//!         Ok(state.pools().flat_map(|p| p.pods()).filter(|p| !p.ready()).map(|p| UpgradeAction::RestartPod(p.name().into())).collect())
//!     }
//! }
//! pinot_policy_sdk::export_upgrade_policy!(Mine);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown` and turn the module
//! into a component with `pinot-operator policy component` (the result imports nothing but the
//! contract: no WASI). Test it with plain `cargo test`: [`StateBuilder`] builds a state in the
//! shape `pinot-operator policy test --state FILE` reads, and `plan` is an ordinary function.

#[doc(hidden)]
pub mod actions;
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
#[allow(unsafe_code)]
pub mod alloc;
mod builder;
mod state;

pub use actions::{ScalingAction, TenantAction, UpgradeAction};
pub use builder::StateBuilder;
pub use pinot_policy_model as model;
pub use pinot_policy_model::{MemberMode, Role};
pub use state::*;

#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
#[global_allocator]
static ALLOCATOR: alloc::Bump = alloc::Bump::new();

/// The contract version this SDK builds policies for.
pub const API_VERSION: &str = "pinot:policy@1.2.0";

/// An upgrade policy: which pods restart next.
pub trait UpgradePolicy {
    /// The policy's name and version, shown in the operator's status and log.
    const NAME: &'static str;
    const VERSION: &'static str;
    /// Decides from `state`. An error refuses the whole plan and is shown in status.
    fn plan(state: &State) -> Result<Vec<UpgradeAction>, String>;
}

/// A scaling policy: replicas, drains and rebalances.
pub trait ScalingPolicy {
    const NAME: &'static str;
    const VERSION: &'static str;
    fn plan(state: &State) -> Result<Vec<ScalingAction>, String>;
}

/// A tenant policy: which instances carry which tenant tags.
pub trait TenantPolicy {
    const NAME: &'static str;
    const VERSION: &'static str;
    fn plan(state: &State) -> Result<Vec<TenantAction>, String>;
}

/// Log levels of [`log`].
pub use bindings::upgrade::pinot::policy::types::Level;

/// Sends a line to the operator's log, attributed to the policy (to stderr outside a module, in
/// unit tests).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::upgrade::pinot::policy::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// The bindings of the three worlds, generated from `wit/1.2.0`. A policy does not need them:
/// the traits above and the `export_*_policy!` macros use them.
#[doc(hidden)]
pub mod bindings {
    /// `upgrade-policy`.
    pub mod upgrade {
        wit_bindgen::generate!({
            world: "upgrade-policy",
            path: "wit/1.2.0",
            pub_export_macro: true,
            export_macro_name: "export",
        });
    }

    /// `scaling-policy`.
    pub mod scaling {
        wit_bindgen::generate!({
            world: "scaling-policy",
            path: "wit/1.2.0",
            with: {
                "pinot:policy/types@1.2.0": crate::bindings::upgrade::pinot::policy::types,
                "pinot:policy/state@1.2.0": crate::bindings::upgrade::pinot::policy::state,
                "pinot:policy/log@1.2.0": crate::bindings::upgrade::pinot::policy::log,
            },
            pub_export_macro: true,
            export_macro_name: "export",
        });
    }

    /// `tenant-policy`.
    pub mod tenant {
        wit_bindgen::generate!({
            world: "tenant-policy",
            path: "wit/1.2.0",
            with: {
                "pinot:policy/types@1.2.0": crate::bindings::upgrade::pinot::policy::types,
                "pinot:policy/state@1.2.0": crate::bindings::upgrade::pinot::policy::state,
                "pinot:policy/log@1.2.0": crate::bindings::upgrade::pinot::policy::log,
            },
            pub_export_macro: true,
            export_macro_name: "export",
        });
    }

    pub use upgrade::pinot::policy::types::PolicyInfo;

    /// What a policy says about itself.
    pub fn info(name: &str, version: &str) -> PolicyInfo {
        PolicyInfo { name: name.into(), version: version.into() }
    }
}

/// The export glue of one kind: `$world` is the bindings module of its world, `$iface` the
/// exported interface's module, `$ask` the function handing the plan to the host.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_policy {
    ($policy:ty, $kind:ident, $action:ident, $world:ident, $iface:ident, $ask:ident) => {
        // Only a module exports anything; on the host (unit tests) `plan` is called directly.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Export;
            impl $crate::bindings::$world::exports::pinot::policy::$iface::Guest for Export {
                fn info() -> $crate::bindings::PolicyInfo {
                    $crate::bindings::info(<$policy as $crate::$kind>::NAME, <$policy as $crate::$kind>::VERSION)
                }
                fn plan() -> Result<(), String> {
                    $crate::actions::$ask(<$policy as $crate::$kind>::plan(&$crate::State::from_host())?);
                    Ok(())
                }
            }
    $crate::bindings::$world::export!(Export with_types_in $crate::bindings::$world);
        };
        // On the host the policy is used by its tests only; this keeps it from being unused.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&$crate::State) -> Result<Vec<$crate::$action>, String> = <$policy as $crate::$kind>::plan;
    };
}

/// Exports a type that implements [`UpgradePolicy`] as the module's upgrade policy.
#[macro_export]
macro_rules! export_upgrade_policy {
    ($policy:ty) => {
        $crate::__export_policy!($policy, UpgradePolicy, UpgradeAction, upgrade, upgrade, ask_upgrade);
    };
}

/// Exports a type that implements [`ScalingPolicy`] as the module's scaling policy.
#[macro_export]
macro_rules! export_scaling_policy {
    ($policy:ty) => {
        $crate::__export_policy!($policy, ScalingPolicy, ScalingAction, scaling, scaling, ask_scaling);
    };
}

/// Exports a type that implements [`TenantPolicy`] as the module's tenant policy.
#[macro_export]
macro_rules! export_tenant_policy {
    ($policy:ty) => {
        $crate::__export_policy!($policy, TenantPolicy, TenantAction, tenant, tenants, ask_tenant);
    };
}
