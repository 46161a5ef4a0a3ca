//! Step 6 of the pipeline: derives the cluster's status — Kubernetes-style conditions, every
//! problem with its field or object, per-pool rollout state, where its tenants are — from what
//! was observed, planned and applied (pure), then writes it when it changed (the one status
//! write of a pass) and announces what is new in it: a warning event per problem and spec
//! generation, not per pass.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use pinot_crds::{
    ClusterCondition, ClusterProblem, EnsembleMemberStatus, EnsembleStatus, PinotCluster, PinotClusterStatus,
    PinotControllerStatus, PoolStatus, TenantPlacement,
};
use serde_json::json;

use super::{
    apply::{Applied, StepError},
    build::ZOOKEEPER_ROLE_LABEL,
    observe::{ObservedCluster, PinotObservation, off_target, pod_is_ready, pod_revision, stale_message},
    plan::{Hold, Plan, UpgradeDecision},
    scaling::ScalingDecision,
    tenants::{TenantDecision, tenant_status, tenant_zones},
    validate::{InvalidSpec, ValidCluster, zookeeper::ENSEMBLE_POOL},
};
use crate::{children::FIELD_MANAGER, policy::guardrails};

/// Step 6 (pure): the cluster's status after this pass.
pub fn status(
    cluster: &PinotCluster,
    valid: &Result<ValidCluster, InvalidSpec>,
    observed: &ObservedCluster,
    plan: &Plan<'_>,
    applied: &Applied,
    now: Timestamp,
) -> PinotClusterStatus {
    let problems = problems(cluster, valid, observed, plan, applied, now);
    let problem = problems.first().map(|first| Problem {
        reason: first.reason.clone(),
        message: problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "),
    });
    let pinot_url = observed.controller.as_ref().map(|c| c.url.as_str()).unwrap_or_default();
    let previous = cluster.status.clone().unwrap_or_default();
    let mut status = match valid {
        Ok(v) if v.external => {
            let answer = match &observed.pinot {
                PinotObservation::Reachable { instances, live, .. } => Ok((instances.len(), live.len())),
                PinotObservation::Unreachable(why) => Err(why.clone()),
                PinotObservation::NotAsked => Err("not asked".to_string()),
            };
            external_status(cluster, pinot_url, answer, &observed.release, now)
        }
        _ => {
            let upgrade = plan.upgrade.as_ref().map(|u| &u.decision);
            let upgrade_progress = match upgrade {
                Some(
                    UpgradeDecision::Wait(why)
                    | UpgradeDecision::Held(why)
                    | UpgradeDecision::NotYet(why)
                    | UpgradeDecision::Queued(why),
                ) => Some(why.clone()),
                Some(UpgradeDecision::Act(actions)) if !actions.is_empty() => Some(format!(
                    "upgrade step: {}",
                    actions.iter().map(guardrails::describe).collect::<Vec<_>>().join(", ")
                )),
                _ => None,
            };
            let resize = plan.ensemble.as_ref().and_then(|s| s.progress.clone());
            let parts: Vec<String> =
                [plan.pools.install_wait.clone(), resize, upgrade_progress].into_iter().flatten().collect();
            let progress = (!parts.is_empty()).then(|| parts.join("; "));
            compute_status(&StatusInput {
                cluster,
                valid: valid.as_ref().ok(),
                observed,
                problem,
                now,
                pinot_url,
                progress: progress.filter(|_| plan.hold.is_none()),
                // Pods are off their pool's target revision and the policy is working on it (not
                // merely waiting for a slot).
                upgrading: plan.hold.is_none()
                    && off_target(observed)
                    && !matches!(upgrade, Some(UpgradeDecision::Queued(_))),
                scaling: plan.scaling.as_ref().and_then(|s| s.decision.progress()),
            })
        }
    };
    if plan.hold.is_none() || matches!(plan.hold, Some(Hold::Paused)) {
        status.policies = decisions(plan, &previous, now);
    }
    // Those still running as observed (`compute_status`), with those started now.
    status.rebalances = applied.rebalances(&status.rebalances);
    status.problems = problems;
    status.zookeeper = match valid {
        Ok(v) => ensemble_status(v, observed, plan),
        Err(_) => previous.zookeeper.clone(),
    };
    status.endpoints = match valid {
        Ok(v) if !v.external => endpoints(v, observed),
        Ok(_) => vec![],
        Err(_) => previous.endpoints,
    };
    // A pass that did not ask the tenant policy (held, or taking an upgrade step) keeps what the
    // last one reported.
    status.tenants = match (&plan.tenants, &plan.hold) {
        (Some(_), None) => tenant_placements(plan, applied),
        (None, None) if observed.tenants.is_empty() => vec![],
        _ => previous.tenants,
    };
    status
}

