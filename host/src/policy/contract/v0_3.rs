//! `pinot:policy@0.3.0`, loaded through this one adapter: the host's model laid out as 0.3.0's
//! tables ([`tables`]), 0.3.0's actions and `info` mapped back. Its three worlds share one set
//! of types, so one state can be given to any kind of policy; a 0.3.0 module may return any
//! action, so the host checks the kind of each (see `plan` and `tenants`).

/// The contract version of these bindings.
pub const API_VERSION: &str = "pinot:policy@0.3.0";

/// `upgrade-policy`.
pub mod upgrade {
    wasmtime::component::bindgen!({
        world: "upgrade-policy",
        path: "../plugin-api/wit/0.3.0",
    });
}

/// `scaling-policy`.
pub mod scaling {
    wasmtime::component::bindgen!({
        world: "scaling-policy",
        path: "../plugin-api/wit/0.3.0",
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/host": super::upgrade::pinot::policy::host,
        },
    });
}

/// `tenant-policy`.
pub mod tenant {
    wasmtime::component::bindgen!({
        world: "tenant-policy",
        path: "../plugin-api/wit/0.3.0",
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/host": super::upgrade::pinot::policy::host,
        },
    });
}

use tables::{ConditionColumn, InstanceColumn, PodColumn, PoolColumn, SettingColumn, TableColumn, TenantColumn};
pub use upgrade::pinot::policy::{host, types as tables};

use crate::policy::model as types;

/// A pod's `instance` when Pinot does not know the pod.
pub const NO_INSTANCE: u32 = u32::MAX;

/// Lays a state out as tables.
pub fn tables(state: &types::ClusterState) -> tables::ClusterState {
    let pods: usize = state.pools.iter().map(|p| p.pods.len()).sum();
    let instances =
        || state.pools.iter().flat_map(|p| p.pods.iter().filter_map(|o| o.instance.as_ref()).chain(&p.departed));
    // A pod has about four strings and a hundred bytes of them (name, revision, instance id,
    // tags), a pool, condition, table or setting fewer; the table grows past that if it must.
    let items = pods + state.pools.len() + state.conditions.len() + state.tables.len() + state.config.len() + 2;
    let mut s = Strings { text: String::with_capacity(96 * items), ends: Vec::with_capacity(5 * items) };
    let name = s.id(&state.name);
    let namespace = s.id(&state.namespace);
    let mut pools = Table::new(PoolColumn::DepartedEnd as usize + 1, state.pools.len());
    let mut pod = Table::new(PodColumn::Instance as usize + 1, pods);
    let mut i = Instances {
        table: Table::new(InstanceColumn::Segments as usize + 1, instances().count()),
        tags: Vec::with_capacity(instances().map(|i| i.tags.len()).sum()),
    };
    let mut zones = Vec::with_capacity(state.pools.len());
    let mut departed = Vec::new();
    for (row, p) in state.pools.iter().enumerate() {
        let mut set = |column: PoolColumn, value: u32| pools.set(column as usize, row, value);
        set(PoolColumn::Name, s.id(&p.name));
        set(PoolColumn::Role, role(p.role) as u32);
        zones.extend(p.zones.iter().map(|z| s.id(z)));
        set(PoolColumn::ZonesEnd, zones.len() as u32);
        set(PoolColumn::DesiredReplicas, p.desired_replicas);
        set(PoolColumn::CurrentReplicas, p.current_replicas);
        set(PoolColumn::MinReplicas, p.min_replicas);
        set(PoolColumn::MaxReplicas, p.max_replicas);
        set(PoolColumn::ReadyReplicas, p.ready_replicas);
        set(PoolColumn::UpdatedReplicas, p.updated_replicas);
        set(PoolColumn::CurrentRevision, s.id(&p.current_revision));
        set(PoolColumn::TargetRevision, s.id(&p.target_revision));
        set(PoolColumn::Image, s.id(&p.image));
        set(PoolColumn::MaxUnavailable, p.max_unavailable);
        for o in &p.pods {
            let row = pod.next_row();
            let mut set = |column: PodColumn, value: u32| pod.set(column as usize, row, value);
            set(PodColumn::Name, s.id(&o.name));
            set(PodColumn::Ordinal, o.ordinal);
            set(PodColumn::Revision, s.id(&o.revision));
            set(PodColumn::Ready, o.ready.into());
            set(PodColumn::Terminating, o.terminating.into());
            set(PodColumn::Restarts, o.restarts);
            set(PodColumn::AgeSeconds, o.age_seconds.try_into().unwrap_or(u32::MAX));
            set(PodColumn::Instance, o.instance.as_ref().map_or(NO_INSTANCE, |x| i.push(&mut s, x)));
        }
        pools.set(PoolColumn::PodsEnd as usize, row, pod.filled as u32);
        departed.extend(p.departed.iter().map(|x| i.push(&mut s, x)));
        pools.set(PoolColumn::DepartedEnd as usize, row, departed.len() as u32);
    }
    let mut conditions = Table::new(ConditionColumn::Message as usize + 1, state.conditions.len());
    for (row, c) in state.conditions.iter().enumerate() {
        let mut set = |column: ConditionColumn, value: &str| conditions.set(column as usize, row, s.id(value));
        set(ConditionColumn::Kind, &c.kind);
        set(ConditionColumn::Status, &c.status);
        set(ConditionColumn::Reason, &c.reason);
        set(ConditionColumn::Message, &c.message);
    }
    let mut tables = Table::new(TableColumn::Rebalancing as usize + 1, state.tables.len());
    for (row, t) in state.tables.iter().enumerate() {
        let mut set = |column: TableColumn, value: u32| tables.set(column as usize, row, value);
        set(TableColumn::Name, s.id(&t.name));
        set(TableColumn::Replication, t.replication);
        set(TableColumn::ServerTag, s.id(&t.server_tag));
        set(TableColumn::BrokerTag, s.id(&t.broker_tag));
        set(TableColumn::Segments, t.segments);
        set(TableColumn::ServersWithSegments, t.servers_with_segments);
        set(TableColumn::Rebalancing, t.rebalancing.into());
    }
    let mut tenants = Table::new(TenantColumn::RealtimeInstances as usize + 1, state.tenants.len());
    for (row, t) in state.tenants.iter().enumerate() {
        let mut set = |column: TenantColumn, value: u32| tenants.set(column as usize, row, value);
        set(TenantColumn::Name, s.id(&t.name));
        set(TenantColumn::Role, role(t.role) as u32);
        set(TenantColumn::Instances, t.instances);
        set(TenantColumn::OfflineInstances, t.offline_instances);
        set(TenantColumn::RealtimeInstances, t.realtime_instances);
    }
    let mut config = Table::new(SettingColumn::Value as usize + 1, state.config.len());
    for (row, (key, value)) in state.config.iter().enumerate() {
        config.set(SettingColumn::Key as usize, row, s.id(key));
        config.set(SettingColumn::Value as usize, row, s.id(value));
    }
    tables::ClusterState {
        text: s.text,
        string_ends: s.ends,
        name,
        namespace,
        generation: state.generation,
        deployment_order: state.deployment_order.iter().map(|r| role(*r)).collect(),
        pools: pools.done(),
        pods: pod.done(),
        instances: i.table.done(),
        zones,
        tags: i.tags,
        departed,
        conditions: conditions.done(),
        tables: tables.done(),
        tenants: tenants.done(),
        now_unix_seconds: state.now_unix_seconds,
        config: config.done(),
    }
}

