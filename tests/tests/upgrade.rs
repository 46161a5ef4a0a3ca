//! End to end: an image change rolls out pod by pod, decided by the bundled upgrade policy, on
//! the local control plane with the simulated kubelet and Pinot controller.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Pod},
};
use kube::{Api, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, kubectl, pod_creations, restart_events, simulator_admin_url, test_client,
    wait_for,
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
  upgrade:
    podReadyTimeoutSeconds: 5
    drainSeconds: 1
  pools:
    - name: controller
      role: controller
      storage: {ephemeral: true}
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
      storage: {ephemeral: true}
      replicas: 3
      zone: zone-b
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;

async fn pods(client: &kube::Client, ns: &str) -> Vec<Pod> {
    pods_of(client, ns, "up").await
}

async fn pods_of(client: &kube::Client, ns: &str, cluster: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("pinot.controlplane.dev/cluster={cluster}");
    api.list(&ListParams::default().labels(&selector)).await.unwrap().items
}

fn image(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default()
}

async fn install(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    install_named(client, ns, "up").await
}

/// Installs the test cluster under `name` and returns its pods' uids.
async fn install_named(client: &kube::Client, ns: &str, name: &str) -> BTreeMap<String, String> {
    install_image(client, ns, name, "apachepinot/pinot:1.2.0").await
}

/// Installs the test cluster under `name` running `image` and returns its pods' uids.
async fn install_image(client: &kube::Client, ns: &str, name: &str, image: &str) -> BTreeMap<String, String> {
    let file = std::env::temp_dir().join(format!("{ns}-{name}-cluster.yaml"));
    let manifest = CLUSTER
        .replace("name: up\n", &format!("name: {name}\n"))
        .replace("image: apachepinot/pinot:1.2.0\n", &format!("image: {image}\n"));
    std::fs::write(&file, manifest).unwrap();
    kubectl(&["-n", ns, "apply", "-f", file.to_str().unwrap()]).await;
    let resource = format!("pinotcluster/{name}");
    kubectl(&["-n", ns, "wait", "--for=condition=Available", &resource, "--timeout=180s"]).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("pinot.controlplane.dev/cluster={name}");
    let list = api.list(&ListParams::default().labels(&selector)).await.unwrap();
    let uids: BTreeMap<String, String> = list.iter().map(|p| (p.name_any(), p.uid().unwrap())).collect();
    assert_eq!(uids.len(), 5);
    uids
}

async fn set_image(ns: &str, image: &str) {
    let patch = format!(r#"{{"spec":{{"image":"{image}"}}}}"#);
    kubectl(&["-n", ns, "patch", "pinotcluster/up", "--type=merge", "-p", &patch]).await;
}

/// Waits until every pod runs `image` and the cluster is available and no longer progressing.
async fn wait_rolled_out(client: &kube::Client, ns: &str, image: &str) {
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("every pod to run {image}"), Duration::from_secs(240), || async {
        let pods = pods(client, ns).await;
        let c = clusters.get("up").await.ok()?;
        let done = pods.len() == 5
            && pods.iter().all(|p| self::image(p) == image)
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False")
            && condition(&c, "Degraded").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;
}

/// How many times the StatefulSet controller created each pod (install included), from its
/// `SuccessfulCreate` events: what a user would look at to see how often a pod was replaced.
async fn creations(client: &kube::Client, ns: &str) -> BTreeMap<String, i32> {
    // The StatefulSet controller records its events asynchronously (and counts a repeated one
    // up in place), so the counts are read until they have not changed for two seconds.
    let mut last = pod_creations(client, ns).await;
    let mut stable_since = std::time::Instant::now();
    while stable_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = pod_creations(client, ns).await;
        if now != last {
            last = now;
            stable_since = std::time::Instant::now();
        }
    }
    last
}

/// Publishes a policy module in the watched ConfigMap `team-policies` under `key`.
async fn publish_module(client: &kube::Client, ns: &str, key: &str, module: Vec<u8>) {
    use kube::api::{Patch, PatchParams};
    use pinot_operator::policy_controller::LABEL_POLICY_MODULE;

    let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "team-policies", "labels": {LABEL_POLICY_MODULE: "true"}},
    }))
    .unwrap();
    cm.binary_data = Some(BTreeMap::from([(key.to_string(), ByteString(module))]));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.patch("team-policies", &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&cm)).await.unwrap();
}

