//! Contract tests: the simulated Pinot controller answers as each Pinot release does, per
//! `shared/pinot/` (README.md, controller-rest.md, server-lifecycle.md), on the real example
//! schemas and table configs in `shared/fixtures/pinot/`. The facts each release is checked
//! against are written out per release below ([`Facts`]), from the reference's tables, not
//! derived from the simulator.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use pinot_testbed::{
    harness::shared_dir,
    pinot_sim::{Faults, InstanceRole, PinotSimulator, SimPod, SimState},
};
use reqwest::{Client, Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

fn fixture(path: &str) -> Value {
    let file: PathBuf = shared_dir().join("fixtures/pinot").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("reading {}: {e} (set PINOT_SHARED_DIR to the folder holding fixtures/pinot)", file.display())
    });
    serde_json::from_str(&text).unwrap()
}

struct Sim {
    _sim: PinotSimulator,
    base: String,
    admin: String,
    http: Client,
}

impl Sim {
    /// A standalone cluster (master, the default) with a controller, a broker and four servers.
    async fn start() -> Self {
        Self::start_with(json!({}), &["s0", "s1", "s2", "s3"]).await
    }

    /// A standalone cluster with these settings (`PUT /_sim/clusters/{ns}/{name}`), a
    /// controller, a broker, a minion and these servers.
    async fn start_with(settings: Value, servers: &[&str]) -> Self {
        pinot_operator::pinot::install_tls_provider();
        let sim = PinotSimulator::start("127.0.0.1:0".parse().unwrap(), Arc::new(SimState::new())).await.unwrap();
        let base = sim.controller_url("ns", "pinot");
        let admin = format!("http://{}/_sim/clusters/ns/pinot", sim.addr);
        let s = Self { _sim: sim, base, admin, http: Client::new() };
        s.admin_call(Method::PUT, "", settings).await;
        let mut instances = vec![("controller", "c0"), ("broker", "b0")];
        instances.extend(servers.iter().map(|h| ("server", *h)));
        for (role, host) in instances {
            s.admin_call(Method::POST, "/instances", json!({"role": role, "host": host})).await;
        }
        s
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, body, _) = self.call_with_headers(method, path, body).await;
        (status, body)
    }

    async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
    }

    async fn admin_call(&self, method: Method, path: &str, body: Value) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.admin));
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "admin {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn faults(&self, f: Faults) {
        self.admin_call(Method::PUT, "/faults", serde_json::to_value(f).unwrap()).await;
    }
}

