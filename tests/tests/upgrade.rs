//! End to end: an image change rolls out pod by pod, decided by the bundled upgrade policy, on
//! the local control plane with the simulated kubelet and Pinot controller.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{core::v1::Pod, events::v1::Event};
use kube::{Api, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, kubectl, simulator_admin_url, test_client, wait_for,
};
use serde_json::Value;

const CLUSTER: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: up
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  pools:
    - name: controller
      role: controller
      replicas: 1
      zone: zone-a
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: broker
      role: broker
      replicas: 1
      zone: zone-a
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: server
      role: server
      replicas: 3
      zone: zone-b
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;

async fn pods(client: &kube::Client, ns: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=up")).await.unwrap().items
}

fn image(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default()
}

#[tokio::test]
async fn an_image_change_restarts_every_pod_once_in_order_with_queries_off_around_each_server() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}-cluster.yaml", ns.name));
    std::fs::write(&file, CLUSTER).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/up", "--timeout=180s"]).await;
    let before: BTreeMap<String, String> =
        pods(&client, &ns.name).await.iter().map(|p| (p.name_any(), p.uid().unwrap())).collect();
    assert_eq!(before.len(), 5);

    kubectl(&[
        "-n",
        &ns.name,
        "patch",
        "pinotcluster/up",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"apachepinot/pinot:1.3.0"}}"#,
    ])
    .await;

    // Nothing restarts by itself: the upgrade ends when every pod runs the new image and the
    // cluster is available and no longer progressing.
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the upgrade to complete", Duration::from_secs(240), || async {
        let pods = pods(&client, &ns.name).await;
        let c = clusters.get("up").await.ok()?;
        let done = pods.len() == 5
            && pods.iter().all(|p| image(p) == "apachepinot/pinot:1.3.0")
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;

    // Every pod was replaced exactly once.
    let after = pods(&client, &ns.name).await;
    for pod in &after {
        assert_ne!(before[&pod.name_any()], pod.uid().unwrap(), "{} was replaced", pod.name_any());
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let mut restarts: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RestartedPod"))
        .collect();
    restarts.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    let order: Vec<String> = restarts.iter().filter_map(|e| e.related.as_ref()?.name.clone()).collect();
    // Controllers, then brokers, then servers one at a time from the highest ordinal.
    assert_eq!(order, ["up-controller-0", "up-broker-0", "up-server-2", "up-server-1", "up-server-0"], "{order:?}");
    for e in &restarts {
        assert_eq!(e.series.as_ref().map_or(1, |s| s.count), 1, "one restart event each: {e:?}");
    }

    // Pinot saw each server's queries disabled before its restart and enabled after, in turn.
    let log: Value =
        reqwest::get(format!("{}/requests", simulator_admin_url(&ns.name, "up"))).await.unwrap().json().await.unwrap();
    let steps: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.ends_with("/state")))
        .map(|r| {
            let pod = r["path"].as_str().unwrap().split(['_', '.']).nth(1).unwrap_or_default().to_string();
            format!("{} {pod}", r["query"].as_str().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        steps,
        [
            "state=queries_disable up-server-2",
            "state=queries_enable up-server-2",
            "state=queries_disable up-server-1",
            "state=queries_enable up-server-1",
            "state=queries_disable up-server-0",
            "state=queries_enable up-server-0",
        ],
        "{steps:?}"
    );

    operator.stop().await;
    ns.cleanup().await;
}
