//! The Pinot control plane's host operator: it watches PinotClusters and their children, and
//! does every Kubernetes (and, later, Pinot) write. Decisions are taken in the plan step of
//! the [`cluster`] pipeline.

pub mod children;
pub mod cluster;
pub mod pinot;
pub mod policy;
pub mod role;

use std::path::Path;

use kube::{Client, Config, config::KubeConfigOptions};

/// A client from the given kubeconfig file, or from the environment (in-cluster service
/// account, `KUBECONFIG`, `~/.kube/config`) when none is given.
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(ClientError::Kubeconfig)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(ClientError::Kubeconfig)?
        }
        None => Config::infer().await.map_err(ClientError::Infer)?,
    };
    Client::try_from(config).map_err(ClientError::Client)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("finding a Kubernetes configuration (in-cluster, KUBECONFIG or ~/.kube/config): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("creating the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}
