//! The observed state as a policy reads it: views over the columns of `pinot:policy@1.2.0`.
//!
//! A column is asked of the host the first time a view reads it, and once per decision; strings
//! come in one piece (`text-table`) and are borrowed from it. So a policy pays only for what it
//! reads, and reading allocates nothing past the columns themselves. In unit tests the same
//! columns come from a [`crate::StateBuilder`] instead of the host.

use std::{cell::OnceCell, ops::Range};

use pinot_policy_model::{
    ClusterFacts, ClusterState, Columns, ConditionColumns, EnsembleFacts, InstanceColumns, InstancePoolColumns,
    MemberColumns, MemberMode, PodColumns, PodInstanceColumns, PoolColumns, Role, SettingColumns, TableColumns,
    TagColumns, TenantColumns, Texts, ZoneColumns,
};

// Outside a module (unit tests) the bindings' imports are stubs that panic; a state from the host
// exists only in a module, so they are never called there.
use crate::bindings::upgrade::pinot::policy::{state as host, types as wit};

/// Where a state's columns come from.
enum Source {
    /// The operator, through the contract's `state` functions.
    Host,
    /// A state built in memory (unit tests).
    Memory(Box<Columns>),
}

impl From<host::MemberMode> for MemberMode {
    #[inline]
    fn from(m: host::MemberMode) -> MemberMode {
        match m {
            host::MemberMode::Leader => MemberMode::Leader,
            host::MemberMode::Follower => MemberMode::Follower,
            host::MemberMode::Observer => MemberMode::Observer,
            host::MemberMode::Standalone => MemberMode::Standalone,
            host::MemberMode::NotServing => MemberMode::NotServing,
            host::MemberMode::Unreachable => MemberMode::Unreachable,
        }
    }
}

impl From<wit::Role> for Role {
    #[inline]
    fn from(r: wit::Role) -> Role {
        match r {
            wit::Role::Controller => Role::Controller,
            wit::Role::Broker => Role::Broker,
            wit::Role::Server => Role::Server,
            wit::Role::Minion => Role::Minion,
        }
    }
}

/// The tables of a state, each asked for once, when first read.
#[derive(Default)]
struct Cache {
    texts: OnceCell<Texts>,
    cluster: OnceCell<ClusterFacts>,
    settings: OnceCell<SettingColumns>,
    pools: OnceCell<PoolColumns>,
    zones: OnceCell<ZoneColumns>,
    pods: OnceCell<PodColumns>,
    instances: OnceCell<InstanceColumns>,
    pod_instances: OnceCell<PodInstanceColumns>,
    tags: OnceCell<TagColumns>,
    pod_zone: OnceCell<Vec<Option<u32>>>,
    pod_node_ready: OnceCell<Vec<u32>>,
    instance_pools: OnceCell<InstancePoolColumns>,
    conditions: OnceCell<ConditionColumns>,
    tables: OnceCell<TableColumns>,
    tenants: OnceCell<TenantColumns>,
    ensemble: OnceCell<Option<EnsembleFacts>>,
    members: OnceCell<MemberColumns>,
}

#[inline]
fn roles(roles: Vec<wit::Role>) -> Vec<Role> {
    roles.into_iter().map(Role::from).collect()
}

/// Each table's columns: asked of the host (and made the model's types), or copied from the
/// columns of a state in memory.
impl State {
    #[inline]
    fn setting_columns(&self) -> &SettingColumns {
        self.cache.settings.get_or_init(|| match &self.source {
            Source::Host => {
                let s = host::settings();
                SettingColumns { key: s.key, value: s.value }
            }
            Source::Memory(m) => m.settings.clone(),
        })
    }

    #[inline]
    fn pool_columns(&self) -> &PoolColumns {
        self.cache.pools.get_or_init(|| match &self.source {
            Source::Host => {
                let p = host::pools();
                PoolColumns {
                    name: p.name,
                    role: roles(p.role),
                    desired_replicas: p.desired_replicas,
                    current_replicas: p.current_replicas,
                    min_replicas: p.min_replicas,
                    max_replicas: p.max_replicas,
                    ready_replicas: p.ready_replicas,
                    updated_replicas: p.updated_replicas,
                    current_revision: p.current_revision,
                    target_revision: p.target_revision,
                    image: p.image,
                    max_unavailable: p.max_unavailable,
                }
            }
            Source::Memory(m) => m.pools.clone(),
        })
    }