/// Every problem of the pass, most pressing first: what the user must act on.
fn problems(
    cluster: &PinotCluster,
    valid: &Result<ValidCluster, InvalidSpec>,
    observed: &ObservedCluster,
    plan: &Plan<'_>,
    applied: &Applied,
    now: Timestamp,
) -> Vec<ClusterProblem> {
    let problem = |reason: &str, subject: &str, message: String| ClusterProblem {
        reason: reason.into(),
        subject: subject.into(),
        message,
    };
    let mut out = Vec::new();
    if let Err(invalid) = valid {
        for e in &invalid.0 {
            out.push(problem("InvalidSpec", &e.field, format!("{e}. Nothing was changed.")));
        }
        return out;
    }
    // A lost zone first: it explains the pods not ready and the steps that wait.
    for zone in super::zones::impaired_zones(observed) {
        out.push(problem("ZoneImpaired", &format!("zone {}", zone.zone), zone.message()));
    }
    if let (Ok(valid), Some(known)) = (valid, &observed.node_zones)
        && !valid.external
    {
        for (field, zone) in super::zones::zones_without_nodes(cluster, known) {
            let message = format!(
                "{field}: no node is in zone {zone:?} (labelled topology.kubernetes.io/zone={zone}), so the pool's pods \
                 there stay Pending; fix the zone's name or add nodes to it"
            );
            out.push(problem("ZoneWithoutNodes", &field, message));
        }
    }
    if let (Ok(valid), Some(members)) = (valid, &observed.ensemble)
        && let Some(ensemble) = &valid.ensemble
        && members.chroot_exists == Some(false)
        && valid.pools.iter().any(|p| observed.statefulsets.contains_key(&p.name))
    {
        out.push(problem(
            "ZookeeperStateLost",
            "spec.zookeeper.managed.chroot",
            format!(
                "the znode {} is gone from the managed ensemble while Pinot's pools exist: Pinot's state (tables, schemas, segment assignments) is lost, or the members' volumes were replaced; the operator does not create it again over a running cluster; restore ZooKeeper's data from a backup",
                ensemble.chroot
            ),
        ));
    }
    for failure in &applied.children.failed {
        out.push(problem("ApplyFailed", &failure.subject(), failure.to_string()));
    }
    for (statefulset, why) in &applied.expansion_failures {
        out.push(problem("VolumeExpansionFailed", &format!("StatefulSet {statefulset}"), why.clone()));
    }
    for (field, message) in load_balancers_pending(observed, now) {
        out.push(problem("LoadBalancerPending", &field, message));
    }
    for failure in &applied.leaving_failures {
        let subject = match failure {
            StepError::Kubernetes { object, .. } => object.clone(),
            _ => "StatefulSet".into(),
        };
        out.push(problem("ApplyFailed", &subject, failure.to_string()));
    }
    if let Some(scaling) = &plan.scaling {
        if let Some(failure) = applied.scaling.as_ref().and_then(|s| s.failure.as_ref()) {
            out.push(problem("ScalingStepFailed", "policy scaling", failure.to_string()));
        }
        match &scaling.decision {
            ScalingDecision::Blocked { why, .. } => out.push(problem("ScalingBlocked", "policy scaling", why.clone())),
            ScalingDecision::Refused { reason, message } => {
                out.push(problem(reason, "policy scaling", message.clone()))
            }
            ScalingDecision::Act { .. } => {}
        }
    }
    if let Some(upgrade) = &plan.upgrade {
        if let Some(failure) = applied.upgrade.as_ref().and_then(|(_, f)| f.as_ref()) {
            out.push(problem("UpgradeStepFailed", "policy upgrade", failure.to_string()));
        }
        match &upgrade.decision {
            UpgradeDecision::Blocked(why) => {
                out.push(problem("UpgradeHalted", "policy upgrade", format!("{why}; no further pod is restarted")))
            }
            UpgradeDecision::Refused { reason, message } => {
                out.push(problem(reason, "policy upgrade", message.clone()))
            }
            _ => {}
        }
    }
    for blocked in &plan.pools.blocked {
        out.push(problem("ChangeRefused", &blocked.field, blocked.to_string()));
    }
    let access_problem = observed.controller.as_ref().and_then(|c| c.access_problem.clone());
    if let Some(why) = &access_problem {
        out.push(problem("ControllerAccess", "spec.controllerAccess", why.clone()));
    }
    // An external cluster is its controller: not answering is its problem.
    if let (Ok(valid), PinotObservation::Unreachable(why), None) = (valid, &observed.pinot, &access_problem)
        && valid.external
    {
        out.push(problem("ControllerUnreachable", "spec.external.controllerUrl", why.clone()));
    }
    for policy in plan.policies.iter().filter(|p| !p.ready) {
        let subject = format!("spec.policies.{}", policy.kind);
        out.push(problem("PolicyNotReady", &subject, policy.message.clone().unwrap_or_default()));
    }
    out
}

