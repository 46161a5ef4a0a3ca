//! Views over the columnar `pinot:policy@0.3.0` state: a pool, pod or instance is an index
//! into the state's columns, every string a `&str` borrowed from the state's text and every
//! nested list an iterator, so reading the state allocates nothing.

use std::ops::Range;

use crate::upgrade::pinot::policy::types as raw;
pub use raw::Role;

/// A pod's `instance` when Pinot does not know the pod.
const NO_INSTANCE: u32 = u32::MAX;

/// The observed state of one Pinot cluster, as a policy reads it.
#[derive(Clone, Copy)]
pub struct State<'a> {
    raw: &'a raw::ClusterState,
}

impl<'a> State<'a> {
    pub fn new(raw: &'a raw::ClusterState) -> Self {
        Self { raw }
    }

    /// The state as it crossed into the module.
    pub fn raw(&self) -> &'a raw::ClusterState {
        self.raw
    }

    /// String `id` of the string table ("" for an id the state does not have).
    fn string(&self, id: u32) -> &'a str {
        let span = span(&self.raw.string_ends, id as usize);
        self.raw.text.get(span).unwrap_or("")
    }

    /// The strings `ids[span]`.
    fn strings(&self, ids: &'a [u32], span: Range<usize>) -> Words<'a> {
        Words { state: *self, ids: ids.get(span).unwrap_or_default().iter() }
    }

    /// The PinotCluster's name.
    pub fn name(&self) -> &'a str {
        self.string(self.raw.name)
    }

    pub fn namespace(&self) -> &'a str {
        self.string(self.raw.namespace)
    }

    /// The PinotCluster's `metadata.generation`.
    pub fn generation(&self) -> i64 {
        self.raw.generation
    }

    /// The host's clock, seconds since the Unix epoch (a policy has no clock of its own).
    pub fn now_unix_seconds(&self) -> i64 {
        self.raw.now_unix_seconds
    }

    /// The roles in the order the spec deploys them.
    pub fn deployment_order(&self) -> &'a [Role] {
        &self.raw.deployment_order
    }

    pub fn pools(&self) -> impl DoubleEndedIterator<Item = Pool<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = *self;
        (0..self.raw.pools.name.len()).map(move |index| Pool { state, index })
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<Pool<'a>> {
        self.pools().find(|p| p.name() == name)
    }

    pub fn conditions(&self) -> impl Iterator<Item = Condition<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.conditions.kind.len()).map(move |index| Condition { state, index })
    }

    pub fn tables(&self) -> impl Iterator<Item = Table<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.tables.name.len()).map(move |index| Table { state, index })
    }

    pub fn tenants(&self) -> impl Iterator<Item = Tenant<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.tenants.name.len()).map(move |index| Tenant { state, index })
    }

    /// The policy's configuration entries, in the order given.
    pub fn config_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let state = *self;
        let raw = self.raw;
        raw.config_keys.iter().zip(&raw.config_values).map(move |(k, v)| (state.string(*k), state.string(*v)))
    }

    /// One configuration value.
    pub fn config(&self, key: &str) -> Option<&'a str> {
        self.config_entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Every Pinot instance that belongs to a pod, with its pool and pod.
    pub fn instances(&self) -> impl Iterator<Item = (Pool<'a>, Pod<'a>, Instance<'a>)> + use<'a> {
        self.pools().flat_map(|pool| pool.pods().filter_map(move |pod| Some((pool, pod, pod.instance()?))))
    }
}

/// Entry `index` of a column (0 when the column is short).
fn at<T: Copy + Default>(column: &[T], index: usize) -> T {
    column.get(index).copied().unwrap_or_default()
}

/// The span of entry `index` given cumulative ends: `ends[index - 1] .. ends[index]`.
fn span(ends: &[u32], index: usize) -> Range<usize> {
    let start = if index == 0 { 0 } else { at(ends, index - 1) as usize };
    let end = at(ends, index) as usize;
    start..end.max(start)
}

/// Strings of the state referred to by a range: a pool's zones, an instance's tags.
#[derive(Clone)]
pub struct Words<'a> {
    state: State<'a>,
    ids: std::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.ids.next().map(|id| self.state.string(*id))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

