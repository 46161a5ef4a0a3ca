//! States for a policy's unit tests, in the shape of the decision model: what the operator
//! would observe, and what `pinot-operator policy test --state FILE` reads (a builder's
//! [`StateBuilder::model`] written with `serde_yaml` is such a file).

use pinot_policy_model::{
    ClusterState, Condition, Ensemble, Instance, Member, MemberMode, Pod, Pool, Role, Table, Tenant,
};

use crate::State;

/// Builds a state the way the operator observes a cluster: pools of ready pods named
/// `<cluster>-<pool>-<ordinal>`, each with a live, enabled Pinot instance tagged for the
/// default tenant, all on revision `<cluster>-<pool>-1`; then edits.
///
/// ```
/// use pinot_policy_sdk::{Role, StateBuilder};
///
/// let state = StateBuilder::new("events")
///     .pool("server", Role::Server, 3)
///     .target_revision("server", "events-server-2")
///     .pod("events-server-2", |p| p.ready = false)
///     .build();
/// let pool = state.pool("server").unwrap();
/// assert_eq!(pool.updated_replicas(), 0);
/// assert_eq!(pool.ready_replicas(), 2);
/// assert_eq!(pool.pods().filter(|p| !p.ready()).map(|p| p.name()).collect::<Vec<_>>(), ["events-server-2"]);
/// ```
#[derive(Clone, Debug)]
pub struct StateBuilder {
    state: ClusterState,
}

impl StateBuilder {
    /// An empty cluster `name` in namespace `default`, generation 1, deployed controllers,
    /// brokers, servers, minions in that order, clock at 2026-01-01T00:00:00Z.
    pub fn new(name: &str) -> Self {
        StateBuilder {
            state: ClusterState {
                name: name.into(),
                namespace: "default".into(),
                generation: 1,
                deployment_order: vec![Role::Controller, Role::Broker, Role::Server, Role::Minion],
                pools: vec![],
                conditions: vec![],
                tables: vec![],
                tenants: vec![],
                now_unix_seconds: 1_767_225_600,
                config: vec![],
                ensemble: None,
            },
        }
    }

    /// Starts from a state of the model, e.g. one read from a `policy test` file.
    pub fn from_model(state: ClusterState) -> Self {
        StateBuilder { state }
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.state.namespace = namespace.into();
        self
    }

    /// The clock the policy sees.
    pub fn now(mut self, unix_seconds: i64) -> Self {
        self.state.now_unix_seconds = unix_seconds;
        self
    }

    pub fn deployment_order(mut self, order: &[Role]) -> Self {
        self.state.deployment_order = order.to_vec();
        self
    }

    /// A pool of `replicas` ready pods (desired = current = `replicas`, bounds 0..=100, one pod
    /// unavailable at a time).
    pub fn pool(mut self, name: &str, role: Role, replicas: u32) -> Self {
        let revision = format!("{}-{name}-1", self.state.name);
        let pods = (0..replicas).map(|o| self.new_pod(name, role, o, &revision)).collect();
        self.state.pools.push(Pool {
            name: name.into(),
            role,
            zones: vec![],
            desired_replicas: replicas,
            current_replicas: replicas,
            min_replicas: 0,
            max_replicas: 100,
            ready_replicas: replicas,
            updated_replicas: replicas,
            current_revision: revision.clone(),
            target_revision: revision,
            image: "apachepinot/pinot:1.2.0".into(),
            max_unavailable: 1,
            pods,
            departed: vec![],
        });
        self
    }

    fn new_pod(&self, pool: &str, role: Role, ordinal: u32, revision: &str) -> Pod {
        let (cluster, namespace) = (&self.state.name, &self.state.namespace);
        let name = format!("{cluster}-{pool}-{ordinal}");
        let (prefix, port, tags): (&str, u16, &[&str]) = match role {
            Role::Controller => ("Controller", 9000, &[]),
            Role::Broker => ("Broker", 8099, &["DefaultTenant_BROKER"]),
            Role::Server => ("Server", 8098, &["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"]),
            Role::Minion => ("Minion", 9514, &["minion_untagged"]),
        };
        Pod {
            instance: Some(Instance {
                id: format!("{prefix}_{name}.{cluster}-{pool}-headless.{namespace}.svc.cluster.local_{port}"),
                live: true,
                enabled: true,
                queries_enabled: true,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                segments: 0,
                pools: Default::default(),
            }),
            name,
            ordinal,
            revision: revision.into(),
            ready: true,
            terminating: false,
            restarts: 0,
            age_seconds: 3600,
            zone: None,
            node_ready: true,
        }
    }

    fn pool_mut(&mut self, pool: &str) -> &mut Pool {
        let known: Vec<String> = self.state.pools.iter().map(|p| p.name.clone()).collect();
        self.state
            .pools
            .iter_mut()
            .find(|p| p.name == pool)
            .unwrap_or_else(|| panic!("no pool {pool:?} in the state (pools: {known:?})"))
    }

    /// Edits a pool (its counts are not recomputed after).
    pub fn edit_pool(mut self, pool: &str, edit: impl FnOnce(&mut Pool)) -> Self {
        edit(self.pool_mut(pool));
        self
    }

