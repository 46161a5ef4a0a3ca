//! Contract tests: the simulated Pinot controller answers as `shared/PINOT-API.md` says, on
//! the real example schemas and table configs in `shared/fixtures/pinot/`.

use std::{path::PathBuf, sync::Arc};

use pinot_testbed::{
    harness::shared_dir,
    pinot_sim::{Faults, PinotSimulator, SimState},
};
use reqwest::{Client, Method, StatusCode};
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
    async fn start() -> Self {
        pinot_operator::pinot::install_tls_provider();
        let sim = PinotSimulator::start("127.0.0.1:0".parse().unwrap(), Arc::new(SimState::new())).await.unwrap();
        sim.state.create_cluster(("ns".into(), "pinot".into()));
        let base = sim.controller_url("ns", "pinot");
        let admin = format!("http://{}/_sim/clusters/ns/pinot", sim.addr);
        let s = Self { _sim: sim, base, admin, http: Client::new() };
        for (role, host) in [
            ("controller", "c0"),
            ("broker", "b0"),
            ("server", "s0"),
            ("server", "s1"),
            ("server", "s2"),
            ("server", "s3"),
        ] {
            s.admin_call(Method::POST, "/instances", json!({"role": role, "host": host})).await;
        }
        s
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn admin_call(&self, method: Method, path: &str, body: Value) -> Value {
        let resp = self.http.request(method, format!("{}{path}", self.admin)).json(&body).send().await.unwrap();
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
async fn missing_tables_answer_404_or_the_old_empty_object() {
    let sim = Sim::start().await;
    let (status, body) = sim.call(Method::GET, "/tables/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 404);
    sim.faults(Faults { legacy_missing_table: true, ..Default::default() }).await;
    assert_eq!(sim.call(Method::GET, "/tables/nope", None).await, (StatusCode::OK, json!({})));
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
    assert_eq!(live["liveInstances"].as_array().unwrap().len(), 6);
    assert_eq!(
        sim.call(Method::PUT, &format!("/instances/{server}/state?state=queries_disable"), None).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.call(Method::GET, &format!("/instances/{server}"), None).await.1["queriesDisabled"], true);
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
