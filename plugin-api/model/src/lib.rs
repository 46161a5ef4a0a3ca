//! The decision model of the Pinot control plane's policies: the observed state a policy decides
//! from and the actions it may ask for, in the nested shape the operator builds, checks and
//! stores in files (`policy test --state FILE`), and that the SDK's test states are built in.
//! It is the canonical form: [`Columns`] lays a state out as `pinot:policy@1.x` hands it to a
//! module, and the operator's adapter lays it out for 0.3.0 modules.
//!
//! Field names are the WIT names in snake_case; roles and actions are CamelCase in files.
//! Fields added after the first contract default when a file leaves them out.

mod columns;

pub use columns::{
    ClusterFacts, Columns, ConditionColumns, InstanceColumns, InstancePoolColumns, PodColumns, PodInstanceColumns,
    PoolColumns, SettingColumns, TableColumns, TagColumns, TenantColumns, Texts, ZoneColumns,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The four Pinot roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Controller,
    Broker,
    Server,
    Minion,
}

/// A Pinot instance as the cluster's controller reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub live: bool,
    pub enabled: bool,
    pub queries_enabled: bool,
    pub tags: Vec<String>,
    /// Segments hosted (ideal state), over every table.
    pub segments: u32,
    /// Pinot pools: tag -> pool number (Helix instance config `pool`). (1.1.0)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, u32>,
}

/// One pod of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    pub name: String,
    pub ordinal: u32,
    pub revision: String,
    pub ready: bool,
    pub terminating: bool,
    pub restarts: u32,
    pub age_seconds: u64,
    pub instance: Option<Instance>,
    /// The zone of its node (`topology.kubernetes.io/zone`, as observed); none while not
    /// scheduled or on a node without the label. (1.1.0)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Its node is Ready (false while not scheduled). (1.1.0; files that leave it out: true)
    #[serde(default = "yes")]
    pub node_ready: bool,
}

fn yes() -> bool {
    true
}

/// One node pool (a StatefulSet).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub role: Role,
    pub zones: Vec<String>,
    pub desired_replicas: u32,
    pub current_replicas: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub ready_replicas: u32,
    pub updated_replicas: u32,
    pub current_revision: String,
    pub target_revision: String,
    pub image: String,
    pub max_unavailable: u32,
    pub pods: Vec<Pod>,
    /// Instances Pinot still has for pods of this pool that are gone for good (ordinals at or
    /// above `current_replicas`): what a scale-in drops once they are no longer live. (0.2.0)
    #[serde(default)]
    pub departed: Vec<Instance>,
}

/// A Kubernetes-style condition of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// A table, as far as placement and scaling care.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub name: String,
    pub replication: u32,
    pub server_tag: String,
    pub broker_tag: String,
    /// Segments of the table (ideal state). (0.2.0)
    #[serde(default)]
    pub segments: u32,
    /// Servers that hold at least one of its segments. (0.2.0)
    #[serde(default)]
    pub servers_with_segments: u32,
    /// A rebalance the operator started is still running in Pinot. (0.2.0)
    #[serde(default)]
    pub rebalancing: bool,
}

/// A tenant the user asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub role: Role,
    pub instances: u32,
    pub offline_instances: u32,
    pub realtime_instances: u32,
}

/// Everything a policy decides from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub deployment_order: Vec<Role>,
    pub pools: Vec<Pool>,
    pub conditions: Vec<Condition>,
    pub tables: Vec<Table>,
    pub tenants: Vec<Tenant>,
    pub now_unix_seconds: i64,
    pub config: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReplicas {
    pub pool: String,
    pub replicas: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTags {
    pub instance: String,
    pub tags: Vec<String>,
}

/// A server instance's Pinot pool for one of its tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePool {
    pub instance: String,
    pub tag: String,
    pub pool: u32,
}

/// What a policy may ask the host to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Delete the pod so its StatefulSet recreates it on the target revision.
    RestartPod(String),
    SetReplicas(SetReplicas),
    DisableQueries(String),
    EnableQueries(String),
    UpdateTags(InstanceTags),
    /// Rebalance a table (name with type).
    RebalanceTable(String),
    /// Disable an instance in Pinot (Helix): it takes no segments and serves no queries. (0.2.0)
    DisableInstance(String),
    /// Enable an instance again. (0.2.0)
    EnableInstance(String),
    /// Drain a minion: it finishes its tasks and takes no new ones. (0.2.0)
    DrainInstance(String),
    /// Remove an instance from Pinot; only one that is not live and holds no segment. (0.2.0)
    DropInstance(String),
    /// Set an instance's Pinot pool for one tag. (1.1.0)
    SetInstancePool(InstancePool),
    /// Nothing to do now; why (shown in status).
    Wait(String),
    /// A problem the user must solve; reported as Degraded.
    Block(String),
}

/// What a policy says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub api_version: String,
}
