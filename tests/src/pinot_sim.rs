//! A simulated Apache Pinot controller, over HTTP, following `shared/PINOT-API.md`.
//!
//! One server simulates many Pinot clusters, each under its own base URL
//! `http://<addr>/clusters/<namespace>/<name>` (the operator is pointed at it with its
//! `--controller-url-template`). A cluster exists either because the simulated kubelet made a
//! pod of that PinotCluster Ready (its instances then come and go with the pods, and its API
//! answers 503 while no controller instance is live, as an unreachable controller would), or
//! because a test created it through the admin API (always up; used as an "external" Pinot).
//!
//! Simpler than real Pinot, on purpose: no data is ingested; segments are counters per table and
//! server that tests add through the admin API; reloads finish at once; rebalances compute a
//! balanced assignment (every segment on `replication` enabled, live servers of its tenant,
//! loads within one) and apply it at once, or, with the `rebalanceStepMs` fault, one segment
//! per step in the background (new holder added before the old one goes) while the job says
//! `IN_PROGRESS`; tenant creation picks untagged instances in id order. Draining a minion
//! replaces its tags with `minion_drained`, as Pinot does. An audit (`/_sim/.../audit`) records
//! servers that stopped or were dropped while holding segments, and per table the fewest live
//! replicas any segment had. `GET
//! /instances/{id}` also returns `queriesDisabled`, which real Pinot keeps only in ZooKeeper.
//!
//! Admin API (not Pinot's), under `/_sim`: create clusters, register instances, add segments,
//! inject faults, read the request log. See [`admin`].

pub mod admin;
pub mod api;
pub mod state;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;

pub use state::{Audit, ClusterKey, Faults, InstanceRole, RecordedRequest, SimState};

/// A running simulator.
pub struct PinotSimulator {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    task: tokio::task::JoinHandle<()>,
}

impl PinotSimulator {
    /// Serves the simulator on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr, state: Arc<SimState>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let ticking = state.clone();
        let task = tokio::spawn(async move {
            // Background rebalances move on while the server runs.
            let ticker = async move {
                let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
                loop {
                    every.tick().await;
                    ticking.advance();
                }
            };
            tokio::select! {
                r = axum::serve(listener, app) => if let Err(e) = r {
                    tracing::error!(error = %e, "Pinot simulator stopped");
                },
                () = ticker => {}
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL of one simulated cluster's controller.
    pub fn controller_url(&self, namespace: &str, name: &str) -> String {
        format!("http://{}/clusters/{namespace}/{name}", self.addr)
    }
}

impl Drop for PinotSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new().nest("/clusters/{ns}/{cluster}", api::router(state.clone())).nest("/_sim", admin::router(state))
}
