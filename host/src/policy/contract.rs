//! Host bindings of every contract version this operator supports, and the conversions between
//! them and the host's own model of a decision ([`super::model`], the union of all versions):
//! a 0.1.0 module gets the model's state without what 0.1.0 lacks ([`v1::lower`]); a 0.2.0
//! module gets it laid out flat ([`v2::flatten`]); the actions of both are mapped back.

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

    /// A 0.2.0 action as the host's own.
    pub fn into_action(a: flat::Action) -> types::Action {
        use types::Action;
        match a {
            flat::Action::RestartPod(p) => Action::RestartPod(p),
            flat::Action::SetReplicas(s) => {
                Action::SetReplicas(types::SetReplicas { pool: s.pool, replicas: s.replicas })
            }
            flat::Action::DisableQueries(i) => Action::DisableQueries(i),
            flat::Action::EnableQueries(i) => Action::EnableQueries(i),
            flat::Action::UpdateTags(t) => {
                Action::UpdateTags(types::InstanceTags { instance: t.instance, tags: t.tags })
            }
            flat::Action::RebalanceTable(t) => Action::RebalanceTable(t),
            flat::Action::DisableInstance(i) => Action::DisableInstance(i),
            flat::Action::EnableInstance(i) => Action::EnableInstance(i),
            flat::Action::DrainInstance(i) => Action::DrainInstance(i),
            flat::Action::DropInstance(i) => Action::DropInstance(i),
            flat::Action::Wait(w) => Action::Wait(w),
            flat::Action::Block(b) => Action::Block(b),
        }
    }

    /// A 0.2.0 `info` as the host's own.
    pub fn into_info(i: flat::Info) -> types::Info {
        types::Info { name: i.name, version: i.version, api_version: i.api_version }
    }

    /// A 0.2.0 log level as 0.1.0's (the host logs both alike).
    pub fn into_level(l: host::Level) -> super::v1::host::Level {
        use super::v1::host::Level;
        match l {
            host::Level::Debug => Level::Debug,
            host::Level::Info => Level::Info,
            host::Level::Warn => Level::Warn,
            host::Level::Error => Level::Error,
        }
    }
}

pub use super::model as types;

/// Every contract version this operator loads modules of, newest first (the first is the one
/// `pinot-policy-sdk` builds for).
pub const SUPPORTED_API_VERSIONS: [&str; 2] = [v2::API_VERSION, v1::API_VERSION];