    #[inline]
    fn zone_columns(&self) -> &ZoneColumns {
        self.cache.zones.get_or_init(|| match &self.source {
            Source::Host => {
                let z = host::zones();
                ZoneColumns { pool: z.pool, name: z.name }
            }
            Source::Memory(m) => m.zones.clone(),
        })
    }

    #[inline]
    fn pod_columns(&self) -> &PodColumns {
        self.cache.pods.get_or_init(|| match &self.source {
            Source::Host => {
                let p = host::pods();
                PodColumns {
                    pool: p.pool,
                    name: p.name,
                    ordinal: p.ordinal,
                    revision: p.revision,
                    restarts: p.restarts,
                    age_seconds: p.age_seconds,
                    ready: p.ready,
                    terminating: p.terminating,
                }
            }
            Source::Memory(m) => m.pods.clone(),
        })
    }

    #[inline]
    fn instance_columns(&self) -> &InstanceColumns {
        self.cache.instances.get_or_init(|| match &self.source {
            Source::Host => {
                let i = host::instances();
                InstanceColumns {
                    id: i.id,
                    pool: i.pool,
                    segments: i.segments,
                    live: i.live,
                    enabled: i.enabled,
                    queries_enabled: i.queries_enabled,
                }
            }
            Source::Memory(m) => m.instances.clone(),
        })
    }

    #[inline]
    fn pod_instance_columns(&self) -> &PodInstanceColumns {
        self.cache.pod_instances.get_or_init(|| match &self.source {
            Source::Host => {
                let l = host::pod_instances();
                PodInstanceColumns { pod: l.pod, instance: l.instance }
            }
            Source::Memory(m) => m.pod_instances.clone(),
        })
    }

    #[inline]
    fn tag_columns(&self) -> &TagColumns {
        self.cache.tags.get_or_init(|| match &self.source {
            Source::Host => {
                let t = host::tags();
                TagColumns { instance: t.instance, name: t.name }
            }
            Source::Memory(m) => m.tags.clone(),
        })
    }

    #[inline]
    fn pod_zone_column(&self) -> &[Option<u32>] {
        self.cache.pod_zone.get_or_init(|| match &self.source {
            Source::Host => host::pod_zone(),
            Source::Memory(m) => m.pod_zone.clone(),
        })
    }

    #[inline]
    fn pod_node_ready_set(&self) -> &[u32] {
        self.cache.pod_node_ready.get_or_init(|| match &self.source {
            Source::Host => host::pod_node_ready(),
            Source::Memory(m) => m.pod_node_ready.clone(),
        })
    }

    #[inline]
    fn instance_pool_columns(&self) -> &InstancePoolColumns {
        self.cache.instance_pools.get_or_init(|| match &self.source {
            Source::Host => {
                let p = host::instance_pools();
                InstancePoolColumns { instance: p.instance, tag: p.tag, pool: p.pool }
            }
            Source::Memory(m) => m.instance_pools.clone(),
        })
    }

    #[inline]
    fn condition_columns(&self) -> &ConditionColumns {
        self.cache.conditions.get_or_init(|| match &self.source {
            Source::Host => {
                let c = host::conditions();
                ConditionColumns { kind: c.type_, status: c.status, reason: c.reason, message: c.message }
            }
            Source::Memory(m) => m.conditions.clone(),
        })
    }

    #[inline]
    fn table_columns(&self) -> &TableColumns {
        self.cache.tables.get_or_init(|| match &self.source {
            Source::Host => {
                let t = host::tables();
                TableColumns {
                    name: t.name,
                    replication: t.replication,
                    server_tag: t.server_tag,
                    broker_tag: t.broker_tag,
                    segments: t.segments,
                    servers_with_segments: t.servers_with_segments,
                    rebalancing: t.rebalancing,
                }
            }
            Source::Memory(m) => m.tables.clone(),
        })
    }

    #[inline]
    fn tenant_columns(&self) -> &TenantColumns {
        self.cache.tenants.get_or_init(|| match &self.source {
            Source::Host => {
                let t = host::tenants();
                TenantColumns {
                    name: t.name,
                    role: roles(t.role),
                    instances: t.instances,
                    offline_instances: t.offline_instances,
                    realtime_instances: t.realtime_instances,
                }
            }
            Source::Memory(m) => m.tenants.clone(),
        })
    }

