//! Zones, as observed (pure): which zones of the cluster are impaired — a node its pods run on
//! is not Ready (its kubelet stopped reporting: a lost zone, a partition) — and what of the
//! cluster is out there. Status reports each as a problem naming the zone; upgrades and
//! scale-ins wait while one is. And which tables with pool-based replica groups have replicas
//! not spread one per Pinot pool (their config gained the assignment, or pools were set after
//! their segments were placed): those are rebalanced with `reassignInstances`, once every
//! server of their tag is live and has a pool, and never while a zone is impaired.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use super::{
    cache::node_of,
    observe::{ObservedCluster, PinotObservation, pod_is_ready},
};

/// A zone with a node that is not Ready, and what of this cluster runs there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImpairedZone {
    pub zone: String,
    /// Nodes of the zone this cluster's pods run on that are not Ready.
    pub nodes: BTreeSet<String>,
    /// This cluster's pods on those nodes, and of them those not ready.
    pub pods: BTreeSet<String>,
    pub pods_not_ready: BTreeSet<String>,
    /// Server instances of pods in the zone that are not live in Pinot.
    pub servers_out: BTreeSet<String>,
    /// The Pinot pools (tag, number) the zone's servers carry.
    pub pinot_pools: BTreeSet<(String, i64)>,
}

impl ImpairedZone {
    /// The problem status reports: what is out, and what waits.
    pub fn message(&self) -> String {
        let mut parts =
            vec![format!("zone {} is impaired: {} not Ready", self.zone, few("node", "nodes", &self.nodes))];
        if !self.pods_not_ready.is_empty() {
            parts.push(format!(
                "{} of the cluster's {} pods there not ready",
                self.pods_not_ready.len(),
                self.pods.len()
            ));
        }
        if !self.servers_out.is_empty() {
            parts.push(format!("{} not live in Pinot", few("server", "servers", &self.servers_out)));
        }
        if !self.pinot_pools.is_empty() {
            let pools: Vec<String> = self.pinot_pools.iter().map(|(tag, n)| format!("{tag}={n}")).collect();
            parts.push(format!("Pinot pools {} have a replica group out", pools.join(", ")));
        }
        parts.push("upgrades, scale-ins and rebalances wait until it is back".into());
        parts.join("; ")
    }
}

/// Up to three names of a set, then how many more.
fn few(one: &str, many: &str, names: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    let noun = if names.len() == 1 { one } else { many };
    match more {
        0 => format!("{noun} {}", shown.join(", ")),
        n => format!("{noun} {} and {n} more", shown.join(", ")),
    }
}

/// The zones where a node this cluster's pods run on is not Ready, by name.
pub fn impaired_zones(observed: &ObservedCluster) -> Vec<ImpairedZone> {
    let mut zones: BTreeMap<String, ImpairedZone> = BTreeMap::new();
    for pod in observed.pods.values().flatten() {
        let Some(facts) = observed.node_facts(pod) else { continue };
        let (Some(zone), false) = (&facts.zone, facts.ready) else { continue };
        let z = zones.entry(zone.clone()).or_insert_with(|| ImpairedZone { zone: zone.clone(), ..Default::default() });
        z.nodes.insert(node_of(pod).unwrap_or_default().to_string());
    }
    // Everything of the cluster in those zones (pods on their Ready nodes too).
    for pod in observed.pods.values().flatten() {
        let zone = observed.node_facts(pod).and_then(|f| f.zone.as_ref());
        let Some(z) = zone.and_then(|z| zones.get_mut(z)) else { continue };
        let name = pod.name_any();
        if !pod_is_ready(pod) {
            z.pods_not_ready.insert(name.clone());
        }
        z.pods.insert(name.clone());
        let Some(id) = observed.pod_instances.get(&name).filter(|id| id.starts_with("Server_")) else { continue };
        if let PinotObservation::Reachable { live, details, .. } = &observed.pinot {
            if !live.contains(id) {
                z.servers_out.insert(id.clone());
            }
            for (tag, n) in details.get(id).map(|d| &d.pools).into_iter().flatten() {
                z.pinot_pools.insert((tag.clone(), *n));
            }
        }
    }
    zones.into_values().collect()
}

/// The zones the spec places pools in that no node is in (`known`: every node's zone), with the
/// field that names each.
pub fn zones_without_nodes(cluster: &pinot_crds::PinotCluster, known: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, pool) in cluster.spec.pools.iter().enumerate() {
        let named = pool.zone.iter().map(|z| (format!("spec.pools[{i}].zone"), z));
        let listed = pool.zones.iter().enumerate().map(|(k, z)| (format!("spec.pools[{i}].zones[{k}]"), z));
        for (field, zone) in named.chain(listed) {
            if !zone.trim().is_empty() && !known.contains(zone) {
                out.push((field, zone.clone()));
            }
        }
    }
    out
}

