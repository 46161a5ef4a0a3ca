//! End to end: pools scale as the scaling policy decides, on the local control plane with the
//! simulated kubelet and Pinot controller. A server leaves only once Pinot reports it empty,
//! and no table drops below its replication; the simulator's audit is the witness.

use std::{collections::BTreeMap, path::Path, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use pinot_crds::{PinotCluster, PinotPolicy};
use pinot_operator::policy::{bundled, runtime::digest};
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, controller_url_template, kubectl, simulator_admin_url, test_client,
    wait_for,
};
use pinot_testbed::workload::table_with_segments;
use serde_json::{Value, json};

const TABLE: &str = "events_OFFLINE";

fn cluster_yaml(name: &str, servers: u32, scaling_policy: Option<&str>) -> String {
    cluster_yaml_of(name, servers, scaling_policy, "apachepinot/pinot:1.2.0")
}

fn cluster_yaml_of(name: &str, servers: u32, scaling_policy: Option<&str>, image: &str) -> String {
    let policies = scaling_policy.map(|p| format!("  policies: {{scaling: {p}}}\n")).unwrap_or_default();
    format!(
        r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: {name}
spec:
  image: {image}
  zookeeper:
    connectString: zookeeper:2181
{policies}  pools:
    - name: controller
      role: controller
      storage: {{ephemeral: true}}
      replicas: 1
      zone: zone-a
      podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: "300"}}}}
    - name: broker
      role: broker
      replicas: 1
      zone: zone-a
      podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: "300"}}}}
    - name: server
      role: server
      storage: {{ephemeral: true}}
      replicas: {servers}
      zones: [zone-b, zone-c]
      podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: "300"}}}}
"#
    )
}

async fn install(ns: &str, name: &str, servers: u32, scaling_policy: Option<&str>) {
    install_text(ns, name, &cluster_yaml(name, servers, scaling_policy)).await;
}

async fn install_text(ns: &str, name: &str, manifest: &str) {
    let file = std::env::temp_dir().join(format!("{ns}-{name}-cluster.yaml"));
    std::fs::write(&file, manifest).unwrap();
    kubectl(&["-n", ns, "apply", "-f", file.to_str().unwrap()]).await;
}

/// Every request Pinot received, as the simulator logged it.
async fn requests(ns: &str, name: &str) -> Vec<Value> {
    pinot_testbed::workload::pinot_requests(&simulator_admin_url(ns, name)).await
}

async fn wait_available(ns: &str, name: &str) {
    kubectl(&["-n", ns, "wait", "--for=condition=Available", &format!("pinotcluster/{name}"), "--timeout=180s"]).await;
}

fn pinot_url(ns: &str, name: &str) -> String {
    controller_url_template().replace("{namespace}", ns).replace("{name}", name)
}

/// Segments of the table per server, as the simulator holds them.
async fn segments(ns: &str, name: &str) -> BTreeMap<String, usize> {
    let counts: Value =
        reqwest::get(format!("{}/segments", simulator_admin_url(ns, name))).await.unwrap().json().await.unwrap();
    counts
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(server, tables)| Some((server.clone(), tables.get(TABLE)?.as_u64()? as usize)))
        .collect()
}

async fn audit(ns: &str, name: &str) -> Value {
    reqwest::get(format!("{}/audit", simulator_admin_url(ns, name))).await.unwrap().json().await.unwrap()
}

async fn reset_audit(ns: &str, name: &str) {
    let r = reqwest::Client::new().delete(format!("{}/audit", simulator_admin_url(ns, name))).send().await.unwrap();
    assert!(r.status().is_success());
}