impl ExactSizeIterator for Words<'_> {}

/// One node pool (a StatefulSet).
#[derive(Clone, Copy)]
pub struct Pool<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Pool<'a> {
    fn columns(&self) -> &'a raw::Pools {
        &self.state.raw.pools
    }

    pub fn name(&self) -> &'a str {
        self.state.string(at(&self.columns().name, self.index))
    }

    pub fn role(&self) -> Role {
        self.columns().role.get(self.index).copied().unwrap_or(Role::Server)
    }

    /// The zones the pool is pinned to (none: anywhere).
    pub fn zones(&self) -> Words<'a> {
        self.state.strings(&self.state.raw.zones, span(&self.columns().zones_end, self.index))
    }

    /// The first zone, or "" for a pool not pinned to any.
    pub fn first_zone(&self) -> &'a str {
        self.zones().next().unwrap_or("")
    }

    /// What the spec asks for.
    pub fn desired_replicas(&self) -> u32 {
        at(&self.columns().desired_replicas, self.index)
    }

    /// What the StatefulSet has now.
    pub fn current_replicas(&self) -> u32 {
        at(&self.columns().current_replicas, self.index)
    }

    /// The bounds the host allows `set-replicas` within.
    pub fn min_replicas(&self) -> u32 {
        at(&self.columns().min_replicas, self.index)
    }

    pub fn max_replicas(&self) -> u32 {
        at(&self.columns().max_replicas, self.index)
    }

    pub fn ready_replicas(&self) -> u32 {
        at(&self.columns().ready_replicas, self.index)
    }

    pub fn updated_replicas(&self) -> u32 {
        at(&self.columns().updated_replicas, self.index)
    }

    pub fn current_revision(&self) -> &'a str {
        self.state.string(at(&self.columns().current_revision, self.index))
    }

    /// The revision every pod should run.
    pub fn target_revision(&self) -> &'a str {
        self.state.string(at(&self.columns().target_revision, self.index))
    }

    pub fn image(&self) -> &'a str {
        self.state.string(at(&self.columns().image, self.index))
    }

    pub fn max_unavailable(&self) -> u32 {
        at(&self.columns().max_unavailable, self.index)
    }

    pub fn pods(&self) -> impl DoubleEndedIterator<Item = Pod<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        let pods = span(&self.columns().pods_end, self.index);
        let end = pods.end.min(state.raw.pods.name.len());
        (pods.start.min(end)..end).map(move |index| Pod { state, index })
    }

    /// Instances Pinot still has for pods of this pool that are gone for good (ordinals at or
    /// above the current replicas); a scale-in drops them once they are no longer live.
    pub fn departed(&self) -> impl DoubleEndedIterator<Item = Instance<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        let departed = span(&self.columns().departed_end, self.index);
        let indexes = state.raw.departed.get(departed).unwrap_or_default();
        indexes.iter().map(move |index| Instance { state, index: *index as usize })
    }

    /// Ordinals below the current replicas that have no pod at all: deleted and not yet
    /// recreated by the StatefulSet controller, so down although no pod says so.
    pub fn missing_ordinals(&self) -> impl Iterator<Item = u32> + use<'a> {
        let pool = *self;
        (0..self.current_replicas()).filter(move |o| !pool.pods().any(|p| p.ordinal() == *o))
    }

    /// The name the pod of `ordinal` has (or will have once recreated).
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
    state: State<'a>,
    index: usize,
}

impl<'a> Pod<'a> {
    fn columns(&self) -> &'a raw::Pods {
        &self.state.raw.pods
    }

    pub fn name(&self) -> &'a str {
        self.state.string(at(&self.columns().name, self.index))
    }

    pub fn ordinal(&self) -> u32 {
        at(&self.columns().ordinal, self.index)
    }

    /// The StatefulSet revision it was created from.
    pub fn revision(&self) -> &'a str {
        self.state.string(at(&self.columns().revision, self.index))
    }

    pub fn ready(&self) -> bool {
        at(&self.columns().ready, self.index) != 0
    }

    pub fn terminating(&self) -> bool {
        at(&self.columns().terminating, self.index) != 0
    }

    pub fn restarts(&self) -> u32 {
        at(&self.columns().restarts, self.index)
    }

    /// Seconds since the pod was created.
    pub fn age_seconds(&self) -> u64 {
        at(&self.columns().age_seconds, self.index)
    }

    /// Its Pinot instance, when the controller knows it.
    pub fn instance(&self) -> Option<Instance<'a>> {
        let index = self.columns().instance.get(self.index).copied().unwrap_or(NO_INSTANCE);
        (index != NO_INSTANCE && (index as usize) < self.state.raw.instances.id.len())
            .then_some(Instance { state: self.state, index: index as usize })
    }
}

