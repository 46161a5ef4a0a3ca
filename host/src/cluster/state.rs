//! The observed state a policy decides from, derived (purely) from the validated spec and what
//! `observe` read: per pool its role, zones, replicas and revisions; per pod its revision,
//! readiness, restarts and Pinot instance. Nothing here comes from operator memory, so a
//! restarted operator hands its policies the same state.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::ResourceExt;
use pinot_crds::PinotCluster;

use super::{
    cache::node_of,
    observe::{ObservedCluster, PinotObservation, pod_is_ready, pod_ordinal, pod_revision},
    validate::{Placement, ValidCluster, ValidPool, zookeeper::ENSEMBLE_POOL},
};
use crate::{
    children::LABEL_ROLE,
    policy::model::{self, ClusterState, Condition, Instance, Pool},
    role::Role,
};

pub fn role(role: Role) -> model::Role {
    match role {
        Role::Controller => model::Role::Controller,
        Role::Broker => model::Role::Broker,
        Role::Server => model::Role::Server,
        Role::Minion => model::Role::Minion,
    }
}

/// The state of one cluster for its policies; `config` is the deciding policy's configuration.
pub fn cluster_state(
    cluster: &PinotCluster,
    valid: &ValidCluster,
    observed: &ObservedCluster,
    config: &[(String, String)],
    now: Timestamp,
) -> ClusterState {
    // Segments per server, summed over the tables once for every pool.
    let segments = observed.pinot.segments_per_server();
    let mut pools: Vec<Pool> =
        valid.pools.iter().map(|p| pool(PoolIntent::of_spec(p), observed, &segments, now)).collect();
    for (name, r) in leaving_pools(valid, observed) {
        let sts = &observed.statefulsets[name];
        let image = sts
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let intent = PoolIntent { name, role: role(r), zones: vec![], desired: 0, max: 0, image, max_unavailable: 1 };
        pools.push(pool(intent, observed, &segments, now));
    }
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| Condition {
                    kind: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    ClusterState {
        name: valid.name.clone(),
        namespace: valid.namespace.clone(),
        generation: cluster.metadata.generation.unwrap_or_default(),
        deployment_order: valid.deployment_order.iter().map(|r| role(*r)).collect(),
        pools,
        conditions,
        tables: tables(observed),
        tenants: vec![],
        now_unix_seconds: now.as_second(),
        config: policy_config(valid, config, &observed.release),
        ensemble: ensemble(valid, observed, now),
    }
}

/// The managed ZooKeeper ensemble, for policies: its members as their pods and their
/// four-letter words show them. A member whose ordinal the StatefulSet's configuration no
/// longer lists is leaving.
fn ensemble(valid: &ValidCluster, observed: &ObservedCluster, now: Timestamp) -> Option<model::Ensemble> {
    let spec = valid.ensemble.as_ref()?;
    let sts = observed.statefulsets.get(ENSEMBLE_POOL);
    let replicas = sts.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(spec.replicas);
    let configured = sts.and_then(super::ensemble::statefulset_servers).unwrap_or(replicas);
    let answers = observed.ensemble.clone().unwrap_or_default();
    let pods: &[Pod] = observed.pods.get(ENSEMBLE_POOL).map(Vec::as_slice).unwrap_or_default();
    let members = pods
        .iter()
        .map(|p| {
            let facts = answers.members.get(&p.name_any());
            let base = pod(p, observed, &BTreeMap::new(), now);
            model::Member {
                id: base.ordinal + 1,
                leaving: base.ordinal as i32 >= configured,
                mode: facts.map_or(model::MemberMode::Unreachable, |f| f.mode),
                synced: facts.is_some_and(|f| f.mode.serving() && f.synced),
                pod: base.name,
                revision: base.revision,
                ready: base.ready,
                terminating: base.terminating,
                restarts: base.restarts,
                age_seconds: base.age_seconds,
                zone: base.zone,
                node_ready: base.node_ready,
            }
        })
        .collect();
    Some(model::Ensemble {
        desired_members: spec.replicas.max(0) as u32,
        configured_members: configured.max(0) as u32,
        target_revision: sts.and_then(|s| s.status.as_ref()?.update_revision.clone()).unwrap_or_default(),
        image: spec.image.clone(),
        order: valid.ensemble_position as u32,
        members,
    })
}

/// The state of an external cluster, from its controller alone: one pool per role holding the
/// instances Pinot reports (no pods, no zones, nothing to restart or scale). Tenant placement
/// decides from it.
pub fn external_state(
    cluster: &PinotCluster,
    instances: &[String],
    live: &[String],
    details: &BTreeMap<String, crate::pinot::InstanceInfo>,
    now: Timestamp,
) -> ClusterState {
    let roles = [
        ("Controller_", model::Role::Controller, "controller"),
        ("Broker_", model::Role::Broker, "broker"),
        ("Server_", model::Role::Server, "server"),
        ("Minion_", model::Role::Minion, "minion"),
    ];
    let pools = roles
        .iter()
        .filter_map(|(prefix, role, name)| {
            let ids: Vec<&String> = instances.iter().filter(|i| i.starts_with(prefix)).collect();
            if ids.is_empty() {
                return None;
            }
            let pods: Vec<model::Pod> = ids
                .iter()
                .enumerate()
                .map(|(ordinal, id)| {
                    let info = details.get(*id).cloned().unwrap_or_default();
                    let is_live = live.contains(id);
                    model::Pod {
                        name: (*id).clone(),
                        ordinal: ordinal as u32,
                        revision: String::new(),
                        ready: is_live,
                        terminating: false,
                        restarts: 0,
                        age_seconds: 0,
                        zone: None,
                        node_ready: true,
                        instance: Some(Instance {
                            id: (*id).clone(),
                            live: is_live,
                            enabled: info.enabled,
                            queries_enabled: !info.queries_disabled,
                            pools: pinot_pools(&info.pools),
                            tags: info.tags,
                            segments: 0,
                        }),
                    }
                })
                .collect();
            let n = pods.len() as u32;
            Some(Pool {
                name: format!("external-{name}"),
                role: *role,
                zones: vec![],
                desired_replicas: n,
                current_replicas: n,
                min_replicas: n,
                max_replicas: n,
                ready_replicas: pods.iter().filter(|p| p.ready).count() as u32,
                updated_replicas: n,
                current_revision: String::new(),
                target_revision: String::new(),
                image: String::new(),
                max_unavailable: 1,
                pods,
                departed: vec![],
            })
        })
        .collect();
    ClusterState {
        name: cluster.name_any(),
        namespace: cluster.namespace().unwrap_or_default(),
        generation: cluster.metadata.generation.unwrap_or_default(),
        deployment_order: vec![],
        pools,
        conditions: vec![],
        tables: vec![],
        tenants: vec![],
        now_unix_seconds: now.as_second(),
        config: vec![],
        ensemble: None,
    }
}

/// What a pool is meant to be: from the spec, or (a pool removed from the spec whose
/// StatefulSet still exists) from its StatefulSet, with no pods wanted.
struct PoolIntent<'a> {
    name: &'a str,
    role: model::Role,
    zones: Vec<String>,
    desired: u32,
    max: u32,
    image: String,
    max_unavailable: u32,
}