/// Client Services of type LoadBalancer without an address for longer than the grace since the
/// operator last changed them: the Kubernetes cluster may provide no load balancer.
fn load_balancers_pending(observed: &ObservedCluster, now: Timestamp) -> Vec<(String, String)> {
    let grace = observed.load_balancer_grace;
    observed
        .client_services
        .iter()
        .filter(|s| s.type_ == "LoadBalancer" && s.load_balancer.is_empty())
        .filter_map(|s| {
            let waited = now.duration_since(s.changed_at?).unsigned_abs();
            (waited > grace).then(|| {
                let field = format!("spec.exposure.{}.type", s.role);
                let message = format!(
                    "{field}: Service {} of type LoadBalancer has had no external address for {}s: this Kubernetes cluster may provide no load balancer (a cloud provider's controller, MetalLB); use type NodePort, or ClusterIP with an Ingress, or install one",
                    s.name,
                    waited.as_secs()
                );
                (field, message)
            })
        })
        .collect()
}

/// Where clients reach the cluster: each client Service (its DNS name for ClusterIP, the node
/// port, the load balancer's addresses) and the controller's Ingress URL.
fn endpoints(valid: &ValidCluster, observed: &ObservedCluster) -> Vec<pinot_crds::ClientEndpoint> {
    let mut out = Vec::new();
    use crate::role::Role;
    for role in [Role::Broker, Role::Controller] {
        let Some(exposure) = valid.exposure.service(role).filter(|_| valid.has_role(role)) else { continue };
        let name = crate::children::role_service_name(&valid.name, role);
        let port = role.main_port();
        let seen = observed.client_services.iter().find(|s| s.role == role);
        let addresses = match exposure.type_.as_str() {
            "ClusterIP" => vec![format!("{name}.{}.svc:{port}", valid.namespace)],
            other => {
                let mut a: Vec<String> = match (other, seen) {
                    ("LoadBalancer", Some(s)) => s.load_balancer.iter().map(|h| format!("{h}:{port}")).collect(),
                    _ => vec![],
                };
                if let Some(node_port) = seen.and_then(|s| s.node_port) {
                    a.push(format!("<any node>:{node_port}"));
                }
                a
            }
        };
        out.push(pinot_crds::ClientEndpoint {
            role: role.to_string(),
            object: format!("Service {name}"),
            type_: exposure.type_.clone(),
            addresses,
        });
    }
    if let Some(ingress) = &valid.exposure.controller_ingress {
        let scheme = if ingress.tls_secret.is_some() { "https" } else { "http" };
        out.push(pinot_crds::ClientEndpoint {
            role: Role::Controller.to_string(),
            object: format!("Ingress {}", crate::children::role_service_name(&valid.name, Role::Controller)),
            type_: "Ingress".into(),
            addresses: vec![format!("{scheme}://{}{}", ingress.host, ingress.path)],
        });
    }
    out
}

/// Where each PinotTenant is: the instances carrying its tags after this pass's tagging, and
/// why it is not placed when it is not.
fn tenant_placements(plan: &Plan<'_>, applied: &Applied) -> Vec<TenantPlacement> {
    let Some(tenants) = &plan.tenants else { return vec![] };
    let mut tags = tenants.tags.clone();
    let mut members = tenants.members.clone();
    let tagging_failure = applied.tenants.as_ref().and_then(|(_, f)| f.as_ref().map(ToString::to_string));
    if let (TenantDecision::Place(placement), Some((_, None))) = (&tenants.decision, &applied.tenants) {
        for (instance, new_tags) in &placement.tags {
            tags.insert(instance.clone(), new_tags.clone());
        }
        for (instance, pools) in placement.pools.iter().filter(|(i, _)| !applied.pools_held.contains(i)) {
            if let Some(member) = members.get_mut(instance) {
                member.pools.extend(pools.iter().cloned());
            }
        }
    }
    let problem: Option<(&str, String)> = match (&tenants.decision, tagging_failure) {
        (_, Some(failure)) => Some(("TaggingFailed", failure)),
        (TenantDecision::Waiting { reason, message }, None) => Some((reason, message.clone())),
        (TenantDecision::Blocked(why), None) => Some(("Blocked", why.clone())),
        (TenantDecision::Refused(why), None) => Some(("PlanRefused", why.clone())),
        (TenantDecision::Settled | TenantDecision::Place(_), None) => None,
    };
    tenants
        .requests
        .iter()
        .map(|(name, request)| {
            let (object, placed, message) = tenant_status(request, &tags);
            let (zones, pools_pending) = tenant_zones(request, &tags, &members);
            let (placed, message) = match pools_pending {
                0 => (placed, message),
                n => (false, format!("{message}; Pinot pools of {n} servers pending")),
            };
            let (reason, message) = match (&problem, placed) {
                (_, true) => ("Placed".to_string(), message),
                (Some((reason, why)), false) => (reason.to_string(), format!("{message}; {why}")),
                (None, false) => ("Placing".to_string(), message),
            };
            TenantPlacement {
                name: name.clone(),
                tenant: request.name.clone(),
                placed,
                reason,
                message,
                instances: object.instances,
                zones,
            }
        })
        .collect()
}

