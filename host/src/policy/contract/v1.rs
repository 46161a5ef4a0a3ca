//! `pinot:policy@1.2.0` (and so every 1.x before it): the host answers a module's `state` functions from the model laid out
//! in [`Columns`] (built once per decision), and collects the calls of its kind's action
//! functions as the plan. Which action functions a module may import is its kind's only (the
//! load checks the imports), so an upgrade policy cannot ask for a scale-in.

use pinot_policy_model::Columns;
use wasmtime::component::{HasSelf, Linker};

use crate::policy::model::{Action, InstancePool, InstanceTags, SetReplicas};

/// The contract version of these bindings.
pub const API_VERSION: &str = "pinot:policy@1.2.0";

/// Actions one plan may ask for, and the bytes of their strings: a module calling an action
/// function in a loop is stopped (trapped) instead of filling the operator's memory.
const MAX_ACTIONS: usize = 10_000;
const MAX_ACTION_BYTES: usize = 1 << 20;

/// `upgrade-policy`.
pub mod upgrade {
    wasmtime::component::bindgen!({
        world: "upgrade-policy",
        path: "../plugin-api/wit/1.2.0",
        imports: { default: trappable },
    });
}

/// `scaling-policy`.
pub mod scaling {
    wasmtime::component::bindgen!({
        world: "scaling-policy",
        path: "../plugin-api/wit/1.2.0",
        imports: { default: trappable },
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/state": super::upgrade::pinot::policy::state,
            "pinot:policy/log": super::upgrade::pinot::policy::log,
        },
    });
}

/// `tenant-policy`.
pub mod tenant {
    wasmtime::component::bindgen!({
        world: "tenant-policy",
        path: "../plugin-api/wit/1.2.0",
        imports: { default: trappable },
        with: {
            "pinot:policy/types": super::upgrade::pinot::policy::types,
            "pinot:policy/state": super::upgrade::pinot::policy::state,
            "pinot:policy/log": super::upgrade::pinot::policy::log,
        },
    });
}

pub use scaling::pinot::policy::scaling_actions;
pub use tenant::pinot::policy::tenant_actions;
pub use upgrade::pinot::policy::{
    log, state,
    types::{Level, PolicyInfo},
    upgrade_actions,
};

/// One decision as a module of this contract sees it: the state it reads and the actions it
/// asked for so far. Outside `plan` (while `info` runs) there is no state.
#[derive(Default)]
pub struct Decision {
    columns: Option<Columns>,
    actions: Vec<Action>,
    bytes: usize,
}

impl Decision {
    /// A decision on the state laid out in `columns`.
    pub fn new(columns: Columns) -> Self {
        Decision { columns: Some(columns), actions: Vec::new(), bytes: 0 }
    }

    /// The state's columns back, once the decision is over.
    pub fn take_columns(&mut self) -> Option<Columns> {
        self.columns.take()
    }

    /// The actions asked for, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The state's columns, while `plan` runs.
    pub fn columns(&self) -> wasmtime::Result<&Columns> {
        self.columns.as_ref().ok_or_else(|| wasmtime::Error::msg("the state can be read only while `plan` runs"))
    }

    fn ask(&mut self, action: Action, bytes: usize) -> wasmtime::Result<()> {
        if self.columns.is_none() {
            return Err(wasmtime::Error::msg("actions can be asked for only while `plan` runs"));
        }
        self.bytes += bytes;
        if self.actions.len() >= MAX_ACTIONS || self.bytes > MAX_ACTION_BYTES {
            return Err(wasmtime::Error::msg(format!(
                "the plan asks for more than {MAX_ACTIONS} actions or {MAX_ACTION_BYTES} bytes of them"
            )));
        }
        self.actions.push(action);
        Ok(())
    }
}

/// Links the state and every kind's actions, answered by the [`Decision`] `get` finds in a
/// store's data. Which actions a module may import is checked at load.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> &mut Decision) -> wasmtime::Result<()> {
    state::add_to_linker::<T, HasSelf<Decision>>(linker, get)?;
    upgrade_actions::add_to_linker::<T, HasSelf<Decision>>(linker, get)?;
    scaling_actions::add_to_linker::<T, HasSelf<Decision>>(linker, get)?;
    tenant_actions::add_to_linker::<T, HasSelf<Decision>>(linker, get)?;
    Ok(())
}

