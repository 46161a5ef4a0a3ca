//! Pinot's controller REST API, as `shared/PINOT-API.md` describes it, for one simulated
//! cluster under `/clusters/{ns}/{cluster}`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::state::{Cluster, InstanceRole, Job, RecordedRequest, SimState, server_tag};

type Params = HashMap<String, String>;

/// What a handler sees of a request.
pub struct Req {
    pub path: Params,
    pub query: Params,
    pub body: String,
}

impl Req {
    fn p(&self, name: &str) -> &str {
        self.path.get(name).map(String::as_str).unwrap_or_default()
    }

    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        self.q(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn json(&self) -> Result<Value, Resp> {
        serde_json::from_str(&self.body).map_err(|e| error(400, format!("Invalid JSON in request body: {e}")))
    }
}

/// A handler's answer: status and JSON body (a string body is sent as text).
pub struct Resp(pub u16, pub Value);

fn ok(v: Value) -> Resp {
    Resp(200, v)
}

/// Pinot's error body.
fn error(code: u16, message: impl Into<String>) -> Resp {
    Resp(code, json!({"code": code, "error": message.into()}))
}

impl IntoResponse for Resp {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.1 {
            Value::String(s) => (status, s).into_response(),
            v => (status, axum::Json(v)).into_response(),
        }
    }
}

type HandlerFn = fn(&mut Cluster, &Req) -> Resp;

/// Wraps a handler: finds the cluster, applies faults, records the request.
macro_rules! h {
    ($f:expr) => {
        |State(state): State<Arc<SimState>>, Path(path): Path<Params>, Query(query): Query<Params>, body: String| async move {
            call(&state, path, query, body, $f)
        }
    };
}

fn call(state: &SimState, path: Params, query: Params, body: String, f: HandlerFn) -> Resp {
    let key = (path["ns"].clone(), path["cluster"].clone());
    let req = Req { path, query, body };
    state.with(&key, |c| f(c, &req)).unwrap_or_else(|| error(503, "controller not reachable"))
}