/// A Pinot instance as the cluster's controller reports it.
#[derive(Clone, Copy)]
pub struct Instance<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Instance<'a> {
    fn columns(&self) -> &'a raw::Instances {
        &self.state.raw.instances
    }

    /// Pinot's id, e.g. `Server_<pod>.<svc>.<ns>.svc.cluster.local_8098`.
    pub fn id(&self) -> &'a str {
        self.state.string(at(&self.columns().id, self.index))
    }

    pub fn live(&self) -> bool {
        at(&self.columns().live, self.index) != 0
    }

    pub fn enabled(&self) -> bool {
        at(&self.columns().enabled, self.index) != 0
    }

    pub fn queries_enabled(&self) -> bool {
        at(&self.columns().queries_enabled, self.index) != 0
    }

    pub fn tags(&self) -> Words<'a> {
        self.state.strings(&self.state.raw.tags, span(&self.columns().tags_end, self.index))
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t == tag)
    }

    /// Segments hosted, over every table.
    pub fn segments(&self) -> u32 {
        at(&self.columns().segments, self.index)
    }
}

/// A Kubernetes-style condition of the cluster.
#[derive(Clone, Copy)]
pub struct Condition<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Condition<'a> {
    fn columns(&self) -> &'a raw::Conditions {
        &self.state.raw.conditions
    }

    /// The condition type, e.g. `Available`.
    pub fn kind(&self) -> &'a str {
        self.state.string(at(&self.columns().kind, self.index))
    }

    pub fn status(&self) -> &'a str {
        self.state.string(at(&self.columns().status, self.index))
    }

    pub fn reason(&self) -> &'a str {
        self.state.string(at(&self.columns().reason, self.index))
    }

    pub fn message(&self) -> &'a str {
        self.state.string(at(&self.columns().message, self.index))
    }
}

/// A table, as far as placement and scaling care.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Table<'a> {
    fn columns(&self) -> &'a raw::Tables {
        &self.state.raw.tables
    }

    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub fn name(&self) -> &'a str {
        self.state.string(at(&self.columns().name, self.index))
    }

    pub fn replication(&self) -> u32 {
        at(&self.columns().replication, self.index)
    }

    pub fn server_tag(&self) -> &'a str {
        self.state.string(at(&self.columns().server_tag, self.index))
    }

    pub fn broker_tag(&self) -> &'a str {
        self.state.string(at(&self.columns().broker_tag, self.index))
    }

    /// Segments of the table (Pinot's ideal state).
    pub fn segments(&self) -> u32 {
        at(&self.columns().segments, self.index)
    }

    /// Servers holding at least one of its segments.
    pub fn servers_with_segments(&self) -> u32 {
        at(&self.columns().servers_with_segments, self.index)
    }

    /// A rebalance the operator started is still running in Pinot.
    pub fn rebalancing(&self) -> bool {
        at(&self.columns().rebalancing, self.index) != 0
    }
}

/// A tenant the user asked for.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Tenant<'a> {
    fn columns(&self) -> &'a raw::Tenants {
        &self.state.raw.tenants
    }

    pub fn name(&self) -> &'a str {
        self.state.string(at(&self.columns().name, self.index))
    }

    pub fn role(&self) -> Role {
        self.columns().role.get(self.index).copied().unwrap_or(Role::Server)
    }

    /// Broker and minion tenants: how many instances.
    pub fn instances(&self) -> u32 {
        at(&self.columns().instances, self.index)
    }

    pub fn offline_instances(&self) -> u32 {
        at(&self.columns().offline_instances, self.index)
    }

    pub fn realtime_instances(&self) -> u32 {
        at(&self.columns().realtime_instances, self.index)
    }
}