    /// Edits a pod, by name; the pool's ready and updated replicas follow.
    pub fn pod(mut self, pod: &str, edit: impl FnOnce(&mut Pod)) -> Self {
        let pool = self
            .state
            .pools
            .iter_mut()
            .find(|p| p.pods.iter().any(|o| o.name == pod))
            .unwrap_or_else(|| panic!("no pod {pod:?} in the state"));
        edit(pool.pods.iter_mut().find(|o| o.name == pod).expect("found above"));
        recount(pool);
        self
    }

    /// Removes a pod (deleted, not recreated yet); the pool's counts follow.
    pub fn without_pod(mut self, pod: &str) -> Self {
        for pool in &mut self.state.pools {
            pool.pods.retain(|o| o.name != pod);
            recount(pool);
        }
        self
    }

    /// Asks for `revision` on every pod of `pool` (an upgrade under way).
    pub fn target_revision(mut self, pool: &str, revision: &str) -> Self {
        let pool = self.pool_mut(pool);
        pool.target_revision = revision.into();
        recount(pool);
        self
    }

    /// The spec asks for `replicas` pods in `pool` (a scale-out or -in under way).
    pub fn desired_replicas(mut self, pool: &str, replicas: u32) -> Self {
        self.pool_mut(pool).desired_replicas = replicas;
        self
    }

    /// The zones a pool is pinned to; its pods run in them as a topology spread places them:
    /// pod `i` in zone `i % zones` (change one with [`StateBuilder::pod`], `p.zone = ...`).
    pub fn zones(mut self, pool: &str, zones: &[&str]) -> Self {
        let pool = self.pool_mut(pool);
        pool.zones = zones.iter().map(|z| z.to_string()).collect();
        for pod in &mut pool.pods {
            pod.zone = (!zones.is_empty()).then(|| zones[pod.ordinal as usize % zones.len()].to_string());
        }
        self
    }

    /// Gives the instance of pod `pod` the Pinot pool `number` for `tag`.
    pub fn pinot_pool(self, pod: &str, tag: &str, number: u32) -> Self {
        self.pod(pod, |p| {
            let instance = p.instance.as_mut().unwrap_or_else(|| panic!("pod {} has no instance", p.name));
            instance.pools.insert(tag.into(), number);
        })
    }

    /// An instance Pinot still has for a pod of `pool` that is gone for good.
    pub fn departed(mut self, pool: &str, instance: Instance) -> Self {
        self.pool_mut(pool).departed.push(instance);
        self
    }

    pub fn table(mut self, table: Table) -> Self {
        self.state.tables.push(table);
        self
    }

    pub fn tenant(mut self, tenant: Tenant) -> Self {
        self.state.tenants.push(tenant);
        self
    }

    pub fn condition(mut self, kind: &str, status: &str, reason: &str, message: &str) -> Self {
        self.state.conditions.push(Condition {
            kind: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
        });
        self
    }

    /// A managed ZooKeeper ensemble of `members` members (1.2.0), first in the deployment order,
    /// all ready and in sync on revision `<cluster>-zookeeper-1`, the highest id leading (as
    /// ZooKeeper elects among equals).
    pub fn ensemble(mut self, members: u32) -> Self {
        let revision = format!("{}-zookeeper-1", self.state.name);
        let name = self.state.name.clone();
        self.state.ensemble = Some(Ensemble {
            desired_members: members,
            configured_members: members,
            target_revision: revision.clone(),
            image: "zookeeper:3.9.3".into(),
            order: 0,
            members: (0..members)
                .map(|o| Member {
                    pod: format!("{name}-zookeeper-{o}"),
                    id: o + 1,
                    revision: revision.clone(),
                    ready: true,
                    terminating: false,
                    restarts: 0,
                    age_seconds: 3600,
                    mode: if o + 1 == members { MemberMode::Leader } else { MemberMode::Follower },
                    synced: true,
                    leaving: false,
                    zone: None,
                    node_ready: true,
                })
                .collect(),
        });
        self
    }

    /// The revision every member of the ensemble should run (an upgrade of it).
    pub fn ensemble_target_revision(mut self, revision: &str) -> Self {
        if let Some(e) = self.state.ensemble.as_mut() {
            e.target_revision = revision.into();
        }
        self
    }

    /// The ensemble's place in the deployment order (roles before it).
    pub fn ensemble_order(mut self, order: u32) -> Self {
        if let Some(e) = self.state.ensemble.as_mut() {
            e.order = order;
        }
        self
    }

    /// Edits the ensemble's member whose pod is `pod`.
    pub fn member(mut self, pod: &str, edit: impl FnOnce(&mut Member)) -> Self {
        if let Some(m) = self.state.ensemble.as_mut().and_then(|e| e.members.iter_mut().find(|m| m.pod == pod)) {
            edit(m);
        }
        self
    }

    /// A configuration entry (what the PinotPolicy's `config` gives).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.state.config.push((key.into(), value.into()));
        self
    }

    /// The state in the decision model, e.g. to write it as a `policy test` file.
    pub fn model(self) -> ClusterState {
        self.state
    }

    pub fn build(self) -> State {
        State::from_model(self.state)
    }
}

