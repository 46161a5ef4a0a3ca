//! Views over the flat `pinot:policy@0.2.0` state (the SDK's views before 0.3.0): every string is
//! a `&str` borrowed from the state's text and every nested list an iterator.

use crate::upgrade::pinot::policy::types as raw;
pub use raw::Role;

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

    fn text(&self, t: raw::Text) -> &'a str {
        let start = t.offset as usize;
        self.raw.text.get(start..start.saturating_add(t.len as usize)).unwrap_or("")
    }

    fn words(&self, r: raw::Range) -> Words<'a> {
        Words { state: *self, items: slice(&self.raw.words, r).iter() }
    }

    /// The PinotCluster's name.
    pub fn name(&self) -> &'a str {
        self.text(self.raw.name)
    }

    pub fn namespace(&self) -> &'a str {
        self.text(self.raw.namespace)
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
        self.raw.pools.iter().map(move |raw| Pool { state, raw })
    }

    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<Pool<'a>> {
        self.pools().find(|p| p.name() == name)
    }

    pub fn conditions(&self) -> impl Iterator<Item = Condition<'a>> + Clone + use<'a> {
        let state = *self;
        self.raw.conditions.iter().map(move |raw| Condition { state, raw })
    }

    pub fn tables(&self) -> impl Iterator<Item = Table<'a>> + Clone + use<'a> {
        let state = *self;
        self.raw.tables.iter().map(move |raw| Table { state, raw })
    }

    pub fn tenants(&self) -> impl Iterator<Item = Tenant<'a>> + Clone + use<'a> {
        let state = *self;
        self.raw.tenants.iter().map(move |raw| Tenant { state, raw })
    }

    /// The policy's configuration entries, in the order given.
    pub fn config_entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let state = *self;
        self.raw.config.iter().map(move |s| (state.text(s.key), state.text(s.value)))
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

fn slice<T>(items: &[T], r: raw::Range) -> &[T] {
    let first = (r.first as usize).min(items.len());
    let end = first.saturating_add(r.count as usize).min(items.len());
    &items[first..end]
}

/// Strings of the state referred to by a range: a pool's zones, an instance's tags.
#[derive(Clone)]
pub struct Words<'a> {
    state: State<'a>,
    items: std::slice::Iter<'a, raw::Text>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.items.next().map(|t| self.state.text(*t))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for Words<'_> {}

/// One node pool (a StatefulSet).
#[derive(Clone, Copy)]
pub struct Pool<'a> {
    state: State<'a>,
    raw: &'a raw::Pool,
}

impl<'a> Pool<'a> {
    pub fn name(&self) -> &'a str {
        self.state.text(self.raw.name)
    }

    pub fn role(&self) -> Role {
        self.raw.role
    }

    /// The zones the pool is pinned to (none: anywhere).
    pub fn zones(&self) -> Words<'a> {
        self.state.words(self.raw.zones)
    }

    /// The first zone, or "" for a pool not pinned to any.
    pub fn first_zone(&self) -> &'a str {
        self.zones().next().unwrap_or("")
    }

    /// What the spec asks for.
    pub fn desired_replicas(&self) -> u32 {
        self.raw.desired_replicas
    }

    /// What the StatefulSet has now.
    pub fn current_replicas(&self) -> u32 {
        self.raw.current_replicas
    }

    /// The bounds the host allows `set-replicas` within.
    pub fn min_replicas(&self) -> u32 {
        self.raw.min_replicas
    }

    pub fn max_replicas(&self) -> u32 {
        self.raw.max_replicas
    }

    pub fn ready_replicas(&self) -> u32 {
        self.raw.ready_replicas
    }

    pub fn updated_replicas(&self) -> u32 {
        self.raw.updated_replicas
    }

    pub fn current_revision(&self) -> &'a str {
        self.state.text(self.raw.current_revision)
    }

    /// The revision every pod should run.
    pub fn target_revision(&self) -> &'a str {
        self.state.text(self.raw.target_revision)
    }

    pub fn image(&self) -> &'a str {
        self.state.text(self.raw.image)
    }

    pub fn max_unavailable(&self) -> u32 {
        self.raw.max_unavailable
    }

    pub fn pods(&self) -> impl DoubleEndedIterator<Item = Pod<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        slice(&state.raw.pods, self.raw.pods).iter().map(move |raw| Pod { state, raw })
    }

    /// Instances Pinot still has for pods of this pool that are gone for good (ordinals at or
    /// above the current replicas); a scale-in drops them once they are no longer live.
    pub fn departed(&self) -> impl DoubleEndedIterator<Item = Instance<'a>> + ExactSizeIterator + Clone + use<'a> {
        let state = self.state;
        slice(&state.raw.departed, self.raw.departed).iter().map(move |raw| Instance { state, raw })
    }

    /// Ordinals below the current replicas that have no pod at all: deleted and not yet
    /// recreated by the StatefulSet controller, so down although no pod says so.
    pub fn missing_ordinals(&self) -> impl Iterator<Item = u32> + use<'a> {
        let pool = *self;
        (0..self.raw.current_replicas).filter(move |o| !pool.pods().any(|p| p.ordinal() == *o))
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
    raw: &'a raw::Pod,
}

