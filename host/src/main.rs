//! `pinot-operator`: the command line of the Pinot control plane.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pinot_operator::{
    cluster::{self, ControllerConfig},
    pinot::ControllerLocator,
};

#[derive(Parser)]
#[command(name = "pinot-operator", version, about = "The Kubernetes control plane for Apache Pinot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (kubectl apply -f - installs them).
    Crds,
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster).
    Run {
        /// Kubeconfig to use instead of KUBECONFIG / ~/.kube/config / the in-cluster account.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "PINOT_OPERATOR_NAMESPACE")]
        namespace: Option<String>,
        /// Base URL of each cluster's Pinot controller; `{name}` and `{namespace}` are
        /// replaced. Out of the cluster (sandbox, laptop) point it at a reachable address; a
        /// cluster's `pinot.controlplane.dev/controller-url` annotation overrides it.
        #[arg(long, env = "PINOT_CONTROLLER_URL_TEMPLATE", default_value = pinot_operator::pinot::DEFAULT_CONTROLLER_URL_TEMPLATE)]
        controller_url_template: String,
        /// Log as JSON lines.
        #[arg(long, env = "PINOT_OPERATOR_LOG_JSON")]
        log_json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", pinot_crds::crd_yaml());
            Ok(())
        }
        Command::Run { kubeconfig, namespace, controller_url_template, log_json } => {
            init_tracing(log_json);
            let client = pinot_operator::kube_client(kubeconfig.as_deref()).await?;
            let controllers = ControllerLocator::new(controller_url_template);
            cluster::run(client, ControllerConfig { namespace, controllers }, shutdown_signal())
                .await
                .context("running the PinotCluster controller")?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json { builder.json().init() } else { builder.init() }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
