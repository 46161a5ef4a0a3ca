//! Upgrade wall time against the time the pods themselves need.
//!
//! `make kube-up`, then `make bench-upgrade` (which checks the cluster before building; or `cargo
//! bench -p pinot-testbed --bench upgrade`). A cluster of 6 pods (controller, broker, 3 servers,
//! minion) on Pinot 1.2.0 whose pods each take `PINOT_BENCH_READY_MS` (default 5000) to become
//! ready after they start (and no time to shut down) is upgraded with the bundled policy, one pod
//! at a time. Its servers hold a table with replication 2 (every server shares segments with the
//! others) and take `PINOT_BENCH_LOAD_MS` (default 1000) more after their start to load them and
//! clear `shutdownInProgress`, so each server restart waits for the previous server to serve again
//! (the routing gate), not just for its pod's readiness. Every pod is on the critical path: the
//! pods need 6 × the ready time plus 3 × the load time. The benchmark prints the wall time from
//! the image change to the cluster reporting the rollout complete, and its ratio to that sum (the
//! operator, the StatefulSet controller and the simulated kubelet add the rest).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{OperatorHandle, TestNamespace, condition, kubectl, test_client};

const PODS: u64 = 6;
const SERVERS: u64 = 3;

fn cluster(ready_ms: u64, load_ms: u64) -> String {
    let pool = |name: &str, role: &str, replicas: u32, zone: &str| {
        format!(
            "    - {{name: {name}, role: {role}, replicas: {replicas}, zone: {zone}, storage: {{ephemeral: true}}, podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: \"{ready_ms}\", sim.pinot.controlplane.dev/shutdown-after-ms: \"0\", sim.pinot.controlplane.dev/segments-load-ms: \"{load_ms}\"}}}}}}\n"
        )
    };
    format!(
        "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotCluster\nmetadata: {{name: bench}}\nspec:\n  image: apachepinot/pinot:1.2.0\n  zookeeper: {{connectString: zk:2181}}\n  upgrade: {{drainSeconds: 0}}\n  pools:\n{}{}{}{}",
        pool("controller", "controller", 1, "zone-a"),
        pool("broker", "broker", 1, "zone-a"),
        pool("server", "server", 3, "zone-b"),
        pool("minion", "minion", 1, "zone-c"),
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let ready_ms: u64 = std::env::var("PINOT_BENCH_READY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let load_ms: u64 = std::env::var("PINOT_BENCH_LOAD_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "bench-upgrade").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}.yaml", ns.name));
    std::fs::write(&file, cluster(ready_ms, load_ms)).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/bench", "--timeout=300s"]).await;
    // Every server shares segments with both others: each restart waits for the previous server.
    pinot_testbed::workload::table_with_segments(&ns.name, "bench", "DefaultTenant", 2, 6).await;

    // Every pod event with the time it was seen, for the per-step breakdown below.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let timeline: Arc<Mutex<Vec<(Instant, Pod)>>> = Arc::default();
    let recorder = {
        let (pods, timeline) = (pods.clone(), timeline.clone());
        tokio::spawn(async move {
            let config = watcher::Config::default().labels("pinot.controlplane.dev/cluster=bench");
            let mut events = std::pin::pin!(watcher(pods, config).applied_objects());
            while let Some(Ok(pod)) = events.next().await {
                timeline.lock().unwrap().push((Instant::now(), pod));
            }
        })
    };
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let patch = serde_json::json!({"spec": {"image": "apachepinot/pinot:1.3.0"}});
    let start = Instant::now();
    clusters.patch("bench", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    // The end: every pod on the new image and the cluster saying the rollout is complete,
    // seen by a watch (no polling delay in the measure).
    let config = watcher::Config::default().fields("metadata.name=bench");
    let mut cluster_events = std::pin::pin!(watcher(clusters.clone(), config).applied_objects());
    let deadline = tokio::time::sleep(Duration::from_secs(600));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => panic!("the upgrade did not complete in 600 s"),
            event = cluster_events.next() => {
                let Some(Ok(c)) = event else { continue };
                let settled = condition(&c, "Available").is_some_and(|(s, _)| s == "True")
                    && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
                if settled && all_on(&pods, "apachepinot/pinot:1.3.0").await {
                    break;
                }
            }
        }
    }
    let wall = start.elapsed();
    let critical = Duration::from_millis(ready_ms * PODS + load_ms * SERVERS);
    println!(
        "upgrade of {PODS} pods, one at a time, each ready {ready_ms} ms after it starts, servers serving {load_ms} ms later: wall {:.2} s, critical path {:.2} s, ratio {:.3}",
        wall.as_secs_f64(),
        critical.as_secs_f64(),
        wall.as_secs_f64() / critical.as_secs_f64()
    );
    recorder.abort();
    breakdown(&timeline.lock().unwrap(), start, start + wall);
    operator.stop().await;
    ns.cleanup().await;
}

