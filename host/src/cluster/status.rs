//! Step 6 of the pipeline: derives the cluster's status — Kubernetes-style conditions and
//! per-pool rollout state — from what was observed (pure), and writes it when it changed.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use pinot_crds::{ClusterCondition, PinotCluster, PinotClusterStatus, PoolStatus};
use serde_json::json;

use super::{
    observe::{ObservedCluster, pod_is_ready, pod_revision},
    validate::ValidCluster,
};
use crate::children::FIELD_MANAGER;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";

/// Why the cluster is not as the spec says, if it is not.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// CamelCase reason, e.g. `InvalidSpec`, `ApplyFailed`.
    pub reason: &'static str,
    pub message: String,
}

/// Everything the status is computed from.
pub struct StatusInput<'a> {
    pub cluster: &'a PinotCluster,
    /// The validated spec; `None` when the spec is invalid.
    pub valid: Option<&'a ValidCluster>,
    pub observed: &'a ObservedCluster,
    pub problem: Option<Problem>,
    pub now: Timestamp,
}

/// Computes the status from observed state; conditions keep their transition time while their
/// status does not change.
pub fn compute_status(input: &StatusInput<'_>) -> PinotClusterStatus {
    let cluster = input.cluster;
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let pools = pool_statuses(input);

    let desired: i32 = pools.iter().map(|p| p.replicas).sum();
    let ready: i32 = pools.iter().map(|p| p.ready_replicas.min(p.replicas)).sum();
    let not_ready: Vec<String> = pools
        .iter()
        .filter(|p| p.ready_replicas < p.replicas)
        .map(|p| format!("{} {}/{} ready", p.name, p.ready_replicas, p.replicas))
        .collect();
    let not_updated: Vec<String> = pools
        .iter()
        .filter(|p| p.updated_replicas < p.replicas)
        .map(|p| format!("{} {}/{} updated", p.name, p.updated_replicas, p.replicas))
        .collect();
    let missing: Vec<&str> = input
        .valid
        .map(|v| v.pools.iter().filter(|p| !input.observed.statefulsets.contains_key(&p.name)).map(|p| p.name.as_str()).collect())
        .unwrap_or_default();
    let stale: Vec<&str> = input
        .observed
        .statefulsets
        .iter()
        .filter(|(_, sts)| {
            sts.status.as_ref().and_then(|s| s.observed_generation) < sts.metadata.generation
        })
        .map(|(pool, _)| pool.as_str())
        .collect();
    let paused = cluster.spec.paused;

    let all_ready = missing.is_empty() && not_ready.is_empty() && !pools.is_empty();
    let available = if all_ready {
        condition(AVAILABLE, true, "AllPodsReady", format!("all {desired} pods are ready"))
    } else if missing.is_empty() {
        condition(AVAILABLE, false, "PodsNotReady", format!("waiting for pods: {}", not_ready.join(", ")))
    } else {
        condition(AVAILABLE, false, "PoolsMissing", format!("pools not created yet: {}", missing.join(", ")))
    };

    let rolling = !missing.is_empty() || !not_ready.is_empty() || !not_updated.is_empty() || !stale.is_empty();
    let progressing = if paused {
        condition(PROGRESSING, false, "Paused", "reconciliation is paused; no change is being rolled out".into())
    } else if input.valid.is_none() {
        condition(PROGRESSING, false, "InvalidSpec", "the spec is invalid; nothing is rolled out until it is fixed".into())
    } else if rolling {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("creating pools {}", missing.join(", ")));
        }
        parts.extend(not_ready.iter().cloned());
        parts.extend(not_updated.iter().cloned());
        if parts.is_empty() {
            parts.push(format!("waiting for the StatefulSets of pools {} to observe the change", stale.join(", ")));
        }
        condition(PROGRESSING, true, "RollingOut", parts.join("; "))
    } else {
        condition(PROGRESSING, false, "Complete", "every pool runs its current revision and is ready".into())
    };

    let degraded = match &input.problem {
        Some(p) => condition(DEGRADED, true, p.reason, p.message.clone()),
        None => condition(DEGRADED, false, "AsExpected", "no problem found".into()),
    };
    let paused_condition = if paused {
        condition(RECONCILIATION_PAUSED, true, "Paused", "spec.paused is true: the operator writes nothing to this cluster's objects; set it to false to resume".into())
    } else {
        condition(RECONCILIATION_PAUSED, false, "Reconciling", "the operator reconciles this cluster".into())
    };

    let conditions: Vec<ClusterCondition> = [available, progressing, degraded, paused_condition]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = previous
                .conditions
                .iter()
                .find(|old| old.type_ == c.type_ && old.status == c.status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or_else(|| input.now.to_string());
            c
        })
        .collect();

    let message = conditions
        .iter()
        .find(|c| c.type_ == RECONCILIATION_PAUSED && c.status == "True")
        .or_else(|| conditions.iter().find(|c| c.type_ == DEGRADED && c.status == "True"))
        .or_else(|| conditions.iter().find(|c| c.type_ == PROGRESSING && c.status == "True"))
        .map(|c| c.message.clone());

    PinotClusterStatus {
        observed_generation: generation,
        conditions,
        pools,
        ready_pods: Some(format!("{ready}/{desired}")),
        message,
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> ClusterCondition {
    ClusterCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: String::new(),
        observed_generation: None,
    }
}