/// A pool's ready and updated replicas from its pods.
fn recount(pool: &mut Pool) {
    pool.ready_replicas = pool.pods.iter().filter(|p| p.ready && !p.terminating).count() as u32;
    pool.updated_replicas = pool.pods.iter().filter(|p| p.revision == pool.target_revision).count() as u32;
}

#[cfg(test)]
mod tests {
    use pinot_policy_model::{Instance, Role, Table};

    use super::StateBuilder;

    /// The yes/no fields the contract hands over as sets of rows, and the links between pods
    /// and instances, read back per row through the views.
    #[test]
    fn views_read_sets_of_rows_and_links_per_row() {
        let gone = Instance {
            id: "Server_events-server-3_8098".into(),
            live: true,
            enabled: false,
            queries_enabled: false,
            tags: vec![],
            segments: 4,
            pools: [("DefaultTenant_OFFLINE".to_string(), 2)].into(),
        };
        let table = |name: &str, rebalancing| Table {
            name: name.into(),
            replication: 2,
            server_tag: "DefaultTenant_OFFLINE".into(),
            broker_tag: "DefaultTenant_BROKER".into(),
            segments: 8,
            servers_with_segments: 2,
            rebalancing,
        };
        let state = StateBuilder::new("events")
            .pool("broker", Role::Broker, 1)
            .pool("server", Role::Server, 3)
            .pod("events-server-0", |p| p.terminating = true)
            .pod("events-server-1", |p| {
                p.ready = false;
                p.instance = None;
            })
            .pod("events-server-2", |p| p.instance.as_mut().unwrap().queries_enabled = false)
            .departed("server", gone)
            .table(table("a_OFFLINE", false))
            .table(table("b_OFFLINE", true))
            .build();
        let server = state.pool("server").unwrap();
        let pods: Vec<_> = server.pods().map(|p| (p.name(), p.ready(), p.terminating())).collect();
        assert_eq!(
            pods,
            [("events-server-0", true, true), ("events-server-1", false, false), ("events-server-2", true, false)]
        );
        let instances: Vec<_> = server
            .pods()
            .map(|p| p.instance().map(|i| (i.pod().map(|p| p.name()), i.live(), i.queries_enabled())))
            .collect();
        assert_eq!(
            instances,
            [Some((Some("events-server-0"), true, true)), None, Some((Some("events-server-2"), true, false))]
        );
        let departed: Vec<_> =
            server.departed().map(|i| (i.id(), i.pod().is_none(), i.enabled(), i.segments(), i.zone())).collect();
        assert_eq!(departed, [("Server_events-server-3_8098", true, false, 4, None)]);
        assert_eq!(state.pool("broker").unwrap().departed().count(), 0);
        let tables: Vec<_> = state.tables().map(|t| (t.name(), t.rebalancing())).collect();
        assert_eq!(tables, [("a_OFFLINE", false), ("b_OFFLINE", true)]);
    }

    /// 1.1.0: where pods run (their nodes' zones and readiness) and the Pinot pools of
    /// instances, read per row; a pool pinned to zones has its pods spread over them.
    #[test]
    fn views_read_zones_node_readiness_and_pinot_pools() {
        let state = StateBuilder::new("events")
            .pool("server", Role::Server, 4)
            .zones("server", &["zone-a", "zone-b", "zone-c"])
            .pod("events-server-1", |p| p.node_ready = false)
            .pod("events-server-2", |p| p.zone = None)
            .pinot_pool("events-server-0", "DefaultTenant_REALTIME", 0)
            .pinot_pool("events-server-0", "DefaultTenant_OFFLINE", 7)
            .pinot_pool("events-server-3", "DefaultTenant_OFFLINE", 0)
            .departed(
                "server",
                Instance { id: "gone".into(), pools: [("x".to_string(), 5)].into(), ..Instance::default() },
            )
            .build();
        let server = state.pool("server").unwrap();
        let pods: Vec<_> = server.pods().map(|p| (p.zone(), p.node_ready(), p.instance().unwrap().zone())).collect();
        assert_eq!(
            pods,
            [
                (Some("zone-a"), true, Some("zone-a")),
                (Some("zone-b"), false, Some("zone-b")),
                (None, true, None),
                (Some("zone-a"), true, Some("zone-a"))
            ]
        );
        let pools: Vec<Vec<_>> = server.pods().map(|p| p.instance().unwrap().pinot_pools().collect()).collect();
        assert_eq!(
            pools,
            [
                vec![("DefaultTenant_OFFLINE", 7), ("DefaultTenant_REALTIME", 0)],
                vec![],
                vec![],
                vec![("DefaultTenant_OFFLINE", 0)]
            ]
        );
        let first = server.pods().next().unwrap().instance().unwrap();
        assert_eq!((first.pinot_pool("DefaultTenant_OFFLINE"), first.pinot_pool("other")), (Some(7), None));
        let gone: Vec<_> = server.departed().map(|i| i.pinot_pools().collect::<Vec<_>>()).collect();
        assert_eq!(gone, [vec![("x", 5)]]);
    }
}