    #[inline]
    fn ensemble_facts(&self) -> Option<&EnsembleFacts> {
        self.cache
            .ensemble
            .get_or_init(|| match &self.source {
                Source::Host => host::ensemble().map(|e| EnsembleFacts {
                    desired_members: e.desired_members,
                    configured_members: e.configured_members,
                    target_revision: e.target_revision,
                    image: e.image,
                    order: e.order,
                }),
                Source::Memory(m) => m.ensemble.clone(),
            })
            .as_ref()
    }

    #[inline]
    fn member_columns(&self) -> &MemberColumns {
        self.cache.members.get_or_init(|| match &self.source {
            Source::Host => {
                let m = host::members();
                MemberColumns {
                    pod: m.pod,
                    id: m.id,
                    revision: m.revision,
                    restarts: m.restarts,
                    age_seconds: m.age_seconds,
                    mode: m.mode.into_iter().map(MemberMode::from).collect(),
                    zone: m.zone,
                    ready: m.ready,
                    terminating: m.terminating,
                    synced: m.synced,
                    leaving: m.leaving,
                    node_ready: m.node_ready,
                }
            }
            Source::Memory(m) => m.members.clone(),
        })
    }

    /// Name, namespace, generation, deployment order and clock.
    #[inline]
    fn cluster(&self) -> &ClusterFacts {
        self.cache.cluster.get_or_init(|| match &self.source {
            Source::Host => {
                let c = host::cluster();
                ClusterFacts {
                    name: c.name,
                    namespace: c.namespace,
                    generation: c.generation,
                    deployment_order: roles(c.deployment_order),
                    now_unix_seconds: c.now_unix_seconds,
                }
            }
            Source::Memory(m) => m.cluster.clone(),
        })
    }
}

/// Where each parent's children start in a child table ordered parent after parent (pods by
/// pool, zones by pool, tags and Pinot pools by instance): `starts[p]..starts[p + 1]`.
#[derive(Default)]
struct Groups {
    pods: OnceCell<Vec<usize>>,
    zones: OnceCell<Vec<usize>>,
    tags: OnceCell<Vec<usize>>,
    instance_pools: OnceCell<Vec<usize>>,
}

fn starts(parents: usize, children: &[u32]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(parents + 1);
    let mut child = 0;
    for parent in 0..=parents {
        while children.get(child).is_some_and(|c| (*c as usize) < parent) {
            child += 1;
        }
        starts.push(child);
    }
    starts
}

/// The yes/no columns (sets of rows in the contract) as a flag per row, and the links between
/// pods and instances both ways: made once, when first read, so that a view answers in
/// constant time.
#[derive(Default)]
struct Lookups {
    pod_ready: OnceCell<Vec<bool>>,
    pod_terminating: OnceCell<Vec<bool>>,
    instance_live: OnceCell<Vec<bool>>,
    instance_enabled: OnceCell<Vec<bool>>,
    instance_queries_enabled: OnceCell<Vec<bool>>,
    table_rebalancing: OnceCell<Vec<bool>>,
    pod_node_ready: OnceCell<Vec<bool>>,
    /// Each pod's instance row.
    pod_instance: OnceCell<Vec<Option<u32>>>,
    /// Each instance's pod row.
    instance_pod: OnceCell<Vec<Option<u32>>>,
}

/// A flag per row of a table of `rows` rows, from the set of rows it holds for.
fn flags(set: &[u32], rows: usize) -> Vec<bool> {
    let mut flags = vec![false; rows];
    for row in set {
        if let Some(f) = flags.get_mut(*row as usize) {
            *f = true;
        }
    }
    flags
}

/// For each of `rows` rows of one table, the row of another it is linked to (`from[i]` to `to[i]`).
fn links(from: &[u32], to: &[u32], rows: usize) -> Vec<Option<u32>> {
    let mut links = vec![None; rows];
    for (f, t) in from.iter().zip(to) {
        if let Some(l) = links.get_mut(*f as usize) {
            *l = Some(*t);
        }
    }
    links
}

/// Whether row `row` of a table of `rows` rows is in `set` (read through a flag per row cached in `cell`).
#[inline]
fn flag(cell: &OnceCell<Vec<bool>>, set: &[u32], rows: usize, row: usize) -> bool {
    cell.get_or_init(|| flags(set, rows)).get(row).copied().unwrap_or(false)
}

/// The row `row` of a table of `rows` rows is linked to by `from[i]` to `to[i]` (read through a
/// link per row cached in `cell`).
#[inline]
fn link(cell: &OnceCell<Vec<Option<u32>>>, from: &[u32], to: &[u32], rows: usize, row: usize) -> Option<usize> {
    cell.get_or_init(|| links(from, to, rows)).get(row).copied().flatten().map(|r| r as usize)
}

