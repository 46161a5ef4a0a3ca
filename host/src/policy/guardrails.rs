//! The host's guardrails: before it acts on a plan, every action must name an existing pool,
//! pod, instance or table, keep replicas within the bounds the spec allows, never leave a
//! pool with more pods unavailable than its disruption budget, never remove a server pod whose
//! instance still holds segments, disable or drain only instances a scale-in takes out, and
//! never drop an instance that is live, holds segments or still has its pod. One invalid action
//! refuses the whole plan.

use std::collections::HashMap;

use super::model::{Action, ClusterState, Role};

/// The first action of a plan that may not be carried out, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("action {index} ({action}) refused: {reason}")]
pub struct Violation {
    pub index: usize,
    pub action: String,
    pub reason: String,
}

/// A short human form of an action, for verdicts, events and the CLI.
pub fn describe(action: &Action) -> String {
    match action {
        Action::RestartPod(p) => format!("restart-pod {p}"),
        Action::SetReplicas(s) => format!("set-replicas {} {}", s.pool, s.replicas),
        Action::DisableQueries(i) => format!("disable-queries {i}"),
        Action::EnableQueries(i) => format!("enable-queries {i}"),
        Action::UpdateTags(t) => format!("update-tags {} [{}]", t.instance, t.tags.join(",")),
        Action::RebalanceTable(t) => format!("rebalance-table {t}"),
        Action::DisableInstance(i) => format!("disable-instance {i}"),
        Action::EnableInstance(i) => format!("enable-instance {i}"),
        Action::DrainInstance(i) => format!("drain-instance {i}"),
        Action::DropInstance(i) => format!("drop-instance {i}"),
        Action::Wait(why) => format!("wait: {why}"),
        Action::Block(why) => format!("block: {why}"),
    }
}

/// The verdict on each action of a plan (`None`: allowed).
pub fn verdicts(state: &ClusterState, plan: &[Action]) -> Vec<Option<String>> {
    // Pods each pool would have unavailable, counting restarts earlier in the plan.
    let mut unavailable: HashMap<&str, u32> = state
        .pools
        .iter()
        .map(|p| {
            let down = p.pods.iter().filter(|pod| !pod.ready || pod.terminating).count() as u32;
            // An ordinal with no pod at all was deleted and is not recreated yet.
            let missing =
                (0..p.current_replicas).filter(|o| !p.pods.iter().any(|pod| pod.ordinal == *o)).count() as u32;
            (p.name.as_str(), down + missing)
        })
        .collect();
    let instance_of_pod = |id: &str| {
        state
            .pools
            .iter()
            .find_map(|p| p.pods.iter().find_map(|pod| pod.instance.as_ref().filter(|i| i.id == id).map(|i| (p, i))))
    };
    let departed = |id: &str| state.pools.iter().find_map(|p| p.departed.iter().find(|i| i.id == id).map(|i| (p, i)));
    let instance = |id: &str| instance_of_pod(id).or_else(|| departed(id));
    let instance_exists = |id: &str| instance(id).is_some();
    // An instance a scale-in takes out: its pod's ordinal is at or above what the pool keeps,
    // or its pod is gone already.
    let leaving = |id: &str| {
        departed(id).is_some()
            || state.pools.iter().any(|p| {
                p.pods
                    .iter()
                    .any(|pod| pod.ordinal >= p.desired_replicas && pod.instance.as_ref().is_some_and(|i| i.id == id))
            })
    };
    plan.iter()
        .map(|action| match action {
            Action::RestartPod(name) => {
                let Some((pool, pod)) =
                    state.pools.iter().find_map(|p| p.pods.iter().find(|pod| &pod.name == name).map(|pod| (p, pod)))
                else {
                    return Some(format!("no pod {name} in this cluster"));
                };
                if pod.terminating {
                    return Some(format!("pod {name} is already being deleted"));
                }
                if pod.ready {
                    let count = unavailable.entry(pool.name.as_str()).or_default();
                    if *count + 1 > pool.max_unavailable.max(1) {
                        return Some(format!(
                            "pool {} already has {count} of {} allowed pods unavailable (maxUnavailable)",
                            pool.name, pool.max_unavailable
                        ));
                    }
                    *count += 1;
                }
                None
            }
            Action::SetReplicas(s) => match state.pools.iter().find(|p| p.name == s.pool) {
                None => Some(format!("no pool {}", s.pool)),
                Some(p) if s.replicas < p.min_replicas || s.replicas > p.max_replicas => Some(format!(
                    "{} replicas is outside the {}..={} the spec allows for pool {}",
                    s.replicas, p.min_replicas, p.max_replicas, p.name
                )),
                // The pods a lower count removes: a server among them must hold no segment.
                Some(p) => p
                    .pods
                    .iter()
                    .filter(|pod| pod.ordinal >= s.replicas)
                    .find_map(|pod| pod.instance.as_ref().filter(|i| i.segments > 0).map(|i| (pod, i)))
                    .map(|(pod, i)| {
                        format!(
                            "pod {} would be removed while its instance {} holds {} segments; drain it first",
                            pod.name, i.id, i.segments
                        )
                    }),
            },
            Action::DisableQueries(id) | Action::EnableQueries(id) => {
                (!instance_exists(id)).then(|| format!("no instance {id} in this cluster"))
            }
            Action::UpdateTags(t) => {
                if !instance_exists(&t.instance) {
                    Some(format!("no instance {} in this cluster", t.instance))
                } else if t.tags.iter().any(|tag| tag.is_empty() || tag.contains(',')) {
                    Some("tags must be non-empty and contain no comma".to_string())
                } else {
                    None
                }
            }
            Action::EnableInstance(id) => (!instance_exists(id)).then(|| format!("no instance {id} in this cluster")),
            Action::DisableInstance(id) => match instance(id) {
                None => Some(format!("no instance {id} in this cluster")),
                Some(_) if !leaving(id) => Some(format!(
                    "instance {id} is not being scaled in (its pod stays); only instances that leave are disabled"
                )),
                Some(_) => None,
            },
            Action::DrainInstance(id) => match instance(id) {
                None => Some(format!("no instance {id} in this cluster")),
                Some((p, _)) if p.role != Role::Minion => {
                    Some(format!("{id} is not a minion; only minions are drained"))
                }
                Some(_) if !leaving(id) => Some(format!(
                    "minion {id} is not being scaled in (its pod stays); only minions that leave are drained"
                )),
                Some(_) => None,
            },
            Action::DropInstance(id) => match (instance_of_pod(id), departed(id)) {
                (Some(_), _) => Some(format!("instance {id} still has its pod; lower the pool's replicas first")),
                (None, None) => Some(format!("no departed instance {id} in this cluster")),
                (None, Some((_, i))) if i.live => Some(format!("instance {id} is still live")),
                (None, Some((_, i))) if i.segments > 0 => {
                    Some(format!("instance {id} still holds {} segments", i.segments))
                }
                (None, Some(_)) => None,
            },
            Action::RebalanceTable(name) => {
                (!state.tables.iter().any(|t| &t.name == name)).then(|| format!("no table {name} in this cluster"))
            }
            Action::Wait(why) | Action::Block(why) => why.trim().is_empty().then(|| "a reason is required".to_string()),
        })
        .collect()
}

/// Ok when every action of the plan may be carried out.
pub fn check(state: &ClusterState, plan: &[Action]) -> Result<(), Violation> {
    match verdicts(state, plan).into_iter().enumerate().find_map(|(i, v)| v.map(|r| (i, r))) {
        Some((index, reason)) => Err(Violation { index, action: describe(&plan[index]), reason }),
        None => Ok(()),
    }
}
