//! The `kubectl pinot` plugin's own commands: one screen of a cluster's state, and a rolling
//! restart asked for the way the operator carries it out (`plan` is [`crate::cluster::preview`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::{
    api::core::v1::{Node, Pod},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use pinot_crds::PinotCluster;

use crate::{
    children::LABEL_CLUSTER,
    cluster::cache::ZONE_LABEL,
    cluster::validate::{ANNOTATION_RESTART, ANNOTATION_RESTART_POOL_PREFIX, zookeeper::ENSEMBLE_POOL},
};

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("PinotCluster {0} does not exist")]
    NotFound(String),
    #[error("{0} has no pool {1:?} (pools: {2})")]
    NoPool(String, String, String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

async fn get(client: &Client, namespace: &str, name: &str) -> Result<PinotCluster, KubectlError> {
    Api::<PinotCluster>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| KubectlError::NotFound(format!("{namespace}/{name}")))
}

/// The cluster, its pools and where their pods run, Pinot's view, ZooKeeper and the policies.
pub async fn status(client: &Client, namespace: &str, name: &str) -> Result<String, KubectlError> {
    let cluster = get(client, namespace, name).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}")))
        .await?
        .items;
    // Zones are optional: a user who may not list nodes still gets the rest.
    let zones: BTreeMap<String, String> = match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
        Ok(nodes) => nodes
            .items
            .iter()
            .map(|n| (n.name_any(), n.labels().get(ZONE_LABEL).cloned().unwrap_or_else(|| "-".into())))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let status = cluster.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "PinotCluster {namespace}/{name}   image {}", cluster.spec.image);
    if let Some(message) = &status.message {
        let _ = writeln!(out, "  {message}");
    }
    let _ = writeln!(out, "\nCONDITIONS");
    for c in &status.conditions {
        let _ = writeln!(out, "  {:<12} {:<6} {:<22} {}", c.type_, c.status, c.reason, c.message);
    }
    let _ = writeln!(out, "\nPOOLS        ROLE        READY  UPDATED  REVISION            PODS BY ZONE");
    for pool in &status.pools {
        let in_pool: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.labels().get(crate::children::LABEL_POOL).map(String::as_str) == Some(pool.name.as_str()))
            .collect();
        let mut by_zone: BTreeMap<String, usize> = BTreeMap::new();
        for pod in &in_pool {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let zone =
                zones.get(&node).cloned().unwrap_or_else(|| if node.is_empty() { "unscheduled" } else { "-" }.into());
            *by_zone.entry(zone).or_default() += 1;
        }
        let zones = by_zone.iter().map(|(z, n)| format!("{z}:{n}")).collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            out,
            "  {:<11} {:<11} {:<6} {:<8} {:<19} {}",
            pool.name,
            pool.role,
            format!("{}/{}", pool.ready_replicas, pool.replicas),
            pool.updated_replicas,
            pool.update_revision.as_deref().map(short_revision).unwrap_or("-"),
            zones
        );
    }
    if let Some(pinot) = &status.pinot {
        let _ = writeln!(out, "\nPINOT        {}", pinot.url);
        let reach = if pinot.reachable { "answers" } else { "does not answer" };
        let _ = writeln!(
            out,
            "  controller {reach}; {} of {} instances live; release {}{}",
            pinot.live_instances,
            pinot.instances,
            pinot.release.as_deref().unwrap_or("unknown"),
            pinot.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
        );
    }
    if let Some(zk) = &status.zookeeper {
        let _ = writeln!(out, "\nZOOKEEPER    {}", zk.connect_string);
        let leader = zk.leader.as_deref().unwrap_or("none");
        let _ = writeln!(out, "  {} members (configured {}), leader {leader}", zk.replicas, zk.configured);
        if let Some(m) = &zk.message {
            let _ = writeln!(out, "  {m}");
        }
    }
    let _ = writeln!(out, "\nPOLICIES");
    for p in &status.policies {
        let what = p.source.as_deref().unwrap_or(&p.name);
        let state = if p.ready { "ready" } else { "NOT READY" };
        let _ = writeln!(
            out,
            "  {:<8} {what} ({state}){}",
            p.kind,
            p.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    if !status.problems.is_empty() {
        let _ = writeln!(out, "\nPROBLEMS");
        for p in &status.problems {
            let _ = writeln!(out, "  {p:?}");
        }
    }
    Ok(out)
}

fn short_revision(revision: &str) -> &str {
    revision.rsplit('-').next().unwrap_or(revision)
}

/// Asks for a rolling restart of the cluster (or of one pool, `zookeeper` for the managed
/// ensemble): an annotation with the time, which the operator puts into the pods' template; the
/// upgrade policy then restarts them pod by pod, as it carries out an upgrade.
pub async fn restart(client: &Client, namespace: &str, name: &str, pool: Option<&str>) -> Result<String, KubectlError> {
    let cluster = get(client, namespace, name).await?;
    let mut pools: Vec<String> = cluster.spec.pools.iter().map(|p| p.name.clone()).collect();
    if cluster.spec.zookeeper.managed.is_some() {
        pools.push(ENSEMBLE_POOL.into());
    }
    let key = match pool {
        Some(p) if !pools.iter().any(|q| q == p) => {
            return Err(KubectlError::NoPool(format!("{namespace}/{name}"), p.into(), pools.join(", ")));
        }
        Some(p) => format!("{ANNOTATION_RESTART_POOL_PREFIX}{p}"),
        None => ANNOTATION_RESTART.to_string(),
    };
    let now = Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {&key: &now}}});
    Api::<PinotCluster>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let what = pool.map(|p| format!("pool {p}")).unwrap_or_else(|| format!("every pool ({})", pools.join(", ")));
    Ok(format!(
        "restart of {what} of {namespace}/{name} requested ({key}={now}): the upgrade policy restarts the pods one at a time; follow it with `kubectl pinot status {name} -n {namespace}`"
    ))
}
