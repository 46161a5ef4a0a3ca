//! Views over the `pinot:policy@0.3.0` state: a pool, pod or instance is a row of one of the
//! state's tables, every string a `&str` borrowed from the state's text and every nested list
//! an iterator, so reading the state allocates nothing.

use std::ops::Range;

use crate::upgrade::pinot::policy::types::{
    self as raw, ConditionColumn, InstanceColumn, PodColumn, PoolColumn, SettingColumn, TableColumn, TenantColumn,
};
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
        self.raw.text.get(string_span(&self.raw.string_ends, id as usize)).unwrap_or("")
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
        (0..self.raw.pools.rows as usize).map(move |index| Pool { state, index })
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<Pool<'a>> {
        self.pools().find(|p| p.name() == name)
    }

    pub fn conditions(&self) -> impl Iterator<Item = Condition<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.conditions.rows as usize).map(move |index| Condition { state, index })
    }

    pub fn tables(&self) -> impl Iterator<Item = Table<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.tables.rows as usize).map(move |index| Table { state, index })
    }

    pub fn tenants(&self) -> impl Iterator<Item = Tenant<'a>> + Clone + use<'a> {
        let state = *self;
        (0..self.raw.tenants.rows as usize).map(move |index| Tenant { state, index })
    }

    /// The policy's configuration entries, in the order given.
    pub fn config_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let state = *self;
        let config = &self.raw.config;
        (0..config.rows as usize).map(move |row| {
            let string = |column: SettingColumn| state.string(cell(config, column as usize, row));
            (string(SettingColumn::Key), string(SettingColumn::Value))
        })
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

/// The cell of `column` and `row` of a table (0 outside it).
fn cell(table: &raw::Table, column: usize, row: usize) -> u32 {
    let rows = table.rows as usize;
    if row >= rows {
        return 0;
    }
    table.cells.get(column * rows + row).copied().unwrap_or(0)
}

/// The span of row `row` given a column of cumulative ends: `[end of row - 1, end of row)`.
fn span(table: &raw::Table, ends: usize, row: usize) -> Range<usize> {
    let start = if row == 0 { 0 } else { cell(table, ends, row - 1) as usize };
    let end = cell(table, ends, row) as usize;
    start..end.max(start)
}

/// The span of string `id` in the text, given the string table's ends.
fn string_span(ends: &[u32], id: usize) -> Range<usize> {
    let end = |i: usize| ends.get(i).copied().unwrap_or(0) as usize;
    let start = if id == 0 { 0 } else { end(id - 1) };
    start..end(id).max(start)
}

/// A role from its case index (a server for one the contract does not have).
fn role(index: u32) -> Role {
    match index {
        0 => Role::Controller,
        1 => Role::Broker,
        3 => Role::Minion,
        _ => Role::Server,
    }
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
    fn number(&self, column: PoolColumn) -> u32 {
        cell(&self.state.raw.pools, column as usize, self.index)
    }

    fn string(&self, column: PoolColumn) -> &'a str {
        self.state.string(self.number(column))
    }

    pub fn name(&self) -> &'a str {
        self.string(PoolColumn::Name)
    }

    pub fn role(&self) -> Role {
        role(self.number(PoolColumn::Role))
    }

    /// The zones the pool is pinned to (none: anywhere).
    pub fn zones(&self) -> Words<'a> {
        let zones = span(&self.state.raw.pools, PoolColumn::ZonesEnd as usize, self.index);
        self.state.strings(&self.state.raw.zones, zones)
    }

    /// The first zone, or "" for a pool not pinned to any.
    pub fn first_zone(&self) -> &'a str {
        self.zones().next().unwrap_or("")
    }

    /// What the spec asks for.
    pub fn desired_replicas(&self) -> u32 {
        self.number(PoolColumn::DesiredReplicas)
    }

    /// What the StatefulSet has now.
    pub fn current_replicas(&self) -> u32 {
        self.number(PoolColumn::CurrentReplicas)
    }

    /// The bounds the host allows `set-replicas` within.
    pub fn min_replicas(&self) -> u32 {
        self.number(PoolColumn::MinReplicas)
    }

    pub fn max_replicas(&self) -> u32 {
        self.number(PoolColumn::MaxReplicas)
    }

    pub fn ready_replicas(&self) -> u32 {
        self.number(PoolColumn::ReadyReplicas)
    }

    pub fn updated_replicas(&self) -> u32 {
        self.number(PoolColumn::UpdatedReplicas)
    }

    pub fn current_revision(&self) -> &'a str {
        self.string(PoolColumn::CurrentRevision)
    }

    /// The revision every pod should run.
    pub fn target_revision(&self) -> &'a str {
        self.string(PoolColumn::TargetRevision)
    }

    pub fn image(&self) -> &'a str {
        self.string(PoolColumn::Image)
    }

    pub fn max_unavailable(&self) -> u32 {
        self.number(PoolColumn::MaxUnavailable)
    }

    pub fn pods(&self) -> impl DoubleEndedIterator<Item = Pod<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        let pods = span(&state.raw.pools, PoolColumn::PodsEnd as usize, self.index);
        let end = pods.end.min(state.raw.pods.rows as usize);
        (pods.start.min(end)..end).map(move |index| Pod { state, index })
    }

    /// Instances Pinot still has for pods of this pool that are gone for good (ordinals at or
    /// above the current replicas); a scale-in drops them once they are no longer live.
    pub fn departed(&self) -> impl DoubleEndedIterator<Item = Instance<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        let departed = span(&state.raw.pools, PoolColumn::DepartedEnd as usize, self.index);
        let rows = state.raw.departed.get(departed).unwrap_or_default();
        rows.iter().map(move |row| Instance { state, index: *row as usize })
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
    fn number(&self, column: PodColumn) -> u32 {
        cell(&self.state.raw.pods, column as usize, self.index)
    }

    pub fn name(&self) -> &'a str {
        self.state.string(self.number(PodColumn::Name))
    }

    pub fn ordinal(&self) -> u32 {
        self.number(PodColumn::Ordinal)
    }

    /// The StatefulSet revision it was created from.
    pub fn revision(&self) -> &'a str {
        self.state.string(self.number(PodColumn::Revision))
    }

    pub fn ready(&self) -> bool {
        self.number(PodColumn::Ready) != 0
    }

    pub fn terminating(&self) -> bool {
        self.number(PodColumn::Terminating) != 0
    }

    pub fn restarts(&self) -> u32 {
        self.number(PodColumn::Restarts)
    }

    /// Seconds since the pod was created.
    pub fn age_seconds(&self) -> u64 {
        self.number(PodColumn::AgeSeconds).into()
    }

    /// Its Pinot instance, when the controller knows it.
    pub fn instance(&self) -> Option<Instance<'a>> {
        let row = self.number(PodColumn::Instance);
        (row != NO_INSTANCE && row < self.state.raw.instances.rows)
            .then_some(Instance { state: self.state, index: row as usize })
    }
}