/// The instance state changes (`PUT /instances/{id}/state`) the simulated Pinot controller of
/// cluster `up` received, in order.
async fn state_requests(ns: &str) -> Vec<Value> {
    state_requests_of(ns, "up").await
}

/// Those state changes as `"state=queries_disable <pod>"`.
async fn state_steps(ns: &str, cluster: &str) -> Vec<String> {
    let log = state_requests_of(ns, cluster).await;
    log.iter()
        .map(|r| {
            let pod = r["path"].as_str().unwrap().split(['_', '.']).nth(1).unwrap_or_default().to_string();
            format!("{} {pod}", r["query"].as_str().unwrap_or_default())
        })
        .collect()
}

async fn state_requests_of(ns: &str, cluster: &str) -> Vec<Value> {
    requests_of(ns, cluster)
        .await
        .into_iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.ends_with("/state")))
        .collect()
}

/// Every request the simulated controller of `cluster` received.
async fn requests_of(ns: &str, cluster: &str) -> Vec<Value> {
    pinot_testbed::workload::pinot_requests(&simulator_admin_url(ns, cluster)).await
}

/// A table with replication 2 and six segments on the cluster's three servers (every server
/// shares segments with both others); the audit counts from the moment every replica is served.
async fn replicated_table(ns: &str, cluster: &str) {
    pinot_testbed::workload::table_with_segments(ns, cluster, "DefaultTenant", 2, 6).await;
    let r = reqwest::Client::new().delete(format!("{}/audit", simulator_admin_url(ns, cluster))).send().await.unwrap();
    assert!(r.status().is_success());
}

/// An image change on a cluster of `release` (from `from` to `to`, both of that release): every
/// pod restarts once, in order, servers one at a time; the operator calls nothing the release
/// lacks; and at no moment did a server leave query routing while another server holding a
/// replica of one of its segments was out of it (the simulator's routing audit). The servers
/// take 1.5 s after their pod is Ready to serve again (segments loading, `shutdownInProgress`),
/// so a gate on readiness alone would show gaps.
async fn upgrade_on(release: &str, from: &str, to: &str) {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, &format!("upgrade-{}", release.replace('.', "-"))).await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let before = install_image(&client, &ns.name, "up", from).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let reported = clusters.get("up").await.unwrap().status.and_then(|s| s.pinot).and_then(|p| p.release);
    assert_eq!(reported.as_deref(), Some(release), "status.pinot.release");
    replicated_table(&ns.name, "up").await;
    set_image(&ns.name, to).await;
    // Nothing restarts by itself: the policy restarts pod after pod until all run the image.
    wait_rolled_out(&client, &ns.name, to).await;

    // Every pod was replaced exactly once.
    let after = pods(&client, &ns.name).await;
    for pod in &after {
        assert_ne!(before[&pod.name_any()], pod.uid().unwrap(), "{} was replaced", pod.name_any());
    }
    let restarts = restart_events(&client, &ns.name).await;
    let order: Vec<String> = restarts.iter().filter_map(|e| e.related.as_ref()?.name.clone()).collect();
    // Controllers, then brokers, then servers one at a time from the highest ordinal.
    assert_eq!(order, ["up-controller-0", "up-broker-0", "up-server-2", "up-server-1", "up-server-0"], "{order:?}");
    for e in &restarts {
        assert_eq!(e.series.as_ref().map_or(1, |s| s.count), 1, "one restart event each: {e:?}");
    }

    // Zero routing gaps, and every segment kept a routable replica throughout.
    let audit: Value =
        reqwest::get(format!("{}/audit", simulator_admin_url(&ns.name, "up"))).await.unwrap().json().await.unwrap();
    assert_eq!(audit["routingGaps"], serde_json::json!([]), "{audit}");
    assert!(audit["lowestRoutableReplicas"]["events_OFFLINE"].as_u64().is_some_and(|n| n >= 1), "{audit}");
    // Servers restart on SIGTERM: no instance state change, and nothing Pinot refused.
    assert_eq!(state_steps(&ns.name, "up").await, Vec::<String>::new());
    let refused: Vec<Value> = requests_of(&ns.name, "up")
        .await
        .into_iter()
        .filter(|r| r["status"].as_u64().is_some_and(|s| s == 400 || s == 405 || s == 415))
        .collect();
    assert_eq!(refused, Vec::<Value>::new(), "requests {release} refuses");
    let reported = clusters.get("up").await.unwrap().status.and_then(|s| s.pinot).and_then(|p| p.release);
    assert_eq!(reported.as_deref(), Some(release), "status.pinot.release after the upgrade");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn an_upgrade_on_1_2_0_restarts_pod_by_pod_with_no_routing_gap() {
    upgrade_on("1.2.0", "apachepinot/pinot:1.2.0", "apachepinot/pinot:1.2.0-21-openjdk").await;
}

