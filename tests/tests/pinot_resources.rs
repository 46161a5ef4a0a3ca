//! End to end: PinotSchemas and PinotTables applied with kubectl reach the (simulated) Pinot
//! controller of their cluster, stay equal to it, and go away as `deletionPolicy` says.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::{Api, api::ListParams};
use pinot_crds::{PinotSchema, PinotTable};
use pinot_testbed::harness::{
    OperatorHandle, TEST_DRIFT_INTERVAL, TestNamespace, condition_of, controller_url_template, kubectl, shared_dir,
    simulator_admin_url, test_client, wait_for,
};
use serde_json::{Value, json};

fn fixture(path: &str) -> Value {
    let file = shared_dir().join("fixtures/pinot").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap()
}

/// A simulated Pinot cluster that no PinotCluster deployed (always up, with a controller, a
/// broker and three servers), and an external PinotCluster `ext` pointing at it by URL.
struct ExternalPinot {
    url: String,
    admin: String,
    http: reqwest::Client,
}

impl ExternalPinot {
    async fn create(ns: &str) -> Self {
        Self::create_on(ns, None).await
    }

    /// The standalone cluster answers as `release` (the simulator's newest, master, when `None`).
    async fn create_on(ns: &str, release: Option<&str>) -> Self {
        let http = reqwest::Client::new();
        let admin = simulator_admin_url(ns, "standalone");
        let url = controller_url_template().replace("{namespace}", ns).replace("{name}", "standalone");
        let settings = json!({"release": release});
        assert!(http.put(&admin).json(&settings).send().await.unwrap().status().is_success());
        for (role, host) in
            [("controller", "c0"), ("broker", "b0"), ("server", "s0"), ("server", "s1"), ("server", "s2")]
        {
            let r = http.post(format!("{admin}/instances")).json(&json!({"role": role, "host": host})).send().await;
            assert!(r.unwrap().status().is_success());
        }
        apply(
            ns,
            &json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
                "metadata": {"name": "ext"}, "spec": {"external": {"controllerUrl": url}}}),
        )
        .await;
        kubectl(&["-n", ns, "wait", "--for=condition=Available", "pinotcluster/ext", "--timeout=60s"]).await;
        Self { url, admin, http }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: &Value) -> u16 {
        self.http.put(format!("{}{path}", self.url)).json(body).send().await.unwrap().status().as_u16()
    }

    /// The writes (POST, PUT, DELETE) Pinot received, as `"METHOD path"`.
    async fn writes(&self) -> Vec<String> {
        pinot_testbed::workload::pinot_writes(&self.admin).await
    }

    async fn clear_log(&self) {
        pinot_testbed::workload::clear_log(&self.admin).await;
    }

    async fn faults(&self, faults: Value) {
        assert!(
            self.http.put(format!("{}/faults", self.admin)).json(&faults).send().await.unwrap().status().is_success()
        );
    }
}

/// `kubectl apply` of one object, as a user would.
async fn apply(ns: &str, object: &Value) {
    let name = object["metadata"]["name"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let file = std::env::temp_dir().join(format!("{ns}-{kind}-{name}.yaml"));
    std::fs::write(&file, serde_yaml::to_string(object).unwrap()).unwrap();
    kubectl(&["-n", ns, "apply", "-f", file.to_str().unwrap()]).await;
}

fn schema_resource(name: &str, schema: Value, extra: Value) -> Value {
    let mut spec = json!({"cluster": "ext", "schema": schema});
    spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotSchema", "metadata": {"name": name}, "spec": spec})
}

fn table_resource(name: &str, spec: Value) -> Value {
    let mut full = json!({"cluster": "ext"});
    full.as_object_mut().unwrap().extend(spec.as_object().cloned().unwrap());
    json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTable", "metadata": {"name": name}, "spec": full})
}

/// Waits until the resource is Ready. The budget is generous: these tests share two cores with
/// eleven others (one converging 500 tables), and a tenant over zones is Ready only once its
/// servers have their Pinot pools as well as their tags.
async fn wait_ready(ns: &str, resource: &str) {
    kubectl(&["-n", ns, "wait", "--for=condition=Ready", resource, "--timeout=180s"]).await;
}

/// Waits until the resource's Ready condition has `status` and a message containing `text`;
/// returns the message.
async fn wait_condition<K>(api: &Api<K>, name: &str, status: &str, text: &str) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    wait_for(&format!("{name} Ready={status} saying {text:?}"), Duration::from_secs(60), || async {
        let obj = api.get(name).await.ok()?;
        let value = serde_json::to_value(&obj).ok()?;
        let (s, message) = condition_of(&value, "Ready")?;
        (s == status && message.contains(text)).then_some(message)
    })
    .await
}

