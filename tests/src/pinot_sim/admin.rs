//! The simulator's own admin API under `/_sim` (not Pinot's), for tests and the sandbox:
//!
//! | call | does |
//! |---|---|
//! | `GET /_sim/clusters` | every simulated cluster with its release, instances, tables and schemas |
//! | `PUT /_sim/clusters/{ns}/{name}` [`ClusterSettings`] | creates a standalone cluster (always up), e.g. an "external" Pinot, and applies the settings (body optional) |
//! | `GET /_sim/clusters/{ns}/{name}` | the cluster's whole state (with `release`, `rebalances`, `audit`) |
//! | `GET` / `PUT /_sim/clusters/{ns}/{name}/settings` [`ClusterSettings`] | the settings / changes them; a cluster that does not exist yet is created as the kubelet creates one (down until a controller pod is Ready), so a test can set it up first |
//! | `POST /_sim/clusters/{ns}/{name}/instances` `{"role": "server", "host": "h", "zone": "zone-a", "release": "1.4.0", "segmentsLoadMs": 0}` | starts an instance (`zone`, `release`, `segmentsLoadMs` optional) |
//! | `POST /_sim/clusters/{ns}/{name}/instances/{id}/{sigterm,exit,start}` | a process's lifecycle without a pod: SIGTERM (a server drains with `shutdownInProgress`), the process is gone, it starts again (`start` takes the same optional `release` and `segmentsLoadMs`) |
//! | `GET /_sim/clusters/{ns}/{name}/requests` / `DELETE` | the request log / clears it |
//! | `PUT /_sim/clusters/{ns}/{name}/faults` [`Faults`] + optional `release` | replaces the faults; `release`, when given, is set as with the settings |
//! | `POST /_sim/clusters/{ns}/{name}/segments` `{"table": "t_OFFLINE", "count": 10}` | adds segments |
//! | `GET /_sim/clusters/{ns}/{name}/segments` | segment counts per server and table |
//! | `GET /_sim/clusters/{ns}/{name}/rebalances` | every rebalance call with the parameters it ran with ([`RebalanceCall`](super::state::RebalanceCall)) |
//! | `GET /_sim/clusters/{ns}/{name}/audit` / `DELETE` | what happened to data and routing (see [`Audit`]) / starts it again |
//! | `PUT /_sim/zones/{zone}` `{"lost": true}` / `{"lost": false}` | loses a zone of the data plane (its Pinot instances are gone, its nodes stop reporting and go Ready=Unknown, its kubelet stops: deleted pods stay Terminating) / brings it back (nodes Ready, pods' processes start again); see `SimState::set_zone_lost` |
//! | `GET /_sim/zones` | the zones lost now |

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::{Audit, Build, ClusterSettings, Faults, InstanceRole, Release, SimState};

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/clusters", get(clusters))
        .route("/clusters/{ns}/{name}", put(create).get(cluster))
        .route("/clusters/{ns}/{name}/settings", put(configure).get(settings))
        .route("/clusters/{ns}/{name}/instances", post(register))
        .route("/clusters/{ns}/{name}/instances/{id}/{event}", post(lifecycle))
        .route("/clusters/{ns}/{name}/requests", get(requests).delete(clear_requests))
        .route("/clusters/{ns}/{name}/faults", put(faults))
        .route("/clusters/{ns}/{name}/segments", post(add_segments).get(segments))
        .route("/clusters/{ns}/{name}/rebalances", get(rebalances))
        .route("/clusters/{ns}/{name}/audit", get(audit).delete(reset_audit))
        .route("/zones", get(zones))
        .route("/zookeeper/{ns}/{ensemble}", get(zookeeper))
        .route("/zones/{zone}", put(set_zone))
        .with_state(state)
}

fn missing(ns: &str, name: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("no simulated cluster {ns}/{name}")).into_response()
}

fn bad_request(why: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, why.to_string()).into_response()
}

/// A JSON body that may be empty (then `T::default()`).
fn optional_body<T: for<'de> Deserialize<'de> + Default>(body: &str) -> Result<T, String> {
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(body).map_err(|e| e.to_string())
}

async fn clusters(State(s): State<Arc<SimState>>) -> Response {
    Json(s.summary()).into_response()
}