impl<'a> Pod<'a> {
    pub fn name(&self) -> &'a str {
        self.state.text(self.raw.name)
    }

    pub fn ordinal(&self) -> u32 {
        self.raw.ordinal
    }

    /// The StatefulSet revision it was created from.
    pub fn revision(&self) -> &'a str {
        self.state.text(self.raw.revision)
    }

    pub fn ready(&self) -> bool {
        self.raw.ready
    }

    pub fn terminating(&self) -> bool {
        self.raw.terminating
    }

    pub fn restarts(&self) -> u32 {
        self.raw.restarts
    }

    /// Seconds since the pod was created.
    pub fn age_seconds(&self) -> u64 {
        self.raw.age_seconds
    }

    /// Its Pinot instance, when the controller knows it.
    pub fn instance(&self) -> Option<Instance<'a>> {
        let state = self.state;
        self.raw.instance.as_ref().map(|raw| Instance { state, raw })
    }
}

/// A Pinot instance as the cluster's controller reports it.
#[derive(Clone, Copy)]
pub struct Instance<'a> {
    state: State<'a>,
    raw: &'a raw::Instance,
}

impl<'a> Instance<'a> {
    /// Pinot's id, e.g. `Server_<pod>.<svc>.<ns>.svc.cluster.local_8098`.
    pub fn id(&self) -> &'a str {
        self.state.text(self.raw.id)
    }

    pub fn live(&self) -> bool {
        self.raw.live
    }

    pub fn enabled(&self) -> bool {
        self.raw.enabled
    }

    pub fn queries_enabled(&self) -> bool {
        self.raw.queries_enabled
    }

    pub fn tags(&self) -> Words<'a> {
        self.state.words(self.raw.tags)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t == tag)
    }

    /// Segments hosted, over every table.
    pub fn segments(&self) -> u32 {
        self.raw.segments
    }
}

/// A Kubernetes-style condition of the cluster.
#[derive(Clone, Copy)]
pub struct Condition<'a> {
    state: State<'a>,
    raw: &'a raw::Condition,
}

impl<'a> Condition<'a> {
    /// The condition type, e.g. `Available`.
    pub fn kind(&self) -> &'a str {
        self.state.text(self.raw.kind)
    }

    pub fn status(&self) -> &'a str {
        self.state.text(self.raw.status)
    }

    pub fn reason(&self) -> &'a str {
        self.state.text(self.raw.reason)
    }

    pub fn message(&self) -> &'a str {
        self.state.text(self.raw.message)
    }
}

/// A table, as far as placement and scaling care.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    state: State<'a>,
    raw: &'a raw::Table,
}

impl<'a> Table<'a> {
    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub fn name(&self) -> &'a str {
        self.state.text(self.raw.name)
    }

    pub fn replication(&self) -> u32 {
        self.raw.replication
    }

    pub fn server_tag(&self) -> &'a str {
        self.state.text(self.raw.server_tag)
    }

    pub fn broker_tag(&self) -> &'a str {
        self.state.text(self.raw.broker_tag)
    }

    /// Segments of the table (Pinot's ideal state).
    pub fn segments(&self) -> u32 {
        self.raw.segments
    }

    /// Servers holding at least one of its segments.
    pub fn servers_with_segments(&self) -> u32 {
        self.raw.servers_with_segments
    }

    /// A rebalance the operator started is still running in Pinot.
    pub fn rebalancing(&self) -> bool {
        self.raw.rebalancing
    }
}

/// A tenant the user asked for.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    state: State<'a>,
    raw: &'a raw::Tenant,
}

impl<'a> Tenant<'a> {
    pub fn name(&self) -> &'a str {
        self.state.text(self.raw.name)
    }

    pub fn role(&self) -> Role {
        self.raw.role
    }

    /// Broker and minion tenants: how many instances.
    pub fn instances(&self) -> u32 {
        self.raw.instances
    }

    pub fn offline_instances(&self) -> u32 {
        self.raw.offline_instances
    }

    pub fn realtime_instances(&self) -> u32 {
        self.raw.realtime_instances
    }
}