impl<'a> PoolIntent<'a> {
    fn of_spec(spec: &'a ValidPool) -> Self {
        PoolIntent {
            name: &spec.name,
            role: role(spec.role),
            zones: match &spec.placement {
                Placement::Anywhere => vec![],
                Placement::Zones(zs) => zs.clone(),
            },
            desired: spec.replicas.max(0) as u32,
            max: spec.max_replicas.max(spec.replicas).max(0) as u32,
            image: spec.image.clone(),
            max_unavailable: spec.max_unavailable.max(1) as u32,
        }
    }
}

/// The pools whose StatefulSets exist but that the spec no longer has: they are scaled to
/// zero (each pod drained like any scale-in) before their objects are deleted.
pub fn leaving_pools<'a>(valid: &ValidCluster, observed: &'a ObservedCluster) -> Vec<(&'a str, Role)> {
    observed
        .statefulsets
        .iter()
        .filter(|(name, _)| !valid.pools.iter().any(|p| &p.name == *name))
        .filter_map(|(name, sts)| Some((name.as_str(), sts.labels().get(LABEL_ROLE)?.parse().ok()?)))
        .collect()
}

fn pool(intent: PoolIntent, observed: &ObservedCluster, segments: &BTreeMap<String, u32>, now: Timestamp) -> Pool {
    let sts = observed.statefulsets.get(intent.name);
    let status = sts.and_then(|s| s.status.as_ref());
    let pods: &[Pod] = observed.pods.get(intent.name).map(Vec::as_slice).unwrap_or_default();
    let current = sts.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
    let departed = match &observed.pinot {
        PinotObservation::Reachable { departed, live, details, .. } => {
            departed.get(intent.name).into_iter().flatten().map(|id| instance(id, live, details, segments)).collect()
        }
        _ => vec![],
    };
    Pool {
        name: intent.name.to_string(),
        role: intent.role,
        zones: intent.zones,
        desired_replicas: intent.desired,
        current_replicas: current,
        // A scaling policy moves a pool towards what the spec asks, or up to its maxReplicas.
        min_replicas: intent.desired.min(current),
        max_replicas: intent.max.max(current),
        ready_replicas: pods.iter().filter(|p| pod_is_ready(p)).count() as u32,
        updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0).max(0) as u32,
        current_revision: status.and_then(|s| s.current_revision.clone()).unwrap_or_default(),
        target_revision: status.and_then(|s| s.update_revision.clone()).unwrap_or_default(),
        image: intent.image,
        max_unavailable: intent.max_unavailable,
        pods: pods.iter().map(|p| pod(p, observed, segments, now)).collect(),
        departed,
    }
}

