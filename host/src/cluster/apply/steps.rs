//! The policies' checked actions, carried out. Upgrade: restarting a pod (deleting it, guarded
//! by its uid, so its StatefulSet recreates it on the target revision; Pinot's server takes
//! itself out of routing on SIGTERM) and taking a server's queries out of and back into
//! Pinot's routing the way the cluster's release allows (`PinotClient::set_queries_disabled`).
//! Scaling: tags, rebalances, instance states and drops in Pinot, and the replicas of a pool
//! that left the spec. Tenants: tags and Pinot pools. Each sequence stops at its first failure;
//! the next pass decides again from what it observes.

use std::collections::BTreeMap;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};
use pinot_crds::RebalanceJob;

use crate::{
    cluster::{observe::ObservedCluster, plan::ANNOTATION_QUERIES_DISABLED_AT},
    pinot::PinotClient,
    policy::{Action, ClusterState, guardrails},
};

/// Why a step of a policy's plan failed: the action (as the guardrails describe it) and what
/// refused it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The Pinot controller refused the call or did not answer.
    #[error("{action}: {message}")]
    Pinot { action: String, message: String },
    /// The apiserver refused a write (a pod's deletion or annotation, a StatefulSet's replicas).
    #[error("{action}: {object}: {message}")]
    Kubernetes { action: String, object: String, message: String },
    /// The pod the action names is not observed any more.
    #[error("{action}: the pod is gone")]
    PodGone { action: String },
    /// The action is not one this step carries out.
    #[error("{action} is not carried out by the {step} step")]
    NotThisStep { action: String, step: &'static str },
}

impl StepError {
    fn pinot(action: &Action, e: crate::pinot::PinotError) -> Self {
        StepError::Pinot { action: guardrails::describe(action), message: e.to_string() }
    }

    fn kubernetes(action: &Action, object: String, e: kube::Error) -> Self {
        StepError::Kubernetes { action: guardrails::describe(action), object, message: super::kube_message(&e) }
    }
}

/// One step carried out, for an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub reason: &'static str,
    pub note: String,
    /// The pod the step is about, so that events about different pods are separate series.
    pub pod: Option<String>,
}

/// Carries out the upgrade policy's `actions` in order; stops at the first failure.
pub async fn carry_out_upgrade(
    client: &Client,
    pinot: &PinotClient,
    namespace: &str,
    observed: &ObservedCluster,
    policy: &str,
    actions: &[Action],
) -> (Vec<Step>, Option<StepError>) {
    // The pod each instance runs in.
    let pod_of = |id: &str| observed.pod_instances.iter().find(|(_, i)| *i == id).map(|(pod, _)| pod.clone());
    let mut done = Vec::new();
    for action in actions {
        let result = match action {
            Action::RestartPod(name) => restart(client, namespace, observed, action, name).await.map(|revision| Step {
                reason: "RestartedPod",
                note: format!("restarted pod {name} to move it to revision {revision} (upgrade policy {policy})"),
                pod: Some(name.clone()),
            }),
            Action::DisableQueries(id) => {
                // The drain counts from this mark; it is written first, so a crash between the
                // two writes can only make the drain start earlier than Pinot's change, never skip it.
                let pod = pod_of(id);
                let mark = match &pod {
                    Some(pod) => mark_drain(client, namespace, pod)
                        .await
                        .map_err(|e| StepError::kubernetes(action, format!("pod {pod}"), e)),
                    None => Ok(()),
                };
                let disabled = match mark {
                    Ok(()) => pinot.set_queries_disabled(id, true).await.map_err(|e| StepError::pinot(action, e)),
                    Err(e) => Err(e),
                };
                disabled.map(|()| Step {
                    reason: "QueriesDisabled",
                    note: format!("disabled queries on {id} before its pod restarts (upgrade policy {policy})"),
                    pod,
                })
            }
            Action::EnableQueries(id) => {
                pinot.set_queries_disabled(id, false).await.map_err(|e| StepError::pinot(action, e)).map(|()| Step {
                    reason: "QueriesEnabled",
                    note: format!(
                        "enabled queries on {id}: it is back, live and on its new revision (upgrade policy {policy})"
                    ),
                    pod: pod_of(id),
                })
            }
            other => Err(StepError::NotThisStep { action: guardrails::describe(other), step: "upgrade" }),
        };
        match result {
            Ok(step) => done.push(step),
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// Marks when the pod's queries were disabled, for the drain period.
async fn mark_drain(client: &Client, namespace: &str, pod: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let now = k8s_openapi::jiff::Timestamp::now().as_second().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_QUERIES_DISABLED_AT: now}}});
    api.patch(pod, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

/// Deletes the pod observed under `name`, only if it is still that pod (same uid): a pod the
/// StatefulSet already recreated is never restarted a second time for the same decision.
async fn restart(
    client: &Client,
    namespace: &str,
    observed: &ObservedCluster,
    action: &Action,
    name: &str,
) -> Result<String, StepError> {
    let (pool, pod) = observed
        .pods
        .iter()
        .find_map(|(pool, pods)| pods.iter().find(|p| p.name_any() == name).map(|p| (pool, p)))
        .ok_or_else(|| StepError::PodGone { action: guardrails::describe(action) })?;
    let revision = observed
        .statefulsets
        .get(pool)
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.clone())
        .unwrap_or_else(|| "?".into());
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: pod.uid(), resource_version: None }),
        ..Default::default()
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &params).await {
        Ok(_) => Ok(revision),
        // Gone or replaced already: nothing to do.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(revision),
        Err(e) => Err(StepError::kubernetes(action, format!("pod {name}"), e)),
    }
}

