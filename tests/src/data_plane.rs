//! A simulated data plane: what kubelets and a CSI provisioner would do on real nodes.
//!
//! Started by `make kube-up` (binary `pinot-sim data-plane`) or in-process by a test. It runs
//! until its shutdown future resolves; every task it spawns ends with it.

mod kubelet;
mod nodes;
mod provisioner;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use kube::Client;

use crate::pinot_sim::{PinotSimulator, SimState};

pub use kubelet::{
    ANNOTATION_BROKEN, ANNOTATION_READY_AFTER_MS, ANNOTATION_RESTARTS, ANNOTATION_SEGMENTS_LOAD_MS,
    ANNOTATION_SHUTDOWN_AFTER_MS, Kubelet, image_is_broken, pod_host_name,
};
pub use nodes::NodeFleet;
pub use provisioner::{PROVISIONER_NAME, STORAGE_CLASS_NAME, VolumeProvisioner};

/// The label every simulated Node carries, so tests can tell them from real ones.
pub const SIMULATED_NODE_LABEL: &str = "sim.pinot.controlplane.dev/node";

/// Shape of the simulated data plane.
#[derive(Clone, Debug)]
pub struct DataPlaneConfig {
    /// Availability zones; each gets `nodes_per_zone` Nodes.
    pub zones: Vec<String>,
    pub nodes_per_zone: usize,
    /// How long a scheduled pod takes to become Ready.
    pub readiness_delay: Duration,
    /// How long a deleted pod takes to shut down before the kubelet finalizes it.
    pub shutdown_delay: Duration,
    /// Where the simulated Pinot controllers listen (`/clusters/<ns>/<name>` per cluster).
    pub pinot_addr: SocketAddr,
    /// The cluster DNS domain in pods' host names (`<pod>.<subdomain>.<ns>.svc.<domain>`), which
    /// are the simulated Pinot instances' hosts.
    pub cluster_domain: String,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
            nodes_per_zone: 2,
            readiness_delay: Duration::from_secs(1),
            shutdown_delay: Duration::from_millis(500),
            pinot_addr: SocketAddr::from(([127, 0, 0, 1], 19000)),
            cluster_domain: "cluster.local".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering simulated node {node}: {source}")]
    RegisterNode { node: String, source: kube::Error },
    #[error("creating the {STORAGE_CLASS_NAME} StorageClass: {source}")]
    CreateStorageClass { source: kube::Error },
    #[error("starting the Pinot simulator on {addr}: {source}")]
    StartPinot { addr: SocketAddr, source: std::io::Error },
    #[error("watching {what}: {source}")]
    Watch { what: &'static str, source: kube::runtime::watcher::Error },
}

/// Runs the whole simulated data plane until `shutdown` resolves.
pub async fn run(client: Client, config: DataPlaneConfig, shutdown: BoxFuture<'static, ()>) -> Result<(), Error> {
    let pinot = Arc::new(SimState::new());
    let simulator = PinotSimulator::start(config.pinot_addr, pinot.clone())
        .await
        .map_err(|source| Error::StartPinot { addr: config.pinot_addr, source })?;
    tracing::info!(addr = %simulator.addr, "simulated Pinot controllers at http://{}/clusters/<namespace>/<name>", simulator.addr);
    let fleet = NodeFleet::register(client.clone(), &config).await?;
    VolumeProvisioner::install_storage_class(client.clone()).await?;
    let kubelet = Kubelet::new(client.clone(), fleet.clone(), &config, pinot.clone());
    let provisioner = VolumeProvisioner::new(client.clone(), fleet.clone());
    tokio::select! {
        r = fleet.heartbeat(pinot) => r,
        r = kubelet.run() => r,
        r = provisioner.run() => r,
        _ = shutdown => Ok(()),
    }
}
