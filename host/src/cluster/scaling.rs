//! Scaling, decided (pure): the cluster's scaling policy decides how each pool gets to the
//! replicas the spec asks for (adding pods; draining servers before their pods go; dropping
//! departed instances) and the guardrails check the plan. `apply` carries it out: Pinot calls
//! first, replicas through the StatefulSets the pass applies. Everything is derived from what
//! is observed (tags, segment counts, instance states, the StatefulSets' replicas), so a
//! scale-in interrupted at any point resumes where Pinot and Kubernetes are.

use crate::policy::{
    Action, ActivePolicy, ClusterState, PolicyRegistry, guardrails,
    model::{Pool, Role},
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
    /// What the operator does with the decision, as `plan` and the status say it.
    pub fn outcome(&self) -> String {
        match self {
            ScalingDecision::Act { actions, waiting } if actions.is_empty() && waiting.is_empty() => {
                "do nothing".into()
            }
            ScalingDecision::Act { actions, waiting } => {
                let mut parts = vec![];
                if !actions.is_empty() {
                    parts.push(format!("carry out: {}", super::plan::describe_all(actions)));
                }
                if !waiting.is_empty() {
                    parts.push(format!("wait: {}", waiting.join("; ")));
                }
                parts.join("; ")
            }
            ScalingDecision::Blocked { why, actions, .. } => {
                format!(
                    "report Blocked ({why}) and still carry out: {}",
                    if actions.is_empty() { "nothing".into() } else { super::plan::describe_all(actions) }
                )
            }
            ScalingDecision::Refused { reason, message } => format!("refuse the whole plan ({reason}): {message}"),
        }
    }

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
/// segments, so no server pool is scaled in. `impaired`: the zones with a node not Ready; while
/// there is one, nothing is taken away (no lower replicas, no untagging, disabling, draining,
/// dropping or rebalancing: each could take a replica the outage left), whatever the policy
/// asks; pools still grow.
pub fn decide(
    registry: &PolicyRegistry,
    policy: &ActivePolicy,
    state: &ClusterState,
    pinot_reachable: bool,
    impaired: &[String],
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
            other if !impaired.is_empty() && takes_away(state, &other) => {
                waiting.push(format!(
                    "{} waits: zone {} is impaired, and nothing is taken away until it is back",
                    guardrails::describe(&other),
                    impaired.join(", ")
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

/// Whether an action takes something away (a pod, a tag, an instance's service, a replica's
/// place): all but growing a pool and enabling an instance.
fn takes_away(state: &ClusterState, action: &Action) -> bool {
    match action {
        Action::SetReplicas(s) => state.pools.iter().any(|p| p.name == s.pool && s.replicas < p.current_replicas),
        Action::EnableInstance(_) => false,
        _ => true,
    }
}

fn lowers_servers(state: &ClusterState, pool: &str, replicas: u32) -> bool {
    state.pools.iter().any(|p: &Pool| p.name == pool && p.role == Role::Server && replicas < p.current_replicas)
}