#[tokio::test]
async fn an_upgrade_on_1_5_x_restarts_pod_by_pod_with_no_routing_gap() {
    upgrade_on("1.5.x", "apachepinot/pinot:1.5.0", "apachepinot/pinot:1.5.1").await;
}

#[tokio::test]
async fn an_upgrade_on_master_restarts_pod_by_pod_with_no_routing_gap() {
    upgrade_on(
        "master",
        "apachepinot/pinot:1.6.0-SNAPSHOT-210c2951e72",
        "apachepinot/pinot:1.6.0-SNAPSHOT-3f0ac31b9d0",
    )
    .await;
}

#[tokio::test]
async fn segments_in_error_after_a_servers_restart_halt_the_upgrade_although_its_pod_is_ready() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-error").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let before = install(&client, &ns.name).await;
    replicated_table(&ns.name, "up").await;
    // The first server to restart comes back with its segments in ERROR, which Pinot's
    // readiness counts as loaded: its pod turns Ready and Pinot clears its shutdown flag.
    let first = format!("Server_up-server-2.up-server-headless.{}.svc.cluster.local_8098", ns.name);
    let r = reqwest::Client::new()
        .put(format!("{}/faults", simulator_admin_url(&ns.name, "up")))
        .json(&serde_json::json!({"segmentErrorServers": [first]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    set_image(&ns.name, "apachepinot/pinot:1.2.0-21-openjdk").await;

    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let message = wait_for("Degraded naming the server with segments in ERROR", Duration::from_secs(120), || async {
        let c = clusters.get("up").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains(&first) && message.contains("ERROR")).then_some(message)
    })
    .await;
    assert!(message.contains("events_OFFLINE"), "{message}");
    // The restarted pod is Ready, yet no other server is touched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = pods(&client, &ns.name).await;
    let server2 = now.iter().find(|p| p.name_any() == "up-server-2").unwrap();
    assert_ne!(before["up-server-2"], server2.uid().unwrap(), "up-server-2 was restarted");
    assert!(
        server2
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        "its pod is Ready"
    );
    for pod in ["up-server-1", "up-server-0"] {
        let p = now.iter().find(|p| p.name_any() == pod).unwrap();
        assert_eq!(before[pod], p.uid().unwrap(), "{pod} untouched");
    }
    let audit: Value =
        reqwest::get(format!("{}/audit", simulator_admin_url(&ns.name, "up"))).await.unwrap().json().await.unwrap();
    assert_eq!(audit["routingGaps"], serde_json::json!([]), "{audit}");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn the_operator_killed_again_and_again_mid_upgrade_still_restarts_every_pod_exactly_once() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-kill").await;
    let mut operator = OperatorHandle::start(&client, &ns.name);
    install(&client, &ns.name).await;
    set_image(&ns.name, "apachepinot/pinot:1.3.0").await;
    // Kill the operator (its task is aborted wherever it is, as a killed process stops) each
    // time one more pod runs the new image, and start a new one.
    for updated in 1..=3 {
        wait_for(&format!("{updated} pods on the new image"), Duration::from_secs(120), || async {
            let n = pods(&client, &ns.name).await.iter().filter(|p| image(p) == "apachepinot/pinot:1.3.0").count();
            (n >= updated).then_some(())
        })
        .await;
        drop(operator);
        tokio::time::sleep(Duration::from_millis(300 * updated as u64)).await;
        operator = OperatorHandle::start(&client, &ns.name);
    }
    wait_rolled_out(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    let created = creations(&client, &ns.name).await;
    for pod in pods(&client, &ns.name).await {
        assert_eq!(
            created.get(&pod.name_any()),
            Some(&2),
            "{} created at install and once for the upgrade: {created:?}",
            pod.name_any()
        );
    }
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_broken_image_halts_after_the_first_pod_and_rolling_back_completes() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-broken").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let before = install(&client, &ns.name).await;
    set_image(&ns.name, "apachepinot/pinot:1.3.0-broken").await;

    // The controller goes first, never becomes ready, and the upgrade halts naming it.
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let message = wait_for("Degraded naming the stuck pod", Duration::from_secs(120), || async {
        let c = clusters.get("up").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("up-controller-0")).then_some(message)
    })
    .await;
    assert!(message.contains("timeout 5s") && message.contains("roll the spec back"), "{message}");
    let reason = clusters
        .get("up")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap()
        .reason;
    assert_eq!(reason, "UpgradeHalted");
    // No further pod was touched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for pod in pods(&client, &ns.name).await {
        if pod.name_any() != "up-controller-0" {
            assert_eq!(before[&pod.name_any()], pod.uid().unwrap(), "{} untouched", pod.name_any());
        }
    }
    let events =
        kubectl(&["-n", &ns.name, "get", "events", "--field-selector", "reason=UpgradeHalted", "-o", "name"]).await;
    assert!(!events.trim().is_empty(), "an UpgradeHalted event");

    // Rolling back replaces the stuck pod, and only it.
    set_image(&ns.name, "apachepinot/pinot:1.2.0").await;
    wait_rolled_out(&client, &ns.name, "apachepinot/pinot:1.2.0").await;
    for pod in pods(&client, &ns.name).await {
        if pod.name_any() != "up-controller-0" {
            assert_eq!(before[&pod.name_any()], pod.uid().unwrap(), "{} untouched by the rollback", pod.name_any());
        }
    }
    let created = creations(&client, &ns.name).await;
    assert_eq!(created.get("up-controller-0"), Some(&3), "install, broken, rolled back: {created:?}");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_cluster_switched_to_the_zone_at_a_time_policy_takes_every_server_of_a_zone_out_together() {
    use kube::api::PostParams;
    use pinot_operator::policy::{bundled, runtime::digest};

    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-zone").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    // The example manifest, with the module published in a ConfigMap and its digest filled in.
    let module =
        std::fs::read(std::path::Path::new(bundled::WASM_DIR).join("pinot_upgrade_zone_at_a_time.wasm")).unwrap();
    publish_module(&client, &ns.name, "zone-at-a-time.wasm", module.clone()).await;
    let manifest =
        std::fs::read_to_string(pinot_testbed::harness::repo_root().join("deploy/examples/policy/zone-at-a-time.yaml"))
            .unwrap()
            .replace("sha256:<the digest policy inspect printed>", &digest(&module));
    let file = std::env::temp_dir().join(format!("{}-policy.yaml", ns.name));
    std::fs::write(&file, manifest).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;

    let before = install(&client, &ns.name).await;
    // Switch the cluster to it by name; allow the whole server pool down at once.
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let mut c = clusters.get("up").await.unwrap();
    c.spec.policies =
        Some(pinot_crds::ClusterPolicies { upgrade: Some("zone-at-a-time".into()), ..Default::default() });
    c.spec.pools[2].max_unavailable = Some(3);
    c.metadata.managed_fields = None;
    clusters.replace("up", &PostParams::default(), &c).await.unwrap();
    wait_for("the cluster to report the chosen policy", Duration::from_secs(60), || async {
        let c = clusters.get("up").await.ok()?;
        let s = c.status?;
        s.policies.iter().any(|p| p.kind == "upgrade" && p.name == "zone-at-a-time" && p.ready).then_some(())
    })
    .await;

    set_image(&ns.name, "apachepinot/pinot:1.3.0").await;
    wait_rolled_out(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    for (pod, uid) in &before {
        let now = Api::<Pod>::namespaced(client.clone(), &ns.name).get(pod).await.unwrap();
        assert_ne!(now.uid().as_ref(), Some(uid), "{pod} replaced");
    }
    // Every server's queries went off before any server restarted, and came back after: on
    // 1.2.0, which has no `queries_disable`, by rewriting each instance's whole config.
    assert_eq!(state_requests(&ns.name).await, Vec::<Value>::new(), "no PUT /instances/{{id}}/state on 1.2.0");
    let updates: Vec<Value> = requests_of(&ns.name, "up")
        .await
        .into_iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.matches('/').count() == 2))
        .collect();
    let flags: Vec<Value> = updates
        .iter()
        .map(|r| serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap()["queriesDisabled"].clone())
        .collect();
    assert_eq!(flags, [true, true, true, false, false, false].map(Value::Bool), "{updates:?}");
    for r in &updates {
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(body["tags"], serde_json::json!(["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"]), "{body}");
        assert_eq!(body["type"], "SERVER", "{body}");
    }
    let created = creations(&client, &ns.name).await;
    for pod in before.keys() {
        assert_eq!(created.get(pod), Some(&2), "{pod} restarted once: {created:?}");
    }
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn with_one_upgrade_slot_a_bad_image_is_caught_on_the_first_cluster_and_the_second_never_starts() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-cap").await;
    let operator = OperatorHandle::start_capped(&client, &ns.name, 1);
    install_named(&client, &ns.name, "up").await;
    let second = install_named(&client, &ns.name, "second").await;

    set_image(&ns.name, "apachepinot/pinot:1.3.0-broken").await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the first cluster to halt", Duration::from_secs(120), || async {
        let c = clusters.get("up").await.ok()?;
        (condition(&c, "Degraded")?.0 == "True").then_some(())
    })
    .await;
    let patch = r#"{"spec":{"image":"apachepinot/pinot:1.3.0-broken"}}"#;
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/second", "--type=merge", "-p", patch]).await;
    let message = wait_for("the second cluster to wait for a slot", Duration::from_secs(60), || async {
        let c = clusters.get("second").await.ok()?;
        let (status, message) = condition(&c, "Progressing")?;
        (status == "True" && message.contains("waiting for an upgrade slot")).then_some(message)
    })
    .await;
    assert!(message.contains(&format!("{}/up", ns.name)), "{message}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (pod, uid) in &second {
        assert_eq!(api.get(pod).await.unwrap().uid().as_ref(), Some(uid), "{pod} of the second cluster untouched");
    }
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_policy_hot_reloaded_mid_upgrade_finishes_it_without_restarting_any_pod_twice() {
    use kube::api::{Patch, PatchParams};
    use pinot_operator::policy::{bundled, runtime::digest};

    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-reload").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let wasm = |name: &str| std::fs::read(std::path::Path::new(bundled::WASM_DIR).join(name)).unwrap();
    let (first, second) = (wasm("pinot_upgrade_default.wasm"), wasm("pinot_upgrade_zone_at_a_time.wasm"));
    publish_module(&client, &ns.name, "upgrade.wasm", first.clone()).await;
    let policies: Api<pinot_crds::PinotPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy = |module: &[u8]| {
        serde_json::json!({
            "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy", "metadata": {"name": "team"},
            "spec": {"kind": "upgrade", "module": {"configMap": {"name": "team-policies", "key": "upgrade.wasm"}}, "sha256": digest(module)},
        })
    };
    policies.patch("team", &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&policy(&first))).await.unwrap();

    let before = install(&client, &ns.name).await;
    let patch = r#"{"spec":{"policies":{"upgrade":"team"}}}"#;
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/up", "--type=merge", "-p", patch]).await;
    set_image(&ns.name, "apachepinot/pinot:1.3.0").await;

    // Once the controller is done, replace the module (ConfigMap and digest, as a team's CD would).
    wait_for("the first pod on the new image", Duration::from_secs(60), || async {
        pods(&client, &ns.name).await.iter().any(|p| image(p) == "apachepinot/pinot:1.3.0").then_some(())
    })
    .await;
    publish_module(&client, &ns.name, "upgrade.wasm", second.clone()).await;
    policies.patch("team", &PatchParams::apply("pinot-tests").force(), &Patch::Apply(&policy(&second))).await.unwrap();

    wait_rolled_out(&client, &ns.name, "apachepinot/pinot:1.3.0").await;
    let created = creations(&client, &ns.name).await;
    for pod in before.keys() {
        assert_eq!(created.get(pod), Some(&2), "{pod} restarted once: {created:?}");
    }
    // The first restart was decided by the first module, the last one by its replacement.
    let restarts = restart_events(&client, &ns.name).await;
    let notes: Vec<String> = restarts.iter().map(|e| e.note.clone().unwrap_or_default()).collect();
    assert_eq!(notes.len(), 5, "{notes:?}");
    assert!(notes[0].contains("team: upgrade-default"), "{notes:?}");
    assert!(notes[4].contains("team: upgrade-zone-at-a-time"), "{notes:?}");
    let c = Api::<PinotCluster>::namespaced(client.clone(), &ns.name).get("up").await.unwrap();
    let active = c.status.unwrap().policies.into_iter().find(|p| p.kind == "upgrade").unwrap();
    assert_eq!(active.digest, Some(digest(&second)));
    operator.stop().await;
    ns.cleanup().await;
}