/// Implements the `state` interface of `pinot:policy@1.x` bindings (module `$state`, roles
/// from module `$types`) for a type with a `columns(&self) -> wasmtime::Result<&Columns>`
/// method, answering each function with a copy of its table; `$extra` are the functions of a
/// later 1.x (a test host of a draft contract adds them). Bindings must be generated with
/// `imports: { default: trappable }`.
#[macro_export]
macro_rules! impl_policy_state_v1 {
    ($state:path, $types:path, $host:ty $(, $extra:item)* $(,)?) => {
        const _: () = {
            use $state as state;
            use $types as types;
            use $crate::policy::model::Role;

            fn role(r: Role) -> types::Role {
                match r {
                    Role::Controller => types::Role::Controller,
                    Role::Broker => types::Role::Broker,
                    Role::Server => types::Role::Server,
                    Role::Minion => types::Role::Minion,
                }
            }

            fn roles(roles: &[Role]) -> Vec<types::Role> {
                roles.iter().map(|r| role(*r)).collect()
            }

            impl state::Host for $host {
                fn read_text(&mut self, id: u32) -> wasmtime::Result<String> {
                    Ok(self.columns()?.texts.get(id).to_string())
                }

                fn read_all_text(&mut self) -> wasmtime::Result<types::TextTable> {
                    let t = &self.columns()?.texts;
                    Ok(types::TextTable { bytes: t.bytes.clone(), ends: t.ends.clone() })
                }

                fn cluster(&mut self) -> wasmtime::Result<state::ClusterFacts> {
                    let c = &self.columns()?.cluster;
                    Ok(state::ClusterFacts {
                        name: c.name.clone(),
                        namespace: c.namespace.clone(),
                        generation: c.generation,
                        deployment_order: roles(&c.deployment_order),
                        now_unix_seconds: c.now_unix_seconds,
                    })
                }

                fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                    let c = self.columns()?;
                    let s = &c.settings;
                    let value = s.key.iter().zip(&s.value).rev().find(|(k, _)| c.texts.get(**k) == key);
                    Ok(value.map(|(_, v)| c.texts.get(*v).to_string()))
                }

                fn settings(&mut self) -> wasmtime::Result<state::SettingColumns> {
                    let s = &self.columns()?.settings;
                    Ok(state::SettingColumns { key: s.key.clone(), value: s.value.clone() })
                }

                fn pools(&mut self) -> wasmtime::Result<state::PoolColumns> {
                    let p = self.columns()?.pools.clone();
                    Ok(state::PoolColumns {
                        name: p.name,
                        role: roles(&p.role),
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
                    })
                }

                fn zones(&mut self) -> wasmtime::Result<state::ZoneColumns> {
                    let z = self.columns()?.zones.clone();
                    Ok(state::ZoneColumns { pool: z.pool, name: z.name })
                }

                fn pods(&mut self) -> wasmtime::Result<state::PodColumns> {
                    let p = self.columns()?.pods.clone();
                    Ok(state::PodColumns {
                        pool: p.pool,
                        name: p.name,
                        ordinal: p.ordinal,
                        revision: p.revision,
                        restarts: p.restarts,
                        age_seconds: p.age_seconds,
                        ready: p.ready,
                        terminating: p.terminating,
                    })
                }

                fn instances(&mut self) -> wasmtime::Result<state::InstanceColumns> {
                    let i = self.columns()?.instances.clone();
                    Ok(state::InstanceColumns {
                        id: i.id,
                        pool: i.pool,
                        segments: i.segments,
                        live: i.live,
                        enabled: i.enabled,
                        queries_enabled: i.queries_enabled,
                    })
                }

                fn pod_instances(&mut self) -> wasmtime::Result<state::PodInstanceColumns> {
                    let l = self.columns()?.pod_instances.clone();
                    Ok(state::PodInstanceColumns { pod: l.pod, instance: l.instance })
                }

                fn pod_zone(&mut self) -> wasmtime::Result<Vec<Option<u32>>> {
                    Ok(self.columns()?.pod_zone.clone())
                }

                fn pod_node_ready(&mut self) -> wasmtime::Result<Vec<u32>> {
                    Ok(self.columns()?.pod_node_ready.clone())
                }

                fn instance_pools(&mut self) -> wasmtime::Result<state::InstancePoolColumns> {
                    let p = self.columns()?.instance_pools.clone();
                    Ok(state::InstancePoolColumns { instance: p.instance, tag: p.tag, pool: p.pool })
                }

                fn tags(&mut self) -> wasmtime::Result<state::TagColumns> {
                    let t = self.columns()?.tags.clone();
                    Ok(state::TagColumns { instance: t.instance, name: t.name })
                }

                fn conditions(&mut self) -> wasmtime::Result<state::ConditionColumns> {
                    let c = self.columns()?.conditions.clone();
                    Ok(state::ConditionColumns { type_: c.kind, status: c.status, reason: c.reason, message: c.message })
                }

                fn tables(&mut self) -> wasmtime::Result<state::TableColumns> {
                    let t = self.columns()?.tables.clone();
                    Ok(state::TableColumns {
                        name: t.name,
                        replication: t.replication,
                        server_tag: t.server_tag,
                        broker_tag: t.broker_tag,
                        segments: t.segments,
                        servers_with_segments: t.servers_with_segments,
                        rebalancing: t.rebalancing,
                    })
                }

                fn ensemble(&mut self) -> wasmtime::Result<Option<state::EnsembleFacts>> {
                    Ok(self.columns()?.ensemble.as_ref().map(|e| state::EnsembleFacts {
                        desired_members: e.desired_members,
                        configured_members: e.configured_members,
                        target_revision: e.target_revision,
                        image: e.image,
                        order: e.order,
                    }))
                }

                fn members(&mut self) -> wasmtime::Result<state::MemberColumns> {
                    use $crate::policy::model::MemberMode as M;
                    let m = self.columns()?.members.clone();
                    Ok(state::MemberColumns {
                        pod: m.pod,
                        id: m.id,
                        revision: m.revision,
                        restarts: m.restarts,
                        age_seconds: m.age_seconds,
                        mode: m
                            .mode
                            .iter()
                            .map(|mode| match mode {
                                M::Leader => state::MemberMode::Leader,
                                M::Follower => state::MemberMode::Follower,
                                M::Observer => state::MemberMode::Observer,
                                M::Standalone => state::MemberMode::Standalone,
                                M::NotServing => state::MemberMode::NotServing,
                                M::Unreachable => state::MemberMode::Unreachable,
                            })
                            .collect(),
                        zone: m.zone,
                        ready: m.ready,
                        terminating: m.terminating,
                        synced: m.synced,
                        leaving: m.leaving,
                        node_ready: m.node_ready,
                    })
                }

                fn tenants(&mut self) -> wasmtime::Result<state::TenantColumns> {
                    let t = self.columns()?.tenants.clone();
                    Ok(state::TenantColumns {
                        name: t.name,
                        role: roles(&t.role),
                        instances: t.instances,
                        offline_instances: t.offline_instances,
                        realtime_instances: t.realtime_instances,
                    })
                }

                $($extra)*
            }
        };
    };
}

