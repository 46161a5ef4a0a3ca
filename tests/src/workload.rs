//! Many PinotSchemas and PinotTables at once, for the load test and the convergence benchmark:
//! an external PinotCluster over a standalone simulated Pinot, `n` schema/table pairs created
//! through the API, and waiting until every one is Ready.

use std::time::Duration;

use futures::{StreamExt, stream};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use pinot_crds::{PinotCluster, PinotSchema, PinotTable};
use serde_json::{Value, json};

use crate::harness::{controller_url_template, simulator_admin_url, wait_for};

/// Creates a standalone simulated Pinot cluster (a controller, a broker, three servers) and the
/// external PinotCluster `cluster` pointing at it; returns the simulator's admin URL.
pub async fn external_pinot(client: &Client, ns: &str, cluster: &str) -> String {
    let http = reqwest::Client::new();
    let admin = simulator_admin_url(ns, cluster);
    let url = controller_url_template().replace("{namespace}", ns).replace("{name}", cluster);
    assert!(http.put(&admin).send().await.unwrap().status().is_success(), "creating the simulated cluster");
    for (role, host) in [("controller", "c0"), ("broker", "b0"), ("server", "s0"), ("server", "s1"), ("server", "s2")] {
        let r = http.post(format!("{admin}/instances")).json(&json!({"role": role, "host": host})).send().await;
        assert!(r.unwrap().status().is_success(), "registering {host}");
    }
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    let object: PinotCluster = serde_json::from_value(json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
        "metadata": {"name": cluster}, "spec": {"external": {"controllerUrl": url}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
    admin
}

/// Creates `n` schemas `t<i>` and their OFFLINE tables of cluster `cluster`, 32 requests at a
/// time.
pub async fn create_tables(client: &Client, ns: &str, cluster: &str, n: usize) {
    let schemas: Api<PinotSchema> = Api::namespaced(client.clone(), ns);
    let tables: Api<PinotTable> = Api::namespaced(client.clone(), ns);
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let (schemas, tables) = (schemas.clone(), tables.clone());
            async move {
                let name = format!("t{i}");
                let schema: PinotSchema = serde_json::from_value(json!({
                    "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotSchema", "metadata": {"name": name},
                    "spec": {"cluster": cluster, "schema": {"schemaName": name,
                        "dimensionFieldSpecs": [{"name": "id", "dataType": "STRING"}],
                        "metricFieldSpecs": [{"name": "n", "dataType": "LONG"}]}},
                }))
                .unwrap();
                let table: PinotTable = serde_json::from_value(json!({
                    "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTable", "metadata": {"name": name},
                    "spec": {"cluster": cluster, "schemaRef": name, "offline": {
                        "segmentsConfig": {"replication": "1"}, "tableIndexConfig": {"loadMode": "MMAP"}}},
                }))
                .unwrap();
                schemas.create(&PostParams::default(), &schema).await.unwrap();
                tables.create(&PostParams::default(), &table).await.unwrap();
            }
        })
        .await;
}

fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Waits until `n` PinotTables (and their schemas) in the namespace are Ready.
pub async fn wait_all_ready(client: &Client, ns: &str, n: usize, timeout: Duration) {
    let schemas: Api<PinotSchema> = Api::namespaced(client.clone(), ns);
    let tables: Api<PinotTable> = Api::namespaced(client.clone(), ns);
    let start = std::time::Instant::now();
    let last = std::sync::Mutex::new(start);
    wait_for(&format!("{n} tables Ready"), timeout, || async {
        let t = tables.list(&ListParams::default()).await.ok()?;
        let s = schemas.list(&ListParams::default()).await.ok()?;
        let ready = |items: Vec<Value>| items.iter().filter(|o| is_ready(o)).count();
        let t_ready = ready(t.items.iter().map(|o| serde_json::to_value(o).unwrap()).collect());
        let s_ready = ready(s.items.iter().map(|o| serde_json::to_value(o).unwrap()).collect());
        {
            let mut last = last.lock().unwrap();
            if last.elapsed() > Duration::from_secs(5) {
                *last = std::time::Instant::now();
                eprintln!("{:?}: {s_ready}/{n} schemas and {t_ready}/{n} tables Ready", start.elapsed());
            }
        }
        if t_ready == n && s_ready == n {
            return Some(());
        }
        // Listing a thousand objects is work for the API server too: not more than once a second.
        tokio::time::sleep(Duration::from_millis(750)).await;
        None
    })
    .await;
}

/// Every request in the simulated cluster's request log (`admin` is its admin URL), oldest
/// first: `method`, `path`, `query`, `body`, `status`.
pub async fn pinot_requests(admin: &str) -> Vec<Value> {
    let log: Value = reqwest::get(format!("{admin}/requests")).await.unwrap().json().await.unwrap();
    log.as_array().expect("the request log is a list").clone()
}

/// The writes (anything but GET) in the simulated cluster's request log.
pub async fn pinot_writes(admin: &str) -> Vec<String> {
    pinot_requests(admin)
        .await
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| format!("{} {}", r["method"].as_str().unwrap_or_default(), r["path"].as_str().unwrap_or_default()))
        .collect()
}

/// Clears the simulated cluster's request log.
pub async fn clear_log(admin: &str) {
    let r = reqwest::Client::new().delete(format!("{admin}/requests")).send().await.unwrap();
    assert!(r.status().is_success());
}

/// A schema `events` and its OFFLINE table `events` on server tenant `tenant` with
/// `replication`, straight in the Pinot of PinotCluster `cluster`, and `segments` segments placed
/// on its servers; returns once the external view shows every replica (a server that just
/// started may still be loading).
pub async fn table_with_segments(ns: &str, cluster: &str, tenant: &str, replication: u32, segments: usize) {
    let http = reqwest::Client::new();
    let url = controller_url_template().replace("{namespace}", ns).replace("{name}", cluster);
    let schema = json!({"schemaName": "events", "dimensionFieldSpecs": [{"name": "id", "dataType": "STRING"}]});
    let r = http.post(format!("{url}/schemas")).json(&schema).send().await.unwrap();
    assert!(r.status().is_success(), "schema: {}", r.text().await.unwrap());
    let table = json!({"tableName": "events", "tableType": "OFFLINE",
        "segmentsConfig": {"replication": replication.to_string(), "schemaName": "events"},
        "tenants": {"broker": "DefaultTenant", "server": tenant}, "tableIndexConfig": {}, "metadata": {}});
    let r = http.post(format!("{url}/tables")).json(&table).send().await.unwrap();
    assert!(r.status().is_success(), "table: {}", r.text().await.unwrap());
    let admin = simulator_admin_url(ns, cluster);
    let body = json!({"table": "events_OFFLINE", "count": segments});
    let r = http.post(format!("{admin}/segments")).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "segments: {}", r.text().await.unwrap());
    wait_for("every replica ONLINE in the external view", Duration::from_secs(60), || async {
        let view: Value = http.get(format!("{url}/tables/events/externalview")).send().await.ok()?.json().await.ok()?;
        let placed = view["OFFLINE"].as_object()?;
        let served = placed.len() == segments
            && placed.values().all(|s| {
                s.as_object().is_some_and(|s| s.len() >= replication as usize && s.values().all(|v| v == "ONLINE"))
            });
        served.then_some(())
    })
    .await;
}