async fn slow_rebalances(ns: &str, name: &str, step_ms: u64) {
    let r = reqwest::Client::new()
        .put(format!("{}/faults", simulator_admin_url(ns, name)))
        .json(&json!({"rebalanceStepMs": step_ms}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The server instances Pinot knows, with their tags.
async fn servers(ns: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let url = pinot_url(ns, name);
    let list: Value = reqwest::get(format!("{url}/instances")).await.unwrap().json().await.unwrap();
    let mut out = BTreeMap::new();
    for id in
        list["instances"].as_array().unwrap().iter().filter_map(Value::as_str).filter(|i| i.starts_with("Server_"))
    {
        // An instance dropped between the two calls is gone.
        let Ok(info) = reqwest::get(format!("{url}/instances/{id}")).await.unwrap().error_for_status() else {
            continue;
        };
        let info: Value = info.json().await.unwrap();
        let tags = info["tags"].as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_string).collect();
        out.insert(id.to_string(), tags);
    }
    out
}

async fn server_pods(client: &Client, ns: &str, name: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("pinot.controlplane.dev/cluster={name},pinot.controlplane.dev/pool=server");
    api.list(&ListParams::default().labels(&selector)).await.unwrap().items
}

async fn set_servers(ns: &str, name: &str, replicas: u32) {
    let patch = json!([{"op": "replace", "path": "/spec/pools/2/replicas", "value": replicas}]).to_string();
    kubectl(&["-n", ns, "patch", &format!("pinotcluster/{name}"), "--type=json", "-p", &patch]).await;
}

/// Pinot requests the operator made that Pinot refused with 409 (e.g. dropping a server that
/// still holds segments).
async fn conflicts(ns: &str, name: &str) -> Vec<String> {
    let log: Value =
        reqwest::get(format!("{}/requests", simulator_admin_url(ns, name))).await.unwrap().json().await.unwrap();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 409)
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect()
}

/// Waits until the server pool has `n` pods, Pinot knows exactly `n` servers and the cluster
/// is no longer progressing; returns every `Progressing` message seen on the way.
async fn wait_scaled(client: &Client, ns: &str, name: &str, n: usize, timeout: Duration) -> Vec<String> {
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    wait_for(&format!("{n} servers and Progressing False"), timeout, || async {
        let c = clusters.get(name).await.ok()?;
        if let Some((_, message)) = condition(&c, "Progressing") {
            let mut seen = seen.lock().unwrap();
            if seen.last() != Some(&message) {
                seen.push(message);
            }
        }
        let pods = server_pods(client, ns, name).await.len();
        let known = servers(ns, name).await.len();
        let done = pods == n
            && known == n
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False")
            && condition(&c, "Available").is_some_and(|(s, _)| s == "True");
        done.then_some(())
    })
    .await;
    seen.into_inner().unwrap()
}

fn assert_audit_clean(audit: &Value, replication: u64) {
    assert_eq!(audit["removedHoldingSegments"], json!([]), "a server left while holding segments: {audit}");
    let lowest = audit["lowestReplicas"][TABLE].as_u64().unwrap();
    assert!(lowest >= replication, "{TABLE} dropped to {lowest} live replicas (replication {replication}): {audit}");
}

#[tokio::test]
async fn scaling_servers_in_drains_each_one_before_its_pod_goes_and_keeps_replication_on_1_2_0() {
    scale_in_on("1.2.0", "apachepinot/pinot:1.2.0").await;
}

#[tokio::test]
async fn scaling_servers_in_drains_each_one_before_its_pod_goes_and_keeps_replication_on_1_5_x() {
    scale_in_on("1.5.x", "apachepinot/pinot:1.5.1").await;
}

#[tokio::test]
async fn scaling_servers_in_drains_each_one_before_its_pod_goes_and_keeps_replication_on_master() {
    scale_in_on("master", "apachepinot/pinot:1.6.0-SNAPSHOT-210c2951e72").await;
}

/// Four servers of `image` scaled in to two: each drained (untagged, its tables rebalanced
/// with the parameters whose defaults differ between releases passed explicitly, disabled)
/// before its pod goes; nothing the release refuses is sent.
async fn scale_in_on(release: &str, image: &str) {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, &format!("scale-in-{}", release.replace('.', "-"))).await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install_text(&ns.name, "sc", &cluster_yaml_of("sc", 4, None, image)).await;
    wait_available(&ns.name, "sc").await;
    table_with_segments(&ns.name, "sc", "DefaultTenant", 2, 24).await;
    let before = segments(&ns.name, "sc").await;
    assert_eq!(before.len(), 4, "segments sit on every server: {before:?}");
    // Rebalances take a while, as in Pinot: the drain is visible in status.
    // (One segment moves per 250 ms: the drain of a server spans the operator's rechecks.)
    slow_rebalances(&ns.name, "sc", 250).await;
    reset_audit(&ns.name, "sc").await;

    set_servers(&ns.name, "sc", 2).await;
    let seen = wait_scaled(&client, &ns.name, "sc", 2, Duration::from_secs(240)).await;

    assert!(
        seen.iter().any(|m| m.contains("scaling in server") && m.contains("segments left")),
        "status said what the drain was doing: {seen:#?}"
    );
    assert_audit_clean(&audit(&ns.name, "sc").await, 2);
    assert_eq!(conflicts(&ns.name, "sc").await, Vec::<String>::new(), "Pinot never refused a drop");
    // Every segment still has two replicas, on the two servers left.
    let after = segments(&ns.name, "sc").await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after.values().sum::<usize>(), 48, "{after:?}");
    let left: Vec<String> = servers(&ns.name, "sc").await.into_keys().collect();
    assert!(left.iter().all(|id| id.contains("sc-server-0.") || id.contains("sc-server-1.")), "{left:?}");
    // The rebalances ran with the operator's parameters, not the release's defaults.
    let rebalances: Value = reqwest::get(format!("{}/rebalances", simulator_admin_url(&ns.name, "sc")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rebalances = rebalances.as_array().unwrap();
    assert!(!rebalances.is_empty(), "the drains rebalanced");
    for r in rebalances {
        let p = &r["params"];
        assert_eq!(
            (&p["reassignInstances"], &p["includeConsuming"], &p["minAvailableReplicas"], &p["downtime"]),
            (&json!(true), &json!(true), &json!(1), &json!(false)),
            "{r}"
        );
    }
    let refused: Vec<Value> = requests(&ns.name, "sc").await.into_iter().filter(|r| r["status"] == 400).collect();
    assert_eq!(refused, Vec::<Value>::new(), "requests {release} refuses");

    operator.stop().await;
    ns.cleanup().await;
}

/// A cluster of `image` with two minions.
fn minions_yaml(image: &str, minions: u32) -> String {
    format!(
        r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: mi
spec:
  image: {image}
  zookeeper:
    connectString: zookeeper:2181
  pools:
    - {{name: controller, role: controller, replicas: 1, zone: zone-a, storage: {{ephemeral: true}}, podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: "300"}}}}}}
    - {{name: minion, role: minion, replicas: {minions}, zone: zone-b, podOverrides: {{annotations: {{sim.pinot.controlplane.dev/ready-after-ms: "300"}}}}}}