/// The observed state of one Pinot cluster, as of this decision.
pub struct State {
    source: Source,
    cache: Cache,
    groups: Groups,
    lookups: Lookups,
}

impl State {
    fn with_source(source: Source) -> Self {
        State { source, cache: Cache::default(), groups: Groups::default(), lookups: Lookups::default() }
    }

    /// The state the operator hands this decision (what the `export_*_policy!` macros use).
    #[doc(hidden)]
    pub fn from_host() -> Self {
        Self::with_source(Source::Host)
    }

    /// A state from the decision model: what [`crate::StateBuilder`] builds and what a
    /// `policy test --state FILE` file holds (`serde_yaml::from_str::<model::ClusterState>`).
    pub fn from_model(state: ClusterState) -> Self {
        Self::with_source(Source::Memory(Box::new(Columns::new(&state))))
    }

    #[inline]
    fn texts(&self) -> &Texts {
        self.cache.texts.get_or_init(|| match &self.source {
            Source::Host => {
                let t = host::read_all_text();
                Texts { bytes: t.bytes, ends: t.ends }
            }
            Source::Memory(m) => m.texts.clone(),
        })
    }

    /// Text `id` of a column at `row` ("" past its end).
    #[inline]
    fn text(&self, column: &[u32], row: usize) -> &str {
        column.get(row).map_or("", |id| self.texts().get(*id))
    }

    /// The PinotCluster's name.
    #[inline]
    pub fn name(&self) -> &str {
        &self.cluster().name
    }

    #[inline]
    pub fn namespace(&self) -> &str {
        &self.cluster().namespace
    }

    /// The PinotCluster's `metadata.generation`.
    #[inline]
    pub fn generation(&self) -> i64 {
        self.cluster().generation
    }

    /// The roles in the order the spec deploys them.
    #[inline]
    pub fn deployment_order(&self) -> &[Role] {
        &self.cluster().deployment_order
    }

    /// The host's clock, seconds since the Unix epoch (a policy has no clock of its own).
    #[inline]
    pub fn now_unix_seconds(&self) -> i64 {
        self.cluster().now_unix_seconds
    }

    #[inline]
    pub fn pools(&self) -> impl DoubleEndedIterator<Item = Pool<'_>> + ExactSizeIterator + Clone {
        (0..self.pool_columns().name.len()).map(move |row| Pool { state: self, row })
    }

    /// The ZooKeeper ensemble the operator runs for the cluster (1.2.0); `None` for a cluster
    /// on an existing ensemble.
    #[inline]
    pub fn ensemble(&self) -> Option<Ensemble<'_>> {
        self.ensemble_facts().map(|facts| Ensemble { state: self, facts })
    }

    /// The pool named `name`.
    #[inline]
    pub fn pool(&self, name: &str) -> Option<Pool<'_>> {
        self.pools().find(|p| p.name() == name)
    }

    #[inline]
    pub fn conditions(&self) -> impl Iterator<Item = Condition<'_>> + Clone {
        (0..self.condition_columns().kind.len()).map(move |row| Condition { state: self, row })
    }

    /// The condition of type `kind`.
    #[inline]
    pub fn condition(&self, kind: &str) -> Option<Condition<'_>> {
        self.conditions().find(|c| c.kind() == kind)
    }

    #[inline]
    pub fn tables(&self) -> impl Iterator<Item = Table<'_>> + Clone {
        (0..self.table_columns().name.len()).map(move |row| Table { state: self, row })
    }

    #[inline]
    pub fn tenants(&self) -> impl Iterator<Item = Tenant<'_>> + Clone {
        (0..self.tenant_columns().name.len()).map(move |row| Tenant { state: self, row })
    }

    /// The policy's configuration, in the order given (later entries override earlier ones in
    /// [`State::config`]).
    #[inline]
    pub fn config_entries(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        let (keys, values) = (&self.setting_columns().key, &self.setting_columns().value);
        keys.iter().zip(values).map(move |(k, v)| (self.texts().get(*k), self.texts().get(*v)))
    }

    /// One configuration value (the last given for `key`).
    #[inline]
    pub fn config(&self, key: &str) -> Option<&str> {
        self.config_entries().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }

    /// Every Pinot instance that belongs to a pod, with its pool and pod.
    #[inline]
    pub fn instances(&self) -> impl Iterator<Item = (Pool<'_>, Pod<'_>, Instance<'_>)> {
        self.pools().flat_map(|pool| pool.pods().filter_map(move |pod| Some((pool, pod, pod.instance()?))))
    }

    /// The rows of a child table that belong to parent `row`.
    #[inline]
    fn group(&self, cell: &OnceCell<Vec<usize>>, parents: usize, children: &[u32], row: usize) -> Range<usize> {
        let starts = cell.get_or_init(|| starts(parents, children));
        match (starts.get(row), starts.get(row + 1)) {
            (Some(s), Some(e)) => *s..*e,
            _ => 0..0,
        }
    }
}