/// A table whose segments are not one replica per Pinot pool, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misplaced {
    pub table: String,
    pub why: String,
}

/// The tables with pool-based replica-group assignment whose replicas should move so that
/// each segment has one replica per Pinot pool, and that may be rebalanced now: every server
/// carrying the table's tag is live and has a pool for it, there are as many pools as the
/// assignment asks for, no zone is impaired and no rebalance of the table runs. (Whether the
/// same servers were rebalanced onto already is checked where rebalances start.)
pub fn misplaced_tables(observed: &ObservedCluster) -> Vec<Misplaced> {
    let PinotObservation::Reachable { tables, details, live, rebalances, .. } = &observed.pinot else { return vec![] };
    if !impaired_zones(observed).is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    for table in tables {
        let Some(groups) = &table.replica_groups else { continue };
        if rebalances.iter().any(|j| j.table == table.name && j.status == super::observe::IN_PROGRESS) {
            continue;
        }
        let pool_of = |id: &str| details.get(id).and_then(|d| d.pools.get(&groups.tag)).copied();
        let carriers: Vec<&String> =
            details.iter().filter(|(_, d)| d.tags.contains(&groups.tag)).map(|(id, _)| id).collect();
        if carriers.iter().any(|id| !live.contains(*id) || pool_of(id).is_none()) {
            continue;
        }
        let pools: BTreeSet<i64> = carriers.iter().filter_map(|id| pool_of(id)).collect();
        if (pools.len() as u32) < groups.pools.max(1) {
            continue;
        }
        let wrong: u32 = table
            .holder_sets
            .iter()
            .filter(|(holders, _)| {
                let numbers: Vec<Option<i64>> = holders.iter().map(|h| pool_of(h)).collect();
                let distinct: BTreeSet<&Option<i64>> = numbers.iter().collect();
                numbers.iter().any(Option::is_none) || distinct.len() < numbers.len()
            })
            .map(|(_, n)| *n)
            .sum();
        if wrong > 0 {
            out.push(Misplaced {
                table: table.name.clone(),
                why: format!(
                    "{wrong} of its {} segments have replicas in one Pinot pool of {} (or on servers without one)",
                    table.segments, groups.tag
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;
    use crate::{cluster::cache::NodeFacts, pinot::InstanceInfo};

    fn pod(name: &str, node: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [], "nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_zone_with_a_node_not_ready_is_impaired_with_what_runs_there() {
        let mut observed = ObservedCluster::default();
        observed.pods.insert(
            "server".into(),
            vec![pod("s-0", "a-0", true), pod("s-1", "b-0", false), pod("s-2", "b-1", true), pod("s-3", "c-0", true)],
        );
        observed.pods.insert("broker".into(), vec![pod("b-0", "b-0", false)]);
        let node = |zone: &str, ready| NodeFacts { zone: Some(zone.into()), ready };
        observed.nodes = Some(
            [
                ("a-0".to_string(), node("zone-a", true)),
                ("b-0".to_string(), node("zone-b", false)),
                ("b-1".to_string(), node("zone-b", true)),
                ("c-0".to_string(), node("zone-c", true)),
            ]
            .into(),
        );
        observed.pod_instances = [("s-1", "Server_s1"), ("s-2", "Server_s2"), ("b-0", "Broker_b0")]
            .map(|(p, i)| (p.into(), i.into()))
            .into();
        let pools = BTreeMap::from([("sales_OFFLINE".to_string(), 1)]);
        observed.pinot = PinotObservation::Reachable {
            version: None,
            instances: BTreeSet::new(),
            live: BTreeSet::from(["Server_s2".to_string()]),
            details: [("Server_s1".to_string(), InstanceInfo { pools, ..Default::default() })].into(),
            departed: Default::default(),
            tables: vec![],
            rebalances: vec![],
            leaderless_partitions: None,
        };
        let zones = impaired_zones(&observed);
        assert_eq!(zones.len(), 1, "{zones:#?}");
        let z = &zones[0];
        assert_eq!(z.zone, "zone-b");
        assert_eq!(z.nodes, BTreeSet::from(["b-0".to_string()]));
        assert_eq!(z.pods.len(), 3, "the pods on its Ready node count too");
        assert_eq!(z.pods_not_ready, BTreeSet::from(["b-0".to_string(), "s-1".to_string()]));
        assert_eq!(z.servers_out, BTreeSet::from(["Server_s1".to_string()]), "brokers are not servers");
        assert_eq!(
            z.message(),
            "zone zone-b is impaired: node b-0 not Ready; 2 of the cluster's 3 pods there not ready; server Server_s1 not \
             live in Pinot; Pinot pools sales_OFFLINE=1 have a replica group out; upgrades, scale-ins and \
             rebalances wait until it is back"
        );
        // Without sight of nodes, no zone is known to be impaired.
        observed.nodes = None;
        assert!(impaired_zones(&observed).is_empty());
    }

    #[test]
    fn a_table_is_rebalanced_by_zone_when_replicas_share_a_pool_and_every_server_is_up() {
        use crate::pinot::{ReplicaGroups, TablePlacement};
        let server = |pool: Option<i64>| InstanceInfo {
            tags: vec!["sales_OFFLINE".into()],
            pools: pool.map(|n| BTreeMap::from([("sales_OFFLINE".to_string(), n)])).unwrap_or_default(),
            ..Default::default()
        };
        let ids = ["S0", "S1", "S2", "S3"];
        let sets = |sets: &[(&[&str], u32)]| -> BTreeMap<BTreeSet<String>, u32> {
            sets.iter().map(|(s, n)| (s.iter().map(|h| h.to_string()).collect(), *n)).collect()
        };
        let table = |holder_sets| TablePlacement {
            name: "t_OFFLINE".into(),
            segments: 10,
            holder_sets,
            replica_groups: Some(ReplicaGroups { tag: "sales_OFFLINE".into(), groups: 2, pools: 2 }),
            ..Default::default()
        };
        let observed = |pools: [Option<i64>; 4], live: &[&str], t: TablePlacement| ObservedCluster {
            pinot: PinotObservation::Reachable {
                version: None,
                instances: ids.iter().map(|s| s.to_string()).collect(),
                live: live.iter().map(|s| s.to_string()).collect(),
                details: ids.iter().zip(pools).map(|(id, p)| (id.to_string(), server(p))).collect(),
                departed: Default::default(),
                tables: vec![t],
                rebalances: vec![],
                leaderless_partitions: None,
            },
            ..Default::default()
        };
        let zoned = [Some(0), Some(0), Some(1), Some(1)];
        // S0 and S1 share pool 0: 6 segments have both replicas in one zone.
        let wrong = table(sets(&[(&["S0", "S1"], 6), (&["S0", "S2"], 4)]));
        let found = misplaced_tables(&observed(zoned, &ids, wrong.clone()));
        assert_eq!(found.len(), 1);
        assert!(found[0].why.starts_with("6 of its 10 segments"), "{}", found[0].why);
        // One replica per pool: nothing to do.
        let right = table(sets(&[(&["S0", "S2"], 5), (&["S1", "S3"], 5)]));
        assert!(misplaced_tables(&observed(zoned, &ids, right)).is_empty());
        // A server of the tag not live, or without a pool yet, or a pool short: wait.
        assert!(misplaced_tables(&observed(zoned, &ids[..3], wrong.clone())).is_empty());
        assert!(misplaced_tables(&observed([Some(0), Some(0), Some(1), None], &ids, wrong.clone())).is_empty());
        assert!(misplaced_tables(&observed([Some(0); 4], &ids, wrong.clone())).is_empty());
        // A rebalance of it runs: wait for it.
        let mut running = observed(zoned, &ids, wrong);
        if let PinotObservation::Reachable { rebalances, .. } = &mut running.pinot {
            rebalances.push(pinot_crds::RebalanceJob {
                table: "t_OFFLINE".into(),
                job_id: "j".into(),
                status: "IN_PROGRESS".into(),
                servers: String::new(),
            });
        }
        assert!(misplaced_tables(&running).is_empty());
        // Without replica groups in its config, a table is not placed by zone.
        let plain = TablePlacement { replica_groups: None, ..table(sets(&[(&["S0", "S1"], 10)])) };
        assert!(misplaced_tables(&observed(zoned, &ids, plain)).is_empty());
    }

    #[test]
    fn a_zone_no_node_is_in_is_named_by_its_field() {
        let cluster: pinot_crds::PinotCluster = serde_yaml::from_str(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotCluster\nmetadata: {name: c}\nspec:\n  \
             image: apachepinot/pinot:1.3.0\n  zookeeper: {connectString: zk}\n  pools:\n  \
             - {name: controller, role: controller, replicas: 1, zone: zone-a}\n  \
             - {name: server, role: server, replicas: 3, zones: [zone-a, zone-x, zone-b]}\n",
        )
        .unwrap();
        let known = BTreeSet::from(["zone-a".to_string(), "zone-b".to_string()]);
        assert_eq!(
            zones_without_nodes(&cluster, &known),
            [("spec.pools[1].zones[1]".to_string(), "zone-x".to_string())]
        );
        let none = BTreeSet::new();
        assert_eq!(zones_without_nodes(&cluster, &none).len(), 4);
    }
}
