//! `pinot-sim`: runs the simulated data plane against a kube-apiserver.

use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::FutureExt;
use pinot_operator::shutdown_signal;
use pinot_testbed::{
    data_plane::{self, DataPlaneConfig},
    progress,
};

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
        /// Cluster DNS domain of pods' host names (`<pod>.<subdomain>.<ns>.svc.<domain>`).
        #[arg(long, default_value = "cluster.local")]
        cluster_domain: String,
    },
    /// Shows one PinotCluster live: pools, pods, Pinot instances, conditions, operator events.
    Watch {
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: Option<std::path::PathBuf>,
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long)]
        cluster: String,
        /// The simulator's admin API.
        #[arg(long, default_value = "http://127.0.0.1:19000/_sim/clusters")]
        simulator: String,
        /// Exit once the cluster is Available (exit code 0).
        #[arg(long)]
        until_available: bool,
        /// A line shown under every frame.
        #[arg(long, default_value = "")]
        footer: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest (the live view's client) is built without a TLS provider of its own.
    pinot_operator::pinot::install_tls_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::DataPlane { kubeconfig, zones, nodes_per_zone, readiness_delay_ms, pinot_addr, cluster_domain } => {
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let config = DataPlaneConfig {
                zones,
                nodes_per_zone,
                readiness_delay: Duration::from_millis(readiness_delay_ms),
                pinot_addr,
                cluster_domain,
                ..DataPlaneConfig::default()
            };
            let shutdown = shutdown_signal().boxed();
            data_plane::run(client, config, shutdown).await?;
            tracing::info!("simulated data plane stopped");
            Ok(())
        }
        Command::Watch { kubeconfig, namespace, cluster, simulator, until_available, footer } => {
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            watch(client, &namespace, &cluster, &simulator, until_available, &footer).await
        }
    }
}

async fn watch(
    client: kube::Client,
    namespace: &str,
    cluster: &str,
    simulator: &str,
    until_available: bool,
    footer: &str,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    // One signal listener for the whole watch, so a Ctrl-C during a snapshot is not missed.
    let mut stop = Box::pin(shutdown_signal());
    loop {
        let snapshot = tokio::select! {
            s = progress::Snapshot::take(&client, namespace, cluster, simulator) => s,
            _ = &mut stop => return Ok(()),
        };
        let mut frame = snapshot.render(namespace, cluster);
        if !footer.is_empty() {
            frame.push('\n');
            frame.push_str(footer);
            frame.push('\n');
        }
        if frame != last {
            let mut out = std::io::stdout().lock();
            if tty {
                // Clear the screen and draw the frame from the top.
                write!(out, "\x1b[2J\x1b[H")?;
            } else {
                writeln!(out, "----")?;
            }
            write!(out, "{frame}")?;
            out.flush()?;
            last = frame;
        }
        if until_available && snapshot.available() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut stop => return Ok(()),
        }
    }
}
