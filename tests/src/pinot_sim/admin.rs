//! The simulator's own admin API under `/_sim` (not Pinot's), for tests and the sandbox:
//!
//! | call | does |
//! |---|---|
//! | `GET /_sim/clusters` | every simulated cluster with its instances, tables and schemas |
//! | `PUT /_sim/clusters/{ns}/{name}` | creates a standalone cluster (always up), e.g. an "external" Pinot |
//! | `POST /_sim/clusters/{ns}/{name}/instances` `{"role": "server", "host": "h"}` | registers a live instance |
//! | `GET /_sim/clusters/{ns}/{name}/requests` / `DELETE` | the request log / clears it |
//! | `PUT /_sim/clusters/{ns}/{name}/faults` `Faults` | switches faults on (see [`Faults`]) |
//! | `POST /_sim/clusters/{ns}/{name}/segments` `{"table": "t_OFFLINE", "count": 10}` | adds segments |
//! | `GET /_sim/clusters/{ns}/{name}/segments` | segment counts per server and table |
//! | `GET /_sim/clusters/{ns}/{name}/audit` / `DELETE` | what happened to data (see [`Audit`]) / starts it again |

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::json;

use super::state::{Audit, Faults, InstanceRole, SimState};

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/clusters", get(clusters))
        .route("/clusters/{ns}/{name}", put(create).get(cluster))
        .route("/clusters/{ns}/{name}/instances", post(register))
        .route("/clusters/{ns}/{name}/requests", get(requests).delete(clear_requests))
        .route("/clusters/{ns}/{name}/faults", put(faults))
        .route("/clusters/{ns}/{name}/segments", post(add_segments).get(segments))
        .route("/clusters/{ns}/{name}/audit", get(audit).delete(reset_audit))
        .with_state(state)
}

fn missing(ns: &str, name: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("no simulated cluster {ns}/{name}")).into_response()
}

async fn clusters(State(s): State<Arc<SimState>>) -> Response {
    Json(s.summary()).into_response()
}

async fn create(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    s.create_cluster((ns, name));
    StatusCode::NO_CONTENT.into_response()
}

async fn cluster(State(s): State<Arc<SimState>>, Path((ns, name)): Path<(String, String)>) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| serde_json::to_value(&*c).expect("cluster state serialises")) {
        Some(v) => Json(v).into_response(),
        None => missing(&ns, &name),
    }
}

#[derive(Deserialize)]
struct Register {
    role: String,
    host: String,
}

async fn register(
    State(s): State<Arc<SimState>>,
    Path((ns, name)): Path<(String, String)>,
    Json(r): Json<Register>,
) -> Response {
    let Some(role) = InstanceRole::parse(&r.role) else {
        return (StatusCode::BAD_REQUEST, "role must be controller, broker, server or minion").into_response();
    };
    match s.with(&(ns.clone(), name.clone()), |c| c.register(role, &r.host, None)) {
        Some(id) => Json(json!({"id": id})).into_response(),
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

async fn faults(
    State(s): State<Arc<SimState>>,
    Path((ns, name)): Path<(String, String)>,
    Json(f): Json<Faults>,
) -> Response {
    match s.with(&(ns.clone(), name.clone()), |c| c.faults = f) {
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
