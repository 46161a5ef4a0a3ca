//! Hot reload of a policy through the API, end to end.
//!
//! `make kube-up`, then `make bench-reload` (which checks the cluster before building; or
//! `cargo bench -p pinot-testbed --bench reload`). A PinotCluster decides with a PinotPolicy
//! whose module is in a ConfigMap. `PINOT_BENCH_RELOADS` times (default 12) a new module (the
//! bundled upgrade default, made unique by a custom section) is rolled out the way the README
//! says, with one `kubectl apply` of the ConfigMap holding it and of the PinotPolicy naming its
//! digest in `spec.sha256`, and the bench takes the time from the start of that `kubectl apply`
//! until
//! - the PinotPolicy's status reports the new digest: the module is active, and
//! - the PinotCluster's `status.policies` reports it: a pass of the cluster decided with it.
//!
//! Both are seen through watches on the API server, as a user's `kubectl get -w` would.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::{ByteString, api::core::v1::ConfigMap};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use pinot_crds::{PinotCluster, PinotPolicy};
use pinot_operator::{
    policy::{bundled, runtime::digest},
    policy_controller::LABEL_POLICY_MODULE,
};
use pinot_testbed::harness::{OperatorHandle, TestNamespace, kubectl, test_client, wait_for};
use serde_json::json;
use tokio::sync::mpsc;

const POLICY: &str = "bench-upgrade";
const CONFIGMAP: &str = "bench-policies";
const KEY: &str = "upgrade.wasm";

/// The bundled upgrade default with a custom section that makes its bytes (and digest) unique,
/// so that nothing comes from the operator's compiled cache.
fn unique_module(n: u32) -> Vec<u8> {
    let name = format!("reload-bench-{n:04}-{}", std::process::id());
    let mut m = bundled::UPGRADE_DEFAULT.to_vec();
    m.extend_from_slice(&[0, (name.len() + 1) as u8, name.len() as u8]);
    m.extend_from_slice(name.as_bytes());
    m
}

/// The ConfigMap and the PinotPolicy that roll out `module`, as one file for `kubectl apply`.
fn rollout(module: &[u8]) -> serde_json::Value {
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIGMAP.into()),
            labels: Some([(LABEL_POLICY_MODULE.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        binary_data: Some([(KEY.to_string(), ByteString(module.to_vec()))].into()),
        ..Default::default()
    };
    let mut configmap = serde_json::to_value(configmap).unwrap();
    configmap["apiVersion"] = json!("v1");
    configmap["kind"] = json!("ConfigMap");
    json!({"apiVersion": "v1", "kind": "List", "items": [
        configmap,
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy", "metadata": {"name": POLICY},
         "spec": {"kind": "upgrade", "module": {"configMap": {"name": CONFIGMAP, "key": KEY}}, "sha256": digest(module)}},
    ]})
}

/// Where a digest was seen first.
#[derive(Debug)]
enum Seen {
    /// The PinotPolicy's status: the module is active.
    Active(String, Instant),
    /// The PinotCluster's `status.policies`: a pass decided with it.
    Decided(String, Instant),
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: u32 = std::env::var("PINOT_BENCH_RELOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "bench-reload").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let dir = std::env::temp_dir().join(format!("pinot-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let apply = |n: u32, module: &[u8]| {
        let file = dir.join(format!("rollout-{n}.json"));
        std::fs::write(&file, serde_json::to_vec(&rollout(module)).unwrap()).unwrap();
        file
    };

    // A cluster deciding with the policy's first module.
    let first = unique_module(0);
    let file = apply(0, &first);
    kubectl(&["-n", &ns.name, "apply", "--server-side", "-f", file.to_str().unwrap()]).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let cluster: PinotCluster = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
        "metadata": {"name": "reloading"},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"},
                 "policies": {"upgrade": POLICY},
                 "pools": [{"name": "controller", "role": "controller", "replicas": 1, "storage": {"ephemeral": true}}]},
    }))
    .unwrap();
    clusters.create(&PostParams::default(), &cluster).await.unwrap();
    let upgrade_digest =
        |c: &PinotCluster| c.status.as_ref()?.policies.iter().find(|p| p.kind == "upgrade" && p.ready)?.digest.clone();
    wait_for("the cluster to decide with the first module", Duration::from_secs(120), || async {
        let c = clusters.get("reloading").await.ok()?;
        (upgrade_digest(&c)? == digest(&first)).then_some(())
    })
    .await;

    let (seen, mut sightings) = mpsc::unbounded_channel();
    let policies: Api<PinotPolicy> = Api::namespaced(client.clone(), &ns.name);
    let s = seen.clone();
    let policy_watch = tokio::spawn(async move {
        let mut events = Box::pin(watcher(policies, watcher::Config::default()).applied_objects());
        while let Ok(Some(p)) = events.try_next().await {
            if let Some(d) = p.status.and_then(|s| s.digest) {
                let _ = s.send(Seen::Active(d, Instant::now()));
            }
        }
    });
    let watched = clusters.clone();
    let cluster_watch = tokio::spawn(async move {
        let mut events = Box::pin(watcher(watched, watcher::Config::default()).applied_objects());
        while let Ok(Some(c)) = events.try_next().await {
            if let Some(d) = upgrade_digest(&c) {
                let _ = seen.send(Seen::Decided(d, Instant::now()));
            }
        }
    });

    let (mut kubectl_times, mut active, mut decided) = (vec![], vec![], vec![]);
    for n in 1..=rounds {
        let module = unique_module(n);
        let expected = digest(&module);
        let file = apply(n, &module);
        let start = Instant::now();
        kubectl(&["-n", &ns.name, "apply", "--server-side", "-f", file.to_str().unwrap()]).await;
        kubectl_times.push(start.elapsed());
        let (mut is_active, mut has_decided) = (None, None);
        while is_active.is_none() || has_decided.is_none() {
            let sighting = tokio::time::timeout(Duration::from_secs(60), sightings.recv())
                .await
                .unwrap_or_else(|_| panic!("module {n} ({expected}) was not active and decided with within 60 s"))
                .expect("the watches run");
            match sighting {
                Seen::Active(d, at) if d == expected && is_active.is_none() => is_active = Some(at - start),
                Seen::Decided(d, at) if d == expected && has_decided.is_none() => has_decided = Some(at - start),
                _ => {}
            }
        }
        active.extend(is_active);
        decided.extend(has_decided);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    policy_watch.abort();
    cluster_watch.abort();

    let ms = |v: &mut Vec<Duration>| {
        v.sort();
        (v[v.len() / 2].as_secs_f64() * 1e3, v[v.len() - 1].as_secs_f64() * 1e3)
    };
    let (k50, kmax) = ms(&mut kubectl_times);
    let (a50, amax) = ms(&mut active);
    let (d50, dmax) = ms(&mut decided);
    println!("hot reload through the API, {rounds} rollouts (kubectl apply of the ConfigMap and spec.sha256):");
    println!("  kubectl apply itself:                       p50 {k50:.1} ms, max {kmax:.1} ms");
    println!("  kubectl apply -> module active (PinotPolicy): p50 {a50:.1} ms, max {amax:.1} ms");
    println!(
        "  kubectl apply -> first decision with it (PinotCluster status.policies): p50 {d50:.1} ms, max {dmax:.1} ms"
    );
    operator.stop().await;
    ns.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
