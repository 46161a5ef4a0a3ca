//! A state laid out as `pinot:policy@1.x` hands it over: one column per field of each table
//! (pools, zones, pods, instances, pod-instance links, tags, instance pools, conditions,
//! tables, tenants), rows
//! referring to rows of other tables by index, a yes/no field as the set of rows it holds for
//! (ascending), and every string a number into one text table.
//!
//! The operator builds this once per decision and answers each `state` function of a module
//! with one column; the SDK builds it from a test state so that a policy reads a state in its
//! unit tests exactly as it reads one in the operator.

use crate::{ClusterState, Instance, MemberMode, Role};

/// The PinotCluster itself (`cluster` in the WIT).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterFacts {
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub deployment_order: Vec<Role>,
    pub now_unix_seconds: i64,
}

/// Declares the columns of a table, with a reset that empties them and makes room for `rows`
/// rows (keeping what they had allocated).
macro_rules! table {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $(pub $field: Vec<$ty>,)*
        }

        impl $name {
            fn reset(&mut self, rows: usize) {
                $(self.$field.clear(); self.$field.reserve(rows);)*
            }
        }
    };
}

/// The columns of one state, table by table, as the WIT's `state` functions return them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Columns {
    /// Every string, by number.
    pub texts: Texts,
    pub cluster: ClusterFacts,
    pub settings: SettingColumns,
    pub pools: PoolColumns,
    pub zones: ZoneColumns,
    pub pods: PodColumns,
    pub instances: InstanceColumns,
    pub pod_instances: PodInstanceColumns,
    pub tags: TagColumns,
    /// `pod-zone` (1.1.0): each pod's zone, in pod order.
    pub pod_zone: Vec<Option<u32>>,
    /// `pod-node-ready` (1.1.0): the pods whose node is Ready, a set of rows.
    pub pod_node_ready: Vec<u32>,
    /// `instance-pools` (1.1.0).
    pub instance_pools: InstancePoolColumns,
    pub conditions: ConditionColumns,
    pub tables: TableColumns,
    pub tenants: TenantColumns,
    /// `ensemble` (1.2.0).
    pub ensemble: Option<EnsembleFacts>,
    /// `members` (1.2.0).
    pub members: MemberColumns,
}

/// The managed ZooKeeper ensemble (`ensemble` in the WIT).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnsembleFacts {
    pub desired_members: u32,
    pub configured_members: u32,
    pub target_revision: u32,
    pub image: u32,
    pub order: u32,
}

table! {
    SettingColumns {
        key: u32,
        value: u32,
    }
}

table! {
    PoolColumns {
        name: u32,
        role: Role,
        desired_replicas: u32,
        current_replicas: u32,
        min_replicas: u32,
        max_replicas: u32,
        ready_replicas: u32,
        updated_replicas: u32,
        current_revision: u32,
        target_revision: u32,
        image: u32,
        max_unavailable: u32,
    }
}

table! {
    ZoneColumns {
        pool: u32,
        name: u32,
    }
}

table! {
    PodColumns {
        pool: u32,
        name: u32,
        ordinal: u32,
        revision: u32,
        restarts: u32,
        age_seconds: u64,
        // Sets of rows.
        ready: u32,
        terminating: u32,
    }
}

table! {
    InstanceColumns {
        id: u32,
        pool: u32,
        segments: u32,
        // Sets of rows.
        live: u32,
        enabled: u32,
        queries_enabled: u32,
    }
}

table! {
    PodInstanceColumns {
        pod: u32,
        instance: u32,
    }
}

table! {
    TagColumns {
        instance: u32,
        name: u32,
    }
}

table! {
    InstancePoolColumns {
        instance: u32,
        tag: u32,
        pool: u32,
    }
}

table! {
    ConditionColumns {
        kind: u32,
        status: u32,
        reason: u32,
        message: u32,
    }
}

table! {
    TableColumns {
        name: u32,
        replication: u32,
        server_tag: u32,
        broker_tag: u32,
        segments: u32,
        servers_with_segments: u32,
        // A set of rows.
        rebalancing: u32,
    }
}

table! {
    MemberColumns {
        pod: u32,
        id: u32,
        revision: u32,
        restarts: u32,
        age_seconds: u64,
        mode: MemberMode,
        zone: Option<u32>,
        // Sets of rows.
        ready: u32,
        terminating: u32,
        synced: u32,
        leaving: u32,
        node_ready: u32,
    }
}