"#
    )
}

/// A minion scale-in drains the minion the way its release can: `state=drain` from 1.5.0, the
/// same `minion_drained` tag through `updateTags` before (1.2.0 answers `state=drain` with 400).
async fn minion_scale_in_on(release: &str, image: &str, drain: &str) {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, &format!("scale-minion-{}", release.replace('.', "-"))).await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install_text(&ns.name, "mi", &minions_yaml(image, 2)).await;
    wait_available(&ns.name, "mi").await;
    install_text(&ns.name, "mi", &minions_yaml(image, 1)).await;
    let url = pinot_url(&ns.name, "mi");
    wait_for("one minion left in Pinot", Duration::from_secs(120), || async {
        let list: Value = reqwest::get(format!("{url}/instances")).await.ok()?.json().await.ok()?;
        let minions = list["instances"]
            .as_array()?
            .iter()
            .filter(|i| i.as_str().is_some_and(|i| i.starts_with("Minion_")))
            .count();
        (minions == 1).then_some(())
    })
    .await;
    let log = requests(&ns.name, "mi").await;
    let drains: Vec<String> = log
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.contains("Minion_mi-minion-1.")))
        .map(|r| {
            format!("{} {}", r["path"].as_str().unwrap().rsplit('/').next().unwrap(), r["query"].as_str().unwrap())
        })
        .collect();
    assert_eq!(drains, [drain], "{log:?}");
    let refused: Vec<&Value> = log.iter().filter(|r| r["status"] == 400).collect();
    assert!(refused.is_empty(), "requests {release} refuses: {refused:?}");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_minion_scale_in_drains_by_tag_on_1_2_0() {
    minion_scale_in_on("1.2.0", "apachepinot/pinot:1.2.0", "updateTags tags=minion_drained&updateBrokerResource=true")
        .await;
}

#[tokio::test]
async fn a_minion_scale_in_drains_by_state_on_1_5_x() {
    minion_scale_in_on("1.5.x", "apachepinot/pinot:1.5.1", "state state=drain").await;
}

