//! The scaling step: the cluster's scaling policy decides how each pool gets to the replicas
//! the spec asks for (adding pods; draining servers before their pods go; dropping departed
//! instances), the guardrails check the plan, and the host carries it out: Pinot calls at
//! once, replicas through the StatefulSets the pass applies. Everything is derived from what is
//! observed (tags, segment counts, instance states, the StatefulSets' replicas), so a scale-in
//! interrupted at any point resumes where Pinot and Kubernetes are.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use pinot_crds::RebalanceJob;

use crate::{
    pinot::PinotClient,
    policy::{
        Action, ActivePolicy, ClusterState, PolicyRegistry, guardrails,
        model::{Pool, Role},
    },
};

/// What the scaling policy decided this time, after the guardrails.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalingDecision {
    /// The actions to carry out now; may be empty. `waiting` says what other pools wait for.
    Act { actions: Vec<Action>, waiting: Vec<String> },
    /// The policy reports a problem the user must solve (shown as `Degraded`); the actions of
    /// the other pools still go ahead.
    Blocked { why: String, actions: Vec<Action>, waiting: Vec<String> },
    /// The policy failed or asked for something the guardrails refuse; nothing is carried out.
    Refused { reason: &'static str, message: String },
}

impl ScalingDecision {
    pub fn actions(&self) -> &[Action] {
        match self {
            ScalingDecision::Act { actions, .. } | ScalingDecision::Blocked { actions, .. } => actions,
            ScalingDecision::Refused { .. } => &[],
        }
    }

    /// What `Progressing` says about scaling, when something is under way or waited for.
    pub fn progress(&self) -> Option<String> {
        let (actions, waiting) = match self {
            ScalingDecision::Act { actions, waiting } | ScalingDecision::Blocked { actions, waiting, .. } => {
                (actions, waiting)
            }
            ScalingDecision::Refused { .. } => return None,
        };
        let mut parts: Vec<String> = waiting.clone();
        if !actions.is_empty() {
            parts.push(format!(
                "scaling step: {}",
                actions.iter().map(guardrails::describe).collect::<Vec<_>>().join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// The actions a scaling policy may ask for.
fn scaling_action(action: &Action) -> bool {
    !matches!(action, Action::RestartPod(_) | Action::DisableQueries(_) | Action::EnableQueries(_))
}

/// Runs the scaling policy on `state` and checks what it asks for. `pinot_reachable`: whether
/// the controller answered this pass; without it nobody can tell whether a server still holds
/// segments, so no server pool is scaled in.
pub fn decide(
    registry: &PolicyRegistry,
    policy: &ActivePolicy,
    state: &ClusterState,
    pinot_reachable: bool,
) -> ScalingDecision {
    let name = &policy.policy.name;
    let actions = match registry.decide(policy, state) {
        Ok(actions) => actions,
        Err(e) => {
            return ScalingDecision::Refused {
                reason: "PolicyFailed",
                message: format!("scaling policy {name}: {e}; no pool is scaled until it decides"),
            };
        }
    };
    if let Some((i, a)) = actions.iter().enumerate().find(|(_, a)| !scaling_action(a)) {
        return ScalingDecision::Refused {
            reason: "PlanRefused",
            message: format!(
                "scaling policy {name}: action {i} ({}) refused: a scaling policy may set replicas, tag, rebalance, \
                 disable, enable, drain or drop instances, wait or block; nothing of its plan was carried out",
                guardrails::describe(a)
            ),
        };
    }
    if let Err(v) = guardrails::check(state, &actions) {
        return ScalingDecision::Refused {
            reason: "PlanRefused",
            message: format!("scaling policy {name}: {v}; nothing of its plan was carried out"),
        };
    }
    let mut waiting = Vec::new();
    let mut work = Vec::new();
    let mut blocked = Vec::new();
    for action in actions {
        match action {
            Action::Wait(why) => waiting.push(why),
            Action::Block(why) => blocked.push(why),
            Action::SetReplicas(s) if !pinot_reachable && lowers_servers(state, &s.pool, s.replicas) => {
                waiting.push(format!(
                    "scaling in pool {} waits for the Pinot controller: without it no one can tell whether its servers still hold segments",
                    s.pool
                ));
            }
            other => work.push(other),
        }
    }
    if blocked.is_empty() {
        ScalingDecision::Act { actions: work, waiting }
    } else {
        ScalingDecision::Blocked { why: blocked.join("; "), actions: work, waiting }
    }
}

fn lowers_servers(state: &ClusterState, pool: &str, replicas: u32) -> bool {
    state.pools.iter().any(|p: &Pool| p.name == pool && p.role == Role::Server && replicas < p.current_replicas)
}

/// What carrying out a scaling plan did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// One note per step, for events.
    pub notes: Vec<String>,
    /// The replicas each pool's StatefulSet gets in this pass.
    pub replicas: BTreeMap<String, u32>,
    /// Rebalances started now.
    pub rebalances: Vec<RebalanceJob>,
    /// The failure that stopped the plan, if one did.
    pub failure: Option<String>,
}

/// A digest of the instances of this cluster that carry `tag`.
pub fn servers_digest(state: &ClusterState, tag: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<&str> = state
        .pools
        .iter()
        .flat_map(|p| p.pods.iter().filter_map(|pod| pod.instance.as_ref()).chain(&p.departed))
        .filter(|i| i.enabled && i.tags.iter().any(|t| t == tag))
        .map(|i| i.id.as_str())
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
pub async fn carry_out(
    pinot: &PinotClient,
    state: &ClusterState,
    previous: &[RebalanceJob],
    policy: &str,
    actions: &[Action],
) -> Outcome {
    let mut out = Outcome::default();
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
                let Some(t) = state.tables.iter().find(|t| &t.name == table) else { continue };
                let servers = servers_digest(&state, &t.server_tag);
                let last = out.rebalances.iter().chain(previous).find(|j| &j.table == table);
                let again = last.is_some_and(|j| {
                    j.status == super::observe::IN_PROGRESS || (j.servers == servers && j.status == "DONE")
                });
                if t.rebalancing || again {
                    continue;
                }
                pinot.rebalance_table(table, t.replication).await.map(|job| {
                    // A rebalance Pinot has nothing to move for (no job) is recorded as done onto
                    // these servers.
                    let (note, job_id, status) = match job {
                        Some(job) => (
                            format!("rebalancing table {table} (Pinot job {job}; scaling policy {policy})"),
                            job,
                            super::observe::IN_PROGRESS,
                        ),
                        None => (
                            format!(
                                "table {table} is balanced already: Pinot has nothing to move (scaling policy {policy})"
                            ),
                            String::new(),
                            "DONE",
                        ),
                    };
                    out.rebalances.retain(|j| &j.table != table);
                    out.rebalances.push(RebalanceJob { table: table.clone(), job_id, status: status.into(), servers });
                    note
                })
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
                out.failure = Some(format!("{} is not carried out by the scaling step", guardrails::describe(other)));
                return out;
            }
        };
        match result {
            Ok(note) => out.notes.push(note),
            Err(e) => {
                out.failure = Some(format!("{}: {e}", guardrails::describe(action)));
                return out;
            }
        }
    }
    out
}

/// Sets the replicas of a pool that left the spec (its StatefulSet is not built any more).
pub async fn scale_leaving(client: &Client, namespace: &str, statefulset: &str, replicas: u32) -> Result<(), String> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    api.patch(statefulset, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("scaling StatefulSet {statefulset} to {replicas}: {e}"))
}