table! {
    TenantColumns {
        name: u32,
        role: Role,
        instances: u32,
        offline_instances: u32,
        realtime_instances: u32,
    }
}

impl Columns {
    /// Lays `state` out in columns.
    pub fn new(state: &ClusterState) -> Self {
        let mut c = Columns::default();
        c.fill(state);
        c
    }

    /// Lays `state` out in these columns, replacing what they held and reusing their
    /// allocations (the operator keeps a few to decide with).
    pub fn fill(&mut self, state: &ClusterState) {
        let pods: usize = state.pools.iter().map(|p| p.pods.len()).sum();
        // A pod has about four strings and a hundred bytes of them (name, revision, instance id,
        // tags), a pool, condition, table or setting fewer; the text grows past that if it must.
        let items = pods + state.pools.len() + state.conditions.len() + state.tables.len() + state.config.len();
        let instances = pods + state.pools.iter().map(|p| p.departed.len()).sum::<usize>();
        let tags =
            state.pools.iter().flat_map(|p| p.pods.iter().filter_map(|o| o.instance.as_ref()).chain(&p.departed));
        let (tags, instance_pools) = tags.fold((0, 0), |(t, p), i| (t + i.tags.len(), p + i.pools.len()));
        let zones = state.pools.iter().map(|p| p.zones.len()).sum();
        let c = self;
        c.texts.bytes.clear();
        c.texts.bytes.reserve(96 * items);
        c.texts.ends.clear();
        c.texts.ends.reserve(5 * items);
        c.cluster.name.clone_from(&state.name);
        c.cluster.namespace.clone_from(&state.namespace);
        c.cluster.generation = state.generation;
        c.cluster.deployment_order.clone_from(&state.deployment_order);
        c.cluster.now_unix_seconds = state.now_unix_seconds;
        c.settings.reset(state.config.len());
        c.pools.reset(state.pools.len());
        c.zones.reset(zones);
        c.pods.reset(pods);
        c.instances.reset(instances);
        c.pod_instances.reset(pods);
        c.tags.reset(tags);
        c.pod_zone.clear();
        c.pod_zone.reserve(pods);
        c.pod_node_ready.clear();
        c.pod_node_ready.reserve(pods);
        c.instance_pools.reset(instance_pools);
        c.conditions.reset(state.conditions.len());
        c.tables.reset(state.tables.len());
        c.tenants.reset(state.tenants.len());
        let t = &mut c.texts;
        for (key, value) in &state.config {
            c.settings.key.push(t.add(key));
            c.settings.value.push(t.add(value));
        }
        for (row, p) in state.pools.iter().enumerate() {
            let row = row as u32;
            let pools = &mut c.pools;
            pools.name.push(t.add(&p.name));
            pools.role.push(p.role);
            pools.desired_replicas.push(p.desired_replicas);
            pools.current_replicas.push(p.current_replicas);
            pools.min_replicas.push(p.min_replicas);
            pools.max_replicas.push(p.max_replicas);
            pools.ready_replicas.push(p.ready_replicas);
            pools.updated_replicas.push(p.updated_replicas);
            pools.current_revision.push(t.add(&p.current_revision));
            pools.target_revision.push(t.add(&p.target_revision));
            pools.image.push(t.add(&p.image));
            pools.max_unavailable.push(p.max_unavailable);
            for zone in &p.zones {
                c.zones.pool.push(row);
                c.zones.name.push(t.add(zone));
            }
            for pod in &p.pods {
                let pod_row = c.pods.name.len() as u32;
                if let Some(i) = &pod.instance {
                    let instance = push_instance(&mut c.instances, &mut c.tags, &mut c.instance_pools, t, i, row);
                    c.pod_instances.pod.push(pod_row);
                    c.pod_instances.instance.push(instance);
                }
                let pods = &mut c.pods;
                pods.pool.push(row);
                pods.name.push(t.add(&pod.name));
                pods.ordinal.push(pod.ordinal);
                pods.revision.push(t.add(&pod.revision));
                pods.restarts.push(pod.restarts);
                pods.age_seconds.push(pod.age_seconds);
                include(&mut pods.ready, pod_row, pod.ready);
                include(&mut pods.terminating, pod_row, pod.terminating);
                c.pod_zone.push(pod.zone.as_deref().map(|z| t.add(z)));
                include(&mut c.pod_node_ready, pod_row, pod.node_ready);
            }
        }
        // Departed instances after every pod's, pool after pool.
        for (row, p) in state.pools.iter().enumerate() {
            for i in &p.departed {
                push_instance(&mut c.instances, &mut c.tags, &mut c.instance_pools, t, i, row as u32);
            }
        }
        for cond in &state.conditions {
            c.conditions.kind.push(t.add(&cond.kind));
            c.conditions.status.push(t.add(&cond.status));
            c.conditions.reason.push(t.add(&cond.reason));
            c.conditions.message.push(t.add(&cond.message));
        }
        for (row, table) in state.tables.iter().enumerate() {
            let tables = &mut c.tables;
            tables.name.push(t.add(&table.name));
            tables.replication.push(table.replication);
            tables.server_tag.push(t.add(&table.server_tag));
            tables.broker_tag.push(t.add(&table.broker_tag));
            tables.segments.push(table.segments);
            tables.servers_with_segments.push(table.servers_with_segments);
            include(&mut tables.rebalancing, row as u32, table.rebalancing);
        }
        for tenant in &state.tenants {
            let tenants = &mut c.tenants;
            tenants.name.push(t.add(&tenant.name));
            tenants.role.push(tenant.role);
            tenants.instances.push(tenant.instances);
            tenants.offline_instances.push(tenant.offline_instances);
            tenants.realtime_instances.push(tenant.realtime_instances);
        }
        let members = state.ensemble.as_ref().map_or(&[][..], |e| e.members.as_slice());
        c.members.reset(members.len());
        c.ensemble = state.ensemble.as_ref().map(|e| EnsembleFacts {
            desired_members: e.desired_members,
            configured_members: e.configured_members,
            target_revision: t.add(&e.target_revision),
            image: t.add(&e.image),
            order: e.order,
        });
        for (row, m) in members.iter().enumerate() {
            let row = row as u32;
            let cols = &mut c.members;
            cols.pod.push(t.add(&m.pod));
            cols.id.push(m.id);
            cols.revision.push(t.add(&m.revision));
            cols.restarts.push(m.restarts);
            cols.age_seconds.push(m.age_seconds);
            cols.mode.push(m.mode);
            cols.zone.push(m.zone.as_deref().map(|z| t.add(z)));
            include(&mut cols.ready, row, m.ready);
            include(&mut cols.terminating, row, m.terminating);
            include(&mut cols.synced, row, m.synced);
            include(&mut cols.leaving, row, m.leaving);
            include(&mut cols.node_ready, row, m.node_ready);
        }
    }
}