/// What carrying out a scaling plan did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScalingOutcome {
    /// One note per step, for events.
    pub notes: Vec<String>,
    /// The replicas each pool's StatefulSet gets in this pass.
    pub replicas: BTreeMap<String, u32>,
    /// Rebalances started now.
    pub rebalances: Vec<RebalanceJob>,
    /// The failure that stopped the plan, if one did.
    pub failure: Option<StepError>,
}

impl ScalingOutcome {
    /// A rebalance started now: the table's latest job.
    fn started(&mut self, job: RebalanceJob) {
        self.rebalances.retain(|j| j.table != job.table);
        self.rebalances.push(job);
    }
}

/// A digest of the instances of this cluster that carry `tag`, with their Pinot pool for it (a
/// server moved to another pool is a change a rebalance acts on).
pub fn servers_digest(state: &ClusterState, tag: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<String> = state
        .pools
        .iter()
        .flat_map(|p| p.pods.iter().filter_map(|pod| pod.instance.as_ref()).chain(&p.departed))
        .filter(|i| i.enabled && i.tags.iter().any(|t| t == tag))
        .map(|i| match i.pools.get(tag) {
            Some(pool) => format!("{}={pool}", i.id),
            None => i.id.clone(),
        })
        .collect();
    ids.sort_unstable();
    let digest = Sha256::digest(ids.join(",").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Carries out the Pinot side of a checked plan in order (tags, rebalances, instance states,
/// drops) and collects the replicas it sets; stops at the first failure. Steps that would
/// change nothing (`guardrails::changes_nothing`) are skipped. A table is not
/// rebalanced while its last rebalance runs, nor again when its last one finished onto the same
/// servers (a policy asking every pass cannot make Pinot move segments in circles).
pub async fn carry_out_scaling(
    pinot: &PinotClient,
    state: &ClusterState,
    previous: &[RebalanceJob],
    policy: &str,
    actions: &[Action],
) -> ScalingOutcome {
    let mut out = ScalingOutcome::default();
    // Tags change in this plan before its rebalances: the digest is taken when a rebalance starts.
    let mut state = state.clone();
    for action in actions {
        if guardrails::changes_nothing(&state, action) {
            continue;
        }
        let result = match action {
            Action::SetReplicas(s) => {
                let current = state.pools.iter().find(|p| p.name == s.pool).map(|p| p.current_replicas);
                out.replicas.insert(s.pool.clone(), s.replicas);
                if current == Some(s.replicas) {
                    continue;
                }
                Ok(format!(
                    "pool {}: replicas {} -> {} (scaling policy {policy})",
                    s.pool,
                    current.unwrap_or(0),
                    s.replicas
                ))
            }
            Action::UpdateTags(t) => {
                let result = pinot.update_tags(&t.instance, &t.tags).await;
                if result.is_ok() {
                    let instances = state.pools.iter_mut().flat_map(|p| {
                        p.pods.iter_mut().filter_map(|pod| pod.instance.as_mut()).chain(p.departed.iter_mut())
                    });
                    for i in instances.filter(|i| i.id == t.instance) {
                        i.tags = t.tags.clone();
                    }
                }
                result.map(|()| format!("tagged {} with [{}] (scaling policy {policy})", t.instance, t.tags.join(",")))
            }
            Action::RebalanceTable(table) => {
                match start_rebalance(
                    pinot,
                    &state,
                    previous,
                    &out.rebalances,
                    table,
                    &format!("scaling policy {policy}"),
                )
                .await
                {
                    None => continue,
                    Some(result) => result.map(|(note, job)| {
                        out.started(job);
                        note
                    }),
                }
            }
            Action::DisableInstance(id) => pinot
                .set_instance_enabled(id, false)
                .await
                .map(|()| format!("disabled instance {id}: it holds no segment and leaves (scaling policy {policy})")),
            Action::EnableInstance(id) => pinot
                .set_instance_enabled(id, true)
                .await
                .map(|()| format!("enabled instance {id} (scaling policy {policy})")),
            Action::DrainInstance(id) => pinot
                .drain_minion(id)
                .await
                .map(|()| format!("draining minion {id}: it takes no new tasks (scaling policy {policy})")),
            Action::DropInstance(id) => pinot
                .drop_instance(id)
                .await
                .map(|()| format!("dropped instance {id} from Pinot: its pod is gone (scaling policy {policy})")),
            Action::Wait(_) | Action::Block(_) => continue,
            other => {
                out.failure = Some(StepError::NotThisStep { action: guardrails::describe(other), step: "scaling" });
                return out;
            }
        };
        match result {
            Ok(note) => out.notes.push(note),
            Err(e) => {
                out.failure = Some(StepError::pinot(action, e));
                return out;
            }
        }
    }
    out
}

/// Starts a rebalance of `table` (its segments onto the servers that carry its tag now, instance
/// partitions recomputed), for `by` (who asks, for the note). `None` when it is not started: the
/// table is unknown, a rebalance of it runs, or its last one finished onto the same servers
/// (`jobs`: those started in this pass, then `previous`).
pub async fn start_rebalance(
    pinot: &PinotClient,
    state: &ClusterState,
    previous: &[RebalanceJob],
    started: &[RebalanceJob],
    table: &str,
    by: &str,
) -> Option<Result<(String, RebalanceJob), crate::pinot::PinotError>> {
    let t = state.tables.iter().find(|t| t.name == table)?;
    let servers = servers_digest(state, &t.server_tag);
    let last = started.iter().chain(previous).find(|j| j.table == table);
    let again = last.is_some_and(|j| {
        j.status == crate::cluster::observe::IN_PROGRESS || (j.servers == servers && j.status == "DONE")
    });
    if t.rebalancing || again {
        return None;
    }
    Some(pinot.rebalance_table(table, t.replication).await.map(|job| {
        // A rebalance Pinot has nothing to move for (no job) is recorded as done onto these
        // servers.
        let (note, job_id, status) = match job {
            Some(job) => (
                format!("rebalancing table {table} (Pinot job {job}; {by})"),
                job,
                crate::cluster::observe::IN_PROGRESS,
            ),
            None => {
                (format!("table {table} is balanced already: Pinot has nothing to move ({by})"), String::new(), "DONE")
            }
        };
        (note, RebalanceJob { table: table.to_string(), job_id, status: status.into(), servers })
    }))
}

/// Rebalances the tables whose replicas are not one per Pinot pool (`zones::misplaced_tables`),
/// after the scaling policy's steps of this pass (`out`): each a `reassignInstances` rebalance
/// that moves their segments into one replica group per zone.
pub async fn rebalance_by_zone(
    pinot: &PinotClient,
    state: &ClusterState,
    previous: &[RebalanceJob],
    misplaced: &[crate::cluster::zones::Misplaced],
    out: &mut ScalingOutcome,
) {
    if out.failure.is_some() {
        return;
    }
    for m in misplaced {
        let by = format!("replica groups by zone: {}", m.why);
        let Some(result) = start_rebalance(pinot, state, previous, &out.rebalances, &m.table, &by).await else {
            continue;
        };
        match result {
            Ok((note, job)) => {
                out.started(job);
                out.notes.push(note);
            }
            Err(e) => {
                out.failure = Some(StepError::pinot(&Action::RebalanceTable(m.table.clone()), e));
                return;
            }
        }
    }
}

/// Sets the replicas of a pool that left the spec (its StatefulSet is not built any more).
pub async fn scale_leaving(
    client: &Client,
    namespace: &str,
    pool: &str,
    statefulset: &str,
    replicas: u32,
) -> Result<(), StepError> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch(statefulset, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ()).map_err(|e| {
        let action = Action::SetReplicas(crate::policy::model::SetReplicas { pool: pool.into(), replicas });
        StepError::kubernetes(&action, format!("StatefulSet {statefulset}"), e)
    })
}

/// Applies the tags; the first failure stops (the next reconcile decides again from what Pinot
/// then reports). The notes of the tags set, and the failure.
/// What a tenant plan did: the steps taken (for events), the instances whose pools wait for a
/// later pass, the failure that stopped it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placed {
    pub done: Vec<String>,
    pub held: Vec<String>,
    pub failure: Option<StepError>,
}

/// Carries out a tenant plan: tags first, then Pinot pools. A pool is written with the
/// instance's whole config (`PinotClient::set_instance_pools`), which could undo what the
/// instance writes itself while it starts or stops: an instance that is not live, whose pod is
/// not ready or is terminating, that is shutting down, or any instance while this pass
/// restarted a pod (`restarted`), is held for a later pass.
pub async fn place(
    pinot: &PinotClient,
    observed: &ObservedCluster,
    placement: &crate::cluster::tenants::Placement,
    restarted: bool,
) -> Placed {
    let (mut done, failure) = retag(pinot, &placement.tags).await;
    let mut placed = Placed { held: vec![], failure, done: vec![] };
    if placed.failure.is_some() {
        placed.done = done;
        return placed;
    }
    for (instance, pools) in &placement.pools {
        if restarted || !settled(observed, instance) {
            placed.held.push(instance.clone());
            continue;
        }
        match pinot.set_instance_pools(instance, pools).await {
            Ok(before) => {
                let set: Vec<String> = pools.iter().map(|(tag, pool)| format!("{tag}={pool}")).collect();
                let was: Vec<String> = before.iter().map(|(tag, pool)| format!("{tag}={pool}")).collect();
                let was = if was.is_empty() { "none".to_string() } else { was.join(", ") };
                done.push(format!("set the Pinot pools of {instance}: {} (were {was})", set.join(", ")));
            }
            Err(e) => {
                let (tag, pool) = pools.first().cloned().unwrap_or_default();
                let action = Action::SetInstancePool(crate::policy::model::InstancePool {
                    instance: instance.clone(),
                    tag,
                    pool,
                });
                placed.failure = Some(StepError::pinot(&action, e));
                break;
            }
        }
    }
    placed.done = done;
    placed
}

/// Whether an instance is up and steady as observed: live, not shutting down, its pod ready
/// and not terminating.
fn settled(observed: &ObservedCluster, instance: &str) -> bool {
    let crate::cluster::observe::PinotObservation::Reachable { live, details, .. } = &observed.pinot else {
        return false;
    };
    let pod = observed.pod_instances.iter().find(|(_, id)| *id == instance).map(|(pod, _)| pod);
    let pod = pod.and_then(|name| observed.pods.values().flatten().find(|p| p.name_any() == *name));
    live.contains(instance)
        && details.get(instance).is_none_or(|d| d.shutdown_in_progress != Some(true))
        && pod.is_some_and(|p| crate::children::pod_is_ready(p) && p.metadata.deletion_timestamp.is_none())
}

pub async fn retag(pinot: &PinotClient, retag: &[(String, Vec<String>)]) -> (Vec<String>, Option<StepError>) {
    let mut done = Vec::new();
    for (instance, tags) in retag {
        if let Err(e) = pinot.update_tags(instance, tags).await {
            let action = Action::UpdateTags(crate::policy::model::InstanceTags {
                instance: instance.clone(),
                tags: tags.clone(),
            });
            return (done, Some(StepError::pinot(&action, e)));
        }
        done.push(format!("tagged {instance} with [{}]", tags.join(",")));
    }
    (done, None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::{cluster::observe::PinotObservation, pinot::InstanceInfo};

    fn pod(name: &str, ready: bool, terminating: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "deletionTimestamp": terminating.then_some("2026-01-01T00:00:00Z")},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    /// Pools are written with the instance's whole config: only for an instance that is up and
    /// steady, never one starting or stopping.
    #[test]
    fn pools_are_written_only_for_a_live_steady_instance() {
        let mut observed = ObservedCluster::default();
        observed.pods.insert(
            "server".into(),
            vec![pod("s-0", true, false), pod("s-1", false, false), pod("s-2", true, true), pod("s-3", true, false)],
        );
        observed.pod_instances = (0..5).map(|i| (format!("s-{i}"), format!("S{i}"))).collect();
        let shutting_down = InstanceInfo { shutdown_in_progress: Some(true), ..Default::default() };
        observed.pinot = PinotObservation::Reachable {
            version: None,
            instances: (0..5).map(|i| format!("S{i}")).collect(),
            live: BTreeSet::from(["S0", "S1", "S2", "S3", "S4"].map(String::from)),
            details: [("S3".to_string(), shutting_down)].into(),
            departed: Default::default(),
            tables: vec![],
            rebalances: vec![],
            leaderless_partitions: None,
        };
        let steady: Vec<bool> = (0..5).map(|i| settled(&observed, &format!("S{i}"))).collect();
        // Ready and live; not ready; terminating; shutting down; no pod observed.
        assert_eq!(steady, [true, false, false, false, false]);
        if let PinotObservation::Reachable { live, .. } = &mut observed.pinot {
            live.remove("S0");
        }
        assert!(!settled(&observed, "S0"), "not live");
        observed.pinot = PinotObservation::Unreachable("down".into());
        assert!(!settled(&observed, "S0"), "Pinot does not answer");
    }
}