fn instance(
    id: &str,
    live: &std::collections::BTreeSet<String>,
    details: &BTreeMap<String, crate::pinot::InstanceInfo>,
    segments: &BTreeMap<String, u32>,
) -> Instance {
    let info = details.get(id).cloned().unwrap_or_default();
    Instance {
        id: id.to_string(),
        live: live.contains(id),
        enabled: info.enabled,
        queries_enabled: !info.queries_disabled,
        pools: pinot_pools(&info.pools),
        tags: info.tags,
        segments: segments.get(id).copied().unwrap_or(0),
    }
}

/// An instance's Pinot pools as policies see them: numbers Pinot accepts but a pool cannot be
/// (negative, or past `u32`) are left out.
fn pinot_pools(pools: &BTreeMap<String, i64>) -> BTreeMap<String, u32> {
    pools.iter().filter_map(|(tag, n)| Some((tag.clone(), u32::try_from(*n).ok()?))).collect()
}

/// The tables Pinot reports, for policies.
fn tables(observed: &ObservedCluster) -> Vec<model::Table> {
    let PinotObservation::Reachable { tables, rebalances, .. } = &observed.pinot else { return vec![] };
    tables
        .iter()
        .map(|t| model::Table {
            name: t.name.clone(),
            replication: t.replication,
            server_tag: t.server_tag.clone(),
            broker_tag: t.broker_tag.clone(),
            segments: t.segments,
            servers_with_segments: t.servers.values().filter(|n| **n > 0).count() as u32,
            rebalancing: rebalances.iter().any(|r| r.table == t.name && r.status == super::observe::IN_PROGRESS),
        })
        .collect()
}

/// The policy's configuration with what the cluster's spec sets for it: per pool
/// `pool/<name>/podReadyTimeoutSeconds` when `spec.upgrade` or the pool sets a timeout, and
/// `pool/<name>/rebalanceOnScale` for server pools; and what the operator knows of the
/// cluster's Pinot: `pinot/release` (the release it acts for: `1.2.0`, `1.3.0`, `1.4.0`,
/// `1.5.x`, `master`) and `pinot/version` (what the controller reports, when it does).
fn policy_config(
    valid: &ValidCluster,
    config: &[(String, String)],
    release: &crate::pinot::ClusterRelease,
) -> Vec<(String, String)> {
    let mut out = config.to_vec();
    out.push(("pinot/release".into(), release.effective.to_string()));
    if let Some(version) = &release.reported {
        out.push(("pinot/version".into(), version.clone()));
    }
    if let Some(t) = valid.ensemble.as_ref().and_then(|e| e.pod_ready_timeout_seconds) {
        out.push(("zookeeper/podReadyTimeoutSeconds".into(), t.to_string()));
    }
    for pool in &valid.pools {
        if let Some(t) = pool.pod_ready_timeout_seconds {
            out.push((format!("pool/{}/podReadyTimeoutSeconds", pool.name), t.to_string()));
        }
        if pool.role == Role::Server {
            out.push((format!("pool/{}/rebalanceOnScale", pool.name), pool.rebalance_on_scale.to_string()));
        }
    }
    out
}