/// Appends an instance (and its tags and pools) and returns its row.
fn push_instance(
    instances: &mut InstanceColumns,
    tags: &mut TagColumns,
    pools: &mut InstancePoolColumns,
    texts: &mut Texts,
    i: &Instance,
    pool: u32,
) -> u32 {
    let row = instances.id.len() as u32;
    instances.id.push(texts.add(&i.id));
    instances.pool.push(pool);
    instances.segments.push(i.segments);
    include(&mut instances.live, row, i.live);
    include(&mut instances.enabled, row, i.enabled);
    include(&mut instances.queries_enabled, row, i.queries_enabled);
    for tag in &i.tags {
        tags.instance.push(row);
        tags.name.push(texts.add(tag));
    }
    for (tag, pool) in &i.pools {
        pools.instance.push(row);
        pools.tag.push(texts.add(tag));
        pools.pool.push(*pool);
    }
    row
}

/// Adds `row` to a set of rows (a yes/no column) when the field holds for it; rows come in
/// ascending order, so the set stays sorted.
fn include(set: &mut Vec<u32>, row: u32, holds: bool) {
    if holds {
        set.push(row);
    }
}

/// Every string of a state, one after another (`text-table` in the WIT): text `id` is
/// `bytes[ends[id - 1]..ends[id]]` (from 0 for id 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Texts {
    pub bytes: String,
    pub ends: Vec<u32>,
}

impl Texts {
    /// Text `id`, "" for a number the table does not have.
    pub fn get(&self, id: u32) -> &str {
        let id = id as usize;
        let Some(&end) = self.ends.get(id) else { return "" };
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        self.bytes.get(start as usize..end as usize).unwrap_or("")
    }

    /// A new number for `s`. Strings are not deduplicated: looking each one up would cost the
    /// host more than the bytes it saves.
    pub fn add(&mut self, s: &str) -> u32 {
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len() as u32);
        (self.ends.len() - 1) as u32
    }
}
