//! Upgrade wall time against the time the pods themselves need.
//!
//! `make kube-up`, then `PINOT_TEST_KUBECONFIG=.local/kube/kubeconfig cargo bench -p
//! pinot-testbed --bench upgrade`. A cluster of 6 pods (controller, broker, 3 servers, minion)
//! whose pods each take `PINOT_BENCH_READY_MS` (default 5000) to become ready after they start
//! (and no time to shut down) is upgraded with the bundled policy, one pod at a time and no drain: every pod is on the
//! critical path, so the pods need 6 × that. The benchmark prints the wall time from the image
//! change to the cluster reporting the rollout complete, and its ratio to that sum (the
//! operator, the StatefulSet controller and the simulated kubelet add the rest).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{OperatorHandle, TestNamespace, condition, kubectl, test_client, wait_for};

const PODS: u64 = 6;

fn cluster(ready_ms: u64) -> String {
    let pool = |name: &str, role: &str, replicas: u32, zone: &str| {
        format!(
            "    - {{name: {name}, role: {role}, replicas: {replicas}, zone: {zone}, podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: \"{ready_ms}\", sim.pinot.controlplane.dev/shutdown-after-ms: \"0\"}}}}}}\n"
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
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "bench-upgrade").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}.yaml", ns.name));
    std::fs::write(&file, cluster(ready_ms)).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/bench", "--timeout=300s"]).await;

    let start = Instant::now();
    let patch = r#"{"spec":{"image":"apachepinot/pinot:1.3.0"}}"#;
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/bench", "--type=merge", "-p", patch]).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the upgrade to complete", Duration::from_secs(600), || async {
        let list = pods.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=bench")).await.ok()?;
        let c = clusters.get("bench").await.ok()?;
        let done = list.items.len() as u64 == PODS
            && list
                .items
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("apachepinot/pinot:1.3.0"))
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;
    let wall = start.elapsed();
    let critical = Duration::from_millis(ready_ms * PODS);
    println!(
        "upgrade of {PODS} pods, one at a time, each ready {ready_ms} ms after it starts: wall {:.2} s, critical path {:.2} s, ratio {:.3}",
        wall.as_secs_f64(),
        critical.as_secs_f64(),
        wall.as_secs_f64() / critical.as_secs_f64()
    );
    operator.stop().await;
    ns.cleanup().await;
}