/// What is new in `status` against what the cluster had, to be said as events: each problem
/// once per spec generation (a step failure is said by `apply` when it happens), a pause, a
/// Pinot release the operator does not know, the spec's warnings, a tenant that cannot be
/// placed.
pub fn announcements(
    cluster: &PinotCluster,
    valid: &Result<ValidCluster, InvalidSpec>,
    status: &PinotClusterStatus,
) -> Vec<(EventType, String, &'static str, String)> {
    let previous = cluster.status.clone().unwrap_or_default();
    let same_generation = previous.observed_generation == status.observed_generation;
    let mut out = Vec::new();
    for p in &status.problems {
        let said_by_apply = matches!(p.reason.as_str(), "ApplyFailed" | "ScalingStepFailed" | "UpgradeStepFailed");
        let said = same_generation && previous.problems.iter().any(|o| o.reason == p.reason && o.subject == p.subject);
        if said_by_apply || said {
            continue;
        }
        let action = match p.reason.as_str() {
            "InvalidSpec" => "Validate",
            "UpgradeHalted" => "Upgrade",
            "ScalingBlocked" => "Scale",
            "ControllerAccess" | "ZoneImpaired" => "Observe",
            _ => "Plan",
        };
        out.push((EventType::Warning, p.reason.clone(), action, p.message.clone()));
    }
    let paused =
        |s: &PinotClusterStatus| s.conditions.iter().any(|c| c.type_ == RECONCILIATION_PAUSED && c.status == "True");
    if paused(status) && !paused(&previous) {
        let note = "spec.paused is true: no object of this cluster is changed until it is false".to_string();
        out.push((EventType::Normal, "Paused".into(), "Pause", note));
    }
    let release_message = |s: &PinotClusterStatus| s.pinot.as_ref().and_then(|p| p.release_message.clone());
    if let Some(unknown) = release_message(status)
        && release_message(&previous).as_ref() != Some(&unknown)
    {
        out.push((EventType::Warning, "UnknownPinotRelease".into(), "Observe", unknown));
    }
    if let Ok(valid) = valid
        && !same_generation
    {
        for warning in &valid.warnings {
            out.push((EventType::Warning, "SpecWarning".into(), "Validate", warning.to_string()));
        }
    }
    for t in status.tenants.iter().filter(|t| !t.placed && !matches!(t.reason.as_str(), "Placing" | "WaitingForPinot"))
    {
        let said =
            same_generation && previous.tenants.iter().any(|o| o.name == t.name && o.reason == t.reason && !o.placed);
        if !said {
            out.push((
                EventType::Warning,
                "TenantNotPlaced".into(),
                "PlaceTenants",
                format!("PinotTenant {}: {}", t.name, t.message),
            ));
        }
    }
    out
}

pub use pinot_crds::condition::{AVAILABLE, DEGRADED, PROGRESSING, RECONCILIATION_PAUSED, SCALING, UPGRADING};