/// The string table being built: every string appended to one text, ids by position.
struct Strings {
    text: String,
    ends: Vec<u32>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u32 {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }
}

/// A table being built: its cells, column by column, for a number of rows known up front.
struct Table {
    rows: usize,
    /// Rows handed out by `next_row`.
    filled: usize,
    cells: Vec<u32>,
}

impl Table {
    fn new(columns: usize, rows: usize) -> Self {
        Self { rows, filled: 0, cells: vec![0; columns * rows] }
    }

    fn next_row(&mut self) -> usize {
        self.filled += 1;
        self.filled - 1
    }

    fn set(&mut self, column: usize, row: usize, value: u32) {
        self.cells[column * self.rows + row] = value;
    }

    fn done(self) -> tables::Table {
        tables::Table { rows: self.rows as u32, cells: self.cells }
    }
}

/// The instance table being built, with the tags it refers to.
struct Instances {
    table: Table,
    tags: Vec<u32>,
}

impl Instances {
    /// Appends an instance and returns its row.
    fn push(&mut self, s: &mut Strings, i: &types::Instance) -> u32 {
        let row = self.table.next_row();
        let mut set = |column: InstanceColumn, value: u32| self.table.set(column as usize, row, value);
        set(InstanceColumn::Id, s.id(&i.id));
        set(InstanceColumn::Live, i.live.into());
        set(InstanceColumn::Enabled, i.enabled.into());
        set(InstanceColumn::QueriesEnabled, i.queries_enabled.into());
        self.tags.extend(i.tags.iter().map(|t| s.id(t)));
        let tags_end = self.tags.len() as u32;
        self.table.set(InstanceColumn::TagsEnd as usize, row, tags_end);
        self.table.set(InstanceColumn::Segments as usize, row, i.segments);
        row as u32
    }
}

fn role(r: types::Role) -> tables::Role {
    match r {
        types::Role::Controller => tables::Role::Controller,
        types::Role::Broker => tables::Role::Broker,
        types::Role::Server => tables::Role::Server,
        types::Role::Minion => tables::Role::Minion,
    }
}

/// A 0.3.0 action as the host's own.
pub fn into_action(a: tables::Action) -> types::Action {
    use types::Action;
    match a {
        tables::Action::RestartPod(p) => Action::RestartPod(p),
        tables::Action::SetReplicas(s) => {
            Action::SetReplicas(types::SetReplicas { pool: s.pool, replicas: s.replicas })
        }
        tables::Action::DisableQueries(i) => Action::DisableQueries(i),
        tables::Action::EnableQueries(i) => Action::EnableQueries(i),
        tables::Action::UpdateTags(t) => Action::UpdateTags(types::InstanceTags { instance: t.instance, tags: t.tags }),
        tables::Action::RebalanceTable(t) => Action::RebalanceTable(t),
        tables::Action::DisableInstance(i) => Action::DisableInstance(i),
        tables::Action::EnableInstance(i) => Action::EnableInstance(i),
        tables::Action::DrainInstance(i) => Action::DrainInstance(i),
        tables::Action::DropInstance(i) => Action::DropInstance(i),
        tables::Action::Wait(w) => Action::Wait(w),
        tables::Action::Block(b) => Action::Block(b),
    }
}

/// A 0.3.0 `info` as the host's own.
pub fn into_info(i: tables::Info) -> types::Info {
    types::Info { name: i.name, version: i.version, api_version: i.api_version }
}

/// A 0.3.0 log level as 1.0.0's (the host logs all alike).
pub fn into_level(l: host::Level) -> super::v1::Level {
    use super::v1::Level;
    match l {
        host::Level::Debug => Level::Debug,
        host::Level::Info => Level::Info,
        host::Level::Warn => Level::Warn,
        host::Level::Error => Level::Error,
    }
}