#[tokio::test]
async fn health_and_unhealthy_controller() {
    let sim = Sim::start().await;
    assert_eq!(sim.call(Method::GET, "/health", None).await, (StatusCode::OK, json!("OK")));
    sim.faults(Faults { unhealthy: true, ..Default::default() }).await;
    assert_eq!(sim.call(Method::GET, "/health", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_example_schema_and_table_is_accepted() {
    let sim = Sim::start().await;
    let schemas = [
        "airlineStats/airlineStats_schema.json",
        "baseballStats/baseballStats_schema.json",
        "githubEvents/githubEvents_schema.json",
        "githubEvents/pullRequestMergedEvents_schema.json",
        "starbucksStores/starbucksStores_schema.json",
        "upsertMeetupRsvp/upsertMeetupRsvp_schema.json",
    ];
    for path in schemas {
        let schema = fixture(path);
        let (status, body) = sim.call(Method::POST, "/schemas", Some(schema.clone())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let name = schema["schemaName"].as_str().unwrap();
        assert_eq!(sim.call(Method::GET, &format!("/schemas/{name}"), None).await, (StatusCode::OK, schema));
    }
    let (_, names) = sim.call(Method::GET, "/schemas", None).await;
    assert_eq!(names.as_array().unwrap().len(), schemas.len());

    // airlineStats' schema lives in database db1, so its tables do too.
    let tables = [
        ("airlineStats/airlineStats_offline_table_config.json", Some("db1.airlineStats")),
        ("airlineStats/airlineStats_realtime_table_config.json", Some("db1.airlineStats")),
        ("baseballStats/baseballStats_offline_table_config.json", None),
        ("githubEvents/githubEvents_offline_table_config.json", None),
        ("githubEvents/githubEvents_realtime_table_config.json", None),
        ("githubEvents/pullRequestMergedEvents_realtime_table_config.json", None),
        ("starbucksStores/starbucksStores_offline_table_config.json", None),
        ("upsertMeetupRsvp/upsertMeetupRsvp_realtime_table_config.json", None),
    ];
    for (path, rename) in tables {
        let mut config = fixture(path);
        if let Some(name) = rename {
            config["tableName"] = json!(name);
        }
        let (status, body) = sim.call(Method::POST, "/tables", Some(config)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }

    // A hybrid table answers with both configs; Pinot fills in defaults.
    let (status, hybrid) = sim.call(Method::GET, "/tables/db1.airlineStats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hybrid["OFFLINE"]["tableName"], "db1.airlineStats_OFFLINE");
    assert_eq!(hybrid["REALTIME"]["tableName"], "db1.airlineStats_REALTIME");
    assert_eq!(hybrid["OFFLINE"]["tenants"]["server"], "DefaultTenant");
    let (_, offline_only) = sim.call(Method::GET, "/tables/db1.airlineStats?type=OFFLINE", None).await;
    assert!(offline_only.get("REALTIME").is_none() && offline_only.get("OFFLINE").is_some());

    // Creating it twice conflicts.
    let again = fixture("baseballStats/baseballStats_offline_table_config.json");
    assert_eq!(sim.call(Method::POST, "/tables", Some(again)).await.0, StatusCode::CONFLICT);

    // The dimension table has no schema among the examples: refused until it has one.
    let dim = fixture("dimBaseballTeams/dimBaseballTeams_offline_table_config.json");
    let (status, body) = sim.call(Method::POST, "/tables", Some(dim.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("schema dimBaseballTeams does not exist"), "{body}");
    let dim_schema = json!({"schemaName": "dimBaseballTeams", "primaryKeyColumns": ["teamID"],
        "dimensionFieldSpecs": [{"name": "teamID", "dataType": "STRING"}, {"name": "teamName", "dataType": "STRING"}]});
    assert_eq!(sim.call(Method::POST, "/schemas", Some(dim_schema)).await.0, StatusCode::OK);
    assert_eq!(sim.call(Method::POST, "/tables", Some(dim)).await.0, StatusCode::OK);
    let (_, dim) = sim.call(Method::GET, "/tables/dimBaseballTeams", None).await;
    assert_eq!(dim["OFFLINE"]["isDimTable"], true);
}

#[tokio::test]
async fn missing_tables_answer_404_from_1_4_0_and_the_empty_object_before() {
    let sim = Sim::start().await;
    let (status, body) = sim.call(Method::GET, "/tables/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 404);
    sim.admin_call(Method::PUT, "/faults", json!({"release": "1.3.0"})).await;
    assert_eq!(sim.call(Method::GET, "/tables/nope", None).await, (StatusCode::OK, json!({})));
    sim.admin_call(Method::PUT, "/settings", json!({"release": "1.4.0"})).await;
    assert_eq!(sim.call(Method::GET, "/tables/nope", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn schema_rules_incompatible_change_and_delete_order() {
    let sim = Sim::start().await;
    let schema = fixture("baseballStats/baseballStats_schema.json");
    sim.call(Method::POST, "/schemas", Some(schema.clone())).await;
    assert_eq!(sim.call(Method::POST, "/schemas?override=false", Some(schema.clone())).await.0, StatusCode::CONFLICT);

    // Dropping a column is backward incompatible: 400 with Pinot's message, unless forced.
    let mut smaller = schema.clone();
    smaller["metricFieldSpecs"].as_array_mut().unwrap().pop();
    let (status, body) = sim.call(Method::PUT, "/schemas/baseballStats", Some(smaller.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("Backward incompatible"), "{body}");
    assert_eq!(sim.call(Method::PUT, "/schemas/baseballStats?force=true", Some(smaller)).await.0, StatusCode::OK);
    // Adding a column is fine.
    let mut bigger = schema.clone();
    bigger["dimensionFieldSpecs"].as_array_mut().unwrap().push(json!({"name": "league2", "dataType": "STRING"}));
    assert_eq!(
        sim.call(Method::PUT, "/schemas/baseballStats?force=true", Some(schema.clone())).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.call(Method::PUT, "/schemas/baseballStats", Some(bigger)).await.0, StatusCode::OK);
    assert_eq!(sim.call(Method::PUT, "/schemas/other", Some(schema.clone())).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        sim.call(Method::POST, "/schemas", Some(json!({"dimensionFieldSpecs": []}))).await.0,
        StatusCode::BAD_REQUEST
    );

    // A schema still used by a table cannot go: table first, then schema.
    sim.call(Method::POST, "/tables", Some(fixture("baseballStats/baseballStats_offline_table_config.json"))).await;
    let (status, body) = sim.call(Method::DELETE, "/schemas/baseballStats", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(sim.call(Method::DELETE, "/tables/baseballStats?type=OFFLINE", None).await.0, StatusCode::OK);
    assert_eq!(sim.call(Method::DELETE, "/schemas/baseballStats", None).await.0, StatusCode::OK);
    assert_eq!(sim.call(Method::GET, "/schemas/baseballStats", None).await.0, StatusCode::NOT_FOUND);
    // A table whose schema is missing is refused.
    let (status, _) =
        sim.call(Method::POST, "/tables", Some(fixture("baseballStats/baseballStats_offline_table_config.json"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tenants_take_untagged_instances_and_fail_when_there_are_too_few() {
    let sim = Sim::start().await;
    // With tenant isolation (Pinot's default) new servers join DefaultTenant; untag them.
    let (_, servers) = sim.call(Method::GET, "/instances?tag=DefaultTenant_OFFLINE", None).await;
    let servers: Vec<String> =
        servers["instances"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(servers.len(), 4);
    for id in &servers {
        let (status, _) =
            sim.call(Method::PUT, &format!("/instances/{id}/updateTags?tags=server_untagged"), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let tenant = json!({"tenantRole": "SERVER", "tenantName": "sales", "numberOfInstances": 2, "offlineInstances": 2, "realtimeInstances": 2});
    assert_eq!(sim.call(Method::POST, "/tenants", Some(tenant)).await.0, StatusCode::OK);
    let (status, meta) = sim.call(Method::GET, "/tenants/sales/metadata", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["OfflineServerInstances"].as_array().unwrap().len(), 2);
    assert_eq!(meta["RealtimeServerInstances"].as_array().unwrap().len(), 2);
    let (_, tenants) = sim.call(Method::GET, "/tenants?type=server", None).await;
    assert!(tenants["SERVER_TENANTS"].as_array().unwrap().contains(&json!("sales")));

    let too_big = json!({"tenantRole": "SERVER", "tenantName": "ops", "numberOfInstances": 3, "offlineInstances": 3, "realtimeInstances": 3});
    let (status, body) = sim.call(Method::POST, "/tenants", Some(too_big)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(sim.call(Method::GET, "/tenants/ops", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(sim.call(Method::DELETE, "/tenants/sales", None).await.0, StatusCode::BAD_REQUEST, "type is required");
    assert_eq!(sim.call(Method::DELETE, "/tenants/sales?type=SERVER", None).await.0, StatusCode::OK);
    let (_, untagged) = sim.call(Method::GET, "/instances?tag=server_untagged", None).await;
    assert_eq!(untagged["instances"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn instances_state_tags_segments_rebalance_and_drop() {
    let sim = Sim::start().await;
    let server = "Server_s0_8098";
    let (status, info) = sim.call(Method::GET, &format!("/instances/{server}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["tags"], json!(["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"]));
    assert_eq!(info["enabled"], true);
    let (_, live) = sim.call(Method::GET, "/liveinstances", None).await;
    assert_eq!(live["instances"].as_array().unwrap().len(), 6);
    assert_eq!(
        sim.call(Method::PUT, &format!("/instances/{server}/state?state=queries_disable"), None).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.call(Method::GET, &format!("/instances/{server}"), None).await.1["queriesDisabled"], "true");
    assert_eq!(
        sim.call(Method::PUT, &format!("/instances/{server}/state?state=drain"), None).await.0,
        StatusCode::BAD_REQUEST
    );

    // Segments spread over the tenant's servers with the table's replication.
    sim.call(Method::POST, "/schemas", Some(fixture("starbucksStores/starbucksStores_schema.json"))).await;
    let mut table = fixture("starbucksStores/starbucksStores_offline_table_config.json");
    table["segmentsConfig"]["replication"] = json!("2");
    sim.call(Method::POST, "/tables", Some(table)).await;
    let counts =
        sim.admin_call(Method::POST, "/segments", json!({"table": "starbucksStores_OFFLINE", "count": 8})).await;
    let total: u64 = counts.as_object().unwrap().values().map(|t| t["starbucksStores_OFFLINE"].as_u64().unwrap()).sum();
    assert_eq!(total, 16, "8 segments x replication 2: {counts}");
    assert_eq!(counts.as_object().unwrap().len(), 4, "every server holds some: {counts}");

    // Untag a server and rebalance: it is emptied, replication is kept.
    sim.call(Method::PUT, &format!("/instances/{server}/updateTags?tags=server_untagged"), None).await;
    let (status, job) = sim.call(Method::POST, "/tables/starbucksStores/rebalance?type=OFFLINE", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, progress) =
        sim.call(Method::GET, &format!("/rebalanceStatus/{}", job["jobId"].as_str().unwrap()), None).await;
    assert_eq!(progress["tableRebalanceProgressStats"]["status"], "DONE");
    let counts = sim.admin_call(Method::GET, "/segments", json!(null)).await;
    assert!(counts.get(server).is_none(), "{counts}");
    let total: u64 = counts.as_object().unwrap().values().map(|t| t["starbucksStores_OFFLINE"].as_u64().unwrap()).sum();
    assert_eq!(total, 16);
    assert_eq!(
        sim.call(Method::POST, "/tables/starbucksStores/rebalance", None).await.0,
        StatusCode::BAD_REQUEST,
        "type is required"
    );

    // Dropping: refused while live or holding segments.
    let (status, _) = sim.call(Method::DELETE, "/instances/Server_s1_8098", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, check) = sim.call(Method::GET, "/instances/dropInstance/validate?instanceNames=Server_s1_8098", None).await;
    assert_eq!(check[0]["safe"], false);
}

/// Pool-based replica groups as Pinot assigns them (assignment.md): servers in three pools
/// (zones), a table asking for one replica group per pool gets instance partitions with each
/// group in one pool, each segment one replica per group; a table asking for more pools than
/// there are is refused the way its release refuses it; a rebalance keeps the persisted
/// partitions without `reassignInstances` and recomputes them with it; a dead server stays in
/// its group (no liveness filter).
async fn replica_groups_by_pool(release: &str) {
    let servers = ["a0", "a1", "b0", "b1", "c0", "c1"];
    let sim = Sim::start_with(json!({"release": release}), &servers).await;
    for host in servers {
        let id = format!("Server_{host}_8098");
        let pool = match &host[..1] {
            "a" => 0,
            "b" => 1,
            _ => 2,
        };
        let body = json!({"host": host, "port": 8098, "type": "SERVER", "tags": ["DefaultTenant_OFFLINE"],
            "pools": {"DefaultTenant_OFFLINE": pool}});
        assert_eq!(sim.call(Method::PUT, &format!("/instances/{id}"), Some(body)).await.0, StatusCode::OK);
    }
    sim.call(Method::POST, "/schemas", Some(fixture("starbucksStores/starbucksStores_schema.json"))).await;
    let assignment = |pools: u32| {
        json!({"OFFLINE": {"tagPoolConfig": {"tag": "DefaultTenant_OFFLINE", "poolBased": true, "numPools": pools},
            "replicaGroupPartitionConfig": {"replicaGroupBased": true, "numReplicaGroups": 3}, "minimizeDataMovement": true}})
    };
    let mut table = fixture("starbucksStores/starbucksStores_offline_table_config.json");
    table["segmentsConfig"]["replication"] = json!("3");

    // More pools than there are: refused, and no table is left.
    let mut four = table.clone();
    four["instanceAssignmentConfigMap"] = assignment(4);
    let (status, body) = sim.call(Method::POST, "/tables", Some(four)).await;
    let reason = "Not enough instance pools (3 in the cluster, asked for 4)";
    match release {
        "1.2.0" | "1.3.0" => {
            assert_eq!((status, body["error"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some(reason)))
        }
        _ => {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(
                body["error"].as_str().unwrap().ends_with(&format!("table: starbucksStores_OFFLINE, reason: {reason}")),
                "{body}"
            );
        }
    }
    assert_eq!(
        sim.call(Method::GET, "/tables/starbucksStores/instancePartitions", None).await.0,
        StatusCode::NOT_FOUND
    );

    table["instanceAssignmentConfigMap"] = assignment(3);
    assert_eq!(sim.call(Method::POST, "/tables", Some(table.clone())).await.0, StatusCode::OK);
    let (status, partitions) = sim.call(Method::GET, "/tables/starbucksStores_OFFLINE/instancePartitions", None).await;
    assert_eq!(status, StatusCode::OK, "{partitions}");
    let groups = partitions["OFFLINE"]["partitionToInstancesMap"].as_object().unwrap().clone();
    assert_eq!(groups.len(), 3, "{partitions}");
    let zone = |id: &str| id.trim_start_matches("Server_").chars().next().unwrap();
    let mut zones_of_groups = std::collections::BTreeSet::new();
    for members in groups.values() {
        let zones: std::collections::BTreeSet<char> =
            members.as_array().unwrap().iter().map(|m| zone(m.as_str().unwrap())).collect();
        assert_eq!(zones.len(), 1, "a group lies in one pool: {partitions}");
        assert_eq!(members.as_array().unwrap().len(), 2, "{partitions}");
        zones_of_groups.extend(zones);
    }
    assert_eq!(zones_of_groups.len(), 3, "one group per pool: {partitions}");

    // Each segment: one replica per group (one per zone).
    sim.admin_call(Method::POST, "/segments", json!({"table": "starbucksStores_OFFLINE", "count": 12})).await;
    let replica_zones = |ideal: &Value| -> Vec<String> {
        ideal["OFFLINE"]
            .as_object()
            .unwrap()
            .values()
            .map(|holders| {
                let mut z: Vec<char> = holders.as_object().unwrap().keys().map(|h| zone(h)).collect();
                z.sort_unstable();
                z.into_iter().collect()
            })
            .collect()
    };
    let (_, ideal) = sim.call(Method::GET, "/tables/starbucksStores/idealstate", None).await;
    assert!(replica_zones(&ideal).iter().all(|z| z == "abc"), "{ideal}");

    // A server of zone a stops: it stays in its group, and a rebalance moves nothing.
    sim.lifecycle("Server_a0_8098", "exit", json!({})).await;
    let (_, again) = sim.call(Method::GET, "/tables/starbucksStores_OFFLINE/instancePartitions", None).await;
    assert_eq!(again, partitions);
    let query = "/tables/starbucksStores/rebalance?type=OFFLINE&reassignInstances=true&dryRun=true";
    let (_, dry) = sim.call(Method::POST, query, None).await;
    assert_eq!(dry["status"], "NO_OP", "{dry}");

    // b1 moves to pool 0 (by hand): without reassignInstances the persisted partitions stand;
    // with it they are recomputed: groups shrink to the smallest pool (one server each).
    let moved = json!({"host": "b1", "port": 8098, "type": "SERVER", "tags": ["DefaultTenant_OFFLINE"],
        "pools": {"DefaultTenant_OFFLINE": 0}});
    sim.call(Method::PUT, "/instances/Server_b1_8098", Some(moved)).await;
    let (_, kept) = sim
        .call(Method::POST, "/tables/starbucksStores/rebalance?type=OFFLINE&reassignInstances=false&dryRun=true", None)
        .await;
    assert_eq!(kept["status"], "NO_OP", "{kept}");
    let (_, recomputed) =
        sim.call(Method::POST, "/tables/starbucksStores/rebalance?type=OFFLINE&reassignInstances=true", None).await;
    assert_ne!(recomputed["status"], "NO_OP", "{recomputed}");
    let (_, now) = sim.call(Method::GET, "/tables/starbucksStores_OFFLINE/instancePartitions", None).await;
    let group_of_b = now["OFFLINE"]["partitionToInstancesMap"]
        .as_object()
        .unwrap()
        .values()
        .find(|m| m.as_array().unwrap().iter().any(|i| i == "Server_b0_8098"))
        .unwrap()
        .clone();
    assert_eq!(group_of_b, json!(["Server_b0_8098"]), "zone b has one server left in pool 1: {now}");

    // assignInstances: the same partitions as persisted; 404 for a table without assignment.
    let (status, assigned) = sim.call(Method::POST, "/tables/starbucksStores/assignInstances?dryRun=true", None).await;
    assert_eq!((status, &assigned["OFFLINE"]), (StatusCode::OK, &now["OFFLINE"]));
    assert_eq!(sim.call(Method::POST, "/tables/nope/assignInstances", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn replica_groups_by_pool_1_2_0() {
    replica_groups_by_pool("1.2.0").await;
}

#[tokio::test]
async fn replica_groups_by_pool_1_4_0() {
    replica_groups_by_pool("1.4.0").await;
}

#[tokio::test]
async fn replica_groups_by_pool_1_5_x() {
    replica_groups_by_pool("1.5.x").await;
}

/// A lost zone takes its instances down at once (not live, out of the external view), the
/// audit sees every segment keep its replicas in the other zones, and the zone's return lets
/// its instances start again.
#[tokio::test]
async fn a_lost_zone_takes_its_instances_down_and_the_audit_counts_what_is_left() {
    let sim = Sim::start_with(json!({}), &[]).await;
    for (host, zone) in [("a0", "zone-a"), ("b0", "zone-b"), ("c0", "zone-c")] {
        sim.admin_call(
            Method::POST,
            "/instances",
            json!({"role": "server", "host": host, "zone": zone, "segmentsLoadMs": 0}),
        )
        .await;
    }
    sim.call(Method::POST, "/schemas", Some(fixture("starbucksStores/starbucksStores_schema.json"))).await;
    let mut table = fixture("starbucksStores/starbucksStores_offline_table_config.json");
    table["segmentsConfig"]["replication"] = json!("3");
    assert_eq!(sim.call(Method::POST, "/tables", Some(table)).await.0, StatusCode::OK);
    sim.admin_call(Method::POST, "/segments", json!({"table": "starbucksStores_OFFLINE", "count": 6})).await;
    for id in ["Server_a0_8098", "Server_b0_8098", "Server_c0_8098"] {
        sim.started(id).await;
    }
    sim.admin_call(Method::DELETE, "/audit", Value::Null).await;

    let zones = format!("http://{}/_sim/zones/zone-b", sim._sim.addr);
    let lost = sim.http.put(&zones).json(&json!({"lost": true})).send().await.unwrap();
    assert!(lost.status().is_success());
    assert!(!sim.live("Server_b0_8098").await);
    assert!(sim.live("Server_a0_8098").await && sim.live("Server_c0_8098").await);
    assert!(sim.replica_states("starbucksStores", "Server_b0_8098").await.is_empty(), "out of the external view");
    let audit = sim.audit().await;
    assert_eq!(audit["lowestReplicas"]["starbucksStores_OFFLINE"], 2, "{audit}");
    let removed = audit["removedHoldingSegments"].as_array().unwrap();
    assert!(removed.iter().any(|r| r.as_str().unwrap().contains("was lost with zone zone-b")), "{audit}");

    // Back: the simulator's own instances (no pod) are started by hand, as their process would be.
    let back = sim.http.put(&zones).json(&json!({"lost": false})).send().await.unwrap();
    assert_eq!(back.json::<Value>().await.unwrap(), json!({"lost": []}));
    sim.lifecycle("Server_b0_8098", "start", json!({"segmentsLoadMs": 0})).await;
    sim.started("Server_b0_8098").await;
    assert!(sim.live("Server_b0_8098").await);
}

#[tokio::test]
async fn faults_fail_n_calls_and_every_request_is_recorded() {
    let sim = Sim::start().await;
    sim.faults(Faults { fail_next: 2, fail_status: Some(503), ..Default::default() }).await;
    assert_eq!(sim.call(Method::GET, "/schemas", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sim.call(Method::GET, "/schemas", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sim.call(Method::GET, "/schemas", None).await.0, StatusCode::OK);
    sim.call(Method::PUT, "/instances/Server_s0_8098/updateTags?tags=a,b", Some(json!({"x": 1}))).await;
    let log = sim.admin_call(Method::GET, "/requests", json!(null)).await;
    let last = log.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["method"], "PUT");
    assert_eq!(last["path"], "/instances/Server_s0_8098/updateTags");
    assert_eq!(last["query"], "tags=a,b");
    assert_eq!(last["body"], r#"{"x":1}"#);
    assert_eq!(last["status"], 200);
    let statuses: Vec<u64> = log.as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(&statuses[..3], &[503, 503, 200]);
}

/// What one Pinot release does, as `shared/pinot/README.md` ("What differs between releases")
/// and controller-rest.md say.
struct Facts {
    /// The release's name in the simulator's admin API.
    release: &'static str,
    /// `PinotVersion.VERSION`: what `GET /version`'s values start with, and `pinotVersion`.
    version: &'static str,
    /// `GET /tables/{t}` for a missing table: 404 (else `200 {}`).
    missing_table_404: bool,
    /// `state=drain` for minions.
    drain: bool,
    /// `state=queries_disable|queries_enable` for servers.
    queries_state: bool,
    /// `GET /instances/{id}` has the boolean `shutdownInProgress`.
    shutdown_in_instance: bool,
    /// Instances write `pinotVersion` into their ZNRecord.
    pinot_version_field: bool,
    /// Rebalance defaults: `reassignInstances`, `includeConsuming`, `minAvailableReplicas`.
    rebalance_defaults: (bool, bool, i64),
    /// A second rebalance of a table while one runs: 409.
    rebalance_409: bool,
    /// `PUT /schemas/{s}?force=true` forces an incompatible schema.
    schema_put_force: bool,
    /// `DELETE /schemas/{s}` refuses while an OFFLINE table named like it exists.
    delete_schema_409_for_offline: bool,
    /// `POST /segments/{t}/reload` with nothing to reload: 404 (else 200 with `"0"`).
    reload_nothing_404: bool,
    /// `GET /segments/{t}/servers` has `serverToSegmentsCountMap` (and `verbose`).
    servers_counts: bool,
    /// `PUT /tables/{t}` refuses upsert changes without `force=true`.
    table_put_force: bool,
    /// `PUT /instances/{id}` with `queriesDisabled: false` keeps a set flag.
    put_keeps_queries_disabled: bool,
    /// The reload job status has `status`.
    reload_status_field: bool,
}

const FACTS_1_2_0: Facts = Facts {
    release: "1.2.0",
    version: "1.2.0",
    missing_table_404: false,
    drain: false,
    queries_state: false,
    shutdown_in_instance: false,
    pinot_version_field: false,
    rebalance_defaults: (false, false, 1),
    rebalance_409: false,
    schema_put_force: false,
    delete_schema_409_for_offline: false,
    reload_nothing_404: false,
    servers_counts: false,
    table_put_force: false,
    put_keeps_queries_disabled: false,
    reload_status_field: false,
};

const FACTS_1_3_0: Facts = Facts {
    release: "1.3.0",
    version: "1.3.0",
    missing_table_404: false,
    drain: false,
    queries_state: false,
    shutdown_in_instance: false,
    pinot_version_field: false,
    rebalance_defaults: (false, false, 1),
    rebalance_409: false,
    schema_put_force: false,
    delete_schema_409_for_offline: false,
    reload_nothing_404: true,
    servers_counts: true,
    table_put_force: false,
    put_keeps_queries_disabled: false,
    reload_status_field: false,
};

const FACTS_1_4_0: Facts = Facts {
    release: "1.4.0",
    version: "1.4.0",
    missing_table_404: true,
    drain: false,
    queries_state: false,
    shutdown_in_instance: false,
    pinot_version_field: true,
    rebalance_defaults: (true, true, -1),
    rebalance_409: true,
    schema_put_force: true,
    delete_schema_409_for_offline: true,
    reload_nothing_404: true,
    servers_counts: true,
    table_put_force: false,
    put_keeps_queries_disabled: false,
    reload_status_field: false,
};

const FACTS_1_5: Facts = Facts {
    release: "1.5.x",
    version: "1.5.1",
    missing_table_404: true,
    drain: true,
    queries_state: false,
    shutdown_in_instance: true,
    pinot_version_field: true,
    rebalance_defaults: (true, true, -1),
    rebalance_409: true,
    schema_put_force: true,
    delete_schema_409_for_offline: true,
    reload_nothing_404: true,
    servers_counts: true,
    table_put_force: true,
    put_keeps_queries_disabled: false,
    reload_status_field: true,
};

const FACTS_MASTER: Facts = Facts {
    release: "master",
    version: "1.6.0-SNAPSHOT",
    missing_table_404: true,
    drain: true,
    queries_state: true,
    shutdown_in_instance: true,
    pinot_version_field: true,
    rebalance_defaults: (true, true, -1),
    rebalance_409: true,
    schema_put_force: true,
    delete_schema_409_for_offline: true,
    reload_nothing_404: true,
    servers_counts: true,
    table_put_force: true,
    put_keeps_queries_disabled: true,
    reload_status_field: true,
};

#[tokio::test]
async fn contract_1_2_0() {
    contract(&FACTS_1_2_0).await;
}

#[tokio::test]
async fn contract_1_3_0() {
    contract(&FACTS_1_3_0).await;
}

#[tokio::test]
async fn contract_1_4_0() {
    contract(&FACTS_1_4_0).await;
}

#[tokio::test]
async fn contract_1_5_x() {
    contract(&FACTS_1_5).await;
}

#[tokio::test]
async fn contract_master() {
    contract(&FACTS_MASTER).await;
}

/// Polls `f` every 20 ms until it gives a value, for at most 10 s.
async fn wait_until<T, Fut: Future<Output = Option<T>>>(what: &str, f: impl Fn() -> Fut) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Sim {
    /// An instance's ZNRecord (`GET /zk/get`) in the Helix cluster `pinot`.
    async fn znode(&self, id: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &format!("/zk/get?path=/pinot/CONFIGS/PARTICIPANT/{id}"), None).await
    }

    /// The instance's `shutdownInProgress` simple field, as its ZNRecord has it.
    async fn shutdown_flag(&self, id: &str) -> Value {
        self.znode(id).await.1["simpleFields"]["shutdownInProgress"].clone()
    }

    async fn live(&self, id: &str) -> bool {
        let (_, live) = self.call(Method::GET, "/liveinstances", None).await;
        live["instances"].as_array().unwrap().iter().any(|i| i == id)
    }

    /// The states the external view shows for one server's replicas of a table.
    async fn replica_states(&self, table: &str, server: &str) -> Vec<String> {
        let (status, view) =
            self.call(Method::GET, &format!("/tables/{table}/externalview?tableType=OFFLINE"), None).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        view["OFFLINE"].as_object().unwrap().values().filter_map(|m| m[server].as_str().map(str::to_string)).collect()
    }

    async fn lifecycle(&self, id: &str, event: &str, body: Value) {
        self.admin_call(Method::POST, &format!("/instances/{id}/{event}"), body).await;
    }

    /// Waits until a (re)started server has written `shutdownInProgress=false`.
    async fn started(&self, id: &str) {
        wait_until(&format!("{id} started"), || async { (self.shutdown_flag(id).await == "false").then_some(()) })
            .await;
    }

    async fn audit(&self) -> Value {
        self.admin_call(Method::GET, "/audit", Value::Null).await
    }
}

/// Checks one release's facts end to end on a standalone simulated cluster.
async fn contract(f: &Facts) {
    let sim = Sim::start_with(json!({"release": f.release, "segmentsLoadMs": 1000}), &["s0", "s1", "s2"]).await;
    sim.admin_call(Method::POST, "/instances", json!({"role": "minion", "host": "m0"})).await;
    let (s0, s1, s2, minion) = ("Server_s0_8098", "Server_s1_8098", "Server_s2_8098", "Minion_m0_9514");
    let release = f.release;

    // Version: `GET /version` and the header on every answer, errors included.
    let (status, version, headers) = sim.call_with_headers(Method::GET, "/version", None).await;
    assert_eq!(status, StatusCode::OK);
    let controller = version["pinot-controller"].as_str().unwrap().to_string();
    assert!(controller.starts_with(&format!("{}-", f.version)), "{release}: {version}");
    assert_eq!(controller.len(), f.version.len() + 41, "<version>-<40 hex sha>: {controller}");
    assert_eq!(headers["pinot-controller-version"], controller.as_str());
    let (status, body, headers) = sim.call_with_headers(Method::GET, "/instances/Server_nope_8098", None).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!(404)), "{body}");
    assert_eq!(headers["pinot-controller-version"], controller.as_str());
    assert_eq!(headers["pinot-controller-host"], "c0");

    // New servers start with shutdownInProgress=true and clear it once their segments loaded.
    assert_eq!(sim.shutdown_flag(s0).await, "true", "{release}: a server starts flagged");
    for id in [s0, s1, s2] {
        sim.started(id).await;
    }

    // GET /instances/{id}: names and JSON types.
    let (status, info) = sim.call(Method::GET, &format!("/instances/{s0}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["instanceName"], s0);
    assert_eq!(info["hostName"], "s0");
    assert_eq!(info["port"], "8098", "port is a string");
    assert_eq!(info["enabled"], true);
    assert_eq!(info["tags"], json!(["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"]));
    assert_eq!(info["pools"], Value::Null);
    assert_eq!((&info["grpcPort"], &info["adminPort"]), (&json!(8090), &json!(8097)));
    assert!(info["queryServicePort"].as_i64().unwrap() > 0 && info["queryMailboxPort"].as_i64().unwrap() > 0);
    assert!(info["systemResourceInfo"].is_object(), "{info}");
    assert!(info.get("queriesDisabled").is_none(), "{release}: absent unless set: {info}");
    assert_eq!(info.get("shutdownInProgress"), f.shutdown_in_instance.then_some(&json!(false)), "{release}: {info}");
    let (_, broker) = sim.call(Method::GET, "/instances/Broker_b0_8099", None).await;
    assert_eq!((&broker["grpcPort"], &broker["adminPort"], &broker["port"]), (&json!(-1), &json!(-1), &json!("8099")));

    // The ZNRecord: strings only, pinotVersion from 1.4.0; a missing node is a 404.
    let (status, record) = sim.znode(s0).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["id"], s0);
    let simple = &record["simpleFields"];
    assert_eq!(
        (&simple["HELIX_ENABLED"], &simple["HELIX_HOST"], &simple["HELIX_PORT"]),
        (&json!("true"), &json!("s0"), &json!("8098"))
    );
    assert_eq!(simple["shutdownInProgress"], "false");
    assert_eq!(simple.get("pinotVersion"), f.pinot_version_field.then_some(&json!(f.version)), "{release}: {simple}");
    assert_eq!(record["listFields"]["TAG_LIST"], json!(["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"]));
    assert_eq!(sim.znode("Server_nope_8098").await.0, StatusCode::NOT_FOUND);
    let other_cluster = format!("/zk/get?path=/other/CONFIGS/PARTICIPANT/{s0}");
    assert_eq!(sim.call(Method::GET, &other_cluster, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        sim.call(Method::GET, "/zk/get?path=/pinot/CONFIGS/PARTICIPANT", None).await,
        (StatusCode::NO_CONTENT, json!(""))
    );
    assert_eq!(sim.call(Method::GET, "/zk/get?path=pinot", None).await.0, StatusCode::BAD_REQUEST);

    // PUT /instances/{id} replaces the whole set: pools go in as numbers and come back as
    // strings; what a body leaves out is removed.
    let full = json!({"host": "s2", "port": 8098, "type": "SERVER", "tags": ["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"],
        "pools": {"DefaultTenant_OFFLINE": 1, "DefaultTenant_REALTIME": 1}, "grpcPort": 8090, "adminPort": 8097,
        "queryServicePort": 8421, "queryMailboxPort": 8442, "queriesDisabled": true});
    let path = format!("/instances/{s2}");
    let (status, body) = sim.call(Method::PUT, &path, Some(full.clone())).await;
    assert_eq!((status, body["status"].clone()), (StatusCode::OK, json!(format!("Updated instance: {s2}"))));
    let (_, info) = sim.call(Method::GET, &path, None).await;
    assert_eq!(info["pools"], json!({"DefaultTenant_OFFLINE": "1", "DefaultTenant_REALTIME": "1"}));
    assert_eq!(info["queriesDisabled"], "true");
    let (_, record) = sim.znode(s2).await;
    assert_eq!(record["mapFields"]["pool"], json!({"DefaultTenant_OFFLINE": "1", "DefaultTenant_REALTIME": "1"}));
    assert_eq!(record["simpleFields"]["queriesDisabled"], "true");
    let partial = json!({"host": "s2", "port": 8098, "type": "SERVER", "queriesDisabled": false});
    assert_eq!(sim.call(Method::PUT, &path, Some(partial)).await.0, StatusCode::OK);
    let (_, info) = sim.call(Method::GET, &path, None).await;
    assert_eq!((&info["tags"], &info["pools"]), (&json!([]), &Value::Null), "{release}: {info}");
    assert_eq!(
        (&info["grpcPort"], &info["adminPort"], &info["queryMailboxPort"]),
        (&json!(-1), &json!(-1), &json!(-1))
    );
    assert_eq!(info.get("queriesDisabled"), f.put_keeps_queries_disabled.then_some(&json!("true")), "{release}");
    assert_eq!(sim.call(Method::PUT, "/instances/Server_nope_8098", Some(full.clone())).await.0, StatusCode::NOT_FOUND);
    let no_host = json!({"port": 8098, "type": "SERVER"});
    assert_eq!(sim.call(Method::PUT, &path, Some(no_host)).await.0, StatusCode::BAD_REQUEST);
    let mut restored = full.clone();
    restored["queriesDisabled"] = json!(false);
    assert_eq!(sim.call(Method::PUT, &path, Some(restored)).await.0, StatusCode::OK);
    if f.put_keeps_queries_disabled {
        let enable = format!("/instances/{s2}/state?state=queries_enable");
        assert_eq!(sim.call(Method::PUT, &enable, None).await.0, StatusCode::OK);
    }
    assert!(sim.call(Method::GET, &path, None).await.1.get("queriesDisabled").is_none());

    // The operator sets a server's Pinot pools per tag through that whole-config PUT: the pools
    // asked for are set, its other pools, tags, ports and queriesDisabled stay.
    let client = pinot_operator::pinot::PinotClient::new(reqwest::Client::new(), sim.base.clone())
        .with_release(pinot_operator::pinot::PinotRelease::from_version(f.version).unwrap());
    let mut other = full.clone();
    other["pools"] = json!({"other_OFFLINE": 5});
    other["queriesDisabled"] = json!(false);
    assert_eq!(sim.call(Method::PUT, &path, Some(other)).await.0, StatusCode::OK);
    let set = [("DefaultTenant_OFFLINE".to_string(), 2), ("DefaultTenant_REALTIME".to_string(), 2)];
    let before = client.set_instance_pools(s2, &set).await.unwrap();
    assert_eq!(before, BTreeMap::from([("other_OFFLINE".to_string(), 5)]), "{release}");
    let (_, info) = sim.call(Method::GET, &path, None).await;
    assert_eq!(
        info["pools"],
        json!({"DefaultTenant_OFFLINE": "2", "DefaultTenant_REALTIME": "2", "other_OFFLINE": "5"}),
        "{release}"
    );
    assert_eq!((&info["tags"], info.get("queriesDisabled")), (&full["tags"], None), "{release}: {info}");
    assert_eq!((&info["grpcPort"], &info["queryMailboxPort"]), (&json!(8090), &json!(8442)), "{release}: {info}");
    // Asked again: nothing to write (one GET, no PUT).
    let puts = |log: Value| log.as_array().map_or(0, |r| r.iter().filter(|q| q["method"] == "PUT").count());
    let puts_before = puts(sim.admin_call(Method::GET, "/requests", Value::Null).await);
    client.set_instance_pools(s2, &set).await.unwrap();
    assert_eq!(puts(sim.admin_call(Method::GET, "/requests", Value::Null).await), puts_before, "{release}");
    assert!(client.set_instance_pools("Server_nope_8098", &set).await.is_err());

    // Instance state: 404 before anything else, the release's values, 400 for the others.
    let bogus = "/instances/Server_nope_8098/state?state=bogus";
    assert_eq!(sim.call(Method::PUT, bogus, None).await.0, StatusCode::NOT_FOUND);
    let (status, body) = sim.call(Method::PUT, &format!("/instances/{s1}/state?state=bogus"), None).await;
    assert_eq!(
        (status, &body["error"], &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("Unknown state 'bogus'"), &json!(400))
    );
    for state in ["disable", "enable"] {
        let (status, body) = sim.call(Method::PUT, &format!("/instances/{s1}/state?state={state}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], format!("Request to {state} instance '{s1}' is successful"));
    }
    let (status, body) = sim.call(Method::PUT, &format!("/instances/{minion}/state?state=drain"), None).await;
    if f.drain {
        assert_eq!(status, StatusCode::OK, "{release}: {body}");
        assert_eq!(
            sim.call(Method::GET, &format!("/instances/{minion}"), None).await.1["tags"],
            json!(["minion_drained"])
        );
        let drain_server = format!("/instances/{s1}/state?state=drain");
        assert_eq!(sim.call(Method::PUT, &drain_server, None).await.0, StatusCode::BAD_REQUEST);
        let enable = format!("/instances/{minion}/state?state=enable");
        assert_eq!(sim.call(Method::PUT, &enable, None).await.0, StatusCode::OK);
        assert_eq!(
            sim.call(Method::GET, &format!("/instances/{minion}"), None).await.1["tags"],
            json!(["minion_untagged"])
        );
    } else {
        assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("Unknown state 'drain'")), "{release}");
    }
    let (status, body) = sim.call(Method::PUT, &format!("/instances/{s1}/state?state=queries_disable"), None).await;
    if f.queries_state {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(sim.call(Method::GET, &format!("/instances/{s1}"), None).await.1["queriesDisabled"], "true");
        let minion_state = format!("/instances/{minion}/state?state=queries_disable");
        assert_eq!(sim.call(Method::PUT, &minion_state, None).await.0, StatusCode::BAD_REQUEST);
        let enable = format!("/instances/{s1}/state?state=queries_enable");
        assert_eq!(sim.call(Method::PUT, &enable, None).await.0, StatusCode::OK);
    } else {
        assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("Unknown state 'queries_disable'")));
    }
    assert!(sim.call(Method::GET, &format!("/instances/{s1}"), None).await.1.get("queriesDisabled").is_none());

    // A missing table, and its views.
    let (status, body) = sim.call(Method::GET, "/tables/nope", None).await;
    if f.missing_table_404 {
        assert_eq!((status, &body["code"]), (StatusCode::NOT_FOUND, &json!(404)), "{release}: {body}");
    } else {
        assert_eq!((status, body), (StatusCode::OK, json!({})), "{release}");
    }
    let (status, body) = sim.call(Method::GET, "/tables/nope/externalview", None).await;
    assert_eq!((status, &body["error"]), (StatusCode::NOT_FOUND, &json!("Table not found")));

    // A table with replication 2 on the three servers: ideal state and external view.
    let schema = fixture("starbucksStores/starbucksStores_schema.json");
    assert_eq!(sim.call(Method::POST, "/schemas", Some(schema.clone())).await.0, StatusCode::OK);
    let mut table = fixture("starbucksStores/starbucksStores_offline_table_config.json");
    table["segmentsConfig"]["replication"] = json!("2");
    assert_eq!(sim.call(Method::POST, "/tables", Some(table)).await.0, StatusCode::OK);
    sim.admin_call(Method::POST, "/segments", json!({"table": "starbucksStores_OFFLINE", "count": 6})).await;
    let (status, ideal) = sim.call(Method::GET, "/tables/starbucksStores/idealstate", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ideal["REALTIME"], Value::Null, "a missing type is null: {ideal}");
    let segments = ideal["OFFLINE"].as_object().unwrap();
    assert_eq!(segments.len(), 6);
    assert!(
        segments
            .values()
            .all(|m| m.as_object().unwrap().len() == 2 && m.as_object().unwrap().values().all(|s| s == "ONLINE"))
    );
    let (_, view) = sim.call(Method::GET, "/tables/starbucksStores/externalview?tableType=offline", None).await;
    assert_eq!(view["OFFLINE"], ideal["OFFLINE"], "every replica ONLINE");
    assert_eq!(view["REALTIME"], Value::Null);
    let bad_type = "/tables/starbucksStores/externalview?tableType=bogus";
    assert_eq!(sim.call(Method::GET, bad_type, None).await.0, StatusCode::BAD_REQUEST);

    // Segments per server, with counts from 1.3.0.
    let (_, servers) = sim.call(Method::GET, "/segments/starbucksStores/servers", None).await;
    assert!(servers[0]["serverToSegmentsMap"].is_object());
    assert_eq!(servers[0].get("serverToSegmentsCountMap").is_some(), f.servers_counts, "{release}: {servers}");
    if f.servers_counts {
        assert_eq!(servers[0]["serverToSegmentsCountMap"][s0], 4);
        let (_, counts) = sim.call(Method::GET, "/segments/starbucksStores/servers?verbose=false", None).await;
        assert!(counts[0].get("serverToSegmentsMap").is_none() && counts[0]["serverToSegmentsCountMap"].is_object());
    }

    // Rebalance: `type` is required; the release's defaults; an illegal minAvailableReplicas.
    let (status, body) = sim.call(Method::POST, "/tables/starbucksStores/rebalance", None).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("Illegal table type: null")));
    let (status, body) =
        sim.call(Method::POST, "/tables/starbucksStores/rebalance?type=OFFLINE&dryRun=true", None).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("NO_OP")), "balanced already: {body}");
    let calls = sim.admin_call(Method::GET, "/rebalances", Value::Null).await;
    let params = &calls.as_array().unwrap().last().unwrap()["params"];
    let (reassign, consuming, min_available) = f.rebalance_defaults;
    assert_eq!(
        (&params["reassignInstances"], &params["includeConsuming"], &params["minAvailableReplicas"]),
        (&json!(reassign), &json!(consuming), &json!(min_available)),
        "{release}: {params}"
    );
    assert_eq!(params["release"], release);
    let untag = format!("/instances/{s2}/updateTags?tags=server_untagged");
    assert_eq!(sim.call(Method::PUT, &untag, None).await.0, StatusCode::OK);
    let rebalance = "/tables/starbucksStores/rebalance?type=OFFLINE";
    let (status, body) = sim.call(Method::POST, &format!("{rebalance}&minAvailableReplicas=2"), None).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("IN_PROGRESS")), "{body}");
    let (_, job) = sim.call(Method::GET, &format!("/rebalanceStatus/{}", body["jobId"].as_str().unwrap()), None).await;
    assert_eq!(job["tableRebalanceProgressStats"]["status"], "FAILED", "{job}");
    assert_eq!(job["tableRebalanceProgressStats"]["completionStatusMsg"], "Illegal min available replicas config");
    assert_eq!(job["tableRebalanceContext"]["config"]["minAvailableReplicas"], 2);
    // A second rebalance while one runs: 409 from 1.4.0.
    sim.faults(Faults { rebalance_step_ms: 100, ..Default::default() }).await;
    let (status, first) = sim.call(Method::POST, &format!("{rebalance}&minAvailableReplicas=0"), None).await;
    assert_eq!((status, &first["status"]), (StatusCode::OK, &json!("IN_PROGRESS")), "{first}");
    let (status, second) = sim.call(Method::POST, &format!("{rebalance}&minAvailableReplicas=0"), None).await;
    if f.rebalance_409 {
        assert_eq!(status, StatusCode::CONFLICT, "{release}: {second}");
        assert!(second["error"].as_str().unwrap().contains("already in progress"), "{second}");
    } else {
        assert_eq!((status, &second["status"]), (StatusCode::OK, &json!("IN_PROGRESS")), "{release}: {second}");
    }
    let first_job = format!("/rebalanceStatus/{}", first["jobId"].as_str().unwrap());
    wait_until("the rebalance", || async {
        let (_, job) = sim.call(Method::GET, &first_job, None).await;
        (job["tableRebalanceProgressStats"]["status"] == "DONE").then_some(())
    })
    .await;
    sim.faults(Faults::default()).await;
    assert_eq!(sim.call(Method::GET, &format!("/instances/{s2}"), None).await.1["tags"], json!(["server_untagged"]));
    assert!(
        sim.admin_call(Method::GET, "/segments", Value::Null).await.get(s2).is_none(),
        "moved off the untagged server"
    );
    // Back on three servers with a downtime rebalance: at once, and no job to poll.
    let tag = format!("/instances/{s2}/updateTags?tags=DefaultTenant_OFFLINE,DefaultTenant_REALTIME");
    assert_eq!(sim.call(Method::PUT, &tag, None).await.0, StatusCode::OK);
    let (_, body) = sim.call(Method::POST, &format!("{rebalance}&downtime=true"), None).await;
    assert_eq!(body["status"], "DONE", "{body}");
    let untracked = format!("/rebalanceStatus/{}", body["jobId"].as_str().unwrap());
    assert_eq!(sim.call(Method::GET, &untracked, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(sim.admin_call(Method::GET, "/segments", Value::Null).await[s2]["starbucksStores_OFFLINE"], 4);

    // Reload: one message per server holding the table; nothing to reload is a 404 from 1.3.0.
    let (status, body) = sim.call(Method::POST, "/segments/starbucksStores/reload", None).await;
    assert_eq!(status, StatusCode::OK);
    let reload: Value = serde_json::from_str(body["status"].as_str().unwrap()).unwrap();
    assert_eq!(reload["starbucksStores_OFFLINE"]["numMessagesSent"], "3", "{reload}");
    let job = reload["starbucksStores_OFFLINE"]["reloadJobId"].as_str().unwrap();
    let (_, progress) = sim.call(Method::GET, &format!("/segments/segmentReloadStatus/{job}"), None).await;
    assert_eq!(progress["successCount"], progress["totalSegmentCount"]);
    assert_eq!(progress.get("status").is_some(), f.reload_status_field, "{release}: {progress}");
    let empty_schema = json!({"schemaName": "empty", "dimensionFieldSpecs": [{"name": "id", "dataType": "STRING"}]});
    assert_eq!(sim.call(Method::POST, "/schemas", Some(empty_schema)).await.0, StatusCode::OK);
    let empty_table = json!({"tableName": "empty", "tableType": "OFFLINE", "segmentsConfig": {"replication": "1"},
        "tenants": {}, "tableIndexConfig": {}, "metadata": {}});
    assert_eq!(sim.call(Method::POST, "/tables", Some(empty_table)).await.0, StatusCode::OK);
    let (status, body) = sim.call(Method::POST, "/segments/empty/reload", None).await;
    if f.reload_nothing_404 {
        assert_eq!(status, StatusCode::NOT_FOUND, "{release}: {body}");
    } else {
        assert_eq!(status, StatusCode::OK, "{release}: {body}");
        assert!(body["status"].as_str().unwrap().contains(r#""numMessagesSent":"0""#), "{body}");
    }

    // Schemas: PUT ?force= from 1.4.0; DELETE of one an OFFLINE table is named after.
    let mut smaller = schema.clone();
    smaller["dimensionFieldSpecs"].as_array_mut().unwrap().pop();
    let (status, body) = sim.call(Method::PUT, "/schemas/starbucksStores?force=true", Some(smaller)).await;
    let forced = if f.schema_put_force { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    assert_eq!(status, forced, "{release}: {body}");
    let (status, body) = sim.call(Method::DELETE, "/schemas/empty", None).await;
    let delete = if f.delete_schema_409_for_offline { StatusCode::CONFLICT } else { StatusCode::OK };
    assert_eq!(status, delete, "{release}: {body}");

    // Table update: upsert changes need force=true from 1.5.0.
    let upsert_schema = fixture("upsertMeetupRsvp/upsertMeetupRsvp_schema.json");
    assert_eq!(sim.call(Method::POST, "/schemas", Some(upsert_schema)).await.0, StatusCode::OK);
    let upsert = fixture("upsertMeetupRsvp/upsertMeetupRsvp_realtime_table_config.json");
    assert_eq!(sim.call(Method::POST, "/tables", Some(upsert.clone())).await.0, StatusCode::OK);
    let mut partial_upsert = upsert.clone();
    partial_upsert["upsertConfig"]["mode"] = json!("PARTIAL");
    let (status, body) = sim.call(Method::PUT, "/tables/upsertMeetupRsvp", Some(partial_upsert.clone())).await;
    if f.table_put_force {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{release}: {body}");
        assert!(body["error"].as_str().unwrap().contains("upsertConfig.mode (FULL -> PARTIAL)"), "{body}");
        let forced = "/tables/upsertMeetupRsvp?force=true";
        assert_eq!(sim.call(Method::PUT, forced, Some(partial_upsert)).await.0, StatusCode::OK);
    } else {
        assert_eq!(status, StatusCode::OK, "{release}: {body}");
    }

    restart_and_routing_audit(&sim, release).await;

    // An image without jar manifests: `{}` and `Unknown`.
    sim.faults(Faults { empty_version: true, ..Default::default() }).await;
    let (status, version, headers) = sim.call_with_headers(Method::GET, "/version", None).await;
    assert_eq!((status, version), (StatusCode::OK, json!({})));
    assert_eq!(headers["pinot-controller-version"], "Unknown");
}

/// A server restart as server-lifecycle.md §2 tells it, `queriesDisabled` surviving it, the
/// routing audit catching two replica holders out at once, and segments that fail to load.
async fn restart_and_routing_audit(sim: &Sim, release: &str) {
    let (s0, s1, s2) = ("Server_s0_8098", "Server_s1_8098", "Server_s2_8098");
    let table = "starbucksStores";
    sim.admin_call(Method::DELETE, "/audit", Value::Null).await;

    // SIGTERM: shutdownInProgress at once, still live and ONLINE while it drains.
    sim.lifecycle(s0, "sigterm", Value::Null).await;
    assert_eq!(sim.shutdown_flag(s0).await, "true");
    assert!(sim.live(s0).await);
    let states = sim.replica_states(table, s0).await;
    assert!(!states.is_empty() && states.iter().all(|s| s == "ONLINE"), "{release}: {states:?}");
    // Gone: not live, out of the external view, the flag stays.
    sim.lifecycle(s0, "exit", Value::Null).await;
    assert!(!sim.live(s0).await);
    assert_eq!(sim.replica_states(table, s0).await, Vec::<String>::new());
    assert_eq!(sim.shutdown_flag(s0).await, "true");
    // Back: live, flagged, OFFLINE while loading; ONLINE before the flag clears.
    sim.lifecycle(s0, "start", json!({"segmentsLoadMs": 1000})).await;
    assert!(sim.live(s0).await);
    assert_eq!(sim.shutdown_flag(s0).await, "true");
    let states = sim.replica_states(table, s0).await;
    assert!(states.len() == 4 && states.iter().all(|s| s == "OFFLINE"), "{release}: {states:?}");
    wait_until("s0 routable again", || async {
        let flag = sim.shutdown_flag(s0).await;
        let states = sim.replica_states(table, s0).await;
        assert!(!(flag == "false" && states.iter().any(|s| s != "ONLINE")), "flag cleared before ONLINE: {states:?}");
        (flag == "false").then_some(())
    })
    .await;
    let audit = sim.audit().await;
    assert_eq!(audit["routingGaps"], json!([]), "{release}: one server at a time: {audit}");
    assert_eq!(audit["lowestRoutableReplicas"][format!("{table}_OFFLINE")], 1, "{audit}");
    assert_eq!(audit["lowestReplicas"][format!("{table}_OFFLINE")], 1, "{audit}");

    // queriesDisabled survives a restart: the server never clears it.
    let path = format!("/instances/{s1}");
    let mut body = json!({"host": "s1", "port": 8098, "type": "SERVER",
        "tags": ["DefaultTenant_OFFLINE", "DefaultTenant_REALTIME"], "queriesDisabled": true});
    assert_eq!(sim.call(Method::PUT, &path, Some(body.clone())).await.0, StatusCode::OK);
    for event in ["sigterm", "exit"] {
        sim.lifecycle(s1, event, Value::Null).await;
    }
    sim.lifecycle(s1, "start", json!({"segmentsLoadMs": 100})).await;
    sim.started(s1).await;
    assert_eq!(sim.call(Method::GET, &path, None).await.1["queriesDisabled"], "true", "{release}");
    body["queriesDisabled"] = json!(false);
    sim.call(Method::PUT, &path, Some(body)).await;
    if release == "master" {
        sim.call(Method::PUT, &format!("{path}/state?state=queries_enable"), None).await;
    }
    assert!(sim.call(Method::GET, &path, None).await.1.get("queriesDisabled").is_none());
    assert_eq!(sim.audit().await["routingGaps"], json!([]));

    // Two holders of the same segments out at once: a routing gap, and no routable replica left.
    sim.admin_call(Method::DELETE, "/audit", Value::Null).await;
    sim.lifecycle(s0, "sigterm", Value::Null).await;
    sim.lifecycle(s1, "sigterm", Value::Null).await;
    let audit = sim.audit().await;
    let gaps = audit["routingGaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{release}: {audit}");
    assert_eq!(gaps[0]["server"], s1);
    assert_eq!(gaps[0]["reason"], "shutdownInProgress");
    assert_eq!(gaps[0]["otherHoldersOut"], json!([s0]));
    assert_eq!(gaps[0]["segments"], 2, "s0 and s1 share two of the six segments: {audit}");
    assert_eq!(audit["lowestRoutableReplicas"][format!("{table}_OFFLINE")], 0, "{audit}");
    assert_eq!(audit["lowestReplicas"][format!("{table}_OFFLINE")], 2, "both still live: {audit}");
    for s in [s0, s1] {
        sim.lifecycle(s, "exit", Value::Null).await;
        sim.lifecycle(s, "start", json!({"segmentsLoadMs": 0})).await;
        sim.started(s).await;
    }

    // Segments that fail to load go ERROR; the server still finishes its start (readiness
    // counts ERROR as done), but those replicas are not routable.
    sim.admin_call(Method::DELETE, "/audit", Value::Null).await;
    sim.faults(Faults { segment_error_servers: vec![s2.into()], ..Default::default() }).await;
    for event in ["sigterm", "exit"] {
        sim.lifecycle(s2, event, Value::Null).await;
    }
    sim.lifecycle(s2, "start", json!({"segmentsLoadMs": 100})).await;
    sim.started(s2).await;
    let states = sim.replica_states(table, s2).await;
    assert!(states.len() == 4 && states.iter().all(|s| s == "ERROR"), "{release}: {states:?}");
    assert_eq!(sim.audit().await["lowestRoutableReplicas"][format!("{table}_OFFLINE")], 1);
    sim.faults(Faults::default()).await;
}

#[tokio::test]
async fn the_release_comes_from_the_oldest_live_controller_image_and_instances_keep_their_version() {
    pinot_operator::pinot::install_tls_provider();
    let state = Arc::new(SimState::new());
    let sim = PinotSimulator::start("127.0.0.1:0".parse().unwrap(), state.clone()).await.unwrap();
    let http = Client::new();
    let base = sim.controller_url("ns", "k");
    let admin = format!("http://{}/_sim/clusters/ns/k", sim.addr);
    let key = ("ns".to_string(), "k".to_string());
    let pod = |name: &str, uid: &str, image: &str| SimPod {
        basic_auth: None,
        https_only: false,
        name: name.into(),
        uid: uid.into(),
        image: image.into(),
        segments_load: Some(Duration::from_millis(500)),
        zone: None,
    };
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
    };
    let settings = |body: Value| {
        let (http, url) = (http.clone(), format!("{admin}/settings"));
        async move { assert!(http.put(url).json(&body).send().await.unwrap().status().is_success()) }
    };

    // Set up before any pod: the cluster answers 503 until a controller runs.
    settings(json!({"segmentsLoadMs": 0})).await; // pods say how long they take
    assert_eq!(get("/health").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let host = "k-server-0.k-server-headless.ns.svc.cluster.local";
    let server = format!("Server_{host}_8098");
    state.pod_ready(key.clone(), InstanceRole::Server, host, &pod("k-server-0", "s-1", "apachepinot/pinot:1.4.0"));
    assert_eq!(get("/health").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let controller = |n: u8| format!("k-controller-{n}.k-controller-headless.ns.svc.cluster.local");
    state.pod_ready(
        key.clone(),
        InstanceRole::Controller,
        &controller(0),
        &pod("k-controller-0", "c-0", "apachepinot/pinot:1.4.0"),
    );
    state.pod_ready(
        key.clone(),
        InstanceRole::Controller,
        &controller(1),
        &pod("k-controller-1", "c-1", "apachepinot/pinot:1.3.0"),
    );
    assert_eq!(get("/health").await.0, StatusCode::OK);

    // Two controller releases: the oldest answers.
    let version = |v: &Value| v["pinot-controller"].as_str().unwrap().split('-').next().unwrap().to_string();
    assert_eq!(version(&get("/version").await.1), "1.3.0");
    assert_eq!(get("/tables/nope").await, (StatusCode::OK, json!({})));
    state.pod_terminating(&key, "c-1");
    assert_eq!(version(&get("/version").await.1), "1.4.0");
    assert_eq!(get("/tables/nope").await.0, StatusCode::NOT_FOUND);
    // The admin API overrides it, and `null` gives it back to the images.
    settings(json!({"release": "1.2.0"})).await;
    assert_eq!(version(&get("/version").await.1), "1.2.0");
    settings(json!({"release": null})).await;
    assert_eq!(version(&get("/version").await.1), "1.4.0");

    // A 1.4.0 server writes pinotVersion; back on 1.3.0 (which does not write it) it is kept.
    let znode = format!("/zk/get?path=/k/CONFIGS/PARTICIPANT/{server}");
    let flag = |record: &Value| record["simpleFields"]["shutdownInProgress"].clone();
    let started = || async {
        wait_until("the server started", || async { (flag(&get(&znode).await.1) == "false").then_some(()) }).await
    };
    started().await;
    assert_eq!(get(&znode).await.1["simpleFields"]["pinotVersion"], "1.4.0");
    state.pod_terminating(&key, "s-1");
    assert_eq!(flag(&get(&znode).await.1), "true", "SIGTERM flags the server at once");
    state.pod_finalized(&key, "s-1");
    state.pod_ready(key.clone(), InstanceRole::Server, host, &pod("k-server-0", "s-2", "apachepinot/pinot:1.3.0"));
    assert_eq!(flag(&get(&znode).await.1), "true", "a restarted server starts flagged");
    started().await;
    assert_eq!(get(&znode).await.1["simpleFields"]["pinotVersion"], "1.4.0");
    let cluster: Value = http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(cluster["instances"][&server]["build"]["version"], "1.3.0");
    // Another event of the running pod, or a late one of the old pod, changes nothing.
    state.pod_ready(key.clone(), InstanceRole::Server, host, &pod("k-server-0", "s-2", "apachepinot/pinot:1.3.0"));
    state.pod_finalized(&key, "s-1");
    assert_eq!(flag(&get(&znode).await.1), "false");
    let (_, live) = get("/liveinstances").await;
    assert!(live["instances"].as_array().unwrap().contains(&json!(server)));

    // A migrated cluster keeps another Helix cluster name.
    settings(json!({"helixClusterName": "legacy"})).await;
    assert_eq!(get(&znode).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&format!("/zk/get?path=/legacy/CONFIGS/PARTICIPANT/{server}")).await.0, StatusCode::OK);
    let read: Value = http.get(format!("{admin}/settings")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        read,
        json!({"release": "1.4.0", "releaseOverride": null, "helixClusterName": "legacy", "segmentsLoadMs": 0})
    );
}

#[tokio::test]
async fn basic_auth_leaves_health_open() {
    let sim = Sim::start().await;
    sim.faults(Faults { required_authorization: Some("Basic YWRtaW46czNjcmV0".into()), ..Default::default() }).await;
    assert_eq!(sim.call(Method::GET, "/health", None).await.0, StatusCode::OK);
    assert_eq!(sim.call(Method::GET, "/version", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.call(Method::GET, "/zk/get?path=/pinot", None).await.0, StatusCode::UNAUTHORIZED);
}