/// Runs before every handler: unknown or down clusters answer 503, faults apply, and the
/// request and its status are recorded.
async fn guard(State(state): State<Arc<SimState>>, Path(path): Path<Params>, req: Request, next: Next) -> Response {
    let key = (path["ns"].clone(), path["cluster"].clone());
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let mut record = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
    };
    let authorization = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let pre = state.with(&key, |c| {
        let delay = c.faults.delay_ms;
        let unauthorized =
            c.faults.required_authorization.as_ref().is_some_and(|want| authorization.as_ref() != Some(want));
        let failure = if unauthorized {
            Some(error(401, "HTTP 401 Unauthorized"))
        } else if !c.controller_up() {
            Some(error(503, "Pinot controller is not ready"))
        } else if c.faults.fail_next > 0 {
            c.faults.fail_next -= 1;
            let code = c.faults.fail_status.unwrap_or(500);
            Some(error(code, format!("injected failure ({code})")))
        } else {
            None
        };
        (delay, failure)
    });
    let Some((delay, failure)) = pre else {
        return error(503, format!("no simulated Pinot cluster {}/{}", key.0, key.1)).into_response();
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let response = match failure {
        Some(f) => f.into_response(),
        None => next.run(Request::from_parts(parts, Body::from(body))).await,
    };
    record.status = response.status().as_u16();
    state.with(&key, |c| c.requests.push(record));
    response
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/health", get(h!(health)))
        .route("/schemas", get(h!(list_schemas)).post(h!(post_schema)))
        .route("/schemas/validate", post(h!(validate_schema)))
        .route("/schemas/{schema}", get(h!(get_schema)).put(h!(put_schema)).delete(h!(delete_schema)))
        .route("/tables", get(h!(list_tables)).post(h!(post_table)))
        .route("/tables/validate", post(h!(validate_table)))
        .route("/tables/{table}", get(h!(get_table)).put(h!(put_table)).delete(h!(delete_table)))
        .route("/tables/{table}/state", get(h!(table_state)).put(h!(table_state)).post(h!(table_state)))
        .route("/tables/{table}/rebalance", post(h!(rebalance_table)).delete(h!(cancel_rebalance)))
        .route("/rebalanceStatus/{job}", get(h!(job_status)))
        .route("/segments/segmentReloadStatus/{job}", get(h!(job_status)))
        .route("/segments/{table}/reload", post(h!(reload_segments)))
        .route("/segments/{table}/needReload", get(h!(need_reload)))
        .route("/segments/{table}/servers", get(h!(segment_servers)))
        .route("/tenants", get(h!(list_tenants)).post(h!(create_tenant)).put(h!(update_tenant)))
        .route("/tenants/{tenant}", get(h!(get_tenant)).delete(h!(delete_tenant)))
        .route("/tenants/{tenant}/metadata", get(h!(tenant_metadata)))
        .route("/tenants/{tenant}/tables", get(h!(tenant_tables)))
        .route("/tenants/{tenant}/rebalance", post(h!(rebalance_tenant)))
        .route("/instances", get(h!(list_instances)))
        .route("/liveinstances", get(h!(live_instances)))
        .route("/instances/dropInstance/validate", get(h!(validate_drop)))
        .route("/instances/updateTags/validate", post(h!(validate_update_tags)))
        .route("/instances/{id}", get(h!(get_instance)).delete(h!(delete_instance)))
        .route("/instances/{id}/updateTags", axum::routing::put(h!(update_tags)).post(h!(update_tags)))
        .route("/instances/{id}/state", axum::routing::put(h!(instance_state)).post(h!(instance_state)))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn health(_: &mut Cluster, _: &Req) -> Resp {
    ok(Value::String("OK".into()))
}

// ---- schemas ----

fn list_schemas(c: &mut Cluster, _: &Req) -> Resp {
    ok(json!(c.schemas.keys().collect::<Vec<_>>()))
}

fn get_schema(c: &mut Cluster, r: &Req) -> Resp {
    match c.schemas.get(r.p("schema")) {
        Some(s) => ok(s.clone()),
        None => error(404, format!("Schema {} not found", r.p("schema"))),
    }
}

/// Columns of a schema: name -> (field kind, data type, single value).
fn columns(schema: &Value) -> HashMap<String, (String, String, bool)> {
    let mut cols = HashMap::new();
    for kind in ["dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs", "complexFieldSpecs"] {
        for f in schema[kind].as_array().into_iter().flatten() {
            if let Some(name) = f["name"].as_str() {
                let dt = f["dataType"].as_str().unwrap_or_default().to_string();
                let sv = f["singleValueField"].as_bool().unwrap_or(true);
                cols.insert(name.to_string(), (kind.to_string(), dt, sv));
            }
        }
    }
    if let Some(name) = schema["timeFieldSpec"]["incomingGranularitySpec"]["name"].as_str() {
        let dt = schema["timeFieldSpec"]["incomingGranularitySpec"]["dataType"].as_str().unwrap_or_default();
        cols.insert(name.to_string(), ("timeFieldSpec".into(), dt.to_string(), true));
    }
    cols
}

fn check_schema(schema: &Value) -> Result<String, Resp> {
    let Some(name) = schema["schemaName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(error(400, "Invalid schema. Reason: 'schemaName' is missing"));
    };
    for kind in ["dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs"] {
        for f in schema[kind].as_array().into_iter().flatten() {
            if f["name"].as_str().is_none() || f["dataType"].as_str().is_none() {
                return Err(error(
                    400,
                    format!("Invalid schema: {name}. Reason: every field in {kind} needs a name and a dataType"),
                ));
            }
            if kind == "dateTimeFieldSpecs" && (f["format"].as_str().is_none() || f["granularity"].as_str().is_none()) {
                return Err(error(
                    400,
                    format!(
                        "Invalid schema: {name}. Reason: dateTime field {} needs format and granularity",
                        f["name"]
                    ),
                ));
            }
        }
    }
    if columns(schema).is_empty() {
        return Err(error(400, format!("Invalid schema: {name}. Reason: it has no columns")));
    }
    Ok(name.to_string())
}

/// Pinot refuses a schema update that drops a column or changes its type (unless forced).
fn backward_compatible(old: &Value, new: &Value) -> Result<(), String> {
    let (old, new) = (columns(old), columns(new));
    for (name, (_, dt, sv)) in &old {
        match new.get(name) {
            None => return Err(format!("column {name} was removed")),
            Some((_, ndt, nsv)) if ndt != dt || nsv != sv => {
                return Err(format!("column {name} changed from {dt} to {ndt}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn store_schema(c: &mut Cluster, schema: Value, name: &str, force: bool, reload: bool) -> Resp {
    if let Some(old) = c.schemas.get(name)
        && !force
        && let Err(why) = backward_compatible(old, &schema)
    {
        return error(400, format!("Backward incompatible schema {name}. Only allow adding new columns ({why})"));
    }
    c.schemas.insert(name.to_string(), schema);
    if reload {
        let tables: Vec<String> =
            c.tables.iter().filter(|(_, t)| schema_of(t) == name).map(|(n, _)| n.clone()).collect();
        for t in tables {
            let id = c.next_job_id("reload");
            c.jobs.insert(
                id.clone(),
                Job {
                    id,
                    kind: "RELOAD".into(),
                    table: t,
                    status: "DONE".into(),
                    submitted_by: "schema-update".into(),
                },
            );
        }
    }
    ok(json!({"unrecognizedProperties": {}, "status": format!("{name} successfully added")}))
}

/// The request's schema and its name, or Pinot's 400.
fn schema_body(r: &Req) -> Result<(Value, String), Resp> {
    let schema = r.json()?;
    let name = check_schema(&schema)?;
    Ok((schema, name))
}

fn post_schema(c: &mut Cluster, r: &Req) -> Resp {
    let (schema, name) = match schema_body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let override_ = r.q("override").is_none_or(|v| v.eq_ignore_ascii_case("true"));
    if c.schemas.contains_key(&name) && !override_ {
        return error(409, format!("Schema {name} already exists"));
    }
    store_schema(c, schema, &name, r.flag("force"), false)
}

fn put_schema(c: &mut Cluster, r: &Req) -> Resp {
    let (schema, name) = match schema_body(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if name != r.p("schema") {
        return error(
            400,
            format!(
                "Schema name mismatch for uploaded schema, tried to add schema with name {name} as {}",
                r.p("schema")
            ),
        );
    }
    if !c.schemas.contains_key(&name) {
        return error(404, format!("Schema {name} not found"));
    }
    store_schema(c, schema, &name, r.flag("force"), r.flag("reload"))
}

fn validate_schema(_: &mut Cluster, r: &Req) -> Resp {
    match r.json().and_then(|s| check_schema(&s).map(|_| s)) {
        Ok(s) => ok(s),
        Err(e) => e,
    }
}

/// The schema a table uses: the one named like the raw table name. (Current Pinot ignores the
/// deprecated `segmentsConfig.schemaName`; the baseballStats example still carries one.)
fn schema_of(table: &Value) -> String {
    raw_name(table["tableName"].as_str().unwrap_or_default()).to_string()
}

fn delete_schema(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("schema");
    if !c.schemas.contains_key(name) {
        return error(404, format!("Schema {name} not found"));
    }
    if let Some((t, _)) = c.tables.iter().find(|(_, t)| schema_of(t) == name) {
        return error(409, format!("Cannot delete schema {name}, as it is associated with table {t}"));
    }
    c.schemas.remove(name);
    ok(json!({"status": format!("Schema {name} deleted")}))
}

// ---- tables ----

fn raw_name(name: &str) -> &str {
    name.strip_suffix("_OFFLINE").or_else(|| name.strip_suffix("_REALTIME")).unwrap_or(name)
}

fn types_for(r: &Req) -> Result<Vec<&'static str>, Resp> {
    match r.q("type").map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => Ok(vec!["OFFLINE", "REALTIME"]),
        Some("OFFLINE") => Ok(vec!["OFFLINE"]),
        Some("REALTIME") => Ok(vec!["REALTIME"]),
        Some(other) => Err(error(400, format!("Illegal table type: {other}"))),
    }
}

/// The raw table name of the path, and its names with type for the `type` query parameter
/// (both types when it is absent).
fn names_with_type(r: &Req) -> Result<(String, Vec<String>), Resp> {
    let raw = raw_name(r.p("table")).to_string();
    let names = types_for(r)?.into_iter().map(|t| format!("{raw}_{t}")).collect();
    Ok((raw, names))
}

fn list_tables(c: &mut Cluster, _: &Req) -> Resp {
    let mut names: Vec<&str> = c.tables.keys().map(|k| raw_name(k)).collect();
    names.dedup();
    ok(json!({"tables": names}))
}

/// Checks a table config and fills in what Pinot fills in; returns it with its name with type.
fn check_table(c: &Cluster, mut config: Value) -> Result<(String, Value), Resp> {
    let Some(name) = config["tableName"].as_str().map(str::to_string) else {
        return Err(error(400, "Invalid TableConfigs. 'tableName' is missing"));
    };
    let table_type = match config["tableType"].as_str() {
        Some(t @ ("OFFLINE" | "REALTIME")) => t.to_string(),
        other => {
            return Err(error(
                400,
                format!("Invalid table config for table {name}: tableType must be OFFLINE or REALTIME, got {other:?}"),
            ));
        }
    };
    let with_type = format!("{}_{table_type}", raw_name(&name));
    if config["segmentsConfig"].is_null() {
        return Err(error(400, format!("Invalid table config for table {with_type}: 'segmentsConfig' is missing")));
    }
    let schema_name = schema_of(&config);
    let Some(schema) = c.schemas.get(&schema_name) else {
        return Err(error(
            400,
            format!("Invalid table config for table {with_type}: schema {schema_name} does not exist"),
        ));
    };
    if table_type == "REALTIME"
        && config["tableIndexConfig"]["streamConfigs"].is_null()
        && config["ingestionConfig"]["streamIngestionConfig"].is_null()
    {
        return Err(error(
            400,
            format!("Invalid table config for table {with_type}: a REALTIME table needs streamConfigs"),
        ));
    }
    if !config["upsertConfig"].is_null()
        && config["upsertConfig"]["mode"].as_str() != Some("NONE")
        && schema["primaryKeyColumns"].as_array().is_none_or(|a| a.is_empty())
    {
        return Err(error(
            400,
            format!(
                "Invalid table config for table {with_type}: upsert table must have primary key columns in the schema"
            ),
        ));
    }
    config["tableName"] = json!(with_type);
    if config["tenants"].is_null() {
        config["tenants"] = json!({});
    }
    for (k, v) in [("broker", "DefaultTenant"), ("server", "DefaultTenant")] {
        if config["tenants"][k].is_null() {
            config["tenants"][k] = json!(v);
        }
    }
    if config["metadata"].is_null() {
        config["metadata"] = json!({});
    }
    if config["isDimTable"].is_null() {
        config["isDimTable"] = json!(false);
    }
    // Pinot refuses a table whose tenants have no instances.
    let server = server_tag(&config);
    let broker = format!("{}_BROKER", config["tenants"]["broker"].as_str().unwrap_or("DefaultTenant"));
    for tag in [&server, &broker] {
        if !c.instances.values().any(|i| i.tags.contains(tag)) {
            return Err(error(
                400,
                format!("Invalid table config for table {with_type}: Failed to find instances with tag: {tag}"),
            ));
        }
    }
    Ok((with_type, config))
}

fn post_table(c: &mut Cluster, r: &Req) -> Resp {
    let config = match r.json() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (name, config) = match check_table(c, config) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if c.tables.contains_key(&name) {
        return error(
            409,
            format!(
                "Table config for {name} already exists. If this is unexpected, try deleting the table to remove all metadata associated with it."
            ),
        );
    }
    c.tables.insert(name.clone(), config);
    c.segments.entry(name.clone()).or_default();
    ok(json!({"unrecognizedProperties": {}, "status": format!("Table {name} successfully added")}))
}

fn validate_table(c: &mut Cluster, r: &Req) -> Resp {
    match r.json().and_then(|v| check_table(c, v)) {
        Ok((_, v)) => ok(v),
        Err(e) => e,
    }
}

fn get_table(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut out = serde_json::Map::new();
    for name in names {
        if let Some(cfg) = c.tables.get(&name) {
            let t = name.rsplit('_').next().unwrap_or_default().to_string();
            out.insert(t, cfg.clone());
        }
    }
    if out.is_empty() && !c.faults.legacy_missing_table {
        return error(404, format!("Table {raw} does not exist"));
    }
    ok(Value::Object(out))
}

fn put_table(c: &mut Cluster, r: &Req) -> Resp {
    let config = match r.json() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let path_raw = raw_name(r.p("table")).to_string();
    let body_raw = raw_name(config["tableName"].as_str().unwrap_or_default()).to_string();
    if body_raw != path_raw {
        return error(400, format!("Request table {path_raw} does not match table name in the body {body_raw}"));
    }
    let (name, config) = match check_table(c, config) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if !c.tables.contains_key(&name) {
        return error(404, format!("Table {name} does not exist"));
    }
    c.tables.insert(name.clone(), config);
    ok(json!({"status": format!("Table config updated for {name}")}))
}

fn delete_table(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut deleted = Vec::new();
    for name in names {
        if c.tables.remove(&name).is_some() {
            c.segments.remove(&name);
            deleted.push(name);
        }
    }
    if deleted.is_empty() {
        return error(404, format!("Table {raw} does not exist"));
    }
    ok(json!({"status": format!("Tables: {deleted:?} deleted")}))
}

fn table_state(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let names: Vec<String> = names.into_iter().filter(|n| c.tables.contains_key(n)).collect();
    if names.is_empty() {
        return error(404, format!("Table {raw} does not exist"));
    }
    match r.q("state").map(str::to_ascii_lowercase).as_deref() {
        None => ok(json!({"state": "enabled"})),
        Some("enable" | "disable") => {
            ok(json!([{"tableName": names[0], "status": "Request to change state processed"}]))
        }
        Some(other) => error(400, format!("Unknown state {other}")),
    }
}

fn rebalance_table(c: &mut Cluster, r: &Req) -> Resp {
    let Some(t) = r.q("type").map(str::to_ascii_uppercase) else {
        return error(400, "Table type (OFFLINE or REALTIME) is required for rebalance");
    };
    let name = format!("{}_{t}", raw_name(r.p("table")));
    if !c.tables.contains_key(&name) {
        return error(404, format!("Table {name} does not exist"));
    }
    let id = c.next_job_id("rebalance");
    let dry_run = r.flag("dryRun");
    if !dry_run {
        c.rebalance(&name, Some(&id));
    }
    let status = if dry_run {
        "NO_OP"
    } else if c.rebalancing(&name) {
        "IN_PROGRESS"
    } else {
        "DONE"
    };
    c.jobs.insert(
        id.clone(),
        Job {
            id: id.clone(),
            kind: "TABLE_REBALANCE".into(),
            table: name.clone(),
            status: status.into(),
            submitted_by: "api".into(),
        },
    );
    ok(
        json!({"jobId": id, "status": status, "description": format!("Rebalance of {name} {}", if dry_run { "dry run" } else { "completed" })}),
    )
}

fn cancel_rebalance(c: &mut Cluster, r: &Req) -> Resp {
    let raw = raw_name(r.p("table")).to_string();
    let cancelled: Vec<String> = c
        .jobs
        .values_mut()
        .filter(|j| raw_name(&j.table) == raw && j.status == "IN_PROGRESS")
        .map(|j| {
            j.status = "CANCELLED".into();
            j.id.clone()
        })
        .collect();
    c.pending.retain(|table, _| raw_name(table) != raw);
    ok(json!(cancelled))
}

fn job_status(c: &mut Cluster, r: &Req) -> Resp {
    match c.jobs.get(r.p("job")) {
        Some(j) if j.kind == "TABLE_REBALANCE" => ok(json!({
            "tableRebalanceProgressStats": {"status": j.status, "startTimeMs": 0, "timeToFinishInSeconds": 0, "completionStatusMsg": "Finished rebalancing table"},
            "jobId": j.id,
            "tableName": j.table,
        })),
        Some(j) => {
            let total = c.segments.get(&j.table).map(|s| s.len()).unwrap_or(0);
            ok(
                json!({"totalSegmentCount": total, "successCount": total, "totalServersQueried": 1, "totalServerCallsFailed": 0,
                      "metadata": {"jobId": j.id, "tableName": j.table, "jobType": "RELOAD_SEGMENT"}}),
            )
        }
        None => error(404, format!("Failed to find controller job id: {}", r.p("job"))),
    }
}

fn reload_segments(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut out = serde_json::Map::new();
    for name in names {
        if c.tables.contains_key(&name) {
            let id = c.next_job_id("reload");
            let segments = c.segments.get(&name).map(|s| s.len()).unwrap_or(0);
            c.jobs.insert(
                id.clone(),
                Job {
                    id: id.clone(),
                    kind: "RELOAD".into(),
                    table: name.clone(),
                    status: "DONE".into(),
                    submitted_by: "api".into(),
                },
            );
            out.insert(name, json!({"reloadJobId": id, "reloadJobMetaZKStorageStatus": "SUCCESS", "numMessagesSent": segments.to_string()}));
        }
    }
    if out.is_empty() {
        return error(404, format!("Table {raw} does not exist"));
    }
    ok(json!({"status": Value::Object(out).to_string()}))
}

fn need_reload(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("table");
    if !c.tables.contains_key(name) {
        return error(404, format!("Table {name} does not exist"));
    }
    ok(json!({"tableName": name, "needReload": false, "serverToSegmentsCheckReloadList": {}}))
}

fn segment_servers(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(segments) = c.segments.get(&name) {
            let mut map: HashMap<&str, Vec<&str>> = HashMap::new();
            for (seg, servers) in segments {
                for s in servers {
                    map.entry(s.as_str()).or_default().push(seg.as_str());
                }
            }
            out.push(json!({"tableName": name, "serverToSegmentsMap": map}));
        }
    }
    if out.is_empty() {
        return error(404, format!("Table {raw} does not exist"));
    }
    ok(json!(out))
}

// ---- tenants ----

fn tenant_names(c: &Cluster, suffixes: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = c
        .instances
        .values()
        .flat_map(|i| i.tags.iter())
        .filter_map(|t| suffixes.iter().find_map(|s| t.strip_suffix(s)).map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn list_tenants(c: &mut Cluster, r: &Req) -> Resp {
    let server = tenant_names(c, &["_OFFLINE", "_REALTIME"]);
    let broker = tenant_names(c, &["_BROKER"]);
    match r.q("type").map(str::to_ascii_lowercase).as_deref() {
        Some("server") => ok(json!({"SERVER_TENANTS": server})),
        Some("broker") => ok(json!({"BROKER_TENANTS": broker})),
        _ => ok(json!({"SERVER_TENANTS": server, "BROKER_TENANTS": broker})),
    }
}

fn with_tag(c: &Cluster, tag: &str) -> Vec<String> {
    c.instances.values().filter(|i| i.tags.iter().any(|t| t == tag)).map(|i| i.id.clone()).collect()
}

fn untagged(c: &Cluster, role: InstanceRole) -> Vec<String> {
    let tag = match role {
        InstanceRole::Broker => "broker_untagged",
        InstanceRole::Server => "server_untagged",
        InstanceRole::Minion => "minion_untagged",
        InstanceRole::Controller => return vec![],
    };
    c.instances.values().filter(|i| i.role == role && i.tags.iter().any(|t| t == tag)).map(|i| i.id.clone()).collect()
}

struct TenantBody {
    role: InstanceRole,
    name: String,
    instances: usize,
    offline: usize,
    realtime: usize,
}

fn tenant_body(r: &Req) -> Result<TenantBody, Resp> {
    let v = r.json()?;
    let role = match v["tenantRole"].as_str().map(str::to_ascii_uppercase).as_deref() {
        Some("SERVER") => InstanceRole::Server,
        Some("BROKER") => InstanceRole::Broker,
        Some("MINION") => InstanceRole::Minion,
        other => return Err(error(400, format!("Invalid tenantRole {other:?}; use SERVER, BROKER or MINION"))),
    };
    let Some(name) = v["tenantName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(error(400, "tenantName is missing"));
    };
    let n = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
    let (instances, offline, realtime) = (n("numberOfInstances"), n("offlineInstances"), n("realtimeInstances"));
    Ok(TenantBody { role, name: name.into(), instances: instances.max(offline).max(realtime), offline, realtime })
}

/// Makes the tenant's tags cover exactly the requested numbers of instances, taking untagged
/// instances (in id order) and giving back the ones no longer needed.
fn allocate(c: &mut Cluster, t: &TenantBody) -> Resp {
    let (untag, wanted): (&str, Vec<(String, usize)>) = match t.role {
        InstanceRole::Server => (
            "server_untagged",
            vec![(format!("{}_OFFLINE", t.name), t.offline), (format!("{}_REALTIME", t.name), t.realtime)],
        ),
        InstanceRole::Broker => ("broker_untagged", vec![(format!("{}_BROKER", t.name), t.instances)]),
        InstanceRole::Minion => ("minion_untagged", vec![(format!("{}_MINION", t.name), t.instances)]),
        InstanceRole::Controller => return error(400, "controllers have no tenants"),
    };
    let mut pool: Vec<String> = c
        .instances
        .values()
        .filter(|i| i.role == t.role && i.tags.iter().any(|tag| wanted.iter().any(|(w, _)| w == tag)))
        .map(|i| i.id.clone())
        .collect();
    let free = untagged(c, t.role);
    let needed = t.instances.saturating_sub(pool.len());
    if needed > free.len() {
        return error(
            500,
            format!(
                "Failed to allocate instances to tenant {}: needs {} more instances of role {:?} but only {} are untagged",
                t.name,
                needed,
                t.role,
                free.len()
            ),
        );
    }
    pool.extend(free.into_iter().take(needed));
    pool.sort();
    pool.truncate(t.instances);
    let total = pool.len();
    for (idx, id) in pool.iter().enumerate() {
        let inst = c.instances.get_mut(id).expect("pool holds known ids");
        inst.tags.retain(|tag| tag != untag && !wanted.iter().any(|(w, _)| w == tag));
        for (k, (tag, count)) in wanted.iter().enumerate() {
            // Offline tags go to the first instances, realtime tags to the last ones.
            let take = if k == 0 { idx < *count } else { idx >= total.saturating_sub(*count) };
            if take {
                inst.tags.push(tag.clone());
            }
        }
        if inst.tags.is_empty() {
            inst.tags.push(untag.into());
        }
    }
    // Instances of the tenant beyond the requested count give their tags back.
    let extras: Vec<String> = c
        .instances
        .values()
        .filter(|i| !pool.contains(&i.id) && i.tags.iter().any(|tag| wanted.iter().any(|(w, _)| w == tag)))
        .map(|i| i.id.clone())
        .collect();
    for id in extras {
        let inst = c.instances.get_mut(&id).expect("extras are known ids");
        inst.tags.retain(|tag| !wanted.iter().any(|(w, _)| w == tag));
        if inst.tags.is_empty() {
            inst.tags.push(untag.into());
        }
    }
    ok(json!({"status": "Succeeded"}))
}

fn create_tenant(c: &mut Cluster, r: &Req) -> Resp {
    let t = match tenant_body(r) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let existing = match t.role {
        InstanceRole::Server => tenant_names(c, &["_OFFLINE", "_REALTIME"]),
        InstanceRole::Broker => tenant_names(c, &["_BROKER"]),
        _ => tenant_names(c, &["_MINION"]),
    };
    if existing.contains(&t.name) {
        return error(409, format!("Tenant {} already exists", t.name));
    }
    allocate(c, &t)
}

fn update_tenant(c: &mut Cluster, r: &Req) -> Resp {
    match tenant_body(r) {
        Ok(t) => allocate(c, &t),
        Err(e) => e,
    }
}

fn get_tenant(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("tenant");
    let servers: Vec<String> = match r.q("tableType").map(str::to_ascii_uppercase).as_deref() {
        Some("OFFLINE") => with_tag(c, &format!("{name}_OFFLINE")),
        Some("REALTIME") => with_tag(c, &format!("{name}_REALTIME")),
        _ => {
            let mut s = with_tag(c, &format!("{name}_OFFLINE"));
            s.extend(with_tag(c, &format!("{name}_REALTIME")));
            s.sort();
            s.dedup();
            s
        }
    };
    let brokers = with_tag(c, &format!("{name}_BROKER"));
    let body = match r.q("type").map(str::to_ascii_lowercase).as_deref() {
        Some("server") => json!({"ServerInstances": servers, "tenantName": name}),
        Some("broker") => json!({"BrokerInstances": brokers, "tenantName": name}),
        _ => json!({"ServerInstances": servers, "BrokerInstances": brokers, "tenantName": name}),
    };
    let empty = body["ServerInstances"].as_array().is_none_or(|a| a.is_empty())
        && body["BrokerInstances"].as_array().is_none_or(|a| a.is_empty());
    if empty {
        return error(404, format!("Failed to find any instances for {name}"));
    }
    ok(body)
}

fn tenant_metadata(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("tenant");
    let offline = with_tag(c, &format!("{name}_OFFLINE"));
    let realtime = with_tag(c, &format!("{name}_REALTIME"));
    let brokers = with_tag(c, &format!("{name}_BROKER"));
    let mut servers: Vec<String> = offline.iter().chain(&realtime).cloned().collect();
    servers.sort();
    servers.dedup();
    if servers.is_empty() && brokers.is_empty() {
        return error(404, format!("Failed to find any instances for {name}"));
    }
    ok(json!({"ServerInstances": servers, "OfflineServerInstances": offline, "RealtimeServerInstances": realtime,
              "BrokerInstances": brokers, "tenantName": name}))
}

fn tables_of_tenant(c: &Cluster, tenant: &str) -> Vec<String> {
    c.tables
        .iter()
        .filter(|(_, t)| {
            t["tenants"]["server"].as_str() == Some(tenant) || t["tenants"]["broker"].as_str() == Some(tenant)
        })
        .map(|(n, _)| raw_name(n).to_string())
        .collect()
}

fn tenant_tables(c: &mut Cluster, r: &Req) -> Resp {
    let mut tables = tables_of_tenant(c, r.p("tenant"));
    tables.dedup();
    ok(json!({"tables": tables}))
}

fn delete_tenant(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("tenant").to_string();
    let (role, suffixes, untag) = match r.q("type").map(str::to_ascii_uppercase).as_deref() {
        Some("SERVER") => (InstanceRole::Server, vec!["_OFFLINE", "_REALTIME"], "server_untagged"),
        Some("BROKER") => (InstanceRole::Broker, vec!["_BROKER"], "broker_untagged"),
        _ => return error(400, "Tenant type (SERVER or BROKER) is required"),
    };
    let tables = tables_of_tenant(c, &name);
    if !tables.is_empty() {
        return error(400, format!("The tenant {name} still has tables: {tables:?}"));
    }
    let tags: Vec<String> = suffixes.iter().map(|s| format!("{name}{s}")).collect();
    let mut found = false;
    for inst in c.instances.values_mut().filter(|i| i.role == role) {
        let before = inst.tags.len();
        inst.tags.retain(|t| !tags.contains(t));
        if inst.tags.len() != before {
            found = true;
            if inst.tags.is_empty() {
                inst.tags.push(untag.into());
            }
        }
    }
    if !found {
        return error(404, format!("Tenant {name} not found"));
    }
    ok(json!({"status": format!("Successfully deleted tenant {name}")}))
}

fn rebalance_tenant(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("tenant").to_string();
    let tables: Vec<String> = c
        .tables
        .iter()
        .filter(|(_, t)| t["tenants"]["server"].as_str() == Some(&name))
        .map(|(n, _)| n.clone())
        .collect();
    for t in &tables {
        c.rebalance(t, None);
    }
    let id = c.next_job_id("tenant-rebalance");
    ok(
        json!({"jobId": id, "rebalanceTableResults": tables.iter().map(|t| (t.clone(), json!({"status": "DONE"}))).collect::<serde_json::Map<_, _>>()}),
    )
}

// ---- instances ----

fn list_instances(c: &mut Cluster, r: &Req) -> Resp {
    let ids: Vec<&String> = match r.q("tag") {
        Some(tag) => c.instances.values().filter(|i| i.tags.iter().any(|t| t == tag)).map(|i| &i.id).collect(),
        None => c.instances.keys().collect(),
    };
    ok(json!({"instances": ids}))
}

fn live_instances(c: &mut Cluster, _: &Req) -> Resp {
    let live: Vec<&String> = c.instances.values().filter(|i| i.live).map(|i| &i.id).collect();
    ok(json!({"liveInstances": live}))
}

fn get_instance(c: &mut Cluster, r: &Req) -> Resp {
    let Some(i) = c.instances.get(r.p("id")) else {
        return error(404, format!("Instance {} not found", r.p("id")));
    };
    ok(json!({
        "instanceName": i.id, "hostName": i.host, "port": i.port.to_string(), "enabled": i.enabled,
        "tags": i.tags, "pools": null, "grpcPort": -1,
        "adminPort": if i.role == InstanceRole::Server { 8097 } else { -1 },
        "queryServicePort": -1, "queryMailboxPort": -1, "systemResourceInfo": null,
        "queriesDisabled": i.queries_disabled,
    }))
}

fn delete_instance(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let Some(i) = c.instances.get(&id) else {
        return error(404, format!("Instance {id} not found"));
    };
    if i.live {
        return error(409, format!("Failed to drop instance {id} - Instance {id} is still live"));
    }
    let segments = c.segments_on(&id);
    if segments > 0 {
        return error(
            409,
            format!("Failed to drop instance {id} - Instance {id} exists in ideal state for {segments} segments"),
        );
    }
    c.instances.remove(&id);
    ok(json!({"status": format!("Successfully dropped instance {id}")}))
}

fn update_tags(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let Some(tags) = r.q("tags") else {
        return error(400, "Must provide tags to update");
    };
    let Some(i) = c.instances.get_mut(&id) else {
        return error(404, format!("Instance {id} not found"));
    };
    i.tags = tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
    ok(json!({"status": format!("Updated tags: {:?} for instance: {id}", i.tags)}))
}

fn instance_state(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let state = r.q("state").map(str::to_string).unwrap_or_else(|| r.body.trim().to_string()).to_ascii_lowercase();
    let Some(i) = c.instances.get_mut(&id) else {
        return error(404, format!("Instance {id} not found"));
    };
    match state.as_str() {
        "enable" => i.enabled = true,
        "disable" => i.enabled = false,
        // Pinot replaces a drained minion's tags, so no task is scheduled on it.
        "drain" if i.role == InstanceRole::Minion => {
            i.draining = true;
            i.tags = vec!["minion_drained".into()];
        }
        "drain" => return error(400, format!("drain is only for minions, {id} is not one")),
        "queries_disable" => i.queries_disabled = true,
        "queries_enable" => i.queries_disabled = false,
        other => return error(400, format!("Unknown state '{other}' for instance {id}")),
    }
    ok(json!({"status": format!("Request to {state} instance {id} is successful")}))
}

fn validate_drop(c: &mut Cluster, r: &Req) -> Resp {
    let names: Vec<String> =
        r.q("instanceNames").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let out: Vec<Value> = names
        .iter()
        .map(|id| {
            let live = c.instances.get(id).is_some_and(|i| i.live);
            let segments = c.segments_on(id);
            let (safe, why) = if !c.instances.contains_key(id) {
                (false, format!("Instance {id} does not exist"))
            } else if live {
                (false, format!("Instance {id} is still live"))
            } else if segments > 0 {
                (false, format!("Instance {id} exists in ideal state for {segments} segments"))
            } else {
                (true, String::new())
            };
            json!({"instanceName": id, "safe": safe, "issues": if safe { json!([]) } else { json!([why]) }})
        })
        .collect();
    ok(json!(out))
}

fn validate_update_tags(c: &mut Cluster, r: &Req) -> Resp {
    let body = match r.json() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let out: Vec<Value> = body
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let id = item["instanceName"].as_str().unwrap_or_default();
            let new: Vec<&str> = item["newTags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let old = c.instances.get(id).map(|i| i.tags.clone()).unwrap_or_default();
            let removed: Vec<&String> = old.iter().filter(|t| !new.contains(&t.as_str())).collect();
            let serving = removed.iter().any(|tag| {
                c.tables.iter().any(|(name, cfg)| &&server_tag(cfg) == tag && c.segments.get(name).is_some_and(|s| s.values().any(|h| h.contains(id))))
            });
            json!({"instanceName": id, "safe": !serving, "tagsToRemove": removed,
                   "issues": if serving { json!([format!("Instance {id} still serves segments of tables on the removed tags")]) } else { json!([]) }})
        })
        .collect();
    ok(json!(out))
}
