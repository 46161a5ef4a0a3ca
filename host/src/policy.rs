//! Policy plugins: WebAssembly components that decide, and the host that runs them.
//!
//! - [`model`]: the host's own state and actions, the union of every contract version.
//! - [`contract`]: the host bindings of the WIT package `pinot:policy` (one module per
//!   supported version; a new action case is a new version, and the old bindings stay).
//! - [`runtime`]: one wasmtime `Engine`; a module is compiled and smoke-tested once
//!   (`InstancePre`); every decision runs in a fresh `Store` under an epoch deadline and a
//!   memory cap, so no state leaks between decisions and a broken plugin is an error value,
//!   never a crash of the operator.
//! - [`guardrails`]: every action is checked against the observed state before the host acts;
//!   a plan with one invalid action is refused whole.
//! - [`registry`]: the active module of each policy, swapped atomically; the bundled defaults.
//! - [`reload`]: loading a module (bytes, or a file of the policy directory) into the registry
//!   after checking its digest; the policy directory's file watcher.
//! - [`bundled`]: the default policies, built for `wasm32-wasip2` and embedded in the binary.
//!
//! This module is pure of Kubernetes: it uses no Kubernetes crate, holds no client and never
//! talks to the apiserver. The PinotPolicy controller ([`crate::policy_controller`]) reads
//! PinotPolicies and their ConfigMaps, feeds the registry through [`reload`], and writes status
//! and events; the PinotCluster controller asks the registry for decisions.

pub mod bundled;
pub mod component;
pub mod contract;
pub mod guardrails;
pub mod oci;
pub use pinot_policy_model as model;
pub mod registry;
pub mod reload;
pub mod runtime;
pub mod signature;

pub use model::{Action, ClusterState, Info};
pub use registry::{ActivePolicy, InstallError, PolicyRegistry, ResolveError};
pub use runtime::{DecisionError, LoadError, LoadedPolicy, PolicyEngine, PolicyKind, PolicyLimits};
