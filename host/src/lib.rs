//! The Pinot control plane's host operator: it watches PinotClusters and their children, and
//! PinotSchemas / PinotTables, and does every Kubernetes and Pinot write. Decisions are taken in
//! the plan step of the [`cluster`] pipeline.

pub mod access;
pub mod children;
pub mod cluster;
pub mod convert;
pub mod events;
pub mod kubectl;
pub mod leader;
pub mod metrics;
pub mod pinot;
pub mod policy;
pub mod policy_controller;
pub mod resources;
pub mod role;

use std::path::Path;

use kube::{Client, Config, config::KubeConfigOptions};

use crate::{
    cluster::ControllerConfig,
    policy_controller::{PolicyControllerConfig, PolicySources},
};

/// Runs the operator's controllers (PinotClusters, and PinotPolicies with the same policy
/// registry and namespace scope) until `shutdown` resolves.
pub async fn run_operator(
    client: Client,
    config: ControllerConfig,
    sources: PolicySources,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), kube::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let policy_config = PolicyControllerConfig { namespace: config.namespace.clone(), sources };
    let registry = config.registry.clone();
    let resources_config =
        resources::ResourcesConfig { namespace: config.namespace.clone(), drift_interval: config.drift_interval };
    let access = access::ControllerAccess::new(client.clone(), config.controllers.clone());
    let (clusters, (), ()) = tokio::join!(
        cluster::run(client.clone(), config, stopped(stop_rx.clone())),
        policy_controller::run(client.clone(), registry, policy_config, stopped(stop_rx.clone())),
        resources::run(client, access, resources_config, stopped(stop_rx)),
    );
    clusters
}

/// Waits until `store` has its first complete list; false if its writer is gone. The store's
/// readiness wakes only the last task that waited on it (a oneshot), and its controller waits
/// on it too: this asks again every half second instead of waiting once.
pub(crate) async fn store_ready<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => continue,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Runs the operator only while this process holds the leader Lease: waits as a standby until
/// it is the leader, reconciles until `shutdown` resolves (then gives the Lease up) or until it
/// loses the Lease (then stops reconciling and returns the error, so the process exits).
pub async fn run_elected(
    client: Client,
    config: ControllerConfig,
    sources: PolicySources,
    leader: leader::LeaderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let mut shutdown = Box::pin(shutdown);
    tokio::select! {
        () = leader::acquire(&client, &leader) => {}
        () = &mut shutdown => return Ok(()),
    }
    // The Lease is renewed in this task, next to the controllers, so nothing outlives them.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = run_operator(client.clone(), config, sources, async move {
        let _ = stop_rx.await;
    });
    tokio::pin!(operator);
    let lost = tokio::select! {
        result = &mut operator => return result.map_err(Into::into),
        () = &mut shutdown => None,
        e = leader::hold(&client, &leader) => {
            tracing::error!(error = %e, "lost the leadership");
            Some(e)
        }
    };
    if let Some(e) = lost {
        // Not the leader any more: stop at once, whatever is in flight (dropping the
        // controllers cancels them).
        return Err(e.into());
    }
    // Shutting down: let running reconciles finish, then hand the Lease over.
    let _ = stop_tx.send(());
    operator.await?;
    leader::release(&client, &leader).await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

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
