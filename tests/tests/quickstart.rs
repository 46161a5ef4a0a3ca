//! End to end: the sandbox's quickstart cluster on the local control plane, checked with
//! kubectl as users check it, and against the simulated Pinot controller.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, kubectl, repo_root, simulator_admin_url, test_client, wait_for,
};
use serde_json::Value;

async fn simulated_instances(ns: &str) -> Option<Vec<Value>> {
    let url = simulator_admin_url(ns, "quickstart");
    let v: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
    Some(v["instances"].as_object()?.values().cloned().collect())
}

#[tokio::test]
async fn quickstart_becomes_available_and_every_pod_is_a_live_pinot_instance() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "quickstart").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let manifest = repo_root().join("deploy/examples/quickstart.yaml");

    kubectl(&["-n", &ns.name, "apply", "-f", manifest.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/quickstart", "--timeout=180s"]).await;

    // The printer columns, as `kubectl get -o wide` shows them.
    let wide = kubectl(&["-n", &ns.name, "get", "pinotclusters", "-o", "wide"]).await;
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "AVAILABLE", "READY", "PROGRESSING", "DEGRADED", "PAUSED", "IMAGE", "MESSAGE", "AGE"],
        "{wide}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["quickstart", "True", "7/7", "False", "False", "false", "apachepinot/pinot:1.2.0"],
        "{wide}"
    );
    // Short name and category work too.
    assert!(kubectl(&["-n", &ns.name, "get", "pinot"]).await.contains("quickstart"));

    // Every pod became a live instance of the simulated Pinot cluster, with Pinot's id.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pod_list = pods.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=quickstart")).await.unwrap();
    assert_eq!(pod_list.items.len(), 7);
    let expected: Vec<String> = pod_list
        .iter()
        .map(|p| {
            let role = p.labels()["pinot.controlplane.dev/role"].clone();
            let (prefix, port) = match role.as_str() {
                "controller" => ("Controller", 9000),
                "broker" => ("Broker", 8099),
                "server" => ("Server", 8098),
                _ => ("Minion", 9514),
            };
            let pool = &p.labels()["pinot.controlplane.dev/pool"];
            format!("{prefix}_{}.quickstart-{pool}-headless.{}.svc.cluster.local_{port}", p.name_any(), ns.name)
        })
        .collect();
    let instances = simulated_instances(&ns.name).await.expect("the simulated cluster exists");
    for id in &expected {
        let instance = instances
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} registered: {instances:?}"));
        assert_eq!(instance["live"], true, "{id} is live");
    }
    assert_eq!(instances.len(), 7);

    // The operator sees the same through the controller's API.
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let cluster = wait_for("status to report 7 live Pinot instances", Duration::from_secs(30), || async {
        let c = clusters.get("quickstart").await.ok()?;
        let p = c.status.as_ref()?.pinot.clone()?;
        (p.reachable && p.live_instances == 7).then_some(c)
    })
    .await;
    for pool in &cluster.status.as_ref().unwrap().pools {
        assert_eq!(pool.live_instances, Some(pool.replicas), "pool {}", pool.name);
    }
    let description = kubectl(&["-n", &ns.name, "describe", "pinotcluster", "quickstart"]).await;
    // One event for what the first pass created, naming each object.
    assert!(
        description.lines().any(|l| l.contains("Created") && l.contains("StatefulSet quickstart-server-offline")),
        "{description}"
    );

    // Deleting the cluster stops every pod: the instances stay known to Pinot, not live.
    kubectl(&["-n", &ns.name, "delete", "pinotcluster", "quickstart", "--wait=false"]).await;
    wait_for("every Pinot instance to go offline", Duration::from_secs(90), || async {
        let instances = simulated_instances(&ns.name).await?;
        (instances.len() == 7 && instances.iter().all(|i| i["live"] == false)).then_some(())
    })
    .await;

    operator.stop().await;
    ns.cleanup().await;
}