/// Strings of the state that belong to one row: a pool's zones, an instance's tags.
#[derive(Clone)]
pub struct Words<'a> {
    state: &'a State,
    ids: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        self.ids.next().map(|id| self.state.texts().get(*id))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

impl ExactSizeIterator for Words<'_> {}

/// A cell of a column (the type's default past its end).
#[inline]
fn cell<T: Copy + Default>(column: &[T], row: usize) -> T {
    column.get(row).copied().unwrap_or_default()
}

/// One node pool (a StatefulSet).
#[derive(Clone, Copy)]
pub struct Pool<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Pool<'a> {
    #[inline]
    pub fn name(&self) -> &'a str {
        self.state.text(&self.state.pool_columns().name, self.row)
    }

    #[inline]
    pub fn role(&self) -> Role {
        self.state.pool_columns().role.get(self.row).copied().unwrap_or(Role::Server)
    }

    /// The zones the pool is pinned to (none: anywhere).
    #[inline]
    pub fn zones(&self) -> Words<'a> {
        let s = self.state;
        let rows = s.group(&s.groups.zones, s.pool_columns().name.len(), &s.zone_columns().pool, self.row);
        Words { state: s, ids: s.zone_columns().name[rows].iter() }
    }

    /// The first zone, or "" for a pool not pinned to any.
    #[inline]
    pub fn first_zone(&self) -> &'a str {
        self.zones().next().unwrap_or("")
    }

    /// What the spec asks for.
    #[inline]
    pub fn desired_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().desired_replicas, self.row)
    }

    /// What the StatefulSet has now.
    #[inline]
    pub fn current_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().current_replicas, self.row)
    }

    /// The lowest replicas the host allows `set-replicas` to ask for.
    #[inline]
    pub fn min_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().min_replicas, self.row)
    }

    #[inline]
    pub fn max_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().max_replicas, self.row)
    }

    #[inline]
    pub fn ready_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().ready_replicas, self.row)
    }

    /// Pods on the target revision.
    #[inline]
    pub fn updated_replicas(&self) -> u32 {
        cell(&self.state.pool_columns().updated_replicas, self.row)
    }

    #[inline]
    pub fn current_revision(&self) -> &'a str {
        self.state.text(&self.state.pool_columns().current_revision, self.row)
    }

    /// The revision every pod should run.
    #[inline]
    pub fn target_revision(&self) -> &'a str {
        self.state.text(&self.state.pool_columns().target_revision, self.row)
    }

    #[inline]
    pub fn image(&self) -> &'a str {
        self.state.text(&self.state.pool_columns().image, self.row)
    }

    /// The pool's disruption budget: pods that may be down at once.
    #[inline]
    pub fn max_unavailable(&self) -> u32 {
        cell(&self.state.pool_columns().max_unavailable, self.row)
    }

    /// Its pods, by ordinal.
    #[inline]
    pub fn pods(&self) -> impl DoubleEndedIterator<Item = Pod<'a>> + ExactSizeIterator + Clone + use<'a> {
        let s = self.state;
        let rows = s.group(&s.groups.pods, s.pool_columns().name.len(), &s.pod_columns().pool, self.row);
        rows.map(move |row| Pod { state: s, row })
    }

    /// Instances Pinot still has for pods of this pool that are gone for good (ordinals at or
    /// above the current replicas); a scale-in drops them once they are no longer live.
    #[inline]
    pub fn departed(&self) -> impl Iterator<Item = Instance<'a>> + Clone + use<'a> {
        let (s, pool) = (self.state, self.row as u32);
        let pools = &s.instance_columns().pool;
        (0..pools.len())
            .map(move |row| Instance { state: s, row })
            .filter(move |i| pools[i.row] == pool && i.pod().is_none())
    }

    /// Ordinals below the current replicas that have no pod at all: deleted and not yet
    /// recreated by the StatefulSet controller, so down although no pod says so.
    #[inline]
    pub fn missing_ordinals(&self) -> impl Iterator<Item = u32> + use<'a> {
        let pool = *self;
        (0..self.current_replicas()).filter(move |o| !pool.pods().any(|p| p.ordinal() == *o))
    }

    /// The name the pod of `ordinal` has (or will have once recreated).
    #[inline]
    pub fn pod_name(&self, ordinal: u32) -> String {
        match self.pods().next().and_then(|p| p.name().rsplit_once('-')) {
            Some((base, _)) => format!("{base}-{ordinal}"),
            None => format!("pod {ordinal} of pool {}", self.name()),
        }
    }
}