fn pod(pod: &Pod, observed: &ObservedCluster, segments: &BTreeMap<String, u32>, now: Timestamp) -> model::Pod {
    let name = pod.name_any();
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
        .unwrap_or(0);
    let age_seconds = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| (now.as_second() - t.0.as_second()).max(0) as u64)
        .unwrap_or(0);
    let instance = match (&observed.pinot, observed.pod_instances.get(&name)) {
        (PinotObservation::Reachable { instances, live, details, .. }, Some(id)) if instances.contains(id) => {
            Some(instance(id, live, details, segments))
        }
        _ => None,
    };
    // Where it runs, as observed. Without sight of nodes a scheduled pod counts as on a Ready
    // node (nothing is held back for a node nobody can see).
    let facts = observed.node_facts(pod);
    let node_ready = node_of(pod).is_some() && observed.nodes.as_ref().is_none_or(|_| facts.is_some_and(|f| f.ready));
    model::Pod {
        zone: facts.and_then(|f| f.zone.clone()),
        node_ready,
        ordinal: pod_ordinal(pod).max(0) as u32,
        revision: pod_revision(pod).unwrap_or_default().to_string(),
        ready: pod_is_ready(pod),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restarts,
        age_seconds,
        instance,
        name,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    use super::*;
    use crate::{
        cluster::{fixtures, observe::pod_instance_ids, validate::validate},
        pinot::InstanceInfo,
    };

    fn pod(name: &str, pool: &str, role: &str, revision: &str, ready: bool) -> Pod {
        on_node(name, pool, role, revision, ready, None)
    }

    fn on_node(name: &str, pool: &str, role: &str, revision: &str, ready: bool, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "spec": node.map(|n| json!({"containers": [], "nodeName": n})),
            "metadata": {
                "name": name,
                "creationTimestamp": "1970-01-01T00:16:40Z",
                "labels": {"pinot.controlplane.dev/pool": pool, "pinot.controlplane.dev/role": role, "controller-revision-hash": revision},
            },
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "pinot", "image": "i", "imageID": "", "ready": ready, "restartCount": 2}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn pods_carry_their_revision_readiness_and_pinot_instance() {
        let cluster = fixtures::example();
        let valid = validate(&cluster).unwrap();
        let server = valid.pools.iter().find(|p| p.role == Role::Server).unwrap().name.clone();
        let mut observed = ObservedCluster::default();
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "x", "generation": 2},
            "spec": {"selector": {}, "serviceName": "x", "template": {}, "replicas": 2},
            "status": {"replicas": 2, "observedGeneration": 2, "currentRevision": "r1", "updateRevision": "r2", "updatedReplicas": 1},
        }))
        .unwrap();
        observed.statefulsets.insert(server.clone(), sts);
        let sts_name = format!("{}-{server}", valid.name);
        observed.pods.insert(
            server.clone(),
            vec![
                pod(&format!("{sts_name}-0"), &server, "server", "r1", true),
                pod(&format!("{sts_name}-1"), &server, "server", "r2", false),
            ],
        );
        let ids = pod_instance_ids(&valid.name, &valid.namespace, "cluster.local", &observed);
        observed.pod_instances = ids.clone();
        let id0 = ids[&format!("{sts_name}-0")].clone();
        observed.pinot = PinotObservation::Reachable {
            version: Some("1.3.0".into()),
            instances: ids.values().cloned().collect(),
            live: BTreeSet::from([id0.clone()]),
            details: [(
                id0.clone(),
                InstanceInfo {
                    enabled: true,
                    queries_disabled: true,
                    tags: vec!["DefaultTenant_OFFLINE".into()],
                    pools: [("DefaultTenant_OFFLINE".to_string(), 2), ("odd".to_string(), -1)].into(),
                    ..Default::default()
                },
            )]
            .into(),
            departed: [(server.clone(), vec!["Server_gone".to_string()])].into(),
            tables: vec![crate::pinot::TablePlacement {
                name: "t_OFFLINE".into(),
                replication: 2,
                server_tag: "DefaultTenant_OFFLINE".into(),
                broker_tag: "DefaultTenant_BROKER".into(),
                segments: 5,
                servers: [(id0.clone(), 5), ("Server_gone".to_string(), 3)].into(),
                ..Default::default()
            }],
            rebalances: vec![pinot_crds::RebalanceJob {
                table: "t_OFFLINE".into(),
                job_id: "j1".into(),
                status: "IN_PROGRESS".into(),
                servers: String::new(),
            }],
            leaderless_partitions: None,
        };
        let now = Timestamp::from_second(1300).unwrap();
        let state = cluster_state(&cluster, &valid, &observed, &[("k".into(), "v".into())], now);
        assert_eq!(state.pools.len(), valid.pools.len());
        assert_eq!(state.deployment_order.len(), valid.deployment_order.len());
        // The policy's own configuration, then what the spec says per pool.
        assert_eq!(state.config[0], ("k".to_string(), "v".to_string()));
        assert!(state.config.contains(&(format!("pool/{server}/rebalanceOnScale"), "true".to_string())));
        let pool = state.pools.iter().find(|p| p.name == server).unwrap();
        // Segments per instance from the tables; departed instances; the table as Pinot has it.
        assert_eq!(pool.pods[0].instance.as_ref().unwrap().segments, 5);
        assert_eq!(
            pool.departed.iter().map(|i| (i.id.as_str(), i.segments, i.live)).collect::<Vec<_>>(),
            [("Server_gone", 3, false)]
        );
        let t = &state.tables[0];
        assert_eq!((t.replication, t.segments, t.servers_with_segments, t.rebalancing), (2, 5, 2, true));
        assert_eq!((pool.current_revision.as_str(), pool.target_revision.as_str()), ("r1", "r2"));
        assert_eq!((pool.ready_replicas, pool.updated_replicas, pool.current_replicas), (1, 1, 2));
        let (p0, p1) = (&pool.pods[0], &pool.pods[1]);
        assert_eq!((p0.ordinal, p0.revision.as_str(), p0.ready, p0.restarts, p0.age_seconds), (0, "r1", true, 2, 300));
        let i0 = p0.instance.as_ref().unwrap();
        assert_eq!(i0.id, id0);
        assert!(i0.live && i0.enabled && !i0.queries_enabled);
        assert_eq!(i0.tags, vec!["DefaultTenant_OFFLINE"]);
        assert_eq!(i0.pools, [("DefaultTenant_OFFLINE".to_string(), 2)].into(), "a negative pool is no pool");
        // Without sight of nodes: no zone, and a pod not scheduled is on no Ready node.
        assert_eq!((p0.zone.as_deref(), p0.node_ready), (None, false));
        let i1 = p1.instance.as_ref().unwrap();
        assert!(!i1.live && i1.queries_enabled, "an instance without details is taken as enabled: {i1:?}");
        // A pool that does not exist yet has no pods and no target revision.
        let other = state.pools.iter().find(|p| p.name != server).unwrap();
        assert!(other.pods.is_empty() && other.target_revision.is_empty());
    }

    /// Where pods run: the zone and readiness of their nodes as observed; without sight of
    /// nodes (the operator may not list them) no zone, and no pod held back for its node.
    #[test]
    fn pods_carry_the_zone_and_readiness_of_their_node() {
        let cluster = fixtures::example();
        let valid = validate(&cluster).unwrap();
        let server = valid.pools.iter().find(|p| p.role == Role::Server).unwrap().name.clone();
        let mut observed = ObservedCluster::default();
        observed.pods.insert(
            server.clone(),
            vec![
                on_node("s-0", &server, "server", "r1", true, Some("n-a")),
                on_node("s-1", &server, "server", "r1", false, Some("n-b")),
                on_node("s-2", &server, "server", "r1", true, Some("n-gone")),
                on_node("s-3", &server, "server", "r1", false, None),
                on_node("s-4", &server, "server", "r1", true, Some("n-nozone")),
            ],
        );
        let facts =
            |zone: Option<&str>, ready| crate::cluster::cache::NodeFacts { zone: zone.map(String::from), ready };
        observed.nodes = Some(
            [
                ("n-a".to_string(), facts(Some("zone-a"), true)),
                ("n-b".to_string(), facts(Some("zone-b"), false)),
                ("n-nozone".to_string(), facts(None, true)),
            ]
            .into(),
        );
        let now = Timestamp::from_second(1300).unwrap();
        let seen = |observed: &ObservedCluster| {
            let state = cluster_state(&cluster, &valid, observed, &[], now);
            let pool = state.pools.into_iter().find(|p| p.name == server).unwrap();
            pool.pods.into_iter().map(|p| (p.zone, p.node_ready)).collect::<Vec<_>>()
        };
        let zone = |z: &str| Some(z.to_string());
        assert_eq!(
            seen(&observed),
            [(zone("zone-a"), true), (zone("zone-b"), false), (None, false), (None, false), (None, true)]
        );
        observed.nodes = None;
        assert_eq!(seen(&observed), [(None, true), (None, true), (None, true), (None, false), (None, true)]);
    }
}
