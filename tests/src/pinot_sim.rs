//! A simulated Apache Pinot controller, over HTTP, that answers as a named Pinot release does.
//!
//! One server simulates many Pinot clusters, each under its own base URL
//! `http://<addr>/clusters/<namespace>/<name>` (the operator is pointed at it with its
//! `--controller-url-template`). A cluster exists either because the simulated kubelet made a
//! pod of that PinotCluster Ready (its instances then come and go with the pods, and its API
//! answers 503 while no controller instance is live, as an unreachable controller would), or
//! because a test created it through the admin API (always up; used as an "external" Pinot).
//!
//! # Sources
//!
//! Every behaviour comes from `shared/pinot/` (README.md, controller-rest.md,
//! server-lifecycle.md), read from Pinot's source at the tags `release-1.2.0` .. `release-1.5.1`
//! and master `210c2951e72` (`1.6.0-SNAPSHOT`), or from that source itself; each handler's doc
//! names the file. Paths below: `RES/` = `pinot-controller/.../controller/api/resources/`,
//! `PHRM` = `pinot-controller/.../helix/core/PinotHelixResourceManager.java`, `BSS` =
//! `pinot-server/.../starter/helix/BaseServerStarter.java`. Read in the source for this module,
//! beyond the reference: `RES/ZookeeperResource.java` (a missing znode is a 404 `ZKPath ... does
//! not exist`, not a 204), `RES/PinotInstanceRestletResource.java` (error texts, `/liveinstances`
//! answers `{"instances": [...]}`), `RES/TableViews.java`, `RES/PinotControllerResponseFilter.java`,
//! `rebalance/TableRebalancer.java` and `TableRebalanceManager.java` (order of the NO_OP, dry-run,
//! downtime and min-available checks; 409 text), `PHRM.updateInstance` (master's
//! `queriesDisabled` rule), `PHRM.drainMinionInstance`, `InstanceUtils.updateHelixInstanceConfig`,
//! `BSS.updateInstanceConfigIfNeeded`, `TableConfigUtils.validateBackwardCompatibility` (1.5.0),
//! `RES/PinotSegmentRestletResource.java` (reload, servers), root `pom.xml`
//! (`Implementation-Version` = `<version>-<git sha>`). Instance and segment assignment with
//! pools and replica groups (`assignment.rs`) were read from the source at 1.2.0 and 1.4.0
//! (1.3.0, 1.5.0, master diffed); the facts and the lines they rest on are in
//! `pinot_sim/assignment.md`.
//!
//! # Releases
//!
//! A cluster answers as one [`Release`]: 1.2.0, 1.3.0, 1.4.0, 1.5.x (1.5.0 = 1.5.1) or master.
//! It is the release of the image of its live controller pods (the oldest when they differ); a
//! tag `x.y.z...` maps by minor version, `latest`, `master`, anything with `SNAPSHOT` and any tag
//! not understood to master ([`Build::of_image`]). The admin API can set it (`release` in the
//! cluster settings or the faults call); a standalone cluster answers as master unless set. Per
//! release:
//!
//! | | 1.2.0 | 1.3.0 | 1.4.0 | 1.5.x | master |
//! |---|---|---|---|---|---|
//! | `GET /tables/{t}` missing | `200 {}` | `200 {}` | 404 | 404 | 404 |
//! | `PUT /instances/{id}/state` | enable, disable | same | same | + drain (minions) | + queries_disable/enable (servers) |
//! | `GET /instances/{id}` `shutdownInProgress` | absent | absent | absent | boolean | boolean |
//! | `PUT /instances/{id}` body `queriesDisabled: false` | clears | clears | clears | clears | kept when set |
//! | `pinotVersion` in the instance's ZNRecord | no | no | yes | yes | yes |
//! | rebalance `reassignInstances`/`includeConsuming`/`minAvailableReplicas` | false/false/1 | same | true/true/-1 | same | same |
//! | rebalance while one runs on the table | runs | runs | 409 | 409 | 409 |
//! | `PUT /schemas/{s}?force=` | ignored | ignored | honoured | honoured | honoured |
//! | `DELETE /schemas/{s}` 409 | REALTIME table named like it | same | `<s>_OFFLINE`/`<s>_REALTIME` exists | same | same |
//! | `POST /segments/{t}/reload`, nothing to reload | 200, `"0"` | 404 | 404 | 404 | 404 |
//! | `GET /segments/{t}/servers` | map | + `serverToSegmentsCountMap`, `verbose` | same | same | same |
//! | `PUT /tables/{t}?force=` (upsert changes) | — | — | — | 400 without it | same |
//! | reload status | counts | counts | counts | + `status`, `failureCount` | same |
//!
//! All releases: `GET /version` (`{"pinot-controller": "<version>-<sha>"}`, `{}` with the
//! `emptyVersion` fault) and the `Pinot-Controller-Version`/`-Host` headers on every answer;
//! `GET /instances/{id}` field types; `PUT /instances/{id}` as a full-body replace; `GET
//! /zk/get` of `/<helixCluster>/CONFIGS/PARTICIPANT/<id>` (the Helix cluster name is the
//! PinotCluster's name unless set); `GET /tables/{t}/idealstate|externalview`; Pinot's error
//! body `{"code", "error"}`; basic auth (a fault) leaves `/health` open.
//!
//! # Server lifecycle and the external view
//!
//! Modelled after server-lifecycle.md §2 (`BSS.start`, `BSS.stop`): a (re)starting server goes
//! live with `shutdownInProgress=true` (set at its first start, kept from its last stop), its
//! segments OFFLINE in the external view; after its load time (cluster setting
//! `segmentsLoadMs`, default 1500 ms, or the pod annotation
//! `sim.pinot.controlplane.dev/segments-load-ms`) they turn ONLINE (or ERROR, with the
//! `segmentErrorServers` fault), and on the next tick `shutdownInProgress` turns false. The pod
//! may be Ready before that, as in Pinot. SIGTERM (the pod's deletionTimestamp) sets
//! `shutdownInProgress=true` at once while the server stays live and ONLINE; when the kubelet
//! finalizes the pod the process is gone: not live, no external view entries. Brokers,
//! controllers and minions leave the cluster at SIGTERM (they disconnect early in their stop).
//! `queriesDisabled` and pools survive restarts; default tags are written only when an instance
//! has none. A disabled server's replicas are OFFLINE.
//!
//! # Audit
//!
//! `/_sim/.../audit` ([`Audit`]) records servers that got SIGTERM (or vanished) or were dropped
//! while holding segments; per table the fewest live, enabled holders and the fewest routable
//! replicas any segment had; and routing gaps: a server is routable iff live, enabled, not
//! `shutdownInProgress`, not `queriesDisabled` (the broker's rule, server-lifecycle.md §4), a
//! replica iff its server is and the external view says ONLINE/CONSUMING; a gap is a moment a
//! server left routing while another holder of one of its segments was not a routable replica.
//!
//! # Simpler than Pinot, on purpose
//!
//! No data is ingested; segments are names per table that tests add through the admin API, all
//! ONLINE in the ideal state (no CONSUMING segments, no instance partitions, no tiers). Reloads
//! finish at once. A rebalance computes a balanced assignment (every segment on `replication`
//! enabled, live servers of its tenant, loads within one) and applies it at once, or, with the
//! `rebalanceStepMs` fault, one segment per step in the background (new holder added before the
//! old one goes) while the job says `IN_PROGRESS`; `reassignInstances`, `includeConsuming`,
//! `bootstrap` and `minimizeDataMovement` are only recorded; an illegal `minAvailableReplicas`
//! fails the job, and the call answers `IN_PROGRESS` (1.4.0+ may return the FAILED result
//! directly when the job ends within its wait for the job id). Table enable/disable is not
//! tracked. Pinot's `enable`/`disable` wait up to 10 s for the segments to follow; here they
//! follow at once (an enable of an instance that is not live fails at once with Pinot's 500).
//! Tenant creation picks untagged instances in id order. Multi-stage ports are fixed (8421,
//! 8442) where Pinot picks free ports; system resource info is fixed. `/version` lists only
//! the `pinot-controller` jar. 1.5.x reports 1.5.1 unless the image says 1.5.0.
//!
//! Admin API (not Pinot's), under `/_sim`: create clusters, change their settings, start and
//! stop instances, add segments, inject faults, read the request log, rebalances and audit. See
//! [`admin`].

