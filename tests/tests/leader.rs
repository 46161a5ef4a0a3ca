//! Two operators with leader election on the local control plane: one leads, the other stands
//! by; the leader is killed in the middle of an upgrade and the standby finishes it without
//! restarting any pod twice.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use pinot_crds::PinotCluster;
use pinot_operator::leader::LeaderConfig;
use pinot_testbed::harness::{OperatorHandle, TestNamespace, condition, kubectl, test_client, wait_for};

const CLUSTER: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: le
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  upgrade:
    drainSeconds: 0
  pools:
    - name: controller
      role: controller
      storage: {ephemeral: true}
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "1000"}}
    - name: broker
      role: broker
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "1000"}}
    - name: server
      role: server
      storage: {ephemeral: true}
      replicas: 3
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "1000"}}
"#;

const NEW: &str = "apachepinot/pinot:1.3.0";

fn image(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.containers[0].image.as_deref()).unwrap_or_default()
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies_mid_upgrade_and_restarts_no_pod_twice() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "leader").await;
    let config = |identity: &str| LeaderConfig {
        namespace: ns.name.clone(),
        name: "pinot-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(500),
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = || async { leases.get_opt("pinot-operator").await.ok().flatten()?.spec?.holder_identity };
    let a = OperatorHandle::start_elected(&client, &ns.name, config("a"));
    wait_for("a to lead", Duration::from_secs(30), || async { (holder().await.as_deref() == Some("a")).then_some(()) })
        .await;
    let b = OperatorHandle::start_elected(&client, &ns.name, config("b"));

    // Every pod the StatefulSets ever create, by name.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let recorder = {
        let (pods, seen) = (pods.clone(), seen.clone());
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default()).default_backoff().applied_objects().boxed();
            while let Some(Ok(pod)) = stream.next().await {
                seen.lock().unwrap().entry(pod.name_any()).or_default().insert(pod.uid().unwrap_or_default());
            }
        })
    };

    let file = std::env::temp_dir().join(format!("{}-le.yaml", ns.name));
    std::fs::write(&file, CLUSTER).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/le", "--timeout=120s"]).await;
    let patch = format!(r#"{{"spec":{{"image":"{NEW}"}}}}"#);
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/le", "--type=merge", "-p", &patch]).await;

    // Kill the leader once two pods run the new image: its task is aborted wherever it is, and
    // its Lease is not given up.
    wait_for("two pods upgraded", Duration::from_secs(120), || async {
        let list = pods.list(&Default::default()).await.ok()?;
        (list.items.iter().filter(|p| image(p) == NEW).count() >= 2).then_some(())
    })
    .await;
    drop(a);

    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the standby to finish the upgrade", Duration::from_secs(180), || async {
        let list = pods.list(&Default::default()).await.ok()?;
        let c = clusters.get("le").await.ok()?;
        let done = list.items.len() == 5
            && list.items.iter().all(|p| image(p) == NEW)
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;
    assert_eq!(holder().await.as_deref(), Some("b"), "the standby leads now");
    recorder.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    for (pod, uids) in &seen {
        assert_eq!(uids.len(), 2, "{pod} was created {} times (install and one restart expected)", uids.len());
    }
    b.stop().await;
    ns.cleanup().await;
}