/// Why the cluster is not as the spec says, if it is not.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// CamelCase reason, e.g. `InvalidSpec`, `ApplyFailed`.
    pub reason: String,
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
    /// The base URL of the cluster's Pinot controller.
    pub pinot_url: &'a str,
    /// What the upgrade policy is doing or waiting for, said first in `Progressing`.
    pub progress: Option<String>,
    /// Pods are being moved to a new revision (`Progressing` reason `Upgrading`).
    pub upgrading: bool,
    /// What the scaling policy is doing or waiting for while a pool scales (`Progressing`
    /// reason `Scaling`).
    pub scaling: Option<String>,
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
        .map(|v| {
            v.pools
                .iter()
                .filter(|p| !input.observed.statefulsets.contains_key(&p.name))
                .map(|p| p.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let stale = input.observed.stale_pools();
    let paused = cluster.spec.paused;

    let all_ready = missing.is_empty() && not_ready.is_empty() && !pools.is_empty();
    let available = if all_ready {
        condition(AVAILABLE, true, "AllPodsReady", format!("all {desired} pods are ready"))
    } else if missing.is_empty() {
        condition(AVAILABLE, false, "PodsNotReady", format!("waiting for pods: {}", not_ready.join(", ")))
    } else {
        condition(AVAILABLE, false, "PoolsMissing", format!("pools not created yet: {}", missing.join(", ")))
    };

    // What the upgrade policy still does or waits for (a server to serve again, its queries to
    // come back) keeps the rollout going after the last pod is ready on its revision.
    let rolling = !missing.is_empty()
        || !not_ready.is_empty()
        || !not_updated.is_empty()
        || !stale.is_empty()
        || input.scaling.is_some()
        || input.progress.is_some();
    let progressing = if paused {
        condition(PROGRESSING, false, "Paused", "reconciliation is paused; no change is being rolled out".into())
    } else if input.valid.is_none() {
        condition(
            PROGRESSING,
            false,
            "InvalidSpec",
            "the spec is invalid; nothing is rolled out until it is fixed".into(),
        )
    } else if rolling {
        let mut parts: Vec<String> = input.progress.iter().chain(&input.scaling).cloned().collect();
        if !missing.is_empty() {
            parts.push(format!("creating pools {}", missing.join(", ")));
        }
        parts.extend(not_ready.iter().cloned());
        parts.extend(not_updated.iter().cloned());
        if parts.is_empty() {
            parts.push(stale_message(&stale));
        }
        let reason = if input.upgrading {
            UPGRADING
        } else if input.scaling.is_some() {
            SCALING
        } else {
            "RollingOut"
        };
        condition(PROGRESSING, true, reason, parts.join("; "))
    } else {
        condition(PROGRESSING, false, "Complete", "every pool runs its current revision and is ready".into())
    };

    let degraded = match &input.problem {
        Some(p) => condition(DEGRADED, true, &p.reason, p.message.clone()),
        None => condition(DEGRADED, false, "AsExpected", "no problem found".into()),
    };
    let paused_condition = if paused {
        condition(
            RECONCILIATION_PAUSED,
            true,
            "Paused",
            "spec.paused is true: the operator writes nothing to this cluster's objects; set it to false to resume"
                .into(),
        )
    } else {
        condition(RECONCILIATION_PAUSED, false, "Reconciling", "the operator reconciles this cluster".into())
    };

    let conditions = stamped(&previous, generation, input.now, [available, progressing, degraded, paused_condition]);

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
        pinot: pinot_status(input),
        // Kept as last reported; `status` sets it from the plan.
        policies: previous.policies.clone(),
        // Those still running when Pinot answered; the reconcile adds those it starts.
        rebalances: match &input.observed.pinot {
            PinotObservation::Reachable { rebalances, .. } => rebalances.clone(),
            _ => previous.rebalances.clone(),
        },
        problems: vec![],
        tenants: vec![],
        endpoints: vec![],
        zookeeper: None,
    }
}

/// The managed ensemble: its members as they answered, its size, what it can lose.
fn ensemble_status(valid: &ValidCluster, observed: &ObservedCluster, plan: &Plan<'_>) -> Option<EnsembleStatus> {
    let ensemble = valid.ensemble.as_ref()?;
    let members = observed.ensemble.clone().unwrap_or_default();
    // The configuration the members run: the StatefulSet's, else what this pass creates.
    let configured = observed
        .statefulsets
        .get(ENSEMBLE_POOL)
        .and_then(super::ensemble::statefulset_servers)
        .or(plan.ensemble.as_ref().map(|s| s.shape.servers))
        .unwrap_or(ensemble.replicas);
    let tolerates = (configured - 1) / 2;
    let message = match plan.ensemble.as_ref().and_then(|s| s.progress.clone()) {
        Some(progress) => progress,
        None if configured == 1 => {
            "1 member: no fault tolerance; Pinot stops writing whenever it restarts (spec.zookeeper.managed.replicas: 3 for production)".to_string()
        }
        None => format!("{configured} members: a quorum survives {tolerates} down"),
    };
    Some(EnsembleStatus {
        connect_string: ensemble.connect_string(&valid.name),
        replicas: ensemble.replicas,
        configured,
        leader: members.leader().map(str::to_string),
        members: members
            .members
            .iter()
            .map(|(pod, m)| EnsembleMemberStatus {
                pod: pod.clone(),
                mode: super::ensemble::mode_name(m.mode).into(),
                synced: m.synced,
            })
            .collect(),
        chroot_exists: members.chroot_exists,
        message: Some(message),
    })
}

/// The policies of the plan with what became of each one's decision this pass; a kind not asked
/// this pass keeps its last decision, and `decidedAt` moves only when the decision changes.
fn decisions(plan: &Plan<'_>, previous: &PinotClusterStatus, now: Timestamp) -> Vec<pinot_crds::ClusterPolicyStatus> {
    plan.policies
        .iter()
        .cloned()
        .map(|mut p| {
            let outcome = match p.kind.as_str() {
                "upgrade" => plan.upgrade.as_ref().map(|u| u.decision.outcome()),
                "scaling" => plan.scaling.as_ref().map(|s| s.decision.outcome()),
                "tenant" => plan.tenants.as_ref().map(|t| t.decision.outcome()),
                _ => None,
            };
            // The same policy's: a cluster that switched policies starts its record afresh.
            let before = previous.policies.iter().find(|old| old.kind == p.kind && old.source == p.source);
            let outcome = outcome.or_else(|| before.and_then(|b| b.last_decision.clone()));
            p.decided_at = match before {
                Some(b) if b.last_decision == outcome => b.decided_at.clone(),
                _ => outcome.as_ref().map(|_| now.to_string()),
            };
            p.last_decision = outcome;
            p
        })
        .collect()
}

/// The conditions with the generation they describe and, per condition, the time its status
/// last changed.
fn stamped(
    previous: &PinotClusterStatus,
    generation: Option<i64>,
    now: Timestamp,
    conditions: impl IntoIterator<Item = ClusterCondition>,
) -> Vec<ClusterCondition> {
    conditions
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = previous
                .conditions
                .iter()
                .find(|old| old.type_ == c.type_ && old.status == c.status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            c
        })
        .collect()
}