/// Three zones, every role, pools of different sizes and resources.
const THREE_ZONES: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: zones
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  upgrade:
    podReadyTimeoutSeconds: 30
    drainSeconds: 1
  pools:
    - {name: controller, role: controller, replicas: 1, zone: zone-a, storage: {ephemeral: true}, podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}}
    - {name: broker-b, role: broker, replicas: 1, zone: zone-b, podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}}
    - {name: broker-a, role: broker, replicas: 1, zone: zone-a, podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}}
    - name: server-a
      role: server
      storage: {ephemeral: true}
      replicas: 2
      zone: zone-a
      resources: {requests: {cpu: 100m, memory: 256Mi}}
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: server-b
      role: server
      storage: {ephemeral: true}
      replicas: 2
      zone: zone-b
      resources: {requests: {cpu: 200m, memory: 512Mi}}
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - {name: server-c, role: server, replicas: 1, zone: zone-c, storage: {ephemeral: true}, podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}}
    - {name: minion, role: minion, replicas: 1, zone: zone-c, podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}}
"#;

#[tokio::test]
async fn a_three_zone_cluster_upgrades_role_by_role_zone_by_zone_and_never_has_two_pods_of_a_pool_down() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "upgrade-zones").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}-zones.yaml", ns.name));
    std::fs::write(&file, THREE_ZONES).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/zones", "--timeout=180s"]).await;
    let replicas = BTreeMap::from([
        ("controller", 1),
        ("broker-a", 1),
        ("broker-b", 1),
        ("server-a", 2),
        ("server-b", 2),
        ("server-c", 1),
        ("minion", 1),
    ]);
    let total: usize = replicas.values().sum();

    // While the upgrade runs, sample every pool's unavailable pods (replicas minus the pods
    // that are ready and not terminating), as a user watching `kubectl get pods -w` would.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (client, ns, sampling, replicas) = (client.clone(), ns.name.clone(), sampling.clone(), replicas.clone());
        async move {
            let mut worst: BTreeMap<String, usize> = BTreeMap::new();
            let mut samples = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let pods = pods_of(&client, &ns, "zones").await;
                for (pool, want) in &replicas {
                    let available = pods
                        .iter()
                        .filter(|p| p.labels().get("pinot.controlplane.dev/pool").is_some_and(|l| l == pool))
                        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
                        .count();
                    let down = worst.entry(pool.to_string()).or_default();
                    *down = (*down).max(want - available.min(*want));
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (worst, samples)
        }
    });

    let patch = r#"{"spec":{"image":"apachepinot/pinot:1.3.0"}}"#;
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/zones", "--type=merge", "-p", patch]).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("every pod to run 1.3.0", Duration::from_secs(300), || async {
        let pods = pods_of(&client, &ns.name, "zones").await;
        let c = clusters.get("zones").await.ok()?;
        let done = pods.len() == total
            && pods.iter().all(|p| image(p) == "apachepinot/pinot:1.3.0")
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        done.then_some(())
    })
    .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (worst, samples) = sampler.await.unwrap();
    assert!(samples > 20, "sampled the pools {samples} times");
    // A pool of one pod is down while it restarts, a larger pool one pod at a time: never more.
    for (pool, down) in &worst {
        assert_eq!(*down, 1, "at most (and, while it restarted, exactly) one pod of {pool} unavailable: {worst:?}");
    }

    // Controllers; brokers zone by zone; servers zone by zone, one pod at a time from the
    // highest ordinal; minions last.
    let order: Vec<String> =
        restart_events(&client, &ns.name).await.iter().filter_map(|e| e.related.as_ref()?.name.clone()).collect();
    assert_eq!(
        order,
        [
            "zones-controller-0",
            "zones-broker-a-0",
            "zones-broker-b-0",
            "zones-server-a-1",
            "zones-server-a-0",
            "zones-server-b-1",
            "zones-server-b-0",
            "zones-server-c-0",
            "zones-minion-0",
        ],
        "{order:?}"
    );
    // Servers take themselves out of routing on SIGTERM: no instance state was changed.
    assert_eq!(state_steps(&ns.name, "zones").await, Vec::<String>::new());
    let created = creations(&client, &ns.name).await;
    for pod in pods_of(&client, &ns.name, "zones").await {
        assert_eq!(created.get(&pod.name_any()), Some(&2), "{} restarted once: {created:?}", pod.name_any());
    }
    operator.stop().await;
    ns.cleanup().await;
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