crate::impl_policy_state_v1!(state, upgrade::pinot::policy::types, Decision);

impl Decision {
    /// Asks for an action about one named thing (a pod, an instance, a table) or with a reason.
    fn ask_about(&mut self, action: fn(String) -> Action, name: String) -> wasmtime::Result<()> {
        let n = name.len();
        self.ask(action(name), n)
    }
}

impl upgrade_actions::Host for Decision {
    fn restart_pod(&mut self, pod: String) -> wasmtime::Result<()> {
        self.ask_about(Action::RestartPod, pod)
    }

    fn disable_queries(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::DisableQueries, instance)
    }

    fn enable_queries(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::EnableQueries, instance)
    }

    fn wait(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Wait, reason)
    }

    fn block(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Block, reason)
    }
}

impl scaling_actions::Host for Decision {
    fn set_replicas(&mut self, pool: String, replicas: u32) -> wasmtime::Result<()> {
        let n = pool.len();
        self.ask(Action::SetReplicas(SetReplicas { pool, replicas }), n)
    }

    fn update_tags(&mut self, instance: String, tags: Vec<String>) -> wasmtime::Result<()> {
        let n = instance.len() + tags.iter().map(String::len).sum::<usize>();
        self.ask(Action::UpdateTags(InstanceTags { instance, tags }), n)
    }

    fn rebalance_table(&mut self, table: String) -> wasmtime::Result<()> {
        self.ask_about(Action::RebalanceTable, table)
    }

    fn disable_instance(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::DisableInstance, instance)
    }

    fn enable_instance(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::EnableInstance, instance)
    }

    fn drain_instance(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::DrainInstance, instance)
    }

    fn drop_instance(&mut self, instance: String) -> wasmtime::Result<()> {
        self.ask_about(Action::DropInstance, instance)
    }

    fn wait(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Wait, reason)
    }

    fn block(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Block, reason)
    }
}

impl tenant_actions::Host for Decision {
    fn update_tags(&mut self, instance: String, tags: Vec<String>) -> wasmtime::Result<()> {
        scaling_actions::Host::update_tags(self, instance, tags)
    }

    fn set_instance_pool(&mut self, instance: String, tag: String, pool: u32) -> wasmtime::Result<()> {
        let n = instance.len() + tag.len();
        self.ask(Action::SetInstancePool(InstancePool { instance, tag, pool }), n)
    }

    fn wait(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Wait, reason)
    }

    fn block(&mut self, reason: String) -> wasmtime::Result<()> {
        self.ask_about(Action::Block, reason)
    }
}