async fn create(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>, body: String) -> Response {
    match optional_body::<ClusterSettings>(&body) {
        Ok(settings) => {
            s.create_cluster_with((ns, name), &settings);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn cluster(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.to_admin_json()) {
        Some(v) => Json(v).into_response(),
        None => missing(&ns, &name),
    }
}

async fn configure(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>, body: String) -> Response {
    match optional_body::<ClusterSettings>(&body) {
        Ok(settings) => {
            s.configure((ns, name), &settings);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn settings(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    let view = s.with(&(ns.clone(), name.clone()), |c| {
        json!({
            "release": c.release(),
            "releaseOverride": c.release_override,
            "helixClusterName": c.helix_cluster_name,
            "segmentsLoadMs": c.segments_load_ms,
        })
    });
    match view {
        Some(v) => Json(v).into_response(),
        None => missing(&ns, &name),
    }
}

/// How an instance starts: the release it runs (default: the cluster's) and how long a server
/// takes to load its segments (default: the cluster's setting).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    release: Option<Release>,
    segments_load_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Register {
    role: String,
    host: String,
    /// The zone its (imagined) node is in: a lost zone takes it down.
    #[serde(default)]
    zone: Option<String>,
    #[serde(flatten)]
    start: Start,
}

/// A simulated ZooKeeper ensemble (`<cluster>-zookeeper`): its leader, members, znodes and every
/// start and stop of a member, with what was down at the time.
async fn zookeeper(State(s): State<Arc<SimState>>, Path((ns, ensemble)): Path<(String, String)>) -> Response {
    Json(s.zookeeper.report(&(ns, ensemble))).into_response()
}

async fn zones(State(s): State<Arc<SimState>>) -> Response {
    Json(json!({"lost": s.lost_zones()})).into_response()
}

#[derive(Deserialize)]
struct ZoneChange {
    lost: bool,
}

async fn set_zone(State(s): State<Arc<SimState>>, Path(zone): Path<String>, body: String) -> Response {
    match serde_json::from_str::<ZoneChange>(&body) {
        Ok(change) => {
            s.set_zone_lost(&zone, change.lost);
            Json(json!({"lost": s.lost_zones()})).into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn register(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>, body: String) -> Response {
    let r: Register = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let Some(role) = InstanceRole::parse(&r.role) else {
        return bad_request("role must be controller, broker, server or minion");
    };
    let started = s.with(&(ns.clone(), name.clone()), |c| {
        let build = r.start.release.map(Build::of).unwrap_or_else(|| c.build());
        let load = Duration::from_millis(r.start.segments_load_ms.unwrap_or(c.segments_load_ms));
        let id = c.start_instance(role, &r.host, build, load, None);
        if let (Some(zone), Some(i)) = (&r.zone, c.instances.get_mut(&id)) {
            i.zone = Some(zone.clone());
        }
        id
    });
    match started {
        Some(id) => Json(json!({"id": id})).into_response(),
        None => missing(&ns, &name),
    }
}

async fn lifecycle(
    State(s): State<Arc<SimState>>,
    Path((ns, name, id, event)): Path<(String, String, String, String)>,
    body: String,
) -> Response {
    let start = match optional_body::<Start>(&body) {
        Ok(start) => start,
        Err(e) => return bad_request(e),
    };
    let outcome = s.with(&(ns.clone(), name.clone()), |c| {
        let Some(i) = c.instances.get(&id) else {
            return Err((StatusCode::NOT_FOUND, format!("no instance {id}")));
        };
        let (role, host, live, build) = (i.role, i.host.clone(), i.live, i.build);
        match event.as_str() {
            "sigterm" => c.begin_shutdown(&id),
            "exit" => c.process_exited(&id),
            "start" if live => {
                return Err((StatusCode::CONFLICT, format!("{id} runs; send sigterm and exit first")));
            }
            "start" => {
                let build = start.release.map(Build::of).unwrap_or(build);
                let load = Duration::from_millis(start.segments_load_ms.unwrap_or(c.segments_load_ms));
                c.start_instance(role, &host, build, load, None);
            }
            other => {
                return Err((StatusCode::NOT_FOUND, format!("no lifecycle event {other}; use sigterm, exit, start")));
            }
        }
        Ok(())
    });
    match outcome {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Some(Err(e)) => e.into_response(),
        None => missing(&ns, &name),
    }
}

async fn requests(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.requests.clone()) {
        Some(r) => Json(r).into_response(),
        None => missing(&ns, &name),
    }
}

async fn clear_requests(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.requests.clear()) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => missing(&ns, &name),
    }
}

/// Replaces the faults; a `release` field beside them sets the release (and is left as it was
/// when absent).
async fn faults(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>, body: String) -> Response {
    let mut v: Value = match optional_body(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let release = v.as_object_mut().and_then(|o| o.remove("release"));
    let release = match release.map(serde_json::from_value::<Option<Release>>).transpose() {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let f: Faults = match serde_json::from_value(if v.is_null() { json!({}) } else { v }) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let settings = ClusterSettings { release, ..Default::default() };
    match s.with(&(ns.clone(), name.clone()), |c| {
        c.faults = f;
        settings.apply(c);
    }) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => missing(&ns, &name),
    }
}

#[derive(Deserialize)]
struct AddSegments {
    table: String,
    count: usize,
}

async fn add_segments(
    State(s): State<Arc<SimState>>,
    Path((ns, name)): Path<(String, String)>,
    Json(a): Json<AddSegments>,
) -> Response {
    let result = s.with(&(ns.clone(), name.clone()), |c| {
        if !c.tables.contains_key(&a.table) {
            return Err(format!("no table {} (use the name with type, e.g. t_OFFLINE)", a.table));
        }
        c.add_segments(&a.table, a.count);
        Ok(c.segment_counts())
    });
    match result {
        Some(Ok(counts)) => Json(counts).into_response(),
        Some(Err(e)) => (StatusCode::BAD_REQUEST, e).into_response(),
        None => missing(&ns, &name),
    }
}

async fn segments(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.segment_counts()) {
        Some(counts) => Json(counts).into_response(),
        None => missing(&ns, &name),
    }
}

async fn rebalances(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.rebalances.clone()) {
        Some(r) => Json(r).into_response(),
        None => missing(&ns, &name),
    }
}

async fn audit(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.audit.clone()) {
        Some(a) => Json(a).into_response(),
        None => missing(&ns, &name),
    }
}

async fn reset_audit(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.audit = Audit::default()) {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => missing(&ns, &name),
    }
}