async fn events(client: &kube::Client, ns: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test]
async fn every_example_schema_and_table_reaches_ready_and_then_pinot_sees_no_writes() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-examples").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create(&ns.name).await;

    let schemas = [
        ("airline-stats", fixture("airlineStats/airlineStats_schema.json")),
        ("baseball-stats", fixture("baseballStats/baseballStats_schema.json")),
        ("github-events", fixture("githubEvents/githubEvents_schema.json")),
        ("pull-request-merged-events", fixture("githubEvents/pullRequestMergedEvents_schema.json")),
        ("starbucks-stores", fixture("starbucksStores/starbucksStores_schema.json")),
        ("upsert-meetup-rsvp", fixture("upsertMeetupRsvp/upsertMeetupRsvp_schema.json")),
        // The dimension table's example comes without a schema.
        (
            "dim-baseball-teams",
            json!({"schemaName": "dimBaseballTeams", "primaryKeyColumns": ["teamID"],
                "dimensionFieldSpecs": [{"name": "teamID", "dataType": "STRING"}, {"name": "teamName", "dataType": "STRING"}]}),
        ),
    ];
    // Tables first: they wait for their schemas.
    let mut airline_offline = fixture("airlineStats/airlineStats_offline_table_config.json");
    let mut airline_realtime = fixture("airlineStats/airlineStats_realtime_table_config.json");
    // The airlineStats schema lives in database db1, so the table does too.
    airline_offline["tableName"] = json!("db1.airlineStats");
    airline_realtime["tableName"] = json!("db1.airlineStats");
    let tables = [
        (
            "airline-stats",
            json!({"schemaRef": "airline-stats", "offline": airline_offline, "realtime": airline_realtime}),
        ),
        (
            "baseball-stats",
            json!({"schemaRef": "baseball-stats", "offline": fixture("baseballStats/baseballStats_offline_table_config.json")}),
        ),
        (
            "github-events",
            json!({"schemaRef": "github-events",
                "offline": fixture("githubEvents/githubEvents_offline_table_config.json"),
                "realtime": fixture("githubEvents/githubEvents_realtime_table_config.json")}),
        ),
        (
            "pull-request-merged-events",
            json!({"schemaRef": "pull-request-merged-events",
                "realtime": fixture("githubEvents/pullRequestMergedEvents_realtime_table_config.json")}),
        ),
        (
            "starbucks-stores",
            json!({"schemaRef": "starbucks-stores", "offline": fixture("starbucksStores/starbucksStores_offline_table_config.json")}),
        ),
        (
            "upsert-meetup-rsvp",
            json!({"schemaRef": "upsert-meetup-rsvp",
                "realtime": fixture("upsertMeetupRsvp/upsertMeetupRsvp_realtime_table_config.json")}),
        ),
        (
            "dim-baseball-teams",
            json!({"schemaRef": "dim-baseball-teams", "offline": fixture("dimBaseballTeams/dimBaseballTeams_offline_table_config.json")}),
        ),
    ];
    for (name, spec) in &tables {
        apply(&ns.name, &table_resource(name, spec.clone())).await;
    }
    let tables_api: Api<PinotTable> = Api::namespaced(client.clone(), &ns.name);
    wait_condition(
        &tables_api,
        "baseball-stats",
        "False",
        "PinotSchema baseball-stats (spec.schemaRef) does not exist",
    )
    .await;
    for (name, schema) in &schemas {
        apply(&ns.name, &schema_resource(name, schema.clone(), json!({}))).await;
    }
    for (name, _) in &schemas {
        wait_ready(&ns.name, &format!("pinotschema/{name}")).await;
    }
    for (name, _) in &tables {
        wait_ready(&ns.name, &format!("pinottable/{name}")).await;
    }

    // Pinot has them, with what the spec says.
    for (_, schema) in &schemas {
        let name = schema["schemaName"].as_str().unwrap();
        let (status, live) = pinot.get(&format!("/schemas/{name}")).await;
        assert_eq!(status, 200, "schema {name}");
        assert_eq!(live["dimensionFieldSpecs"], schema["dimensionFieldSpecs"], "schema {name}");
    }
    let (status, hybrid) = pinot.get("/tables/db1.airlineStats").await;
    assert_eq!(status, 200);
    assert_eq!(hybrid["OFFLINE"]["tableName"], "db1.airlineStats_OFFLINE");
    assert_eq!(hybrid["REALTIME"]["tableName"], "db1.airlineStats_REALTIME");
    let airline = tables_api.get("airline-stats").await.unwrap();
    assert_eq!(airline.status.as_ref().unwrap().table_types.as_deref(), Some("OFFLINE,REALTIME"));
    let (_, dim) = pinot.get("/tables/dimBaseballTeams").await;
    assert_eq!(dim["OFFLINE"]["isDimTable"], true);
    assert_eq!(
        kubectl(&["-n", &ns.name, "get", "pinottable/upsert-meetup-rsvp", "-o", "jsonpath={.status.tableTypes}"])
            .await
            .trim(),
        "REALTIME"
    );

    // Steady state: several drift checks later, Pinot has received reads only.
    pinot.clear_log().await;
    tokio::time::sleep(TEST_DRIFT_INTERVAL * 3).await;
    assert_eq!(pinot.writes().await, Vec::<String>::new());

    operator.stop().await;
    ns.cleanup().await;
}