/// One pod of a pool.
#[derive(Clone, Copy)]
pub struct Pod<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Pod<'a> {
    #[inline]
    pub fn name(&self) -> &'a str {
        self.state.text(&self.state.pod_columns().name, self.row)
    }

    /// The pod's StatefulSet ordinal.
    #[inline]
    pub fn ordinal(&self) -> u32 {
        cell(&self.state.pod_columns().ordinal, self.row)
    }

    /// The StatefulSet revision the pod was created from.
    #[inline]
    pub fn revision(&self) -> &'a str {
        self.state.text(&self.state.pod_columns().revision, self.row)
    }

    #[inline]
    pub fn ready(&self) -> bool {
        let (s, p) = (self.state, self.state.pod_columns());
        flag(&s.lookups.pod_ready, &p.ready, p.name.len(), self.row)
    }

    /// Deleted, not gone yet.
    #[inline]
    pub fn terminating(&self) -> bool {
        let (s, p) = (self.state, self.state.pod_columns());
        flag(&s.lookups.pod_terminating, &p.terminating, p.name.len(), self.row)
    }

    /// The zone of its node (`topology.kubernetes.io/zone`, as observed: where it runs, not
    /// where the spec wishes); none while not scheduled or on a node without the label.
    #[inline]
    pub fn zone(&self) -> Option<&'a str> {
        let s = self.state;
        s.pod_zone_column().get(self.row).copied().flatten().map(|id| s.texts().get(id))
    }

    /// Its node is Ready. A pod on a node that stopped reporting (a lost zone, a dead kubelet)
    /// or not scheduled is not: deleting it restarts nothing until the node returns.
    #[inline]
    pub fn node_ready(&self) -> bool {
        let s = self.state;
        flag(&s.lookups.pod_node_ready, s.pod_node_ready_set(), s.pod_columns().name.len(), self.row)
    }

    /// Container restarts.
    #[inline]
    pub fn restarts(&self) -> u32 {
        cell(&self.state.pod_columns().restarts, self.row)
    }

    /// Seconds since the pod was created.
    #[inline]
    pub fn age_seconds(&self) -> u64 {
        cell(&self.state.pod_columns().age_seconds, self.row)
    }

    /// The pod's pool.
    #[inline]
    pub fn pool(&self) -> Pool<'a> {
        Pool { state: self.state, row: cell(&self.state.pod_columns().pool, self.row) as usize }
    }

    /// Its Pinot instance, once the controller knows the pod.
    #[inline]
    pub fn instance(&self) -> Option<Instance<'a>> {
        let (s, l) = (self.state, self.state.pod_instance_columns());
        let row = link(&s.lookups.pod_instance, &l.pod, &l.instance, s.pod_columns().name.len(), self.row)?;
        Some(Instance { state: s, row })
    }
}