async fn all_on(pods: &Api<Pod>, image: &str) -> bool {
    let Ok(list) = pods.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=bench")).await else {
        return false;
    };
    list.items.len() as u64 == PODS
        && list.items.iter().all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Where the time between the pods' own readiness delays goes, summed over the restarts: the
/// operator deciding to delete the next pod once the previous one is ready, the StatefulSet
/// controller recreating it, the scheduler binding it, and the simulated kubelet's start.
fn breakdown(timeline: &[(Instant, Pod)], start: Instant, end: Instant) {
    // First time each pod (by uid) was seen deleted, created, bound, ready.
    let mut first: BTreeMap<(String, &'static str), Instant> = BTreeMap::new();
    for (at, pod) in timeline {
        let uid = pod.uid().unwrap_or_default();
        let mut mark = |what| {
            first.entry((uid.clone(), what)).or_insert(*at);
        };
        mark("seen");
        if pod.metadata.deletion_timestamp.is_some() {
            mark("deleting");
        }
        if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            mark("bound");
        }
        if is_ready(pod) {
            mark("ready");
        }
    }
    let new: Vec<(&String, Instant)> = timeline
        .iter()
        .filter(|(_, p)| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("apachepinot/pinot:1.3.0"))
        .filter_map(|(_, p)| {
            let uid = p.metadata.uid.as_ref()?;
            Some((uid, *first.get(&(uid.clone(), "seen"))?))
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let mut steps: Vec<(Instant, Instant, Instant)> = new
        .iter()
        .filter_map(|(uid, seen)| {
            Some((*seen, *first.get(&((*uid).clone(), "bound"))?, *first.get(&((*uid).clone(), "ready"))?))
        })
        .collect();
    steps.sort();
    let mut deletes: Vec<Instant> =
        first.iter().filter(|((_, what), at)| *what == "deleting" && **at >= start).map(|(_, at)| *at).collect();
    deletes.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut decide, mut recreate, mut bind, mut start_ready) = (0.0, 0.0, 0.0, 0.0);
    let mut previous_ready = start;
    for (i, (created, bound, ready)) in steps.iter().enumerate() {
        let Some(deleted) = deletes.get(i) else { break };
        decide += ms(deleted.saturating_duration_since(previous_ready));
        recreate += ms(created.saturating_duration_since(*deleted));
        bind += ms(bound.saturating_duration_since(*created));
        start_ready += ms(ready.saturating_duration_since(*bound));
        previous_ready = *ready;
    }
    println!(
        "  over {} restarts: ready -> next delete (operator) {decide:.0} ms, delete -> recreated (StatefulSet controller) {recreate:.0} ms, created -> bound (scheduler) {bind:.0} ms, bound -> ready (kubelet incl. the pods' delay) {start_ready:.0} ms, last ready -> complete {:.0} ms",
        steps.len().min(deletes.len()),
        ms(end.saturating_duration_since(previous_ready))
    );
}
