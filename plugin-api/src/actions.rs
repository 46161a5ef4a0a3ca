//! The actions of each kind of policy, and how a plan reaches the host: one call of the
//! contract's action function per action, in the order of the plan.

// Outside a module (unit tests) these are stubs that panic; the export macros, the only callers,
// run only in a module.
use crate::bindings::{
    scaling::pinot::policy::scaling_actions as scaling, tenant::pinot::policy::tenant_actions as tenant,
    upgrade::pinot::policy::upgrade_actions as upgrade,
};

/// What an upgrade policy may ask for. Pods and instances by name (`pod.name()`,
/// `instance.id()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeAction {
    /// Delete the pod so its StatefulSet recreates it on the target revision.
    RestartPod(String),
    /// Take a server out of query routing (Pinot's `queriesDisabled`).
    DisableQueries(String),
    /// Route queries to it again.
    EnableQueries(String),
    /// Nothing to do now; why (shown in status).
    Wait(String),
    /// A problem the user must solve: the upgrade halts and the cluster reports Degraded.
    Block(String),
}

/// What a scaling policy may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScalingAction {
    /// Set a pool's replicas (within its min and max replicas).
    SetReplicas {
        pool: String,
        replicas: u32,
    },
    /// Replace an instance's tags.
    UpdateTags {
        instance: String,
        tags: Vec<String>,
    },
    /// Rebalance a table (name with type).
    RebalanceTable(String),
    /// Disable an instance in Pinot: it takes no new segments and serves no queries.
    DisableInstance(String),
    /// Enable a disabled instance again.
    EnableInstance(String),
    /// Drain a minion: it finishes its running tasks and takes no new ones.
    DrainInstance(String),
    /// Remove an instance from Pinot (refused while it is live or holds segments).
    DropInstance(String),
    Wait(String),
    Block(String),
}

/// What a tenant policy may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantAction {
    /// Replace an instance's tags.
    UpdateTags {
        instance: String,
        tags: Vec<String>,
    },
    /// Set a server instance's Pinot pool for one of its tags (its pools for other tags stay).
    /// Refused for a tag it does not carry (or get earlier in the plan), and when it would
    /// renumber the pool of an instance holding segments.
    SetInstancePool {
        instance: String,
        tag: String,
        pool: u32,
    },
    Wait(String),
    Block(String),
}

/// Hands an upgrade plan to the host.
pub fn ask_upgrade(actions: Vec<UpgradeAction>) {
    for a in actions {
        match a {
            UpgradeAction::RestartPod(p) => upgrade::restart_pod(&p),
            UpgradeAction::DisableQueries(i) => upgrade::disable_queries(&i),
            UpgradeAction::EnableQueries(i) => upgrade::enable_queries(&i),
            UpgradeAction::Wait(w) => upgrade::wait(&w),
            UpgradeAction::Block(b) => upgrade::block(&b),
        }
    }
}

/// Hands a scaling plan to the host.
pub fn ask_scaling(actions: Vec<ScalingAction>) {
    for a in actions {
        match a {
            ScalingAction::SetReplicas { pool, replicas } => scaling::set_replicas(&pool, replicas),
            ScalingAction::UpdateTags { instance, tags } => scaling::update_tags(&instance, &tags),
            ScalingAction::RebalanceTable(t) => scaling::rebalance_table(&t),
            ScalingAction::DisableInstance(i) => scaling::disable_instance(&i),
            ScalingAction::EnableInstance(i) => scaling::enable_instance(&i),
            ScalingAction::DrainInstance(i) => scaling::drain_instance(&i),
            ScalingAction::DropInstance(i) => scaling::drop_instance(&i),
            ScalingAction::Wait(w) => scaling::wait(&w),
            ScalingAction::Block(b) => scaling::block(&b),
        }
    }
}

/// Hands a tenant plan to the host.
pub fn ask_tenant(actions: Vec<TenantAction>) {
    for a in actions {
        match a {
            TenantAction::UpdateTags { instance, tags } => tenant::update_tags(&instance, &tags),
            TenantAction::SetInstancePool { instance, tag, pool } => tenant::set_instance_pool(&instance, &tag, pool),
            TenantAction::Wait(w) => tenant::wait(&w),
            TenantAction::Block(b) => tenant::block(&b),
        }
    }
}
