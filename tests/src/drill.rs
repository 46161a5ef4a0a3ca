//! The zone-outage drill on the local control plane (test `tests/tests/zones.rs`, benchmark
//! `tests/benches/zone_outage.rs`): a PinotCluster with two servers in each of three zones
//! (controller and broker in zone-c), a PinotTenant `sales` over all six servers, two hybrid
//! PinotTables (`events` with the replication the zones give, 3; `clicks` with replication 2),
//! and segments on every server. Then a zone is lost through the simulated data plane
//! (`PUT /_sim/zones/{zone}`) and brought back, and what a user would check is read: the
//! cluster's status, the operator's events, the simulated Pinot's request log, audit and ideal
//! states.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use serde_json::{Value, json};

use crate::harness::{condition, condition_of, controller_url_template, kubectl, simulator_admin_url, wait_for};

/// The cluster's name.
pub const CLUSTER: &str = "az";
/// The tables, with the replication each ends up with.
pub const TABLES: [(&str, u32); 2] = [("events", 3), ("clicks", 2)];
/// Segments added per table type.
pub const SEGMENTS: usize = 12;
/// The server pools, one per zone.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// Pods of the cluster: a controller, a broker, two servers per zone.
pub const PODS: usize = 2 + 2 * ZONES.len();

/// One zone loss at a time on the whole data plane: tests of the drill take turns.
pub async fn zone_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn manifests(image: &str) -> String {
    let ready = r#"podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300", sim.pinot.controlplane.dev/segments-load-ms: "500"}}"#;
    let mut pools = vec![
        format!(
            "    - {{name: controller, role: controller, replicas: 1, zone: zone-c, storage: {{ephemeral: true}}, {ready}}}"
        ),
        format!("    - {{name: broker, role: broker, replicas: 1, zone: zone-c, {ready}}}"),
    ];
    for zone in ZONES {
        let short = zone.trim_start_matches("zone-");
        pools.push(format!(
            "    - {{name: server-{short}, role: server, replicas: 2, zone: {zone}, storage: {{ephemeral: true}}, {ready}}}"
        ));
    }
    let mut docs = vec![format!(
        "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotCluster\nmetadata: {{name: {CLUSTER}}}\nspec:\n  image: {image}\n  \
         zookeeper: {{connectString: \"zookeeper:2181\"}}\n  upgrade: {{podReadyTimeoutSeconds: 120, drainSeconds: 0}}\n  pools:\n{}\n",
        pools.join("\n")
    )];
    docs.push(format!(
        "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotTenant\nmetadata: {{name: sales}}\nspec: {{cluster: {CLUSTER}, \
         tenantRole: SERVER, offlineInstances: 6, realtimeInstances: 6}}\n"
    ));
    for (table, replication) in TABLES {
        docs.push(format!(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotSchema\nmetadata: {{name: {table}}}\nspec:\n  cluster: {CLUSTER}\n  \
             schema: {{schemaName: {table}, dimensionFieldSpecs: [{{name: id, dataType: STRING}}], \
             dateTimeFieldSpecs: [{{name: ts, dataType: LONG, format: \"1:MILLISECONDS:EPOCH\", granularity: \"1:MILLISECONDS\"}}]}}\n"
        ));
        // `events` says no replication: the zones give it (3); `clicks` says 2.
        let replication = if table == "events" { String::new() } else { format!(", replication: \"{replication}\"") };
        let realtime_replicas =
            if table == "events" { String::new() } else { ", replicasPerPartition: \"2\"".to_string() };
        docs.push(format!(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotTable\nmetadata: {{name: {table}}}\nspec:\n  cluster: {CLUSTER}\n  \
             schemaRef: {table}\n  offline:\n    segmentsConfig: {{timeColumnName: ts{replication}}}\n    \
             tenants: {{broker: DefaultTenant, server: sales}}\n    tableIndexConfig: {{loadMode: MMAP}}\n    metadata: {{}}\n  \
             realtime:\n    segmentsConfig: {{timeColumnName: ts{replication}{realtime_replicas}}}\n    \
             tenants: {{broker: DefaultTenant, server: sales}}\n    tableIndexConfig: {{loadMode: MMAP, streamConfigs: \
             {{streamType: kafka, stream.kafka.topic.name: {table}, stream.kafka.broker.list: \"kafka:9092\", \
             stream.kafka.consumer.type: lowlevel, stream.kafka.decoder.class.name: \
             org.apache.pinot.plugin.stream.kafka.KafkaJSONMessageDecoder, stream.kafka.consumer.factory.class.name: \
             org.apache.pinot.plugin.stream.kafka20.KafkaConsumerFactory}}}}\n    metadata: {{}}\n"
        ));
    }
    docs.join("---\n")
}

/// The simulated data plane's admin root (`http://<addr>/_sim`).
fn sim_root() -> String {
    let admin = simulator_admin_url("x", "y");
    admin.split("/clusters/").next().expect("an admin URL").to_string()
}

/// The Pinot controller URL of the drill's cluster.
pub fn pinot_url(ns: &str) -> String {
    controller_url_template().replace("{namespace}", ns).replace("{name}", CLUSTER)
}

async fn get_json(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// Installs the drill's cluster, tenant, schemas and tables running `image`, and waits until
/// the tenant is placed with a Pinot pool per zone, both tables are Ready in Pinot and every
/// replica of every segment is ONLINE.
pub async fn install(client: &Client, ns: &str, image: &str) {
    let file = std::env::temp_dir().join(format!("{ns}-zones.yaml"));
    std::fs::write(&file, manifests(image)).unwrap();
    kubectl(&["-n", ns, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", ns, "wait", "--for=condition=Available", &format!("pinotcluster/{CLUSTER}"), "--timeout=240s"])
        .await;
    kubectl(&["-n", ns, "wait", "--for=condition=Ready", "pinottenant/sales", "--timeout=240s"]).await;
    for (table, _) in TABLES {
        kubectl(&["-n", ns, "wait", "--for=condition=Ready", &format!("pinottable/{table}"), "--timeout=240s"]).await;
    }
    let admin = simulator_admin_url(ns, CLUSTER);
    let http = reqwest::Client::new();
    for (table, _) in TABLES {
        for kind in ["OFFLINE", "REALTIME"] {
            let body = json!({"table": format!("{table}_{kind}"), "count": SEGMENTS});
            let r = http.post(format!("{admin}/segments")).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "segments: {}", r.text().await.unwrap());
        }
    }
    wait_serving(ns, Duration::from_secs(120)).await;
    let _ = client;
}

/// Waits until every replica of every segment of both tables is ONLINE in the external view.
pub async fn wait_serving(ns: &str, timeout: Duration) {
    wait_for("every replica ONLINE", timeout, || async { all_online(ns).await.then_some(()) }).await;
}

/// Whether every replica the ideal state gives is ONLINE in the external view.
pub async fn all_online(ns: &str) -> bool {
    let url = pinot_url(ns);
    for (table, _) in TABLES {
        let (Some(ideal), Some(view)) = (
            get_json(&format!("{url}/tables/{table}/idealstate")).await,
            get_json(&format!("{url}/tables/{table}/externalview")).await,
        ) else {
            return false;
        };
        for kind in ["OFFLINE", "REALTIME"] {
            let Some(segments) = ideal[kind].as_object() else { return false };
            for (segment, holders) in segments {
                for holder in holders.as_object().into_iter().flatten().map(|(h, _)| h) {
                    if view[kind][segment][holder] != "ONLINE" {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Each table type's ideal state: segment -> its servers.
pub async fn ideal_states(ns: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let url = pinot_url(ns);
    let mut out = BTreeMap::new();
    for (table, _) in TABLES {
        let ideal = get_json(&format!("{url}/tables/{table}/idealstate")).await.expect("the ideal state");
        for kind in ["OFFLINE", "REALTIME"] {
            let segments = ideal[kind].as_object().cloned().unwrap_or_default();
            let placed = segments
                .into_iter()
                .map(|(seg, holders)| {
                    (seg, holders.as_object().into_iter().flatten().map(|(h, _)| h.clone()).collect())
                })
                .collect();
            out.insert(format!("{table}_{kind}"), placed);
        }
    }
    out
}

/// The zone of a server instance, from its pod's name (`az-server-<a|b|c>-<n>`).
pub fn zone_of(instance: &str) -> String {
    let pod = instance.trim_start_matches("Server_").split('.').next().unwrap_or_default();
    let short = pod.trim_start_matches(&format!("{CLUSTER}-server-")).split('-').next().unwrap_or_default();
    format!("zone-{short}")
}

/// What a user checks of the layout: each server's Pinot pool per tenant tag, each table's
/// instance partitions (one replica group per pool), and where each segment's replicas are.
pub async fn check_layout(ns: &str) {
    let url = pinot_url(ns);
    // Pools: one number per zone, the same for both tags, three numbers.
    let mut zone_pool: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let instances = get_json(&format!("{url}/instances")).await.expect("instances");
    for id in instances["instances"].as_array().unwrap().iter().filter_map(Value::as_str) {
        if !id.starts_with("Server_") {
            continue;
        }
        let info = get_json(&format!("{url}/instances/{id}")).await.expect("instance");
        for tag in ["sales_OFFLINE", "sales_REALTIME"] {
            let pool = info["pools"][tag].as_str().unwrap_or_else(|| panic!("{id} has no pool for {tag}: {info}"));
            zone_pool.entry(zone_of(id)).or_default().insert(pool.to_string());
        }
    }
    assert_eq!(zone_pool.len(), 3, "{zone_pool:?}");
    let numbers: BTreeSet<&String> = zone_pool.values().flatten().collect();
    assert!(zone_pool.values().all(|p| p.len() == 1) && numbers.len() == 3, "one pool per zone: {zone_pool:?}");
    // Instance partitions: each replica group in one zone, as many groups as replicas, each in
    // another zone.
    for (table, replication) in TABLES {
        let ip = get_json(&format!("{url}/tables/{table}/instancePartitions")).await.expect("instance partitions");
        for kind in ["OFFLINE", "CONSUMING", "COMPLETED"] {
            let groups =
                ip[kind]["partitionToInstancesMap"].as_object().unwrap_or_else(|| panic!("{table} {kind}: {ip}"));
            assert_eq!(groups.len(), replication as usize, "{table} {kind}: {ip}");
            let zones: Vec<BTreeSet<String>> = groups
                .values()
                .map(|m| m.as_array().unwrap().iter().map(|i| zone_of(i.as_str().unwrap())).collect())
                .collect();
            assert!(zones.iter().all(|z| z.len() == 1), "a group in one zone: {table} {kind}: {ip}");
            let distinct: BTreeSet<&BTreeSet<String>> = zones.iter().collect();
            assert_eq!(distinct.len(), zones.len(), "each group in another zone: {table} {kind}: {ip}");
        }
    }
    // Segments: one replica per zone, as many as the table's replication.
    for (name, segments) in ideal_states(ns).await {
        let replication = TABLES.iter().find(|(t, _)| name.starts_with(t)).unwrap().1 as usize;
        assert_eq!(segments.len(), SEGMENTS, "{name}");
        for (segment, holders) in &segments {
            let zones: BTreeSet<String> = holders.iter().map(|h| zone_of(h)).collect();
            assert_eq!((holders.len(), zones.len()), (replication, replication), "{name} {segment}: {holders:?}");
        }
    }
}

/// Loses a zone of the data plane, or brings it back.
pub async fn set_zone_lost(zone: &str, lost: bool) {
    let r = reqwest::Client::new()
        .put(format!("{}/zones/{zone}", sim_root()))
        .json(&json!({"lost": lost}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "zone {zone}: {}", r.status());
}

/// The simulated Pinot's audit of the cluster.
pub async fn audit(ns: &str) -> Value {
    get_json(&format!("{}/audit", simulator_admin_url(ns, CLUSTER))).await.expect("the audit")
}

pub async fn reset_audit(ns: &str) {
    let r = reqwest::Client::new().delete(format!("{}/audit", simulator_admin_url(ns, CLUSTER))).send().await.unwrap();
    assert!(r.status().is_success());
}

/// The cluster's problems and conditions, as `kubectl get pinotcluster -o yaml` shows them.
pub async fn cluster(client: &Client, ns: &str) -> PinotCluster {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    api.get(CLUSTER).await.unwrap()
}

/// Whether the cluster reports the zone as impaired: Degraded, with the problem `ZoneImpaired`
/// of `zone <zone>` first.
pub fn reports_impaired(c: &PinotCluster, zone: &str) -> bool {
    let degraded = condition(c, "Degraded").is_some_and(|(s, m)| s == "True" && m.contains(&format!("zone {zone}")));
    let first = c.status.as_ref().and_then(|s| s.problems.first());
    degraded && first.is_some_and(|p| p.reason == "ZoneImpaired" && p.subject == format!("zone {zone}"))
}

/// Waits until the cluster reports `zone` impaired.
pub async fn wait_reported(client: &Client, ns: &str, zone: &str) {
    wait_for(&format!("the cluster to report zone {zone} impaired"), Duration::from_secs(60), || async {
        reports_impaired(&cluster(client, ns).await, zone).then_some(())
    })
    .await;
}

/// Waits until every pod of the cluster runs `image`, the cluster is healthy and no rollout is
/// under way.
pub async fn wait_upgraded(client: &Client, ns: &str, image: &str, timeout: Duration) {
    wait_for("every pod on the new image, the cluster healthy", timeout, || async {
        let images = pod_images(client, ns).await;
        let c = cluster(client, ns).await;
        let done = images.len() == PODS
            && images.values().all(|i| i == image)
            && healthy(&c)
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;
}

/// Whether the cluster is healthy again: Available, not Degraded, no problem.
pub fn healthy(c: &PinotCluster) -> bool {
    condition(c, "Available").is_some_and(|(s, _)| s == "True")
        && condition(c, "Degraded").is_some_and(|(s, _)| s == "False")
        && c.status.as_ref().is_some_and(|s| s.problems.is_empty())
}

/// The pods of the operator's `RestartedPod` events so far, oldest first.
pub async fn restarts(client: &Client, ns: &str) -> Vec<String> {
    let events = crate::harness::restart_events(client, ns).await;
    events.into_iter().map(|e| e.related.and_then(|r| r.name).unwrap_or_default()).collect()
}

/// The writes the simulated Pinot received since its log was cleared that move data or
/// rewrite instances: rebalances, instance updates, tags, states.
pub async fn moving_writes(ns: &str) -> Vec<String> {
    crate::workload::pinot_writes(&simulator_admin_url(ns, CLUSTER))
        .await
        .into_iter()
        .filter(|w| w.contains("/rebalance") || w.starts_with("PUT /instances/") || w.contains("assignInstances"))
        .collect()
}

pub async fn clear_log(ns: &str) {
    crate::workload::clear_log(&simulator_admin_url(ns, CLUSTER)).await;
}

/// Replicas whose server changed between two ideal states.
pub fn moves(
    before: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    after: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
) -> usize {
    let mut moved = 0;
    for (table, segments) in after {
        for (segment, holders) in segments {
            let old = before.get(table).and_then(|s| s.get(segment)).cloned().unwrap_or_default();
            moved += holders.difference(&old).count();
        }
    }
    moved
}

/// Pods of the cluster, by name, with their image.
pub async fn pod_images(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("pinot.controlplane.dev/cluster={CLUSTER}");
    let pods = api.list(&ListParams::default().labels(&selector)).await.unwrap();
    pods.iter()
        .map(|p| {
            let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
            (p.name_any(), image.unwrap_or_default())
        })
        .collect()
}

/// What one outage measured.
#[derive(Clone, Debug, Default)]
pub struct Outage {
    /// From the zone's loss until the cluster reported it (Degraded, `ZoneImpaired`).
    pub to_reported: Duration,
    /// Per table type, the fewest live, enabled replicas a segment had during the outage.
    pub lowest_live_replicas: BTreeMap<String, u64>,
    /// Segments with no live replica at some moment of the outage (goal 0).
    pub unavailable_tables: Vec<String>,
    /// Writes that move data or rewrite instances while the zone was out (goal none).
    pub writes_during: Vec<String>,
    /// Pods the operator restarted while the zone was out (goal none).
    pub restarts_during: usize,
    /// From the zone's return until every replica served again and the cluster was healthy.
    pub to_recovered: Duration,
    /// Replicas that changed server between before the loss and after the recovery (goal 0).
    pub moves: usize,
}

/// Loses `zone` for `hold`, then brings it back, measuring what a user would check. The
/// cluster is installed and serving.
pub async fn lose_zone(client: &Client, ns: &str, zone: &str, hold: Duration) -> Outage {
    let before = ideal_states(ns).await;
    let restarts_before = restarts(client, ns).await.len();
    reset_audit(ns).await;
    clear_log(ns).await;
    let lost = Instant::now();
    set_zone_lost(zone, true).await;
    wait_reported(client, ns, zone).await;
    let to_reported = lost.elapsed();
    // The outage lasts: the operator keeps deciding (nodes, pods and Pinot change under it).
    tokio::time::sleep(hold.saturating_sub(lost.elapsed())).await;
    assert!(reports_impaired(&cluster(client, ns).await, zone), "still reported at the end of the outage");
    let writes_during = moving_writes(ns).await;
    let restarts_during = restarts(client, ns).await.len() - restarts_before;
    let audit = audit(ns).await;
    let lowest_live_replicas: BTreeMap<String, u64> = audit["lowestReplicas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, n)| (t.clone(), n.as_u64().unwrap_or(0)))
        .collect();
    let unavailable_tables = lowest_live_replicas.iter().filter(|(_, n)| **n == 0).map(|(t, _)| t.clone()).collect();
    let back = Instant::now();
    set_zone_lost(zone, false).await;
    wait_for("every replica serving and the cluster healthy", Duration::from_secs(120), || async {
        (all_online(ns).await && healthy(&cluster(client, ns).await)).then_some(())
    })
    .await;
    let to_recovered = back.elapsed();
    let after = ideal_states(ns).await;
    Outage {
        to_reported,
        lowest_live_replicas,
        unavailable_tables,
        writes_during,
        restarts_during,
        to_recovered,
        moves: moves(&before, &after),
    }
}

/// A PinotTable's `ZoneSpread` condition.
pub async fn zone_spread(table: &str, ns: &str) -> Option<(String, String)> {
    let out = kubectl(&["-n", ns, "get", "pinottable", table, "-o", "json"]).await;
    condition_of(&serde_json::from_str(&out).ok()?, "ZoneSpread")
}