/// A Pinot instance as the cluster's controller reports it.
#[derive(Clone, Copy)]
pub struct Instance<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Instance<'a> {
    /// Pinot's id, e.g. `Server_<pod>.<service>.<namespace>.svc.cluster.local_8098`.
    #[inline]
    pub fn id(&self) -> &'a str {
        self.state.text(&self.state.instance_columns().id, self.row)
    }

    /// Connected to ZooKeeper.
    #[inline]
    pub fn live(&self) -> bool {
        let (s, i) = (self.state, self.state.instance_columns());
        flag(&s.lookups.instance_live, &i.live, i.id.len(), self.row)
    }

    /// Enabled in Helix.
    #[inline]
    pub fn enabled(&self) -> bool {
        let (s, i) = (self.state, self.state.instance_columns());
        flag(&s.lookups.instance_enabled, &i.enabled, i.id.len(), self.row)
    }

    /// Serving queries (its `queriesDisabled` flag is not set).
    #[inline]
    pub fn queries_enabled(&self) -> bool {
        let (s, i) = (self.state, self.state.instance_columns());
        flag(&s.lookups.instance_queries_enabled, &i.queries_enabled, i.id.len(), self.row)
    }

    #[inline]
    pub fn tags(&self) -> Words<'a> {
        let s = self.state;
        let rows = s.group(&s.groups.tags, s.instance_columns().id.len(), &s.tag_columns().instance, self.row);
        Words { state: s, ids: s.tag_columns().name[rows].iter() }
    }

    #[inline]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t == tag)
    }

    /// Segments it hosts in Pinot's ideal state, over every table.
    #[inline]
    pub fn segments(&self) -> u32 {
        cell(&self.state.instance_columns().segments, self.row)
    }

    /// Its pod; none for a departed instance.
    #[inline]
    pub fn pod(&self) -> Option<Pod<'a>> {
        let (s, l) = (self.state, self.state.pod_instance_columns());
        let row = link(&s.lookups.instance_pod, &l.instance, &l.pod, s.instance_columns().id.len(), self.row)?;
        Some(Pod { state: s, row })
    }

    /// The zone of its pod's node; none for a departed instance or an unscheduled pod.
    #[inline]
    pub fn zone(&self) -> Option<&'a str> {
        self.pod()?.zone()
    }

    /// Its Pinot pools: (tag, pool number) per tag that has one, in tag order.
    #[inline]
    pub fn pinot_pools(&self) -> impl ExactSizeIterator<Item = (&'a str, u32)> + Clone + use<'a> {
        let s = self.state;
        let p = s.instance_pool_columns();
        let rows = s.group(&s.groups.instance_pools, s.instance_columns().id.len(), &p.instance, self.row);
        rows.map(move |row| (s.text(&p.tag, row), p.pool[row]))
    }

    /// Its Pinot pool for `tag`, if it has one.
    #[inline]
    pub fn pinot_pool(&self, tag: &str) -> Option<u32> {
        self.pinot_pools().find(|(t, _)| *t == tag).map(|(_, p)| p)
    }
}

/// A Kubernetes-style condition of the PinotCluster.
#[derive(Clone, Copy)]
pub struct Condition<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Condition<'a> {
    /// Its type, e.g. `Available`.
    #[inline]
    pub fn kind(&self) -> &'a str {
        self.state.text(&self.state.condition_columns().kind, self.row)
    }

    #[inline]
    pub fn status(&self) -> &'a str {
        self.state.text(&self.state.condition_columns().status, self.row)
    }

    #[inline]
    pub fn reason(&self) -> &'a str {
        self.state.text(&self.state.condition_columns().reason, self.row)
    }

    #[inline]
    pub fn message(&self) -> &'a str {
        self.state.text(&self.state.condition_columns().message, self.row)
    }
}

/// A Pinot table, as far as placement and scaling care.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Table<'a> {
    /// Name with type, e.g. `airlineStats_OFFLINE`.
    #[inline]
    pub fn name(&self) -> &'a str {
        self.state.text(&self.state.table_columns().name, self.row)
    }

    #[inline]
    pub fn replication(&self) -> u32 {
        cell(&self.state.table_columns().replication, self.row)
    }

    #[inline]
    pub fn server_tag(&self) -> &'a str {
        self.state.text(&self.state.table_columns().server_tag, self.row)
    }

    #[inline]
    pub fn broker_tag(&self) -> &'a str {
        self.state.text(&self.state.table_columns().broker_tag, self.row)
    }

    /// Segments of the table (Pinot's ideal state).
    #[inline]
    pub fn segments(&self) -> u32 {
        cell(&self.state.table_columns().segments, self.row)
    }

    /// Servers holding at least one of its segments.
    #[inline]
    pub fn servers_with_segments(&self) -> u32 {
        cell(&self.state.table_columns().servers_with_segments, self.row)
    }

    /// A rebalance the operator started is still running in Pinot.
    #[inline]
    pub fn rebalancing(&self) -> bool {
        let (s, t) = (self.state, self.state.table_columns());
        flag(&s.lookups.table_rebalancing, &t.rebalancing, t.name.len(), self.row)
    }
}

/// A tenant the user asked for (a PinotTenant).
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Tenant<'a> {
    #[inline]
    pub fn name(&self) -> &'a str {
        self.state.text(&self.state.tenant_columns().name, self.row)
    }

    #[inline]
    pub fn role(&self) -> Role {
        self.state.tenant_columns().role.get(self.row).copied().unwrap_or(Role::Server)
    }

    /// Broker and minion tenants: instances; server tenants: see the next two.
    #[inline]
    pub fn instances(&self) -> u32 {
        cell(&self.state.tenant_columns().instances, self.row)
    }

    #[inline]
    pub fn offline_instances(&self) -> u32 {
        cell(&self.state.tenant_columns().offline_instances, self.row)
    }

    #[inline]
    pub fn realtime_instances(&self) -> u32 {
        cell(&self.state.tenant_columns().realtime_instances, self.row)
    }
}

