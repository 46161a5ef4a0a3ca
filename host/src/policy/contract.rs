//! Host bindings of every contract version this operator supports, and the conversions between
//! them and the host's own model of a decision ([`super::model`], the union of all versions):
//! a 0.1.0 module gets the model's state without what 0.1.0 lacks ([`v1::lower`]); a 0.2.0
//! module gets it laid out flat ([`v2::flatten`]); a 0.3.0 module in columns
//! ([`v3::columns`]); the actions of each are mapped back.

/// The three worlds of one contract version, from its WIT directory. They share one set of
/// types (those of the upgrade world), so one state can be given to any kind of policy.
macro_rules! worlds {
    ($path:literal) => {
        /// `upgrade-policy`.
        pub mod upgrade {
            wasmtime::component::bindgen!({
                world: "upgrade-policy",
                path: $path,
                additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
            });
        }

        /// `scaling-policy`.
        pub mod scaling {
            wasmtime::component::bindgen!({
                world: "scaling-policy",
                path: $path,
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
                path: $path,
                with: {
                    "pinot:policy/types": super::upgrade::pinot::policy::types,
                    "pinot:policy/host": super::upgrade::pinot::policy::host,
                },
            });
        }
    };
}

/// The conversions of actions, `info` and log levels back to the host's own, for a contract
/// version whose actions are those of 0.2.0 (`$wit` is the module of its types).
macro_rules! conversions {
    ($wit:ident, $version:literal) => {
        #[doc = concat!("A ", $version, " action as the host's own.")]
        pub fn into_action(a: $wit::Action) -> types::Action {
            use types::Action;
            match a {
                $wit::Action::RestartPod(p) => Action::RestartPod(p),
                $wit::Action::SetReplicas(s) => {
                    Action::SetReplicas(types::SetReplicas { pool: s.pool, replicas: s.replicas })
                }
                $wit::Action::DisableQueries(i) => Action::DisableQueries(i),
                $wit::Action::EnableQueries(i) => Action::EnableQueries(i),
                $wit::Action::UpdateTags(t) => {
                    Action::UpdateTags(types::InstanceTags { instance: t.instance, tags: t.tags })
                }
                $wit::Action::RebalanceTable(t) => Action::RebalanceTable(t),
                $wit::Action::DisableInstance(i) => Action::DisableInstance(i),
                $wit::Action::EnableInstance(i) => Action::EnableInstance(i),
                $wit::Action::DrainInstance(i) => Action::DrainInstance(i),
                $wit::Action::DropInstance(i) => Action::DropInstance(i),
                $wit::Action::Wait(w) => Action::Wait(w),
                $wit::Action::Block(b) => Action::Block(b),
            }
        }

        #[doc = concat!("A ", $version, " `info` as the host's own.")]
        pub fn into_info(i: $wit::Info) -> types::Info {
            types::Info { name: i.name, version: i.version, api_version: i.api_version }
        }

        #[doc = concat!("A ", $version, " log level as 0.1.0's (the host logs all alike).")]
        pub fn into_level(l: host::Level) -> super::v1::host::Level {
            use super::v1::host::Level;
            match l {
                host::Level::Debug => Level::Debug,
                host::Level::Info => Level::Info,
                host::Level::Warn => Level::Warn,
                host::Level::Error => Level::Error,
            }
        }
    };
}

/// `pinot:policy@0.1.0`: nested records, a string per name.
pub mod v1 {
    /// The contract version of these bindings.
    pub const API_VERSION: &str = "pinot:policy@0.1.0";

    worlds!("../plugin-api/wit/0.1.0");

    pub use upgrade::pinot::policy::{host, types as nested};

    use crate::policy::model;