/// The status of an external cluster: available when its controller answers. `answer` is
/// what the controller said (instances, live instances) or why it could not be asked.
pub fn external_status(
    cluster: &PinotCluster,
    url: &str,
    answer: Result<(usize, usize), String>,
    release: &crate::pinot::ClusterRelease,
    now: Timestamp,
) -> PinotClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let (available, degraded, pinot) = match &answer {
        Ok((instances, live)) => (
            condition(
                AVAILABLE,
                true,
                "ControllerAnswers",
                format!("external Pinot controller at {url} answers: {live}/{instances} instances live"),
            ),
            condition(DEGRADED, false, "AsExpected", "no problem found".into()),
            with_release(
                PinotControllerStatus {
                    url: url.to_string(),
                    reachable: true,
                    message: None,
                    instances: *instances as i32,
                    live_instances: *live as i32,
                    ..Default::default()
                },
                release,
            ),
        ),
        Err(message) => (
            condition(
                AVAILABLE,
                false,
                "ControllerUnreachable",
                format!("external Pinot controller at {url}: {message}"),
            ),
            condition(DEGRADED, true, "ControllerUnreachable", message.clone()),
            PinotControllerStatus {
                url: url.to_string(),
                reachable: false,
                message: Some(message.clone()),
                ..Default::default()
            },
        ),
    };
    let progressing =
        condition(PROGRESSING, false, "External", "an external cluster: the operator deploys nothing for it".into());
    let conditions = stamped(&previous, cluster.metadata.generation, now, [available, progressing, degraded]);
    PinotClusterStatus {
        observed_generation: cluster.metadata.generation,
        message: answer.err(),
        conditions,
        pinot: Some(pinot),
        ..Default::default()
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

fn pinot_status(input: &StatusInput<'_>) -> Option<PinotControllerStatus> {
    let url = input.pinot_url.to_string();
    let release = &input.observed.release;
    match &input.observed.pinot {
        PinotObservation::NotAsked => None,
        PinotObservation::Unreachable(message) => Some(with_release(
            PinotControllerStatus {
                url,
                reachable: false,
                message: Some(message.clone()),
                instances: 0,
                live_instances: 0,
                ..Default::default()
            },
            release,
        )),
        PinotObservation::Reachable { instances, live, .. } => Some(with_release(
            PinotControllerStatus {
                url,
                reachable: true,
                message: None,
                instances: instances.len() as i32,
                live_instances: live.len() as i32,
                ..Default::default()
            },
            release,
        )),
    }
}

/// The controller's status with the release the operator acts for, what the controller
/// reported (only a controller that answered reports one) and why the release is the oldest,
/// when it is for want of knowing.
fn with_release(status: PinotControllerStatus, release: &crate::pinot::ClusterRelease) -> PinotControllerStatus {
    PinotControllerStatus {
        release: Some(release.effective.to_string()),
        version: release.reported.clone(),
        release_message: release.unknown.clone(),
        ..status
    }
}

/// How many pods of a pool run a live Pinot instance, when the controller answered.
fn live_instances_of(input: &StatusInput<'_>, pods: &[k8s_openapi::api::core::v1::Pod]) -> Option<i32> {
    let PinotObservation::Reachable { live, .. } = &input.observed.pinot else { return None };
    let ids = &input.observed.pod_instances;
    Some(pods.iter().filter(|p| ids.get(&p.name_any()).is_some_and(|id| live.contains(id))).count() as i32)
}

/// Whether some ready pod's Pinot instance is not (yet) live: the controller's view lags the
/// pods', and nothing else would trigger another look.
pub fn pinot_lags(status: &PinotClusterStatus) -> bool {
    status.pools.iter().any(|p| p.live_instances.is_some_and(|live| live < p.ready_replicas))
        || status.pinot.as_ref().is_some_and(|p| !p.reachable)
}

/// Per-pool state, for every pool of the spec and every pool that still has a StatefulSet.
fn pool_statuses(input: &StatusInput<'_>) -> Vec<PoolStatus> {
    let mut names: Vec<(String, String)> = Vec::new();
    let ensemble = input.valid.and_then(|v| v.ensemble.as_ref());
    if let Some(valid) = input.valid {
        if ensemble.is_some() {
            names.push((ENSEMBLE_POOL.to_string(), ZOOKEEPER_ROLE_LABEL.to_string()));
        }
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
            let replicas = match (input.valid.and_then(|v| v.pool(&name)), ensemble) {
                (Some(p), _) => p.replicas,
                (None, Some(e)) if name == ENSEMBLE_POOL => e.replicas,
                // A pool leaving the spec is on its way to zero.
                (None, _) => 0,
            };
            let current_replicas = sts.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas);
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
            // ZooKeeper members are no Pinot instances.
            let live_instances = live_instances_of(input, pods).filter(|_| name != ENSEMBLE_POOL);
            PoolStatus {
                name,
                role,
                replicas,
                current_replicas,
                ready_replicas: ready,
                updated_replicas: updated,
                update_revision,
                current_revision,
                live_instances,
            }
        })
        .collect()
}