#[tokio::test]
async fn a_scale_in_that_would_break_replication_is_refused_and_nothing_is_removed() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "scale-refused").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&ns.name, "sr", 3, None).await;
    wait_available(&ns.name, "sr").await;
    table_with_segments(&ns.name, "sr", "DefaultTenant", 3, 12).await;
    let tags_before = servers(&ns.name, "sr").await;

    set_servers(&ns.name, "sr", 2).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let message = wait_for("Degraded saying why", Duration::from_secs(60), || async {
        let c = clusters.get("sr").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("replication 3")).then_some(message)
    })
    .await;
    assert!(message.contains(TABLE) && message.contains("leave 2 servers"), "{message}");
    // A few more passes: still three servers, all still tagged and holding their segments.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(server_pods(&client, &ns.name, "sr").await.len(), 3);
    assert_eq!(servers(&ns.name, "sr").await, tags_before, "no server was untagged");
    assert_eq!(segments(&ns.name, "sr").await.values().filter(|n| **n > 0).count(), 3);

    // Asking for three again clears it.
    set_servers(&ns.name, "sr", 3).await;
    wait_for("Degraded False", Duration::from_secs(60), || async {
        let c = clusters.get("sr").await.ok()?;
        condition(&c, "Degraded").filter(|(s, _)| s == "False").map(|_| ())
    })
    .await;
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn scaling_out_tags_the_new_servers_for_their_tenant_and_rebalances() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "scale-out").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&ns.name, "so", 2, None).await;
    wait_available(&ns.name, "so").await;
    let tenant = |n: u32| {
        json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTenant", "metadata": {"name": "sales"},
            "spec": {"cluster": "so", "tenantRole": "SERVER", "offlineInstances": n, "realtimeInstances": n}})
    };
    let file = std::env::temp_dir().join(format!("{}-tenant.json", ns.name));
    std::fs::write(&file, tenant(2).to_string()).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Ready", "pinottenant/sales", "--timeout=60s"]).await;
    table_with_segments(&ns.name, "so", "sales", 2, 16).await;
    assert_eq!(segments(&ns.name, "so").await.len(), 2);

    // Four servers, and the tenant takes all four.
    set_servers(&ns.name, "so", 4).await;
    std::fs::write(&file, tenant(4).to_string()).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    wait_scaled(&client, &ns.name, "so", 4, Duration::from_secs(180)).await;
    let spread = wait_for("segments on all four servers", Duration::from_secs(60), || async {
        let s = segments(&ns.name, "so").await;
        (s.len() == 4).then_some(s)
    })
    .await;
    assert_eq!(spread.values().sum::<usize>(), 32, "{spread:?}");
    assert!(spread.values().all(|n| *n == 8), "balanced: {spread:?}");
    for (id, tags) in servers(&ns.name, "so").await {
        assert!(tags.contains(&"sales_OFFLINE".to_string()), "{id} is in the tenant: {tags:?}");
    }
    let log: Value =
        reqwest::get(format!("{}/requests", simulator_admin_url(&ns.name, "so"))).await.unwrap().json().await.unwrap();
    let rebalances = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/tables/events/rebalance")
        .count();
    // One when the new servers joined the tenant (two if the tenant policy tagged them in two
    // passes), never one per pass.
    assert!((1..=2).contains(&rebalances), "{rebalances} rebalances after the scale-out");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn the_operator_killed_mid_drain_resumes_and_finishes_safely() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "scale-kill").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    install(&ns.name, "sk", 3, None).await;
    wait_available(&ns.name, "sk").await;
    table_with_segments(&ns.name, "sk", "DefaultTenant", 2, 30).await;
    slow_rebalances(&ns.name, "sk", 150).await;
    reset_audit(&ns.name, "sk").await;

    set_servers(&ns.name, "sk", 2).await;
    // Kill it while the leaving server is untagged and still holds segments.
    wait_for("a server draining", Duration::from_secs(60), || async {
        let tags = servers(&ns.name, "sk").await;
        let s = segments(&ns.name, "sk").await;
        tags.iter()
            .any(|(id, t)| t == &vec!["server_untagged".to_string()] && s.get(id).is_some_and(|n| *n > 0))
            .then_some(())
    })
    .await;
    // Killed: its task is aborted wherever it is, as a killed process stops.
    drop(operator);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let operator = OperatorHandle::start(&client, &ns.name);
    wait_scaled(&client, &ns.name, "sk", 2, Duration::from_secs(240)).await;

    assert_audit_clean(&audit(&ns.name, "sk").await, 2);
    assert_eq!(conflicts(&ns.name, "sk").await, Vec::<String>::new());
    assert_eq!(segments(&ns.name, "sk").await.values().sum::<usize>(), 60);
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_teams_scaling_policy_holds_scale_in_during_business_hours_by_the_hosts_clock() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "scale-hours").await;
    let dir = std::env::temp_dir().join(format!("pinot-policy-dir-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let module = std::fs::read(Path::new(bundled::WASM_DIR).join("pinot_scaling_business_hours.wasm")).unwrap();
    std::fs::write(dir.join("business-hours.wasm"), &module).unwrap();
    let operator = OperatorHandle::start_with(&client, &ns.name, Some(dir.clone()));
    // Business hours around the clock, every day: a scale-in must wait.
    let policies: Api<PinotPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy: PinotPolicy = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy", "metadata": {"name": "team-scaling"},
        "spec": {"kind": "scaling", "module": {"file": "business-hours.wasm"}, "sha256": digest(&module),
                 "config": {"businessHoursUtc": "0-24", "weekdaysOnly": "false"}},
    }))
    .unwrap();
    policies.create(&PostParams::default(), &policy).await.unwrap();
    install(&ns.name, "bh", 3, Some("team-scaling")).await;
    wait_available(&ns.name, "bh").await;
    table_with_segments(&ns.name, "bh", "DefaultTenant", 2, 12).await;

    set_servers(&ns.name, "bh", 2).await;
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("Progressing saying it waits for business hours", Duration::from_secs(60), || async {
        let c = clusters.get("bh").await.ok()?;
        condition(&c, "Progressing").filter(|(_, m)| m.contains("no scale-in during business hours")).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(server_pods(&client, &ns.name, "bh").await.len(), 3, "held");
    assert!(
        servers(&ns.name, "bh").await.values().all(|t| t.contains(&"DefaultTenant_OFFLINE".to_string())),
        "nothing untagged"
    );

    // After hours (an empty window): the same policy lets the default drain go ahead.
    let patch = json!({"spec": {"config": {"businessHoursUtc": "0-0"}}}).to_string();
    kubectl(&["-n", &ns.name, "patch", "pinotpolicy/team-scaling", "--type=merge", "-p", &patch]).await;
    wait_scaled(&client, &ns.name, "bh", 2, Duration::from_secs(180)).await;
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn removing_a_server_pool_drains_it_the_same_way_before_its_objects_are_deleted() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "scale-pool").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let yaml = cluster_yaml("sp", 2, None)
        + r#"    - name: extra
      role: server
      storage: {ephemeral: true}
      replicas: 1
      zone: zone-c
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;
    let file = std::env::temp_dir().join(format!("{}-sp.yaml", ns.name));
    std::fs::write(&file, yaml).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    wait_available(&ns.name, "sp").await;
    table_with_segments(&ns.name, "sp", "DefaultTenant", 2, 15).await;
    assert_eq!(segments(&ns.name, "sp").await.len(), 3, "the extra pool's server holds segments too");
    slow_rebalances(&ns.name, "sp", 40).await;
    reset_audit(&ns.name, "sp").await;

    let patch = json!([{"op": "remove", "path": "/spec/pools/3"}]).to_string();
    kubectl(&["-n", &ns.name, "patch", "pinotcluster/sp", "--type=json", "-p", &patch]).await;
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the extra pool's StatefulSet deleted", Duration::from_secs(180), || async {
        statefulsets.get_opt("sp-extra").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(servers(&ns.name, "sp").await.len(), 2, "its instance was dropped from Pinot");
    assert_audit_clean(&audit(&ns.name, "sp").await, 2);
    assert_eq!(conflicts(&ns.name, "sp").await, Vec::<String>::new());
    let left = segments(&ns.name, "sp").await;
    assert_eq!((left.len(), left.values().sum::<usize>()), (2, 30), "{left:?}");
    operator.stop().await;
    ns.cleanup().await;
}
