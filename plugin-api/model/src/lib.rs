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
    ClusterFacts, Columns, ConditionColumns, EnsembleFacts, InstanceColumns, InstancePoolColumns, MemberColumns,
    PodColumns, PodInstanceColumns, PoolColumns, SettingColumns, TableColumns, TagColumns, TenantColumns, Texts,
    ZoneColumns,
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

/// A ZooKeeper member's part in its ensemble, from the `Mode:` its `srvr` answers. (1.2.0)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberMode {
    Leader,
    Follower,
    Observer,
    Standalone,
    /// It answers, without a quorum to serve in (electing, syncing, cut off).
    NotServing,
    /// Its client port does not answer.
    Unreachable,
}

impl MemberMode {
    /// Serves clients in a quorum (or alone).
    pub fn serving(self) -> bool {
        matches!(self, MemberMode::Leader | MemberMode::Follower | MemberMode::Observer | MemberMode::Standalone)
    }
}

/// One member of the managed ZooKeeper ensemble: a pod of its StatefulSet. (1.2.0)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub pod: String,
    /// Its ZooKeeper id: the pod's ordinal + 1.
    pub id: u32,
    pub revision: String,
    pub ready: bool,
    pub terminating: bool,
    pub restarts: u32,
    pub age_seconds: u64,
    pub mode: MemberMode,
    /// Serves and has finished syncing with the leader (or leads).
    pub synced: bool,
    /// The configuration no longer lists it: it goes once the others run without it.
    #[serde(default)]
    pub leaving: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default = "yes")]
    pub node_ready: bool,
}

/// The ZooKeeper ensemble the operator runs for the cluster. (1.2.0)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    pub desired_members: u32,
    /// Members its configuration lists now.
    pub configured_members: u32,
    pub target_revision: String,
    pub image: String,
    /// Roles of `deployment_order` before it.
    pub order: u32,
    pub members: Vec<Member>,
}

impl Member {
    /// Up for its ensemble, as far as the host can tell: serving in sync, or its pod Ready while
    /// its client port could not be asked (a member is taken for down only on evidence: it
    /// answers without a quorum, or its pod is not Ready, terminating or missing).
    pub fn up(&self) -> bool {
        !self.terminating && (self.synced || (self.mode == MemberMode::Unreachable && self.ready))
    }
}

impl Ensemble {
    /// Members that may be down at once without losing the quorum of the configuration.
    pub fn tolerates(&self) -> u32 {
        self.configured_members.saturating_sub(1) / 2
    }

    /// Members that may be down at once, restarts included: while a member is added or removed
    /// two configurations run (the smaller one's quorum counts); below three members no restart
    /// keeps a quorum, and restarting them one at a time is the only way forward (a member
    /// added to one cannot join before the first restarts onto both).
    pub fn restart_tolerance(&self) -> u32 {
        if self.configured_members <= 2 {
            return 2;
        }
        let resizing = self.configured_members != self.desired_members || self.members.iter().any(|m| m.leaving);
        let smallest = if resizing { self.configured_members - 1 } else { self.configured_members };
        (smallest.saturating_sub(1) / 2).max(1)
    }
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
    /// The ZooKeeper ensemble the operator runs for the cluster, if it does. (1.2.0)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<Ensemble>,
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
