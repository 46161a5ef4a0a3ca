//! Pinot's controller REST API for one simulated cluster under `/clusters/{ns}/{cluster}`,
//! answering as the cluster's release does (`shared/pinot/controller-rest.md`; the handlers name
//! the Pinot source they follow). Every handler sees the cluster locked, so each call is atomic.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Path, Query, Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde_json::{Value, json};

use super::state::{
    Cluster, Instance, InstanceRole, Job, RebalanceCall, RebalanceParams, RecordedRequest, Release, SegmentStates,
    SimState, server_tag,
};

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

/// A handler's answer: status and JSON body (a string body is sent as text, `204` has none).
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
        if status == StatusCode::NO_CONTENT {
            return status.into_response();
        }
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

/// The paths Pinot's basic auth leaves open (`AuthenticationFilter.UNPROTECTED_PATHS`; 1.5.0+
/// also `auth/verify/v2`).
const UNPROTECTED_PATHS: [&str; 6] = ["/", "/help", "/auth/info", "/auth/verify", "/auth/verify/v2", "/health"];

/// Pinot's `BasicAuthAccessControlFactory` on the controller (`pinot-facts/security.md` §1):
/// the header, trimmed and without `=`, must be a principal's token. Table-level calls (a table
/// or schema in the path or `tableName` query) need the principal to have the table and the
/// access type (POST CREATE, PUT UPDATE, DELETE DELETE, else READ): 403 otherwise, also when no
/// principal matched (1.2 to 1.5; master 401). Other calls only need a principal (1.2 to 1.5;
/// master also checks the access type): 401 otherwise.
fn basic_auth(
    principals: &[crate::pinot_sim::state::Principal],
    method: &axum::http::Method,
    path: &str,
    query: Option<&str>,
    authorization: Option<&str>,
    release: Release,
) -> Option<Resp> {
    let header = authorization.map(|h| h.trim().replace('=', ""));
    let principal = principals.iter().find(|p| header.as_deref() == Some(p.token.as_str()));
    let access = match *method {
        axum::http::Method::POST => "CREATE",
        axum::http::Method::PUT => "UPDATE",
        axum::http::Method::DELETE => "DELETE",
        _ => "READ",
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let table = match segments.as_slice() {
        ["tables" | "schemas" | "segments", name, ..] if !["validate", "segmentReloadStatus"].contains(name) => {
            Some(name.to_string())
        }
        _ => query.and_then(|q| {
            q.split('&').find_map(|kv| {
                kv.strip_prefix("tableName=").or_else(|| kv.strip_prefix("tableNameWithType=")).map(str::to_string)
            })
        }),
    };
    let allowed =
        |p: &crate::pinot_sim::state::Principal| p.permissions.is_empty() || p.permissions.iter().any(|a| a == access);
    let master = release == Release::Master;
    match (table, principal) {
        (Some(t), p) => {
            let raw = t.trim_end_matches("_OFFLINE").trim_end_matches("_REALTIME").to_string();
            let ok = p.is_some_and(|p| (p.tables.is_empty() || p.tables.contains(&raw)) && allowed(p));
            match (ok, p.is_none() && master) {
                (true, _) => None,
                (false, true) => Some(error(401, "HTTP 401 Unauthorized")),
                (false, false) => {
                    Some(error(403, format!("Permission is denied for {access} '{path}' for table '{raw}'")))
                }
            }
        }
        (None, None) => Some(error(401, "HTTP 401 Unauthorized")),
        (None, Some(p)) if master && !allowed(p) => {
            Some(error(403, format!("Permission is denied for {access} '{path}'")))
        }
        (None, Some(_)) => None,
    }
}

/// Runs before every handler: unknown or down clusters answer 503, faults apply, every answer
/// of a controller that is up carries `Pinot-Controller-Version` and `Pinot-Controller-Host`
/// (`PinotControllerResponseFilter`, all releases), and the request and its status are recorded.
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
    let tls = parts.extensions.get::<crate::pinot_sim::Transport>().is_some_and(|t| t.tls);
    let open = UNPROTECTED_PATHS.contains(&parts.uri.path());
    let pre = state.with(&key, |c| {
        let delay = c.faults.delay_ms;
        let unauthorized =
            !open && c.faults.required_authorization.as_ref().is_some_and(|want| authorization.as_ref() != Some(want));
        let up = c.controller_up();
        let refused = match (&c.basic_auth, open) {
            (Some(principals), false) => basic_auth(
                principals,
                &parts.method,
                parts.uri.path(),
                parts.uri.query(),
                authorization.as_deref(),
                c.release(),
            ),
            _ => None,
        };
        let failure = if c.https_only && !tls {
            // Plain HTTP sent to a port that speaks only TLS.
            Some(error(400, "plain HTTP request sent to the HTTPS port of the controller"))
        } else if !up {
            Some(error(503, "Pinot controller is not ready"))
        } else if unauthorized {
            Some(error(401, "HTTP 401 Unauthorized"))
        } else if let Some(refused) = refused {
            Some(refused)
        } else if c.faults.fail_next > 0 {
            c.faults.fail_next -= 1;
            let code = c.faults.fail_status.unwrap_or(500);
            Some(error(code, format!("injected failure ({code})")))
        } else {
            None
        };
        let version = if c.faults.empty_version { "Unknown".to_string() } else { c.build().implementation_version() };
        let host = c.controller_host().unwrap_or("Unknown").to_string();
        (delay, failure, up.then_some((version, host)))
    });
    let Some((delay, failure, headers)) = pre else {
        return error(503, format!("no simulated Pinot cluster {}/{}", key.0, key.1)).into_response();
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = match failure {
        Some(f) => f.into_response(),
        None => next.run(Request::from_parts(parts, Body::from(body))).await,
    };
    if let Some((version, host)) = headers {
        for (name, value) in [("pinot-controller-version", version), ("pinot-controller-host", host)] {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    record.status = response.status().as_u16();
    state.with(&key, |c| c.requests.push(record));
    response
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/health", get(h!(health)))
        .route("/version", get(h!(version)))
        .route("/zk/get", get(h!(zk_get)))
        .route("/leader/tables", get(h!(leader_tables)))
        .route("/schemas", get(h!(list_schemas)).post(h!(post_schema)))
        .route("/schemas/validate", post(h!(validate_schema)))
        .route("/schemas/{schema}", get(h!(get_schema)).put(h!(put_schema)).delete(h!(delete_schema)))
        .route("/tables", get(h!(list_tables)).post(h!(post_table)))
        .route("/tables/validate", post(h!(validate_table)))
        .route("/tables/{table}", get(h!(get_table)).put(h!(put_table)).delete(h!(delete_table)))
        .route("/tables/{table}/state", get(h!(table_state)).put(h!(table_state)).post(h!(table_state)))
        .route("/tables/{table}/idealstate", get(h!(ideal_state)))
        .route("/tables/{table}/externalview", get(h!(external_view)))
        .route("/tables/{table}/rebalance", post(h!(rebalance_table)).delete(h!(cancel_rebalance)))
        .route("/tables/{table}/instancePartitions", get(h!(get_instance_partitions)))
        .route("/tables/{table}/assignInstances", post(h!(assign_instances)))
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
        .route("/instances/{id}", get(h!(get_instance)).put(h!(put_instance)).delete(h!(delete_instance)))
        .route("/instances/{id}/updateTags", put(h!(update_tags)).post(h!(update_tags)))
        .route("/instances/{id}/state", put(h!(instance_state)).post(h!(legacy_instance_state)))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn health(_: &mut Cluster, _: &Req) -> Resp {
    ok(Value::String("OK".into()))
}

/// Partitions of Pinot's `leadControllerResource` (`Helix.NUMBER_OF_PARTITIONS_IN_LEAD_CONTROLLER_RESOURCE`).
const LEAD_CONTROLLER_PARTITIONS: usize = 24;

/// Helix's delayed rebalance of the lead-controller resource (`controller.resource.rebalance.delay_ms`,
/// default 300000, `ControllerConf`): a stopped controller's partitions have no MASTER until it
/// returns or this long has passed.
const LEAD_CONTROLLER_REBALANCE_DELAY: Duration = Duration::from_secs(300);

/// Pinot's `HashUtil.murmur2` (`pinot-common/.../utils/HashUtil.java`, release-1.2.0), which
/// places a table in a lead-controller partition.
fn murmur2(data: &[u8]) -> i32 {
    const M: i32 = 0x5bd1_e995;
    let mut h: i32 = 0x9747_b28c_u32 as i32 ^ data.len() as i32;
    for chunk in data.chunks_exact(4) {
        let mut k = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = &data[data.len() & !3..];
    if tail.len() >= 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= i32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// `GET /leader/tables` (`RES/PinotLeadControllerRestletResource.getLeadersForAllTables`, all
/// releases; the resource is always enabled, `HelixSetupUtils`): for each of the 24 partitions
/// the controller that is MASTER in the resource's external view (`null` when none) and the
/// tables (with type) it leads, a table's partition being `murmur2(raw name) & MAX_INT % 24`
/// (`LeadControllerUtils.getPartitionIdForTable`). Simpler than Helix: partition `p` belongs to
/// the `p % n`-th known controller (in id order); while it is down its partitions have no MASTER
/// until the delayed rebalance (300 s) gives them to the first live controller.
fn leader_tables(c: &mut Cluster, _: &Req) -> Resp {
    let controllers: Vec<&Instance> = c.instances.values().filter(|i| i.role == InstanceRole::Controller).collect();
    let first_live = controllers.iter().find(|i| i.live).map(|i| i.id.clone());
    let mut map = serde_json::Map::new();
    for p in 0..LEAD_CONTROLLER_PARTITIONS {
        let leader = controllers.get(p % controllers.len().max(1)).and_then(|owner| {
            let expired = owner.stopped_at.is_some_and(|t| t.elapsed() >= LEAD_CONTROLLER_REBALANCE_DELAY);
            if owner.live {
                Some(owner.id.clone())
            } else if expired {
                first_live.clone()
            } else {
                None
            }
        });
        let tables: Vec<&String> = c
            .tables
            .keys()
            .filter(|t| {
                let raw = t.rsplit_once('_').map_or(t.as_str(), |(raw, _)| raw);
                (murmur2(raw.as_bytes()) & i32::MAX) as usize % LEAD_CONTROLLER_PARTITIONS == p
            })
            .collect();
        map.insert(format!("leadControllerResource_{p}"), json!({"leadControllerId": leader, "tableNames": tables}));
    }
    ok(json!({"leadControllerResourceEnabled": true, "leadControllerEntryMap": map}))
}

/// `GET /version`: each Pinot jar's `Implementation-Title` -> `Implementation-Version`
/// (`<version>-<git sha>`), `{}` when the jars have no manifests (`RES/PinotVersionRestletResource`,
/// `Utils.getComponentVersions`, all releases). Only the controller's jar is listed here.
fn version(c: &mut Cluster, _: &Req) -> Resp {
    if c.faults.empty_version {
        return ok(json!({}));
    }
    ok(json!({"pinot-controller": c.build().implementation_version()}))
}

/// `GET /zk/get?path=`: a participant's instance config as its ZNRecord
/// (`RES/ZookeeperResource.java`, all releases). A path that does not exist is a 404
/// (`validateAndNormalizeZKPath(path, true)` checks the node's stat first); the container nodes
/// above the instance configs exist but hold no ZNRecord: 204 with no body (not verified at
/// runtime). Only `/<helixCluster>/CONFIGS/PARTICIPANT/<id>` and those container nodes exist
/// here.
fn zk_get(c: &mut Cluster, r: &Req) -> Resp {
    let Some(path) = r.q("path").map(str::trim) else {
        return error(400, "ZKPath cannot be null");
    };
    if !path.starts_with('/') {
        return error(400, format!("ZKPath {path} must start with /"));
    }
    if path != "/" && path.ends_with('/') {
        return error(400, format!("ZKPath {path} cannot end with /"));
    }
    let root = format!("/{}", c.helix_cluster_name);
    let participants = format!("{root}/CONFIGS/PARTICIPANT");
    if let Some(i) = path.strip_prefix(&format!("{participants}/")).and_then(|id| c.instances.get(id)) {
        return ok(znrecord(i));
    }
    if ["/".to_string(), root.clone(), format!("{root}/CONFIGS"), participants].contains(&path.to_string()) {
        return Resp(204, Value::Null);
    }
    error(404, format!("ZKPath {path} does not exist"))
}

/// An instance config as Helix stores it (`InstanceConfig`'s ZNRecord; Pinot's fields from
/// `CommonConstants.Helix` and `InstanceUtils.updateHelixInstanceConfig`).
fn znrecord(i: &Instance) -> Value {
    let mut simple = serde_json::Map::new();
    simple.insert("HELIX_ENABLED".into(), json!(i.enabled.to_string()));
    simple.insert("HELIX_HOST".into(), json!(i.host));
    simple.insert("HELIX_PORT".into(), json!(i.port.to_string()));
    for (key, port) in [
        ("adminPort", i.admin_port),
        ("grpcPort", i.grpc_port),
        ("queryServerPort", i.query_service_port),
        ("queryMailboxPort", i.query_mailbox_port),
    ] {
        if let Some(p) = port {
            simple.insert(key.into(), json!(p.to_string()));
        }
    }
    if let Some(flag) = i.shutdown_in_progress {
        simple.insert("shutdownInProgress".into(), json!(flag.to_string()));
    }
    if i.queries_disabled {
        simple.insert("queriesDisabled".into(), json!("true"));
    }
    if let Some(v) = &i.pinot_version {
        simple.insert("pinotVersion".into(), json!(v));
    }
    let mut maps = serde_json::Map::new();
    if !i.pools.is_empty() {
        maps.insert("pool".into(), json!(i.pools));
    }
    if let Some(info) = &i.system_resource_info {
        maps.insert("SYSTEM_RESOURCE_INFO".into(), json!(info));
    }
    let mut lists = serde_json::Map::new();
    if !i.tags.is_empty() {
        lists.insert("TAG_LIST".into(), json!(i.tags));
    }
    if let Some(previous) = &i.previous_tags {
        lists.insert("previousTags".into(), json!(previous));
    }
    json!({"id": i.id, "simpleFields": simple, "mapFields": maps, "listFields": lists})
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
                    description: None,
                    rebalance: None,
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
    // `force` on PUT exists from 1.4.0; before, an incompatible schema cannot be forced through
    // PUT (`RES/PinotSchemaRestletResource.updateSchema`).
    let force = c.release() >= Release::V1_4_0 && r.flag("force");
    store_schema(c, schema, &name, force, r.flag("reload"))
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

/// `DELETE /schemas/{name}` (`RES/PinotSchemaRestletResource.deleteSchemaInternal`): 1.2.0 and
/// 1.3.0 refuse only while a REALTIME table is named like the schema (or names it in the legacy
/// `segmentsConfig.schemaName`); from 1.4.0 while `<name>_OFFLINE` or `<name>_REALTIME` exists
/// (logical tables are not modelled).
fn delete_schema(c: &mut Cluster, r: &Req) -> Resp {
    let name = r.p("schema");
    if !c.schemas.contains_key(name) {
        return error(404, format!("Schema {name} not found"));
    }
    let user = if c.release() >= Release::V1_4_0 {
        [format!("{name}_OFFLINE"), format!("{name}_REALTIME")].into_iter().find(|t| c.tables.contains_key(t))
    } else {
        c.tables
            .iter()
            .filter(|(t, _)| t.ends_with("_REALTIME"))
            .find(|(_, t)| schema_of(t) == name || t["segmentsConfig"]["schemaName"].as_str() == Some(name))
            .map(|(t, _)| t.clone())
    };
    if let Some(t) = user {
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
    // Instance assignment (`PHRM.addTable` -> `assignInstances`, assignment.md §9): from 1.4.0
    // checked before the table is created (400); before, the table is written, assigned, and
    // deleted again when the assignment fails (500, the precondition's text): either way no
    // table is left.
    let release = c.release();
    let partitions = match c.new_partitions(&name, &config, Cluster::partition_types(&name)) {
        Ok(partitions) => partitions,
        Err(reason) if release >= Release::V1_4_0 => {
            let message = format!("Failed to calculate instance partitions for table: {name}, reason: {reason}");
            return error(
                400,
                match release {
                    Release::V1_4_0 => {
                        format!("Invalid table config for table {name}: java.lang.RuntimeException: {message}")
                    }
                    _ => message,
                },
            );
        }
        Err(reason) => return error(500, reason),
    };
    c.tables.insert(name.clone(), config);
    c.persist_partitions(partitions);
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
    // 1.2.0 and 1.3.0 answer `200 {}` for a missing table; 404 from 1.4.0
    // (`RES/PinotTableRestletResource.getTableConfig`).
    if out.is_empty() && c.release() >= Release::V1_4_0 {
        let name = match r.q("type") {
            Some(t) if !t.is_empty() => format!("{raw}_{}", t.to_ascii_uppercase()),
            _ => raw,
        };
        return error(404, format!("Table {name} does not exist"));
    }
    ok(Value::Object(out))
}

/// The upsert changes 1.5.0+ refuse without `force` (a subset of
/// `TableConfigUtils.validateBackwardCompatibility`: `upsertConfig.mode`, `hashFunction` and
/// `comparisonColumns` of a table that has upserts before and after).
fn upsert_violations(old: &Value, new: &Value) -> Vec<String> {
    let mode = |c: &Value| c["upsertConfig"]["mode"].as_str().unwrap_or("FULL").to_string();
    let enabled = |c: &Value| !c["upsertConfig"].is_null() && mode(c) != "NONE";
    if !enabled(old) || !enabled(new) {
        return vec![];
    }
    let (o, n) = (&old["upsertConfig"], &new["upsertConfig"]);
    let text = |v: &Value, default: &str| v.as_str().map(str::to_string).unwrap_or_else(|| default.to_string());
    let mut violations = Vec::new();
    if mode(old) != mode(new) {
        violations.push(format!("upsertConfig.mode ({} -> {})", mode(old), mode(new)));
    }
    if text(&o["hashFunction"], "NONE") != text(&n["hashFunction"], "NONE") {
        violations.push(format!(
            "upsertConfig.hashFunction ({} -> {})",
            text(&o["hashFunction"], "NONE"),
            text(&n["hashFunction"], "NONE")
        ));
    }
    if o["comparisonColumns"] != n["comparisonColumns"] {
        violations
            .push(format!("upsertConfig.comparisonColumns ({} -> {})", o["comparisonColumns"], n["comparisonColumns"]));
    }
    violations
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
    let Some(old) = c.tables.get(&name) else {
        return error(404, format!("Table {name} does not exist"));
    };
    // 1.5.0+: upsert changes need `force` (`PHRM.setExistingTableConfig`); before, there is no
    // such check and no parameter.
    if c.release() >= Release::V1_5 && !r.flag("force") {
        let violations = upsert_violations(old, &config);
        if !violations.is_empty() {
            return error(
                400,
                format!(
                    "Failed to update configuration for {} due to: Failed to update table '{name}': Cannot modify [{}] \
                     as it may lead to data inconsistencies. Please create a new table instead.",
                    r.p("table"),
                    violations.join(", ")
                ),
            );
        }
    }
    // `updateTableConfig` -> `assignInstances(tableConfig, false)`: instance partitions for the
    // types that have an assignment and none persisted yet (assignment.md §9). 1.4.0+ checks the
    // assignment first (400); what 1.2.0/1.3.0 answer when it fails is not verified (here: 500,
    // the config written).
    let raw = raw_name(&name).to_string();
    let missing: Vec<&str> = Cluster::partition_types(&name)
        .iter()
        .copied()
        .filter(|k| !c.instance_partitions.contains_key(&format!("{raw}_{k}")))
        .collect();
    match c.new_partitions(&name, &config, &missing) {
        Err(reason) if c.release() >= Release::V1_4_0 => {
            return error(
                400,
                format!(
                    "Failed to update configuration for {} due to: Failed to calculate instance partitions for table: \
                     {name}, reason: {reason}",
                    r.p("table")
                ),
            );
        }
        Err(reason) => {
            c.tables.insert(name.clone(), config);
            return error(500, reason);
        }
        Ok(partitions) => c.persist_partitions(partitions),
    }
    c.tables.insert(name.clone(), config);
    ok(json!({"status": format!("Table config updated for {name}")}))
}

/// `GET /tables/{t}/instancePartitions[?type=]` (`RES/PinotInstanceAssignmentRestletResource`,
/// assignment.md §8): the persisted instance partitions by type; 404 when there are none.
fn get_instance_partitions(c: &mut Cluster, r: &Req) -> Resp {
    let table = r.p("table");
    let raw = raw_name(table);
    let kinds: Vec<&str> = match (r.q("type").map(str::to_ascii_uppercase).as_deref(), table) {
        (Some("OFFLINE"), _) => vec!["OFFLINE"],
        (Some("CONSUMING"), _) => vec!["CONSUMING"],
        (Some("COMPLETED"), _) => vec!["COMPLETED"],
        (Some(_), _) => vec![],
        (None, t) if t.ends_with("_OFFLINE") => vec!["OFFLINE"],
        (None, t) if t.ends_with("_REALTIME") => vec!["CONSUMING", "COMPLETED"],
        (None, _) => vec!["OFFLINE", "CONSUMING", "COMPLETED"],
    };
    let mut out = serde_json::Map::new();
    for kind in kinds {
        if let Some(ip) = c.instance_partitions.get(&format!("{raw}_{kind}")) {
            out.insert(kind.to_string(), ip.to_json());
        }
    }
    if out.is_empty() {
        return error(404, "Failed to find the instance partitions");
    }
    ok(Value::Object(out))
}

/// Whether a table's assignment for `kind` minimizes data movement (its top-level flag, or
/// the deprecated one in `replicaGroupPartitionConfig`).
fn minimizes(config: &Value, kind: &str) -> bool {
    let entry = &config["instanceAssignmentConfigMap"][kind];
    entry["minimizeDataMovement"].as_bool() == Some(true)
        || entry["replicaGroupPartitionConfig"]["minimizeDataMovement"].as_bool() == Some(true)
}

/// `POST /tables/{t}/assignInstances[?type=&dryRun=]` (assignment.md §8): computes the instance
/// partitions of each type with an assignment from the persisted ones, persists them unless a
/// dry run; 404 without an assignment, 400 (with a generic text) when a precondition fails.
fn assign_instances(c: &mut Cluster, r: &Req) -> Resp {
    let table = r.p("table");
    let raw = raw_name(table).to_string();
    let wanted = r.q("type").map(str::to_ascii_uppercase);
    let mut computed = Vec::new();
    for (with_type, kinds) in
        [(format!("{raw}_OFFLINE"), &["OFFLINE"][..]), (format!("{raw}_REALTIME"), &["CONSUMING", "COMPLETED"][..])]
    {
        let Some(config) = c.tables.get(&with_type) else { continue };
        for kind in kinds.iter().filter(|k| wanted.as_deref().is_none_or(|w| w == **k)) {
            let existing = c.instance_partitions.get(&format!("{raw}_{kind}"));
            match c.compute_partitions(&with_type, kind, existing, minimizes(config, kind)) {
                None => {}
                Some(Ok(ip)) => computed.push((kind.to_string(), ip)),
                Some(Err(_)) => return error(400, "Caught IllegalStateException"),
            }
        }
    }
    if computed.is_empty() {
        return error(404, "Failed to find the instance assignment config");
    }
    let mut out = serde_json::Map::new();
    for (kind, ip) in computed {
        out.insert(kind, ip.to_json());
        if !r.flag("dryRun") {
            c.instance_partitions.insert(ip.instance_partitions_name.clone(), ip);
        }
    }
    ok(Value::Object(out))
}

/// `GET /tables/{t}/idealstate|externalview[?tableType=]` (`RES/TableViews.java`, all releases):
/// `{"OFFLINE": {segment: {instance: state}} or null, "REALTIME": ... or null}`; 404 `Table not
/// found` when neither exists; 400 for a bad `tableType`.
fn table_view(c: &Cluster, r: &Req, view: fn(&Cluster, &str) -> Option<SegmentStates>) -> Resp {
    let wanted = match r.q("tableType") {
        None => vec!["OFFLINE", "REALTIME"],
        Some(t) => match t.to_ascii_uppercase().as_str() {
            "OFFLINE" => vec!["OFFLINE"],
            "REALTIME" => vec!["REALTIME"],
            _ => return error(400, format!("Illegal table type '{t}'")),
        },
    };
    let raw = raw_name(r.p("table"));
    let mut out = serde_json::Map::new();
    for t in ["OFFLINE", "REALTIME"] {
        let state = wanted.contains(&t).then(|| view(c, &format!("{raw}_{t}"))).flatten();
        out.insert(t.into(), json!(state));
    }
    if out.values().all(Value::is_null) {
        return error(404, "Table not found");
    }
    ok(Value::Object(out))
}

fn ideal_state(c: &mut Cluster, r: &Req) -> Resp {
    table_view(c, r, Cluster::ideal_state)
}

fn external_view(c: &mut Cluster, r: &Req) -> Resp {
    table_view(c, r, Cluster::external_view)
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
            for kind in Cluster::partition_types(&name) {
                c.instance_partitions.remove(&format!("{}_{kind}", raw_name(&name)));
            }
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

/// The rebalance parameters a call gets, with its release's defaults
/// (`RES/PinotTableRestletResource.rebalance`: 1.2.0/1.3.0 `reassignInstances=false`,
/// `includeConsuming=false`, `minAvailableReplicas=1`; 1.4.0+ `true`, `true`, `-1`, and
/// `preChecks`, `minimizeDataMovement=ENABLE`). A boolean is true only for `true` (any case), as
/// JAX-RS parses it.
fn rebalance_params(r: &Req, release: Release) -> Result<RebalanceParams, Resp> {
    let newer = release >= Release::V1_4_0;
    let flag = |name: &str, default: bool| r.q(name).map(|v| v.eq_ignore_ascii_case("true")).unwrap_or(default);
    let min_available_replicas = match r.q("minAvailableReplicas") {
        None => {
            if newer {
                -1
            } else {
                1
            }
        }
        // Jersey's answer to a parameter that is not a number was not checked; 400 here.
        Some(v) => v.trim().parse().map_err(|_| error(400, format!("Invalid minAvailableReplicas: {v}")))?,
    };
    Ok(RebalanceParams {
        release,
        dry_run: flag("dryRun", false),
        pre_checks: newer.then(|| flag("preChecks", false)),
        reassign_instances: flag("reassignInstances", newer),
        include_consuming: flag("includeConsuming", newer),
        bootstrap: flag("bootstrap", false),
        downtime: flag("downtime", false),
        min_available_replicas,
        best_efforts: flag("bestEfforts", false),
        minimize_data_movement: newer.then(|| r.q("minimizeDataMovement").unwrap_or("ENABLE").to_ascii_uppercase()),
    })
}

/// The `config` of a rebalance job's context (`RebalanceConfig`'s JSON names).
fn rebalance_config_json(p: &RebalanceParams) -> Value {
    let mut v = json!({
        "dryRun": p.dry_run, "reassignInstances": p.reassign_instances, "includeConsuming": p.include_consuming,
        "bootstrap": p.bootstrap, "downtime": p.downtime, "minAvailableReplicas": p.min_available_replicas,
        "bestEfforts": p.best_efforts,
    });
    if let Some(pre) = p.pre_checks {
        v["preChecks"] = json!(pre);
    }
    if let Some(m) = &p.minimize_data_movement {
        v["minimizeDataMovement"] = json!(m);
    }
    v
}

/// `POST /tables/{t}/rebalance?type=` (`RES/PinotTableRestletResource.rebalance`,
/// `rebalance/TableRebalancer.java`, 1.4.0+ `TableRebalanceManager`): `type` is required (400);
/// an assignment that would not change is `NO_OP`; a dry run (1.4.0+: or `preChecks`) is `DONE`
/// with the target assignment; `downtime=true` applies at once (`DONE`, no job to poll);
/// otherwise the real run is asynchronous: `IN_PROGRESS` with a job id, and the job fails with
/// `Illegal min available replicas config` when `minAvailableReplicas` ≥ the replicas of a
/// segment it moves. From 1.4.0 a non-dry run is refused with 409 while another runs on the
/// table; 1.2.0/1.3.0 let it run (here it takes over the running one's target and both jobs end
/// together). Dry runs and no-ops are not tracked as jobs (`GET /rebalanceStatus` says 404), as
/// in Pinot. Instance partitions are recomputed with `reassignInstances` and segments placed
/// over them (`assignment.rs`); consuming segments and disabled tables are not modelled: their
/// parameters are only recorded.
fn rebalance_table(c: &mut Cluster, r: &Req) -> Resp {
    let release = c.release();
    let Some(t) = r.q("type").map(str::to_ascii_uppercase).filter(|t| t == "OFFLINE" || t == "REALTIME") else {
        return error(400, format!("Illegal table type: {}", r.q("type").unwrap_or("null")));
    };
    let name = format!("{}_{t}", raw_name(r.p("table")));
    if !c.tables.contains_key(&name) {
        return error(404, format!("Failed to find table config for table: {name}"));
    }
    let params = match rebalance_params(r, release) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let job = c.next_job_id("rebalance");
    let running = c
        .jobs
        .values()
        .find(|j| j.kind == "TABLE_REBALANCE" && j.table == name && j.status == "IN_PROGRESS")
        .map(|j| j.id.clone());
    let conflict = running.filter(|_| release >= Release::V1_4_0).map(|id| {
        error(
            409,
            format!(
                "Rebalance job is already in progress for table: {name}, jobId: {id}. Please wait for the job to \
                 complete or cancel it before starting a new one."
            ),
        )
    });
    let dry_run = params.dry_run || params.pre_checks == Some(true);
    if params.downtime
        && !dry_run
        && let Some(e) = conflict
    {
        return e;
    }
    let current = c.segments.get(&name).cloned().unwrap_or_default();
    // Instance partitions (`TableRebalancer.getInstancePartitions`, assignment.md §7): with
    // `reassignInstances` recomputed (from the persisted ones unless `bootstrap`) and persisted
    // unless a dry run, a type without an assignment losing its persisted ones; without, the
    // persisted ones as they are.
    let before = c.instance_partitions.clone();
    if params.reassign_instances {
        let raw = raw_name(&name).to_string();
        let config = c.tables[&name].clone();
        for kind in Cluster::partition_types(&name) {
            let key = format!("{raw}_{kind}");
            let existing = if params.bootstrap { None } else { c.instance_partitions.get(&key).cloned() };
            let minimize = match params.minimize_data_movement.as_deref() {
                Some("ENABLE") => true,
                Some("DISABLE") => false,
                _ => minimizes(&config, kind),
            };
            match c.compute_partitions(&name, kind, existing.as_ref(), minimize) {
                Some(Ok(ip)) => {
                    c.instance_partitions.insert(key, ip);
                }
                Some(Err(reason)) => {
                    c.instance_partitions = before;
                    let description = format!(
                        "Caught exception while fetching/calculating instance partitions: \
                         java.lang.IllegalStateException: {reason}"
                    );
                    c.rebalances.push(RebalanceCall {
                        job_id: job.clone(),
                        table: name.clone(),
                        status: "FAILED".into(),
                        params,
                    });
                    return ok(json!({"jobId": job, "status": "FAILED", "description": description}));
                }
                None => {
                    c.instance_partitions.remove(&key);
                }
            }
        }
    }
    let target = c.target_assignment(&name);
    if dry_run {
        c.instance_partitions = before;
    }
    let assignment: BTreeMap<&String, BTreeMap<&String, &str>> =
        target.iter().map(|(seg, holders)| (seg, holders.iter().map(|h| (h, "ONLINE")).collect())).collect();
    let assignment = json!(assignment);
    let (status, description) = if target == current {
        ("NO_OP", "Table is already balanced")
    } else if dry_run {
        ("DONE", "Dry-run mode")
    } else if params.downtime {
        c.move_to(&name, target, None, true);
        (
            "DONE",
            "Success with downtime (replaced IdealState with the target segment assignment, ExternalView might not \
             reach the target segment assignment yet)",
        )
    } else {
        if let Some(e) = conflict {
            return e;
        }
        let fewest_moved = target
            .iter()
            .filter(|(seg, want)| current.get(*seg) != Some(*want))
            .map(|(_, want)| want.len())
            .min()
            .unwrap_or(0);
        let illegal = params.min_available_replicas >= 0 && params.min_available_replicas as usize >= fewest_moved;
        let (job_status, job_description) = if illegal {
            ("FAILED", "Illegal min available replicas config")
        } else {
            c.move_to(&name, target, Some(&job), false);
            if c.rebalancing(&name) { ("IN_PROGRESS", "In progress") } else { ("DONE", "Success") }
        };
        c.jobs.insert(
            job.clone(),
            Job {
                id: job.clone(),
                kind: "TABLE_REBALANCE".into(),
                table: name.clone(),
                status: job_status.into(),
                submitted_by: "api".into(),
                description: Some(job_description.into()),
                rebalance: Some(params.clone()),
            },
        );
        ("IN_PROGRESS", "In progress, check controller logs for updates")
    };
    c.rebalances.push(RebalanceCall { job_id: job.clone(), table: name, status: status.into(), params });
    ok(json!({"jobId": job, "status": status, "description": description, "segmentAssignment": assignment}))
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

/// `GET /rebalanceStatus/{job}` (`ServerRebalanceJobStatusResponse`) and
/// `GET /segments/segmentReloadStatus/{job}` (1.2.0-1.4.0 `ServerReloadControllerJobStatusResponse`,
/// 1.5.0+ `PinotTableReloadStatusResponse` with `status`, `failureCount`, `segmentReloadFailures`).
fn job_status(c: &mut Cluster, r: &Req) -> Resp {
    let release = c.release();
    match c.jobs.get(r.p("job")) {
        Some(j) if j.kind == "TABLE_REBALANCE" => ok(json!({
            "timeElapsedSinceStartInSeconds": 0,
            "tableRebalanceProgressStats": {"status": j.status, "startTimeMs": 0, "timeToFinishInSeconds": 0,
                "completionStatusMsg": j.description},
            "tableRebalanceContext": {"jobId": j.id, "originalJobId": j.id, "attemptId": 1,
                "config": j.rebalance.as_ref().map(rebalance_config_json)},
        })),
        Some(j) => {
            let segments = c.segments.get(&j.table);
            let total = segments.map(|s| s.len()).unwrap_or(0);
            let servers = segments.into_iter().flat_map(|s| s.values().flatten()).collect::<BTreeSet<_>>().len();
            let mut v = json!({"timeElapsedInMinutes": 0.0, "estimatedTimeRemainingInMinutes": 0.0,
                "totalSegmentCount": total, "successCount": total, "totalServersQueried": servers,
                "totalServerCallsFailed": 0,
                "metadata": {"jobId": j.id, "tableName": j.table, "jobType": "RELOAD_ALL_SEGMENTS"}});
            if release >= Release::V1_5 {
                v["status"] = json!("COMPLETED");
                v["failureCount"] = json!(0);
                v["segmentReloadFailures"] = json!([]);
            }
            ok(v)
        }
        None => error(404, format!("Failed to find controller job id: {}", r.p("job"))),
    }
}

/// `POST /segments/{t}/reload[?type=]`: one reload message per server that has the table in its
/// external view (Helix messaging to the table's resource; the count per instance, not per
/// segment, was not verified at runtime). 1.2.0 lists a table that got no message with `"0"`;
/// from 1.3.0 it is skipped, and with none left the answer is 404
/// (`RES/PinotSegmentRestletResource.reloadAllSegments`).
fn reload_segments(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let existing: Vec<String> = names.into_iter().filter(|n| c.tables.contains_key(n)).collect();
    if existing.is_empty() {
        return error(404, format!("Table {raw} does not exist"));
    }
    let release = c.release();
    let mut out = serde_json::Map::new();
    for name in existing {
        let sent = c
            .external_view(&name)
            .map(|view| view.values().flat_map(|m| m.keys().cloned()).collect::<BTreeSet<_>>().len())
            .unwrap_or(0);
        if sent == 0 && release >= Release::V1_3_0 {
            continue;
        }
        let id = c.next_job_id("reload");
        c.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                kind: "RELOAD".into(),
                table: name.clone(),
                status: "DONE".into(),
                submitted_by: "api".into(),
                description: None,
                rebalance: None,
            },
        );
        out.insert(
            name,
            json!({"reloadJobId": id, "reloadJobMetaZKStorageStatus": "SUCCESS", "numMessagesSent": sent.to_string()}),
        );
    }
    if out.is_empty() {
        return error(404, format!("Failed to find any segments in table: {raw} on every instance"));
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

/// `GET /segments/{t}/servers[?type=&verbose=]`, from the ideal state. 1.3.0+ add
/// `serverToSegmentsCountMap`, and with `verbose=false` give only the counts.
fn segment_servers(c: &mut Cluster, r: &Req) -> Resp {
    let (raw, names) = match names_with_type(r) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let counts_too = c.release() >= Release::V1_3_0;
    let verbose = !counts_too || r.q("verbose").is_none_or(|v| v.eq_ignore_ascii_case("true"));
    let mut out = Vec::new();
    for name in names {
        if let Some(segments) = c.segments.get(&name) {
            let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (seg, servers) in segments {
                for s in servers {
                    map.entry(s.as_str()).or_default().push(seg.as_str());
                }
            }
            let counts: BTreeMap<&str, usize> = map.iter().map(|(s, segs)| (*s, segs.len())).collect();
            let mut entry = json!({"tableName": name});
            if verbose {
                entry["serverToSegmentsMap"] = json!(map);
            }
            if counts_too {
                entry["serverToSegmentsCountMap"] = json!(counts);
            }
            out.push(entry);
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
        c.rebalance(t);
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

/// `GET /liveinstances`: `{"instances": [...]}`, the same `Instances` shape as `/instances`
/// (`RES/PinotInstanceRestletResource.getAllLiveInstances`, all releases).
fn live_instances(c: &mut Cluster, _: &Req) -> Resp {
    let live: Vec<&String> = c.instances.values().filter(|i| i.live).map(|i| &i.id).collect();
    ok(json!({"instances": live}))
}

/// `GET /instances/{id}` (`RES/PinotInstanceRestletResource.getInstance`): `port` a string,
/// `pools` a string map or null, the four ports numbers (-1 unset), `queriesDisabled` the
/// string `"true"` only when set, `shutdownInProgress` a boolean from 1.5.0.
fn get_instance(c: &mut Cluster, r: &Req) -> Resp {
    let release = c.release();
    let Some(i) = c.instances.get(r.p("id")) else {
        return error(404, format!("Instance {} not found", r.p("id")));
    };
    let port = |p: Option<u32>| p.map_or(-1, i64::from);
    let mut v = json!({
        "instanceName": i.id, "hostName": i.host, "enabled": i.enabled, "port": i.port.to_string(),
        "tags": i.tags, "pools": if i.pools.is_empty() { Value::Null } else { json!(i.pools) },
        "grpcPort": port(i.grpc_port), "adminPort": port(i.admin_port),
        "queryServicePort": port(i.query_service_port), "queryMailboxPort": port(i.query_mailbox_port),
        "systemResourceInfo": i.system_resource_info,
    });
    if i.queries_disabled {
        v["queriesDisabled"] = json!("true");
    }
    if release >= Release::V1_5 {
        v["shutdownInProgress"] = json!(i.shutdown_in_progress.unwrap_or(false));
    }
    ok(v)
}

/// A JSON int as Jackson reads one into an `int` (a number, or a string holding one).
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `PUT /instances/{id}` with an `Instance` body (`host`, `port`, `type` required): a REPLACE of
/// host, port, tags, pools, the four ports and `queriesDisabled` — what the body leaves out (or
/// sets ≤ 0, or empty) is removed (`InstanceUtils.updateHelixInstanceConfig`, all releases).
/// Master keeps `queriesDisabled=true` when the body says false (`PHRM.updateInstance`). 404 when
/// the instance has no config. A body Jackson cannot read is a 400 here (Jersey's exact answer
/// was not verified).
fn put_instance(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let body = match r.json() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Some(host) = body["host"].as_str() else {
        return error(400, "'host' must be configured");
    };
    let Some(port) = int_of(&body["port"]).and_then(|p| u16::try_from(p).ok()) else {
        return error(400, "Missing or invalid required creator property 'port'");
    };
    if !matches!(body["type"].as_str(), Some("SERVER" | "BROKER" | "CONTROLLER" | "MINION")) {
        return error(400, "'type' must be configured (SERVER, BROKER, CONTROLLER or MINION)");
    }
    let tags: Vec<String> =
        body["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
    let mut pools = BTreeMap::new();
    for (tag, pool) in body["pools"].as_object().into_iter().flatten() {
        let Some(pool) = int_of(pool) else {
            return error(400, format!("Invalid pool for tag {tag}: {pool}"));
        };
        pools.insert(tag.clone(), pool.to_string());
    }
    let ports: Vec<Option<u32>> = ["grpcPort", "adminPort", "queryServicePort", "queryMailboxPort"]
        .iter()
        .map(|k| int_of(&body[*k]).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok()))
        .collect();
    let queries_disabled = body["queriesDisabled"].as_bool().unwrap_or(false);
    let master = c.release() == Release::Master;
    let Some(i) = c.instances.get_mut(&id) else {
        return error(404, format!("Failed to find instance config for instance: {id}"));
    };
    i.host = host.to_string();
    i.port = port;
    i.tags = tags;
    i.pools = pools;
    (i.grpc_port, i.admin_port, i.query_service_port, i.query_mailbox_port) = (ports[0], ports[1], ports[2], ports[3]);
    i.queries_disabled = queries_disabled || (master && i.queries_disabled);
    ok(json!({"status": format!("Updated instance: {id}")}))
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
    ok(json!({"status": "Successfully dropped instance"}))
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

/// `PUT /instances/{id}/state?state=` (`RES/PinotInstanceRestletResource.toggleInstanceState`):
/// 404 first when the instance does not exist; `enable`/`disable` on every release, `drain`
/// (minions) from 1.5.0, `queries_disable`/`queries_enable` (servers) on master only; anything
/// else 400 `Unknown state '<x>'`. Pinot waits up to 10 s for the segments' states to follow an
/// enable/disable; here they follow at once, and an enable of an instance that is not live fails
/// at once with the 500 Pinot gives after its 10 s (the instance is enabled all the same).
fn instance_state(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let state = r.q("state").unwrap_or("null").to_string();
    let release = c.release();
    let Some(i) = c.instances.get_mut(&id) else {
        return error(404, format!("Instance '{id}' does not exist"));
    };
    match state.to_ascii_lowercase().as_str() {
        "enable" => {
            // 1.5.0+: a drained minion gets its tags back first.
            if release >= Release::V1_5 && i.role == InstanceRole::Minion && i.tags.iter().any(|t| t == DRAINED) {
                i.tags = i.previous_tags.take().unwrap_or_default();
            }
            i.enabled = true;
            if !i.live {
                return error(500, format!("Failed to enable instance '{id}': Instance: {id} enable failed, timeout"));
            }
        }
        "disable" => i.enabled = false,
        "drain" if release >= Release::V1_5 => {
            if i.role != InstanceRole::Minion {
                return error(
                    400,
                    format!("DRAIN state only applies to minion instances. Instance '{id}' is not a minion."),
                );
            }
            if i.tags.iter().any(|t| t == DRAINED) {
                return error(
                    500,
                    format!("Failed to drain minion instance '{id}': Minion instance {id} is already drained"),
                );
            }
            if !i.tags.is_empty() {
                i.previous_tags = Some(i.tags.clone());
            }
            i.tags = vec![DRAINED.into()];
        }
        s @ ("queries_disable" | "queries_enable") if release == Release::Master => {
            if i.role != InstanceRole::Server {
                return error(
                    400,
                    format!(
                        "QUERIES_DISABLE/QUERIES_ENABLE only applies to server instances. Instance '{id}' is not a \
                         server."
                    ),
                );
            }
            let disable = s == "queries_disable";
            i.queries_disabled = disable;
            let verb = if disable { "Disabled" } else { "Enabled" };
            return ok(json!({"status": format!("{verb} query routing for server instance '{id}'")}));
        }
        _ => return error(400, format!("Unknown state '{state}'")),
    }
    ok(json!({"status": format!("Request to {state} instance '{id}' is successful")}))
}

/// The tag a drained minion carries (`CommonConstants.Helix.DRAINED_MINION_INSTANCE`).
const DRAINED: &str = "minion_drained";

/// The deprecated `POST /instances/{id}/state` with the state as text body
/// (`enable|disable|drop`, all releases).
fn legacy_instance_state(c: &mut Cluster, r: &Req) -> Resp {
    let id = r.p("id").to_string();
    let state = r.body.trim().to_string();
    let Some(i) = c.instances.get_mut(&id) else {
        return error(404, format!("Instance {id} not found"));
    };
    match state.to_ascii_lowercase().as_str() {
        "enable" => {
            i.enabled = true;
            if !i.live {
                return error(500, format!("Failed to enable instance {id} - Instance: {id} enable failed, timeout"));
            }
        }
        "disable" => i.enabled = false,
        "drop" => {
            let dropped = delete_instance(c, r);
            if dropped.0 != 200 {
                return dropped;
            }
        }
        _ => return error(400, format!("Unknown state {state} for instance request")),
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

#[cfg(test)]
mod tests {
    use super::murmur2;

    /// The vectors Kafka's `UtilsTest.testMurmur2` checks its `Utils.murmur2` against, of which
    /// Pinot's `HashUtil.murmur2` is a copy.
    #[test]
    fn murmur2_is_pinots() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (input, hash) in cases {
            assert_eq!(murmur2(input), hash, "{}", String::from_utf8_lossy(input));
        }
    }
}