    /// The model's state as 0.1.0 has it: without departed instances and table segments.
    pub fn lower(state: &model::ClusterState) -> nested::ClusterState {
        let instance = |i: &model::Instance| nested::Instance {
            id: i.id.clone(),
            live: i.live,
            enabled: i.enabled,
            queries_enabled: i.queries_enabled,
            tags: i.tags.clone(),
            segments: i.segments,
        };
        nested::ClusterState {
            name: state.name.clone(),
            namespace: state.namespace.clone(),
            generation: state.generation,
            deployment_order: state.deployment_order.iter().map(|r| role(*r)).collect(),
            pools: state
                .pools
                .iter()
                .map(|p| nested::Pool {
                    name: p.name.clone(),
                    role: role(p.role),
                    zones: p.zones.clone(),
                    desired_replicas: p.desired_replicas,
                    current_replicas: p.current_replicas,
                    min_replicas: p.min_replicas,
                    max_replicas: p.max_replicas,
                    ready_replicas: p.ready_replicas,
                    updated_replicas: p.updated_replicas,
                    current_revision: p.current_revision.clone(),
                    target_revision: p.target_revision.clone(),
                    image: p.image.clone(),
                    max_unavailable: p.max_unavailable,
                    pods: p
                        .pods
                        .iter()
                        .map(|pod| nested::Pod {
                            name: pod.name.clone(),
                            ordinal: pod.ordinal,
                            revision: pod.revision.clone(),
                            ready: pod.ready,
                            terminating: pod.terminating,
                            restarts: pod.restarts,
                            age_seconds: pod.age_seconds,
                            instance: pod.instance.as_ref().map(instance),
                        })
                        .collect(),
                })
                .collect(),
            conditions: state
                .conditions
                .iter()
                .map(|c| nested::Condition {
                    kind: c.kind.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect(),
            tables: state
                .tables
                .iter()
                .map(|t| nested::Table {
                    name: t.name.clone(),
                    replication: t.replication,
                    server_tag: t.server_tag.clone(),
                    broker_tag: t.broker_tag.clone(),
                })
                .collect(),
            tenants: state
                .tenants
                .iter()
                .map(|t| nested::Tenant {
                    name: t.name.clone(),
                    role: role(t.role),
                    instances: t.instances,
                    offline_instances: t.offline_instances,
                    realtime_instances: t.realtime_instances,
                })
                .collect(),
            now_unix_seconds: state.now_unix_seconds,
            config: state.config.clone(),
        }
    }

    fn role(r: model::Role) -> nested::Role {
        match r {
            model::Role::Controller => nested::Role::Controller,
            model::Role::Broker => nested::Role::Broker,
            model::Role::Server => nested::Role::Server,
            model::Role::Minion => nested::Role::Minion,
        }
    }

    /// A 0.1.0 action as the host's own.
    pub fn into_action(a: nested::Action) -> model::Action {
        use model::Action;
        match a {
            nested::Action::RestartPod(p) => Action::RestartPod(p),
            nested::Action::SetReplicas(s) => {
                Action::SetReplicas(model::SetReplicas { pool: s.pool, replicas: s.replicas })
            }
            nested::Action::DisableQueries(i) => Action::DisableQueries(i),
            nested::Action::EnableQueries(i) => Action::EnableQueries(i),
            nested::Action::UpdateTags(t) => {
                Action::UpdateTags(model::InstanceTags { instance: t.instance, tags: t.tags })
            }
            nested::Action::RebalanceTable(t) => Action::RebalanceTable(t),
            nested::Action::Wait(w) => Action::Wait(w),
            nested::Action::Block(b) => Action::Block(b),
        }
    }

    /// A 0.1.0 `info` as the host's own.
    pub fn into_info(i: nested::Info) -> model::Info {
        model::Info { name: i.name, version: i.version, api_version: i.api_version }
    }
}

/// `pinot:policy@0.2.0`: the same state and actions, laid out flat (one text buffer, spans
/// and ranges instead of nested strings and lists), so lowering a state into a module takes a
/// few allocations in the module instead of one per string.
pub mod v2 {
    /// The contract version of these bindings.
    pub const API_VERSION: &str = "pinot:policy@0.2.0";

    worlds!("../plugin-api/wit/0.2.0");

    pub use upgrade::pinot::policy::{host, types as flat};

    use crate::policy::model as types;

    /// Lays a state out the 0.2.0 way: every string appended to one text, every nested list a
    /// range of a flat list.
    pub fn flatten(state: &types::ClusterState) -> flat::ClusterState {
        let mut b = Builder { text: String::with_capacity(64 * (state.pools.len() + 4)), words: Vec::new() };
        let name = b.text(&state.name);
        let namespace = b.text(&state.namespace);
        let mut pods = Vec::with_capacity(state.pools.iter().map(|p| p.pods.len()).sum());
        let mut departed = Vec::new();
        let pools = state
            .pools
            .iter()
            .map(|p| {
                let first = pods.len() as u32;
                let first_departed = departed.len() as u32;
                departed.extend(p.departed.iter().map(|i| b.instance(i)));
                pods.extend(p.pods.iter().map(|pod| flat::Pod {
                    name: b.text(&pod.name),
                    ordinal: pod.ordinal,
                    revision: b.text(&pod.revision),
                    ready: pod.ready,
                    terminating: pod.terminating,
                    restarts: pod.restarts,
                    age_seconds: pod.age_seconds,
                    instance: pod.instance.as_ref().map(|i| b.instance(i)),
                }));
                flat::Pool {
                    name: b.text(&p.name),
                    role: role(p.role),
                    zones: b.words(&p.zones),
                    desired_replicas: p.desired_replicas,
                    current_replicas: p.current_replicas,
                    min_replicas: p.min_replicas,
                    max_replicas: p.max_replicas,
                    ready_replicas: p.ready_replicas,
                    updated_replicas: p.updated_replicas,
                    current_revision: b.text(&p.current_revision),
                    target_revision: b.text(&p.target_revision),
                    image: b.text(&p.image),
                    max_unavailable: p.max_unavailable,
                    pods: flat::Range { first, count: p.pods.len() as u32 },
                    departed: flat::Range { first: first_departed, count: p.departed.len() as u32 },
                }
            })
            .collect();
        let conditions = state
            .conditions
            .iter()
            .map(|c| flat::Condition {
                kind: b.text(&c.kind),
                status: b.text(&c.status),
                reason: b.text(&c.reason),
                message: b.text(&c.message),
            })
            .collect();
        let tables = state
            .tables
            .iter()
            .map(|t| flat::Table {
                name: b.text(&t.name),
                replication: t.replication,
                server_tag: b.text(&t.server_tag),
                broker_tag: b.text(&t.broker_tag),
                segments: t.segments,
                servers_with_segments: t.servers_with_segments,
                rebalancing: t.rebalancing,
            })
            .collect();
        let tenants = state
            .tenants
            .iter()
            .map(|t| flat::Tenant {
                name: b.text(&t.name),
                role: role(t.role),
                instances: t.instances,
                offline_instances: t.offline_instances,
                realtime_instances: t.realtime_instances,
            })
            .collect();
        let config = state.config.iter().map(|(k, v)| flat::Setting { key: b.text(k), value: b.text(v) }).collect();
        flat::ClusterState {
            text: b.text,
            words: b.words,
            name,
            namespace,
            generation: state.generation,
            deployment_order: state.deployment_order.iter().map(|r| role(*r)).collect(),
            pools,
            pods,
            departed,
            conditions,
            tables,
            tenants,
            now_unix_seconds: state.now_unix_seconds,
            config,
        }
    }

    struct Builder {
        text: String,
        words: Vec<flat::Text>,
    }

    impl Builder {
        fn text(&mut self, s: &str) -> flat::Text {
            let offset = self.text.len() as u32;
            self.text.push_str(s);
            flat::Text { offset, len: s.len() as u32 }
        }

        fn instance(&mut self, i: &types::Instance) -> flat::Instance {
            flat::Instance {
                id: self.text(&i.id),
                live: i.live,
                enabled: i.enabled,
                queries_enabled: i.queries_enabled,
                tags: self.words(&i.tags),
                segments: i.segments,
            }
        }

        fn words(&mut self, items: &[String]) -> flat::Range {
            let first = self.words.len() as u32;
            for item in items {
                let t = self.text(item);
                self.words.push(t);
            }
            flat::Range { first, count: items.len() as u32 }
        }
    }

    fn role(r: types::Role) -> flat::Role {
        match r {
            types::Role::Controller => flat::Role::Controller,
            types::Role::Broker => flat::Role::Broker,
            types::Role::Server => flat::Role::Server,
            types::Role::Minion => flat::Role::Minion,
        }
    }

    conversions!(flat, "0.2.0");
}

/// `pinot:policy@0.3.0`: the actions of 0.2.0, the state in columns (a list of integers per
/// field, strings as ids into one string table), which wasmtime copies into the module in one
/// piece per column instead of writing records field by field.
pub mod v3 {
    /// The contract version of these bindings.
    pub const API_VERSION: &str = "pinot:policy@0.3.0";

    worlds!("../plugin-api/wit/0.3.0");

    pub use upgrade::pinot::policy::{host, types as columns};

    use crate::policy::model as types;

    /// A pod's `instance` when Pinot does not know the pod.
    pub const NO_INSTANCE: u32 = u32::MAX;

    /// Lays a state out in columns.
    pub fn columns(state: &types::ClusterState) -> columns::ClusterState {
        let pools = state.pools.len();
        let pods: usize = state.pools.iter().map(|p| p.pods.len()).sum();
        let instances = pods + state.pools.iter().map(|p| p.departed.len()).sum::<usize>();
        let mut s = Strings {
            text: String::with_capacity(64 * (pods + pools + 4)),
            ends: Vec::with_capacity(4 * (pods + pools) + 8),
        };
        let name = s.id(&state.name);
        let namespace = s.id(&state.namespace);
        let mut p = columns::Pools {
            name: Vec::with_capacity(pools),
            role: Vec::with_capacity(pools),
            zones_end: Vec::with_capacity(pools),
            desired_replicas: Vec::with_capacity(pools),
            current_replicas: Vec::with_capacity(pools),
            min_replicas: Vec::with_capacity(pools),
            max_replicas: Vec::with_capacity(pools),
            ready_replicas: Vec::with_capacity(pools),
            updated_replicas: Vec::with_capacity(pools),
            current_revision: Vec::with_capacity(pools),
            target_revision: Vec::with_capacity(pools),
            image: Vec::with_capacity(pools),
            max_unavailable: Vec::with_capacity(pools),
            pods_end: Vec::with_capacity(pools),
            departed_end: Vec::with_capacity(pools),
        };
        let mut pod = columns::Pods {
            name: Vec::with_capacity(pods),
            ordinal: Vec::with_capacity(pods),
            revision: Vec::with_capacity(pods),
            ready: Vec::with_capacity(pods),
            terminating: Vec::with_capacity(pods),
            restarts: Vec::with_capacity(pods),
            age_seconds: Vec::with_capacity(pods),
            instance: Vec::with_capacity(pods),
        };
        let mut i = Instances {
            columns: columns::Instances {
                id: Vec::with_capacity(instances),
                live: Vec::with_capacity(instances),
                enabled: Vec::with_capacity(instances),
                queries_enabled: Vec::with_capacity(instances),
                tags_end: Vec::with_capacity(instances),
                segments: Vec::with_capacity(instances),
            },
            tags: Vec::with_capacity(instances),
        };
        let mut zones = Vec::with_capacity(pools);
        let mut departed = Vec::new();
        for pool in &state.pools {
            p.name.push(s.id(&pool.name));
            p.role.push(role(pool.role));
            zones.extend(pool.zones.iter().map(|z| s.id(z)));
            p.zones_end.push(zones.len() as u32);
            p.desired_replicas.push(pool.desired_replicas);
            p.current_replicas.push(pool.current_replicas);
            p.min_replicas.push(pool.min_replicas);
            p.max_replicas.push(pool.max_replicas);
            p.ready_replicas.push(pool.ready_replicas);
            p.updated_replicas.push(pool.updated_replicas);
            p.current_revision.push(s.id(&pool.current_revision));
            p.target_revision.push(s.id(&pool.target_revision));
            p.image.push(s.id(&pool.image));
            p.max_unavailable.push(pool.max_unavailable);
            for o in &pool.pods {
                pod.name.push(s.id(&o.name));
                pod.ordinal.push(o.ordinal);
                pod.revision.push(s.id(&o.revision));
                pod.ready.push(o.ready.into());
                pod.terminating.push(o.terminating.into());
                pod.restarts.push(o.restarts);
                pod.age_seconds.push(o.age_seconds);
                pod.instance.push(o.instance.as_ref().map_or(NO_INSTANCE, |x| i.push(&mut s, x)));
            }
            p.pods_end.push(pod.name.len() as u32);
            departed.extend(pool.departed.iter().map(|x| i.push(&mut s, x)));
            p.departed_end.push(departed.len() as u32);
        }
        let n = state.conditions.len();
        let mut conditions = columns::Conditions {
            kind: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            reason: Vec::with_capacity(n),
            message: Vec::with_capacity(n),
        };
        for c in &state.conditions {
            conditions.kind.push(s.id(&c.kind));
            conditions.status.push(s.id(&c.status));
            conditions.reason.push(s.id(&c.reason));
            conditions.message.push(s.id(&c.message));
        }
        let n = state.tables.len();
        let mut tables = columns::Tables {
            name: Vec::with_capacity(n),
            replication: Vec::with_capacity(n),
            server_tag: Vec::with_capacity(n),
            broker_tag: Vec::with_capacity(n),
            segments: Vec::with_capacity(n),
            servers_with_segments: Vec::with_capacity(n),
            rebalancing: Vec::with_capacity(n),
        };
        for t in &state.tables {
            tables.name.push(s.id(&t.name));
            tables.replication.push(t.replication);
            tables.server_tag.push(s.id(&t.server_tag));
            tables.broker_tag.push(s.id(&t.broker_tag));
            tables.segments.push(t.segments);
            tables.servers_with_segments.push(t.servers_with_segments);
            tables.rebalancing.push(t.rebalancing.into());
        }
        let n = state.tenants.len();
        let mut tenants = columns::Tenants {
            name: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            instances: Vec::with_capacity(n),
            offline_instances: Vec::with_capacity(n),
            realtime_instances: Vec::with_capacity(n),
        };
        for t in &state.tenants {
            tenants.name.push(s.id(&t.name));
            tenants.role.push(role(t.role));
            tenants.instances.push(t.instances);
            tenants.offline_instances.push(t.offline_instances);
            tenants.realtime_instances.push(t.realtime_instances);
        }
        let (config_keys, config_values) = state.config.iter().map(|(k, v)| (s.id(k), s.id(v))).unzip();
        columns::ClusterState {
            text: s.text,
            string_ends: s.ends,
            name,
            namespace,
            generation: state.generation,
            deployment_order: state.deployment_order.iter().map(|r| role(*r)).collect(),
            pools: p,
            pods: pod,
            instances: i.columns,
            zones,
            tags: i.tags,
            departed,
            conditions,
            tables,
            tenants,
            now_unix_seconds: state.now_unix_seconds,
            config_keys,
            config_values,
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

    /// The instance columns being built, with the tags they refer to.
    struct Instances {
        columns: columns::Instances,
        tags: Vec<u32>,
    }

    impl Instances {
        /// Appends an instance and returns its index.
        fn push(&mut self, s: &mut Strings, i: &types::Instance) -> u32 {
            let c = &mut self.columns;
            c.id.push(s.id(&i.id));
            c.live.push(i.live.into());
            c.enabled.push(i.enabled.into());
            c.queries_enabled.push(i.queries_enabled.into());
            self.tags.extend(i.tags.iter().map(|t| s.id(t)));
            c.tags_end.push(self.tags.len() as u32);
            c.segments.push(i.segments);
            (c.id.len() - 1) as u32
        }
    }

    fn role(r: types::Role) -> columns::Role {
        match r {
            types::Role::Controller => columns::Role::Controller,
            types::Role::Broker => columns::Role::Broker,
            types::Role::Server => columns::Role::Server,
            types::Role::Minion => columns::Role::Minion,
        }
    }

    conversions!(columns, "0.3.0");
}

pub use super::model as types;

/// Every contract version this operator loads modules of, newest first (the first is the one
/// `pinot-policy-sdk` builds for).
pub const SUPPORTED_API_VERSIONS: [&str; 3] = [v3::API_VERSION, v2::API_VERSION, v1::API_VERSION];
