//! `pinot-sim`: runs the simulated data plane against a kube-apiserver.

use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::FutureExt;
use pinot_testbed::data_plane::{self, DataPlaneConfig};

#[derive(Parser)]
#[command(name = "pinot-sim", about = "The simulated data plane of the Pinot control plane's sandbox and tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fake nodes in several zones, a simulated kubelet and a volume provisioner.
    DataPlane {
        /// Kubeconfig of the cluster to simulate nodes for (default: KUBECONFIG or ~/.kube/config).
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<std::path::PathBuf>,
        /// Zones, comma separated.
        #[arg(long, default_value = "zone-a,zone-b,zone-c", value_delimiter = ',')]
        zones: Vec<String>,
        #[arg(long, default_value_t = 2)]
        nodes_per_zone: usize,
        /// Milliseconds a scheduled pod takes to become Ready.
        #[arg(long, default_value_t = 1000)]
        readiness_delay_ms: u64,
        /// Address of the simulated Pinot controllers.
        #[arg(long, default_value = "127.0.0.1:19000")]
        pinot_addr: std::net::SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::DataPlane { kubeconfig, zones, nodes_per_zone, readiness_delay_ms, pinot_addr } => {
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let config = DataPlaneConfig {
                zones,
                nodes_per_zone,
                readiness_delay: Duration::from_millis(readiness_delay_ms),
                pinot_addr,
                ..DataPlaneConfig::default()
            };
            let shutdown = shutdown_signal().boxed();
            data_plane::run(client, config, shutdown).await?;
            tracing::info!("simulated data plane stopped");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