/// A Pinot instance as the cluster's controller reports it.
#[derive(Clone, Copy)]
pub struct Instance<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Instance<'a> {
    fn number(&self, column: InstanceColumn) -> u32 {
        cell(&self.state.raw.instances, column as usize, self.index)
    }

    /// Pinot's id, e.g. `Server_<pod>.<svc>.<ns>.svc.cluster.local_8098`.
    pub fn id(&self) -> &'a str {
        self.state.string(self.number(InstanceColumn::Id))
    }

    pub fn live(&self) -> bool {
        self.number(InstanceColumn::Live) != 0
    }

    pub fn enabled(&self) -> bool {
        self.number(InstanceColumn::Enabled) != 0
    }

    pub fn queries_enabled(&self) -> bool {
        self.number(InstanceColumn::QueriesEnabled) != 0
    }

    pub fn tags(&self) -> Words<'a> {
        let tags = span(&self.state.raw.instances, InstanceColumn::TagsEnd as usize, self.index);
        self.state.strings(&self.state.raw.tags, tags)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t == tag)
    }

    /// Segments hosted, over every table.
    pub fn segments(&self) -> u32 {
        self.number(InstanceColumn::Segments)
    }
}

/// A Kubernetes-style condition of the cluster.
#[derive(Clone, Copy)]
pub struct Condition<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Condition<'a> {
    fn string(&self, column: ConditionColumn) -> &'a str {
        self.state.string(cell(&self.state.raw.conditions, column as usize, self.index))
    }

    /// The condition type, e.g. `Available`.
    pub fn kind(&self) -> &'a str {
        self.string(ConditionColumn::Kind)
    }

    pub fn status(&self) -> &'a str {
        self.string(ConditionColumn::Status)
    }

    pub fn reason(&self) -> &'a str {
        self.string(ConditionColumn::Reason)
    }

    pub fn message(&self) -> &'a str {
        self.string(ConditionColumn::Message)
    }
}

/// A table, as far as placement and scaling care.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Table<'a> {
    fn number(&self, column: TableColumn) -> u32 {
        cell(&self.state.raw.tables, column as usize, self.index)
    }

    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub fn name(&self) -> &'a str {
        self.state.string(self.number(TableColumn::Name))
    }

    pub fn replication(&self) -> u32 {
        self.number(TableColumn::Replication)
    }

    pub fn server_tag(&self) -> &'a str {
        self.state.string(self.number(TableColumn::ServerTag))
    }

    pub fn broker_tag(&self) -> &'a str {
        self.state.string(self.number(TableColumn::BrokerTag))
    }

    /// Segments of the table (Pinot's ideal state).
    pub fn segments(&self) -> u32 {
        self.number(TableColumn::Segments)
    }

    /// Servers holding at least one of its segments.
    pub fn servers_with_segments(&self) -> u32 {
        self.number(TableColumn::ServersWithSegments)
    }

    /// A rebalance the operator started is still running in Pinot.
    pub fn rebalancing(&self) -> bool {
        self.number(TableColumn::Rebalancing) != 0
    }
}

/// A tenant the user asked for.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    state: State<'a>,
    index: usize,
}

impl<'a> Tenant<'a> {
    fn number(&self, column: TenantColumn) -> u32 {
        cell(&self.state.raw.tenants, column as usize, self.index)
    }

    pub fn name(&self) -> &'a str {
        self.state.string(self.number(TenantColumn::Name))
    }

    pub fn role(&self) -> Role {
        role(self.number(TenantColumn::Role))
    }

    /// Broker and minion tenants: how many instances.
    pub fn instances(&self) -> u32 {
        self.number(TenantColumn::Instances)
    }

    pub fn offline_instances(&self) -> u32 {
        self.number(TenantColumn::OfflineInstances)
    }

    pub fn realtime_instances(&self) -> u32 {
        self.number(TenantColumn::RealtimeInstances)
    }
}