pub mod admin;
pub mod api;
pub mod assignment;
pub mod release;
pub mod state;
pub mod zookeeper;

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;

pub use release::{Build, Release};
pub use state::{
    Audit, ClusterKey, ClusterSettings, DEFAULT_SEGMENTS_LOAD_MS, Faults, InstanceRole, RebalanceCall, RebalanceParams,
    RecordedRequest, RoutingGap, SimPod, SimState,
};

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
            // Time moves on while the server runs: background rebalances, starting servers.
            let ticker = async move {
                let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
                loop {
                    every.tick().await;
                    ticking.advance();
                    ticking.zookeeper.tick();
                }
            };
            tokio::select! {
                () = serve(listener, app) => {},
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

/// How a request reached the simulator: over TLS (the controller's HTTPS listener) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
}

/// The certificate the simulated controllers present over HTTPS (127.0.0.1 and localhost,
/// signed by the test CA `tests/fixtures/tls/sim-ca.pem`).
const SERVER_CERT: &str = include_str!("../fixtures/tls/sim-server.pem");
const SERVER_KEY: &str = include_str!("../fixtures/tls/sim-server.key");
/// The CA a client trusts to reach the simulated controllers over HTTPS.
pub const TEST_CA_PEM: &str = include_str!("../fixtures/tls/sim-ca.pem");

fn tls_acceptor() -> Option<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes()).collect::<Result<_, _>>().ok()?;
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).ok()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .ok()?;
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves plain HTTP and HTTPS on one port: a connection whose first byte opens a TLS handshake
/// (0x16) is served over TLS. Each request carries its [`Transport`], so a cluster whose
/// controller listens only on HTTPS can refuse plain HTTP.
async fn serve(listener: TcpListener, app: Router) {
    let tls = tls_acceptor();
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let is_tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
            match (is_tls, tls) {
                (true, Some(acceptor)) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(stream, app, Transport { tls: true }).await;
                    }
                }
                _ => serve_connection(stream, app, Transport { tls: false }).await,
            }
        });
    }
}

async fn serve_connection<S>(stream: S, app: Router, transport: Transport)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = app.layer(axum::Extension(transport));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

pub fn router(state: Arc<SimState>) -> Router {
    Router::new().nest("/clusters/{ns}/{cluster}", api::router(state.clone())).nest("/_sim", admin::router(state))
}