/// Per-pool state, for every pool of the spec and every pool that still has a StatefulSet.
fn pool_statuses(input: &StatusInput<'_>) -> Vec<PoolStatus> {
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(valid) = input.valid {
        names.extend(valid.pools.iter().map(|p| (p.name.clone(), p.role.to_string())));
    }
    for (pool, sts) in &input.observed.statefulsets {
        if !names.iter().any(|(n, _)| n == pool) {
            let role = sts.labels().get(crate::children::LABEL_ROLE).cloned().unwrap_or_default();
            names.push((pool.clone(), role));
        }
    }
    names
        .into_iter()
        .map(|(name, role)| {
            let sts = input.observed.statefulsets.get(&name);
            let pods = input.observed.pods.get(&name).map(Vec::as_slice).unwrap_or_default();
            let replicas = match (input.valid.and_then(|v| v.pool(&name)), sts) {
                (Some(p), _) => p.replicas,
                (None, Some(sts)) => sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                (None, None) => 0,
            };
            let update_revision = sts.and_then(|s| s.status.as_ref()).and_then(|s| s.update_revision.clone());
            let ready = pods.iter().filter(|p| pod_is_ready(p)).count() as i32;
            let updated = match &update_revision {
                Some(rev) => pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_revision(p) == Some(rev.as_str()))
                    .count() as i32,
                None => 0,
            };
            // The revision most pods that are not yet updated run; the update revision once
            // every pod runs it. (StatefulSet's own currentRevision never advances with OnDelete
            // on older Kubernetes, so it is derived from the pods.)
            let mut others: BTreeMap<&str, usize> = BTreeMap::new();
            for rev in pods.iter().filter_map(|p| pod_revision(p)) {
                if Some(rev) != update_revision.as_deref() {
                    *others.entry(rev).or_default() += 1;
                }
            }
            let current_revision = others
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(r, _)| r.to_string())
                .or_else(|| update_revision.clone());
            PoolStatus { name, role, replicas, ready_replicas: ready, updated_replicas: updated, update_revision, current_revision }
        })
        .collect()
}

/// Writes `status` with server-side apply unless it is what the object already has.
pub async fn write_status(client: &Client, cluster: &PinotCluster, status: &PinotClusterStatus) -> Result<(), kube::Error> {
    if cluster.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1",
        "kind": "PinotCluster",
        "status": status,
    });
    api.patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}