/// Writes the pass's status (unless it is what the cluster has), then publishes what is new in
/// it (`announcements`): only once the status that records them is written, so that each is
/// said once.
pub async fn report(
    client: &Client,
    events: &crate::events::EventPublisher,
    cluster: &PinotCluster,
    valid: &Result<ValidCluster, InvalidSpec>,
    status: &PinotClusterStatus,
) -> Result<(), kube::Error> {
    write_status(client, cluster, status).await?;
    let regarding = kube::Resource::object_ref(cluster, &());
    for (type_, reason, action, note) in announcements(cluster, valid, status) {
        let event =
            kube::runtime::events::Event { type_, reason, note: Some(note), action: action.into(), secondary: None };
        if let Err(e) = events.publish(&regarding, &event).await {
            tracing::warn!(error = %e, reason = %event.reason, "publishing event failed");
        }
    }
    Ok(())
}

/// Writes `status` with server-side apply unless it is what the object already has.
pub async fn write_status(
    client: &Client,
    cluster: &PinotCluster,
    status: &PinotClusterStatus,
) -> Result<(), kube::Error> {
    if cluster.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let mut status = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    no_empty_strings(&mut status);
    let patch = json!({
        "apiVersion": "pinot.controlplane.dev/v1alpha1",
        "kind": "PinotCluster",
        "status": status,
    });
    api.patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Gives every empty string of a status a text: a 1.20 apiserver's server-side apply turns an
/// empty string into null and then refuses the whole status for a field of type string (found
/// with a rebalance Pinot had nothing to do for, which has no job id). Fields that may be empty
/// are left out instead where the type allows it; this is the net under the others.
fn no_empty_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.is_empty() => *s = "(none)".into(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(no_empty_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(no_empty_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};

    use super::*;
    use crate::cluster::{fixtures, validate::validate};

    fn sts(pool: &str, replicas: i32, revision: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("analytics-{pool}"), "generation": 2, "labels": {"pinot.controlplane.dev/pool": pool}},
            "spec": {"replicas": replicas, "selector": {}, "serviceName": "x", "template": {}},
            "status": {"replicas": replicas, "observedGeneration": 2, "updateRevision": revision},
        }))
        .unwrap()
    }

    fn pod(pool: &str, ordinal: i32, revision: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("analytics-{pool}-{ordinal}"), "labels": {"pinot.controlplane.dev/pool": pool, "controller-revision-hash": revision}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    /// Observes every pool of the example with all pods ready on `revision`, except as changed.
    fn observed_example(revision: &str) -> ObservedCluster {
        let cluster = validate(&fixtures::example()).unwrap();
        let mut observed = ObservedCluster::default();
        for p in &cluster.pools {
            observed.statefulsets.insert(p.name.clone(), sts(&p.name, p.replicas, revision));
            observed.pods.insert(p.name.clone(), (0..p.replicas).map(|i| pod(&p.name, i, revision, true)).collect());
        }
        observed
    }

    fn status_of(cluster: &PinotCluster, observed: &ObservedCluster, problem: Option<Problem>) -> PinotClusterStatus {
        let valid = validate(cluster).ok();
        compute_status(&StatusInput {
            cluster,
            valid: valid.as_ref(),
            observed,
            problem,
            now: Timestamp::UNIX_EPOCH,
            pinot_url: "http://x",
            progress: None,
            upgrading: false,
            scaling: None,
        })
    }

    fn get<'a>(s: &'a PinotClusterStatus, t: &str) -> &'a ClusterCondition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_pods_ready_is_available_and_not_progressing() {
        let mut cluster = fixtures::example();
        cluster.metadata.generation = Some(3);
        let s = status_of(&cluster, &observed_example("r1"), None);
        assert_eq!(get(&s, AVAILABLE).status, "True");
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(get(&s, RECONCILIATION_PAUSED).status, "False");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.ready_pods.as_deref(), Some("8/8"));
        assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn what_the_upgrade_policy_still_waits_for_keeps_the_rollout_progressing_once_every_pod_is_ready() {
        let cluster = fixtures::example();
        let observed = observed_example("r1");
        let valid = validate(&cluster).ok();
        let held = "restart-pod analytics-server-offline-0 waits: server Server_x holds replicas of its segments";
        let s = compute_status(&StatusInput {
            cluster: &cluster,
            valid: valid.as_ref(),
            observed: &observed,
            problem: None,
            now: Timestamp::UNIX_EPOCH,
            pinot_url: "http://x",
            progress: Some(held.into()),
            upgrading: false,
            scaling: None,
        });
        assert_eq!(get(&s, AVAILABLE).status, "True");
        assert_eq!(get(&s, PROGRESSING).status, "True");
        assert!(get(&s, PROGRESSING).message.contains(held), "{}", get(&s, PROGRESSING).message);
    }

    #[test]
    fn a_pod_not_ready_is_named_and_a_missing_pool_is_progressing() {
        let cluster = fixtures::example();
        let mut observed = observed_example("r1");
        observed.pods.get_mut("server-offline").unwrap()[1] = pod("server-offline", 1, "r1", false);
        observed.statefulsets.remove("minion");
        observed.pods.remove("minion");
        let s = status_of(&cluster, &observed, None);
        assert_eq!(get(&s, AVAILABLE).status, "False");
        assert!(get(&s, AVAILABLE).message.contains("minion"), "{}", get(&s, AVAILABLE).message);
        let progressing = get(&s, PROGRESSING);
        assert_eq!(progressing.status, "True");
        assert!(progressing.message.contains("creating pools minion"), "{}", progressing.message);
        assert!(progressing.message.contains("server-offline 1/2 ready"), "{}", progressing.message);
        assert_eq!(s.ready_pods.as_deref(), Some("6/8"));
    }

    #[test]
    fn pods_on_an_old_revision_are_counted_per_pool() {
        let cluster = fixtures::example();
        let mut observed = observed_example("r1");
        observed.statefulsets.insert("server-offline".into(), sts("server-offline", 2, "r2"));
        observed.pods.get_mut("server-offline").unwrap()[1] = pod("server-offline", 1, "r2", true);
        let s = status_of(&cluster, &observed, None);
        let pool = s.pools.iter().find(|p| p.name == "server-offline").unwrap();
        assert_eq!((pool.ready_replicas, pool.updated_replicas), (2, 1));
        assert_eq!(pool.update_revision.as_deref(), Some("r2"));
        assert_eq!(pool.current_revision.as_deref(), Some("r1"));
        assert_eq!(get(&s, AVAILABLE).status, "True", "every pod is still ready");
        assert!(get(&s, PROGRESSING).message.contains("server-offline 1/2 updated"));
    }

    #[test]
    fn problems_are_degraded_and_paused_says_so() {
        let mut cluster = fixtures::example();
        let problem = Problem { reason: "ApplyFailed".into(), message: "applying StatefulSet x: forbidden".into() };
        let s = status_of(&cluster, &observed_example("r1"), Some(problem));
        assert_eq!(get(&s, DEGRADED).status, "True");
        assert_eq!(get(&s, DEGRADED).reason, "ApplyFailed");
        assert_eq!(s.message.as_deref(), Some("applying StatefulSet x: forbidden"));

        cluster.spec.paused = true;
        let s = status_of(&cluster, &observed_example("r1"), None);
        assert_eq!(get(&s, RECONCILIATION_PAUSED).status, "True");
        assert_eq!(get(&s, PROGRESSING).status, "False");
        assert!(s.message.unwrap().contains("spec.paused"));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut cluster = fixtures::example();
        let first = status_of(&cluster, &observed_example("r1"), None);
        cluster.status = Some(first.clone());
        let valid = validate(&cluster).unwrap();
        let later = Timestamp::from_second(1_000_000).unwrap();
        let at_later = |observed: &ObservedCluster| {
            compute_status(&StatusInput {
                cluster: &cluster,
                valid: Some(&valid),
                observed,
                problem: None,
                now: later,
                pinot_url: "http://x",
                progress: None,
                upgrading: false,
                scaling: None,
            })
        };
        assert_eq!(at_later(&observed_example("r1")), first, "nothing changed, so nothing is rewritten");
        let mut observed = observed_example("r1");
        observed.pods.get_mut("minion").unwrap()[0] = pod("minion", 0, "r1", false);
        let changed = at_later(&observed);
        assert_eq!(get(&changed, AVAILABLE).last_transition_time, later.to_string());
        assert_eq!(get(&changed, DEGRADED).last_transition_time, get(&first, DEGRADED).last_transition_time);
    }

    #[test]
    fn a_status_has_no_empty_string_for_server_side_apply_to_null() {
        let status = PinotClusterStatus {
            rebalances: vec![pinot_crds::RebalanceJob {
                table: "t_OFFLINE".into(),
                job_id: String::new(),
                status: "DONE".into(),
                servers: "abc".into(),
            }],
            problems: vec![ClusterProblem { reason: "R".into(), subject: String::new(), message: "m".into() }],
            ..Default::default()
        };
        let mut value = serde_json::to_value(&status).unwrap();
        assert!(value["rebalances"][0].get("jobId").is_none(), "no job: no job id");
        no_empty_strings(&mut value);
        assert_eq!(value["problems"][0]["subject"], "(none)");
    }
}