fn orders_schema(extra_columns: &[&str]) -> Value {
    let mut dims = vec![json!({"name": "id", "dataType": "STRING"}), json!({"name": "city", "dataType": "STRING"})];
    dims.extend(extra_columns.iter().map(|c| json!({"name": c, "dataType": "STRING"})));
    json!({"schemaName": "orders", "dimensionFieldSpecs": dims,
        "metricFieldSpecs": [{"name": "amount", "dataType": "DOUBLE"}],
        "dateTimeFieldSpecs": [{"name": "ts", "dataType": "LONG", "format": "1:MILLISECONDS:EPOCH", "granularity": "1:MILLISECONDS"}]})
}

fn orders_table(replication: &str) -> Value {
    json!({"schemaRef": "orders", "offline": {"tableName": "orders",
        "segmentsConfig": {"timeColumnName": "ts", "replication": replication},
        "tableIndexConfig": {"loadMode": "MMAP"}}})
}

#[tokio::test]
async fn updates_reach_pinot_and_changes_made_in_pinot_directly_are_repaired_on_1_2_0() {
    updates_and_drift_on("1.2.0").await;
}

#[tokio::test]
async fn updates_reach_pinot_and_changes_made_in_pinot_directly_are_repaired_on_1_5_x() {
    updates_and_drift_on("1.5.x").await;
}

#[tokio::test]
async fn updates_reach_pinot_and_changes_made_in_pinot_directly_are_repaired_on_master() {
    updates_and_drift_on("master").await;
}