/// The managed ZooKeeper ensemble (1.2.0): one more pool of the cluster, not Pinot's.
#[derive(Clone, Copy)]
pub struct Ensemble<'a> {
    state: &'a State,
    facts: &'a EnsembleFacts,
}

impl<'a> Ensemble<'a> {
    /// Members the spec asks for.
    #[inline]
    pub fn desired_members(&self) -> u32 {
        self.facts.desired_members
    }

    /// Members its configuration lists now (one is added or removed at a time).
    #[inline]
    pub fn configured_members(&self) -> u32 {
        self.facts.configured_members
    }

    /// Members that may be down at once and leave a quorum of the configuration.
    #[inline]
    pub fn tolerates(&self) -> u32 {
        self.facts.configured_members.saturating_sub(1) / 2
    }

    /// The revision every member should run.
    #[inline]
    pub fn target_revision(&self) -> &'a str {
        self.state.texts().get(self.facts.target_revision)
    }

    #[inline]
    pub fn image(&self) -> &'a str {
        self.state.texts().get(self.facts.image)
    }

    /// How many roles of the deployment order come before it (0: first).
    #[inline]
    pub fn order(&self) -> u32 {
        self.facts.order
    }

    /// Its members, by ordinal.
    #[inline]
    pub fn members(&self) -> impl DoubleEndedIterator<Item = Member<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        (0..state.member_columns().pod.len()).map(move |row| Member { state, row })
    }

    /// The member that leads, if one does.
    #[inline]
    pub fn leader(&self) -> Option<Member<'a>> {
        self.members().find(|m| m.mode() == MemberMode::Leader)
    }
}

/// One member of the ensemble: a pod of its StatefulSet.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    state: &'a State,
    row: usize,
}

impl<'a> Member<'a> {
    #[inline]
    fn columns(&self) -> &'a MemberColumns {
        self.state.member_columns()
    }

    #[inline]
    fn in_set(&self, set: &[u32]) -> bool {
        set.binary_search(&(self.row as u32)).is_ok()
    }

    /// Its pod's name (what `restart-pod` takes).
    #[inline]
    pub fn pod(&self) -> &'a str {
        self.state.text(&self.columns().pod, self.row)
    }

    /// Its ZooKeeper id: the pod's ordinal + 1.
    #[inline]
    pub fn id(&self) -> u32 {
        self.columns().id[self.row]
    }

    #[inline]
    pub fn revision(&self) -> &'a str {
        self.state.text(&self.columns().revision, self.row)
    }

    #[inline]
    pub fn restarts(&self) -> u32 {
        self.columns().restarts[self.row]
    }

    #[inline]
    pub fn age_seconds(&self) -> u64 {
        self.columns().age_seconds[self.row]
    }

    #[inline]
    pub fn mode(&self) -> MemberMode {
        self.columns().mode[self.row]
    }

    #[inline]
    pub fn zone(&self) -> Option<&'a str> {
        self.columns().zone[self.row].map(|id| self.state.texts().get(id))
    }

    #[inline]
    pub fn ready(&self) -> bool {
        self.in_set(&self.columns().ready)
    }

    #[inline]
    pub fn terminating(&self) -> bool {
        self.in_set(&self.columns().terminating)
    }

    /// Serves, and has finished syncing with the leader (or leads).
    #[inline]
    pub fn synced(&self) -> bool {
        self.in_set(&self.columns().synced)
    }

    /// Up for the ensemble, as far as the host can tell: serving in sync, or its pod Ready while
    /// its client port could not be asked; not being deleted. (Down takes evidence: it answers
    /// without a quorum, or its pod is not Ready.)
    #[inline]
    pub fn up(&self) -> bool {
        !self.terminating() && (self.synced() || (self.mode() == MemberMode::Unreachable && self.ready()))
    }

    /// The configuration no longer lists it: it is removed, never restarted.
    #[inline]
    pub fn leaving(&self) -> bool {
        self.in_set(&self.columns().leaving)
    }

    #[inline]
    pub fn node_ready(&self) -> bool {
        self.in_set(&self.columns().node_ready)
    }
}