/// A table and its schema created, changed and repaired after a change made in Pinot directly,
/// on an external Pinot of `release`, which the external cluster's status reports; nothing the
/// release refuses is sent.
async fn updates_and_drift_on(release: &str) {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, &format!("resources-drift-{}", release.replace('.', "-"))).await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create_on(&ns.name, Some(release)).await;
    let clusters: Api<pinot_crds::PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let reported = wait_for("status.pinot.release of the external cluster", Duration::from_secs(60), || async {
        clusters.get("ext").await.ok()?.status?.pinot?.release
    })
    .await;
    assert_eq!(reported, release);
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({"reloadTablesOnChange": true}))).await;
    apply(&ns.name, &table_resource("orders", orders_table("1"))).await;
    wait_ready(&ns.name, "pinottable/orders").await;

    // A spec change is applied: a new column (and, opted in, a reload of the table's segments),
    // and a new replication.
    apply(&ns.name, &schema_resource("orders", orders_schema(&["country"]), json!({"reloadTablesOnChange": true})))
        .await;
    apply(&ns.name, &table_resource("orders", orders_table("2"))).await;
    wait_for("the new column and replication in Pinot", Duration::from_secs(60), || async {
        let (_, schema) = pinot.get("/schemas/orders").await;
        let (_, table) = pinot.get("/tables/orders").await;
        let column = schema["dimensionFieldSpecs"].as_array()?.iter().any(|f| f["name"] == "country");
        (column && table["OFFLINE"]["segmentsConfig"]["replication"] == "2").then_some(())
    })
    .await;
    let writes = pinot.writes().await;
    assert!(writes.iter().any(|w| w == "PUT /schemas/orders"), "{writes:?}");
    assert!(writes.iter().any(|w| w == "PUT /tables/orders"), "{writes:?}");
    let log: Value = reqwest::get(format!("{}/requests", pinot.admin)).await.unwrap().json().await.unwrap();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["method"] == "PUT" && r["query"].as_str().unwrap_or("").contains("reload=true")),
        "the schema update asked Pinot to reload the table's segments"
    );

    // Someone changes the table in Pinot directly: the drift check puts the spec back.
    let (_, live) = pinot.get("/tables/orders").await;
    let mut changed = live["OFFLINE"].clone();
    changed["segmentsConfig"]["replication"] = json!("5");
    assert_eq!(pinot.put("/tables/orders", &changed).await, 200);
    wait_for("the drift repaired", Duration::from_secs(30), || async {
        let (_, table) = pinot.get("/tables/orders").await;
        (table["OFFLINE"]["segmentsConfig"]["replication"] == "2").then_some(())
    })
    .await;
    // The event is written after the repair reaches Pinot: wait for it rather than race it.
    wait_for("a DriftRepaired event naming segmentsConfig.replication", Duration::from_secs(10), || async {
        let repaired = events(&client, &ns.name, "DriftRepaired").await;
        repaired.iter().any(|m| m.contains("segmentsConfig.replication")).then_some(())
    })
    .await;
    let log: Value = reqwest::get(format!("{}/requests", pinot.admin)).await.unwrap().json().await.unwrap();
    let refused: Vec<&Value> = log.as_array().unwrap().iter().filter(|r| r["status"] == 400).collect();
    assert!(refused.is_empty(), "{release} refused {refused:?}");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_change_pinot_refuses_shows_its_message_and_is_not_retried_until_the_spec_changes() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-refused").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create(&ns.name).await;
    apply(&ns.name, &schema_resource("orders", orders_schema(&["country"]), json!({}))).await;
    wait_ready(&ns.name, "pinotschema/orders").await;

    // Dropping a column is backward-incompatible: Pinot says 400, the status says why.
    pinot.clear_log().await;
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({}))).await;
    let schemas: Api<PinotSchema> = Api::namespaced(client.clone(), &ns.name);
    let message = wait_condition(&schemas, "orders", "False", "Backward incompatible schema orders").await;
    assert!(message.contains("column country was removed"), "{message}");
    // It is not sent again while the spec stays as it is, drift checks or not.
    tokio::time::sleep(TEST_DRIFT_INTERVAL * 3).await;
    assert_eq!(pinot.writes().await, ["PUT /schemas/orders"]);
    let schema = schemas.get("orders").await.unwrap();
    let status = schema.status.unwrap();
    assert_eq!(status.refused_generation, schema.metadata.generation);
    assert!(events(&client, &ns.name, "PinotRefused").await.iter().any(|m| m.contains("column country was removed")));

    // Putting the column back makes it Ready again.
    apply(&ns.name, &schema_resource("orders", orders_schema(&["country", "zip"]), json!({}))).await;
    wait_condition(&schemas, "orders", "True", "as specified").await;

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_pinot_accepts() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-5xx").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create(&ns.name).await;
    pinot.faults(json!({"failNext": 4, "failStatus": 503})).await;
    pinot.clear_log().await;
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({}))).await;
    let schemas: Api<PinotSchema> = Api::namespaced(client.clone(), &ns.name);
    // While it fails the status says so, and never Ready.
    wait_condition(&schemas, "orders", "False", "retrying with backoff").await;
    wait_ready(&ns.name, "pinotschema/orders").await;
    let (status, _) = pinot.get("/schemas/orders").await;
    assert_eq!(status, 200);
    let log: Value = reqwest::get(format!("{}/requests", pinot.admin)).await.unwrap().json().await.unwrap();
    let failed = log.as_array().unwrap().iter().filter(|r| r["status"] == 503).count();
    assert_eq!(failed, 4, "every injected failure was met by a retry");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn deleting_honours_the_deletion_policy_and_deletes_a_table_before_its_schema() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-delete").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create(&ns.name).await;

    // Retain (the default): the resources go, Pinot keeps schema and table.
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({}))).await;
    apply(&ns.name, &table_resource("orders", orders_table("1"))).await;
    wait_ready(&ns.name, "pinottable/orders").await;
    kubectl(&["-n", &ns.name, "delete", "pinottable/orders", "pinotschema/orders", "--timeout=60s"]).await;
    assert_eq!(pinot.get("/schemas/orders").await.0, 200);
    assert_eq!(pinot.get("/tables/orders").await.0, 200);
    // Retained resources carry no finalizer: nothing holds up their deletion.
    let schemas: Api<PinotSchema> = Api::namespaced(client.clone(), &ns.name);
    assert!(schemas.get_opt("orders").await.unwrap().is_none());

    // Delete: both go from Pinot, the table first, even when the schema is deleted first.
    let mut events_schema = orders_schema(&[]);
    events_schema["schemaName"] = json!("events");
    apply(&ns.name, &schema_resource("events", events_schema, json!({"deletionPolicy": "Delete"}))).await;
    let mut table = orders_table("1");
    table["schemaRef"] = json!("events");
    table["offline"]["tableName"] = json!("events");
    table["deletionPolicy"] = json!("Delete");
    apply(&ns.name, &table_resource("events", table)).await;
    wait_ready(&ns.name, "pinottable/events").await;
    pinot.clear_log().await;
    kubectl(&["-n", &ns.name, "delete", "pinotschema/events", "--wait=false"]).await;
    wait_condition(&schemas, "events", "False", "waiting for the PinotTables using it to go first: events").await;
    assert_eq!(pinot.get("/schemas/events").await.0, 200, "the schema stays while its table is there");
    kubectl(&["-n", &ns.name, "delete", "pinottable/events", "--timeout=60s"]).await;
    wait_for("the schema resource gone", Duration::from_secs(60), || async {
        schemas.get_opt("events").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(pinot.writes().await, ["DELETE /tables/events", "DELETE /schemas/events"]);
    assert_eq!(pinot.get("/schemas/events").await.0, 404);
    assert_eq!(pinot.get("/tables/events").await.0, 404);

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_missing_table_is_created_whether_pinot_answers_404_or_the_older_empty_object() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-legacy").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let pinot = ExternalPinot::create(&ns.name).await;
    pinot.faults(json!({"release": "1.3.0"})).await;
    assert_eq!(pinot.get("/tables/orders").await, (200, json!({})));
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({}))).await;
    apply(&ns.name, &table_resource("orders", orders_table("1"))).await;
    wait_ready(&ns.name, "pinottable/orders").await;
    assert_eq!(pinot.get("/tables/orders").await.1["OFFLINE"]["tableName"], "orders_OFFLINE");
    // And with a 404 for a missing table (current Pinot): a second table.
    pinot.faults(json!({"release": "1.4.0"})).await;
    let mut schema = orders_schema(&[]);
    schema["schemaName"] = json!("returns");
    apply(&ns.name, &schema_resource("returns", schema, json!({}))).await;
    let mut table = orders_table("1");
    table["schemaRef"] = json!("returns");
    table["offline"]["tableName"] = json!("returns");
    apply(&ns.name, &table_resource("returns", table)).await;
    wait_ready(&ns.name, "pinottable/returns").await;
    let creates: Vec<String> = pinot.writes().await.into_iter().filter(|w| w == "POST /tables").collect();
    assert_eq!(creates.len(), 2, "each table created once");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn mistakes_in_the_spec_are_reported_with_the_field_to_fix() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-invalid").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let _pinot = ExternalPinot::create(&ns.name).await;
    let tables: Api<PinotTable> = Api::namespaced(client.clone(), &ns.name);
    apply(&ns.name, &table_resource("empty", json!({}))).await;
    wait_condition(&tables, "empty", "False", "spec.offline and spec.realtime are both empty").await;
    apply(&ns.name, &table_resource("lost", json!({"cluster": "nope", "offline": {"segmentsConfig": {}}}))).await;
    wait_condition(&tables, "lost", "False", "PinotCluster nope (spec.cluster) does not exist").await;
    // A table whose schema has another name: Pinot would not find the schema.
    apply(&ns.name, &schema_resource("orders", orders_schema(&[]), json!({}))).await;
    let mut table = orders_table("1");
    table["offline"]["tableName"] = json!("sales");
    apply(&ns.name, &table_resource("sales", table)).await;
    let message = wait_condition(&tables, "sales", "False", "set spec.tableName or the schema's schemaName").await;
    assert!(message.contains("\"orders\"") && message.contains("\"sales\""), "{message}");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn two_server_tenants_are_placed_evenly_over_three_zones_by_the_tenant_policy() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-tenants").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let fast = json!({"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "200"}});
    let pool = |name: &str, role: &str, replicas: u32, zone: &str| json!({"name": name, "role": role, "replicas": replicas, "zone": zone, "storage": {"ephemeral": true}, "podOverrides": fast});
    apply(
        &ns.name,
        &json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": "tz"},
            "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"}, "pools": [
                pool("controller", "controller", 1, "zone-a"), pool("broker", "broker", 1, "zone-a"),
                pool("server-a", "server", 2, "zone-a"), pool("server-b", "server", 2, "zone-b"),
                pool("server-c", "server", 2, "zone-c")]}}),
    )
    .await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/tz", "--timeout=180s"]).await;
    for (name, offline, realtime) in [("sales", 3, 3), ("ops", 3, 0)] {
        apply(
            &ns.name,
            &json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTenant", "metadata": {"name": name},
                "spec": {"cluster": "tz", "tenantRole": "SERVER", "offlineInstances": offline, "realtimeInstances": realtime}}),
        )
        .await;
    }
    wait_ready(&ns.name, "pinottenant/sales").await;
    wait_ready(&ns.name, "pinottenant/ops").await;

    // Pinot's own view: each tenant's tag on one server per zone, no server in both.
    let url = controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "tz");
    let instances: Value = reqwest::get(format!("{url}/instances")).await.unwrap().json().await.unwrap();
    let mut zones_of: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for id in instances["instances"].as_array().unwrap().iter().filter_map(Value::as_str) {
        let info: Value = reqwest::get(format!("{url}/instances/{id}")).await.unwrap().json().await.unwrap();
        // Server_tz-server-b-1.tz-server-b-headless...: the pool names the zone.
        let zone = id.split("-server-").nth(1).map(|r| r[..1].to_string()).unwrap_or_default();
        for tag in info["tags"].as_array().unwrap().iter().filter_map(Value::as_str) {
            zones_of.entry(tag.to_string()).or_default().push(zone.clone());
        }
    }
    for tag in ["sales_OFFLINE", "sales_REALTIME", "ops_OFFLINE"] {
        let mut zones = zones_of.get(tag).cloned().unwrap_or_default();
        zones.sort();
        assert_eq!(zones, ["a", "b", "c"], "{tag} on one server per zone: {zones_of:?}");
    }
    let tenants: Api<pinot_crds::PinotTenant> = Api::namespaced(client.clone(), &ns.name);
    let sales = tenants.get("sales").await.unwrap().status.unwrap();
    let ops = tenants.get("ops").await.unwrap().status.unwrap();
    assert_eq!(sales.instances.len(), 3);
    assert_eq!(ops.instances.len(), 3);
    assert!(sales.instances.iter().all(|i| !ops.instances.contains(i)), "{sales:?} {ops:?}");
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn five_hundred_tables_converge_and_then_pinot_sees_no_writes() {
    use pinot_testbed::workload;
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-load").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let admin = workload::external_pinot(&client, &ns.name, "load").await;
    let n: usize = std::env::var("PINOT_LOAD_TABLES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    workload::create_tables(&client, &ns.name, "load", n).await;
    workload::wait_all_ready(&client, &ns.name, n, Duration::from_secs(300)).await;
    let (_, tables) = reqwest::get(format!(
        "{}/tables",
        controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "load")
    ))
    .await
    .map(|r| (r.status(), r))
    .unwrap();
    let tables: Value = tables.json().await.unwrap();
    assert_eq!(tables["tables"].as_array().unwrap().len(), n);
    workload::clear_log(&admin).await;
    tokio::time::sleep(TEST_DRIFT_INTERVAL * 3).await;
    assert_eq!(
        workload::pinot_writes(&admin).await,
        Vec::<String>::new(),
        "a quiet period with drift checks writes nothing"
    );
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn an_external_cluster_with_auth_is_reached_with_the_secrets_credentials_and_its_tenants_are_placed() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "resources-auth").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let http = reqwest::Client::new();
    let admin = simulator_admin_url(&ns.name, "secure");
    let url = controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "secure");
    assert!(http.put(&admin).send().await.unwrap().status().is_success());
    for (role, host) in [("controller", "c0"), ("broker", "b0"), ("server", "s0"), ("server", "s1"), ("server", "s2")] {
        let r = http.post(format!("{admin}/instances")).json(&json!({"role": role, "host": host})).send().await;
        assert!(r.unwrap().status().is_success());
    }
    // Pinot with basic auth on: admin / s3cret.
    let faults = json!({"requiredAuthorization": "Basic YWRtaW46czNjcmV0"});
    assert!(http.put(format!("{admin}/faults")).json(&faults).send().await.unwrap().status().is_success());

    let cluster = |access: Value| {
        json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": "secure"},
            "spec": {"external": {"controllerUrl": url}, "controllerAccess": access}})
    };
    // Without credentials the controller refuses, and the cluster says so.
    apply(&ns.name, &cluster(json!({}))).await;
    let clusters: Api<pinot_crds::PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_for("Degraded with Pinot's 401", Duration::from_secs(60), || async {
        let c = clusters.get("secure").await.ok()?;
        let (status, message) = pinot_testbed::harness::condition(&c, "Degraded")?;
        (status == "True" && message.contains("401")).then_some(())
    })
    .await;
    // A Secret that does not exist is named in the condition.
    apply(&ns.name, &cluster(json!({"basicAuthSecret": "pinot-admin"}))).await;
    wait_for("Degraded naming the missing Secret", Duration::from_secs(60), || async {
        let c = clusters.get("secure").await.ok()?;
        let (status, message) = pinot_testbed::harness::condition(&c, "Degraded")?;
        (status == "True" && message.contains("spec.controllerAccess.basicAuthSecret")).then_some(())
    })
    .await;
    apply(
        &ns.name,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-admin"},
            "stringData": {"username": "admin", "password": "s3cret"}}),
    )
    .await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/secure", "--timeout=60s"]).await;

    // Schemas reach it with the credentials; tenants are placed from the instances it reports.
    let mut schema = orders_schema(&[]);
    schema["schemaName"] = json!("orders");
    let mut resource = schema_resource("orders", schema, json!({}));
    resource["spec"]["cluster"] = json!("secure");
    apply(&ns.name, &resource).await;
    wait_ready(&ns.name, "pinotschema/orders").await;
    apply(
        &ns.name,
        &json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTenant", "metadata": {"name": "sales"},
            "spec": {"cluster": "secure", "tenantRole": "SERVER", "offlineInstances": 2, "realtimeInstances": 2}}),
    )
    .await;
    wait_ready(&ns.name, "pinottenant/sales").await;
    let tenants: Api<pinot_crds::PinotTenant> = Api::namespaced(client.clone(), &ns.name);
    let placed = tenants.get("sales").await.unwrap().status.unwrap().instances;
    assert_eq!(placed.len(), 2, "{placed:?}");
    let tagged: Value = http
        .get(format!("{url}/instances/{}", placed[0]))
        .header("authorization", "Basic YWRtaW46czNjcmV0")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tags = tagged["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("sales_OFFLINE")) && tags.contains(&json!("sales_REALTIME")), "{tagged}");

    operator.stop().await;
    ns.cleanup().await;
}
