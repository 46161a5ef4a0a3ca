//! Step 3 of the pipeline: decides everything this pass changes, and changes nothing. Every
//! pool of the spec is applied as it is (its StatefulSets use `OnDelete`, so a new pod template
//! restarts nothing by itself), except a pool whose change Kubernetes cannot make; the scaling
//! policy decides each pool's replicas and the Pinot steps of a scale-in, the upgrade policy
//! which pod restarts next, the tenant policy which instances carry which tenant's tags. Each
//! policy's actions are checked against the host's guardrails here; what passes becomes the
//! [`Plan`], which `apply` carries out.

mod ensemble;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::children::pod_ordinal;
use pinot_crds::{ClusterPolicyStatus, PinotCluster, RebalanceJob};

use super::{
    super::policy::{Action, ActivePolicy, ClusterState, PolicyKind, PolicyRegistry, guardrails},
    observe::{ObservedCluster, PinotObservation, pod_is_ready, stale_message},
    scaling::{self, ScalingDecision},
    state,
    tenants::{self, TenantDecision},
    validate::{ChosenPolicies, FieldError, InvalidSpec, ValidCluster, ValidPool, zookeeper::ENSEMBLE_POOL},
    volumes::{self, StorageChange, VolumeExpansion},
};

/// What the plan step asks the policies with.
pub struct Policies {
    pub registry: Arc<PolicyRegistry>,
    /// Policy decisions running at once: each takes a blocking thread and a pooled instance.
    pub decisions: tokio::sync::Semaphore,
    /// How many clusters may upgrade at once (0: no limit).
    pub max_concurrent_upgrades: usize,
}

impl Policies {
    pub fn new(registry: Arc<PolicyRegistry>, max_concurrent_upgrades: usize) -> Self {
        Self {
            registry,
            decisions: tokio::sync::Semaphore::new(crate::policy::runtime::PARALLEL_DECISIONS),
            max_concurrent_upgrades,
        }
    }

    /// Runs a policy decision on a blocking thread (a policy may run up to its deadline), at
    /// most `PARALLEL_DECISIONS` at a time (a burst of reconciles would otherwise take a
    /// thread each and exhaust the instance pool).
    async fn decide<T: Send + 'static>(&self, decide: impl FnOnce() -> T + Send + 'static) -> Result<T, DecisionLost> {
        let _permit = self.decisions.acquire().await.map_err(|_| DecisionLost::ShuttingDown)?;
        tokio::task::spawn_blocking(decide).await.map_err(|e| DecisionLost::Panicked(e.to_string()))
    }
}

/// Why a policy's decision has no result (a module's own failure is a decision of its own:
/// `Refused`).
#[derive(Debug, thiserror::Error)]
pub enum DecisionLost {
    #[error("the decision panicked: {0}")]
    Panicked(String),
    #[error("the operator is shutting down")]
    ShuttingDown,
}

/// Everything one pass changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<'a> {
    /// Why nothing at all is changed this pass (paused, invalid spec); only the status is
    /// written.
    pub hold: Option<Hold>,
    /// The pools applied, which are held back and why, what a first install waits for.
    pub pools: PoolPlan<'a>,
    /// The replicas of each pool applied (the scaling policy's, else what the pool has).
    pub replicas: BTreeMap<String, i32>,
    /// The managed ZooKeeper ensemble's size in this pass; `None` when its objects are not
    /// applied (none managed, or its turn to install has not come).
    pub ensemble: Option<ensemble::Sizing>,
    /// Create Pinot's chroot in the managed ensemble (it serves, and the chroot is missing).
    pub create_chroot: Option<String>,
    /// Pools gone from the spec whose StatefulSets still exist.
    pub leaving: Vec<LeavingPool>,
    /// Pools whose objects stay: those of the spec, and leaving pools not emptied yet.
    pub keep: BTreeSet<String>,
    pub scaling: Option<ScalingPlan>,
    pub upgrade: Option<UpgradePlan>,
    pub tenants: Option<TenantPlan>,
    /// The policy of each kind the cluster decides with, as its status reports it.
    pub policies: Vec<ClusterPolicyStatus>,
    /// The restart stamp each pool's pod template carries (`kubectl pinot restart`): the one
    /// asked for, else the one its StatefulSet already has, so that removing the annotation
    /// does not restart the pool again.
    pub restarts: BTreeMap<String, String>,
    /// The admin whose basic-auth token Pinot's roles send (`spec.security.basicAuth`): the
    /// apply step keeps the Secret holding it up to date before the pods that read it.
    pub service_token: Option<super::validate::security::ValidPrincipal>,
}

/// Why a pass changes nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// `spec.paused`.
    Paused,
    /// The spec is invalid: every problem, with its field.
    InvalidSpec(InvalidSpec),
}

/// A pool that left the spec: scaled to zero like any scale-in, then its objects go.
#[derive(Clone, Debug, PartialEq)]
pub struct LeavingPool {
    pub name: String,
    pub statefulset: String,
    /// The replicas the scaling policy gives it now, when they change.
    pub replicas: Option<u32>,
}

/// The scaling policy's decision and what it is carried out with.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingPlan {
    /// Which module decided (`policy_label`).
    pub policy: String,
    pub decision: ScalingDecision,
    /// The actions carried out in Pinot and in replicas, in order (only for pools this pass
    /// applies or that leave the spec).
    pub actions: Vec<Action>,
    /// The state the policy decided from (the Pinot steps track tags through it).
    pub state: ClusterState,
    /// The latest rebalance per table, as observed (a table is not rebalanced twice onto the
    /// same servers).
    pub rebalances: Vec<RebalanceJob>,
    /// Tables whose replicas are to be laid out one per zone (`zones::misplaced_tables`),
    /// rebalanced after the policy's steps.
    pub by_zone: Vec<super::zones::Misplaced>,
}

/// The upgrade policy's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct UpgradePlan {
    pub policy: String,
    pub decision: UpgradeDecision,
    /// The state the policy decided from.
    pub state: ClusterState,
}

impl UpgradePlan {
    /// The steps to carry out now, if any.
    pub fn steps(&self) -> &[Action] {
        match &self.decision {
            UpgradeDecision::Act(actions) => actions,
            _ => &[],
        }
    }
}

/// The tenant policy's decision for the cluster's PinotTenants.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantPlan {
    /// Each PinotTenant with a valid spec (by resource name) and what it asks of Pinot.
    pub requests: Vec<(String, tenants::Tenant)>,
    pub decision: TenantDecision,
    /// The tags each instance carries, as observed.
    pub tags: BTreeMap<String, Vec<String>>,
    /// Where each instance of a pod runs and its Pinot pools, as observed.
    pub members: BTreeMap<String, tenants::Member>,
    /// The state the policy decided from, when it was asked.
    pub state: Option<ClusterState>,
}

/// Step 3: what this pass changes, from the validated spec and what was observed.
pub async fn plan<'a>(
    policies: &Policies,
    cluster: &PinotCluster,
    valid: &'a Result<ValidCluster, InvalidSpec>,
    observed: &ObservedCluster,
    now: Timestamp,
) -> Plan<'a> {
    let mut plan = Plan {
        hold: None,
        pools: PoolPlan { pools: vec![], blocked: vec![], expansions: vec![], install_wait: None, ensemble: false },
        replicas: BTreeMap::new(),
        ensemble: None,
        create_chroot: None,
        leaving: vec![],
        keep: BTreeSet::new(),
        scaling: None,
        upgrade: None,
        tenants: None,
        policies: vec![],
        restarts: BTreeMap::new(),
        service_token: None,
    };
    let valid = match valid {
        Ok(valid) => valid,
        Err(invalid) => {
            plan.hold = Some(Hold::InvalidSpec(invalid.clone()));
            return plan;
        }
    };
    plan.policies = resolve_policies(&policies.registry, &valid.namespace, &valid.policies);
    plan.restarts = restart_stamps(valid, observed);
    if valid.paused {
        plan.hold = Some(Hold::Paused);
        return plan;
    }
    if valid.external {
        plan.tenants = plan_tenants(policies, cluster, valid, observed, now).await;
        return plan;
    }
    if valid.ensemble.is_none()
        && let Some(sts) = observed.statefulsets.get(ENSEMBLE_POOL)
    {
        // Pinot's whole state is in it: never dropped because a field went missing.
        plan.hold = Some(Hold::InvalidSpec(InvalidSpec(vec![FieldError {
            field: "spec.zookeeper.managed".into(),
            message: format!(
                "is gone, but the ensemble it created (StatefulSet {}) holds this Pinot cluster's state, which Pinot would no longer find; put spec.zookeeper.managed back (to move to another ensemble, copy the data first, then delete the StatefulSet yourself)",
                sts.name_any()
            ),
        }])));
        return plan;
    }
    if let Some(ensemble) = &valid.ensemble {
        let pinot: Vec<_> = valid.pools.iter().filter_map(|p| observed.statefulsets.get(&p.name)).collect();
        if let Some(switched) = super::ensemble::switched_away(ensemble, &pinot) {
            plan.hold = Some(Hold::InvalidSpec(InvalidSpec(vec![switched])));
            return plan;
        }
    }
    plan.pools = plan_pools(valid, observed);
    if let Some(ensemble) = &valid.ensemble {
        plan.keep.insert(ENSEMBLE_POOL.to_string());
        let members = observed.ensemble.clone().unwrap_or_default();
        let refused =
            observed.statefulsets.get(ENSEMBLE_POOL).and_then(|sts| super::ensemble::refused_change(ensemble, sts));
        match refused {
            // The ensemble stays as it runs (its objects are not applied), and the field is named.
            Some(refused) => plan.pools.blocked.push(refused),
            None if plan.pools.ensemble => plan.ensemble = Some(ensemble::sizing(ensemble, observed, &members)),
            None => {}
        }
        // Only for a first install: over running Pinot pools a missing chroot means their
        // state is gone, which an empty znode would hide (`status`: ZookeeperStateLost).
        let pinot_exists = valid.pools.iter().any(|p| observed.statefulsets.contains_key(&p.name));
        if members.leader().is_some() && members.chroot_exists == Some(false) && !pinot_exists {
            plan.create_chroot = Some(ensemble.chroot.clone());
        }
    }
    plan.service_token = valid.basic_auth.as_ref().map(|a| a.admin.clone());

    // Replicas are set only for pools this pass applies (or that leave the spec); a pool that
    // waits for its turn at install gets them when it is created.
    let leaving = state::leaving_pools(valid, observed);
    let scalable: Vec<&str> =
        plan.pools.pools.iter().map(|p| p.name.as_str()).chain(leaving.iter().map(|(p, _)| *p)).collect();
    plan.scaling = plan_scaling(policies, cluster, valid, observed, &scalable, now).await;
    let decided: BTreeMap<&str, u32> = plan
        .scaling
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::SetReplicas(s) => Some((s.pool.as_str(), s.replicas)),
            _ => None,
        })
        .collect();
    let current_replicas = |pool: &str| {
        observed.statefulsets.get(pool).and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).map(|r| r.max(0) as u32)
    };
    // Pods whose StatefulSet is gone (replaced for a volume expansion, and the operator stopped
    // before it was created again): the new one adopts them, and must not start below the
    // highest of them, or it would delete pods no policy drained.
    let orphaned = |pool: &str| -> u32 {
        if observed.statefulsets.contains_key(pool) {
            return 0;
        }
        observed
            .pods
            .get(pool)
            .into_iter()
            .flatten()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (pod_ordinal(p) + 1).max(0) as u32)
            .max()
            .unwrap_or(0)
    };
    // Without a decision a pool keeps the pods it has (a new pool starts with none).
    plan.replicas = plan
        .pools
        .pools
        .iter()
        .map(|p| {
            let r = decided.get(p.name.as_str()).copied().or_else(|| current_replicas(&p.name)).unwrap_or(0);
            (p.name.clone(), r.max(orphaned(&p.name)) as i32)
        })
        .collect();
    plan.keep.extend(valid.pools.iter().map(|p| p.name.clone()));
    for &(pool, _) in &leaving {
        plan.leaving.push(LeavingPool {
            name: pool.to_string(),
            statefulset: crate::children::statefulset_name(&valid.name, pool),
            replicas: decided.get(pool).copied().filter(|r| Some(*r) != current_replicas(pool)),
        });
        // Its objects go once it has no pod left and Pinot has forgotten its instances.
        let departed = match &observed.pinot {
            PinotObservation::Reachable { departed, .. } => departed.get(pool).is_some_and(|d| !d.is_empty()),
            _ => true,
        };
        let emptied = current_replicas(pool) == Some(0) && observed.pods.get(pool).is_none_or(Vec::is_empty);
        if !emptied || departed {
            plan.keep.insert(pool.to_string());
        }
    }

    plan.upgrade = plan_upgrade(policies, cluster, valid, observed, now).await;
    // The leader move of a shrink is a restart like the policy's: never in a pass that restarts
    // a member or a pod already, nor while a zone is impaired or on a node that is not Ready.
    if let Some(sizing) = plan.ensemble.as_mut()
        && let Some(pod) = sizing.move_leader.clone()
    {
        let restarting = plan.upgrade.as_ref().is_some_and(|u| !u.steps().is_empty());
        let impaired = !super::zones::impaired_zones(observed).is_empty();
        let unready_node = observed
            .pods
            .get(ENSEMBLE_POOL)
            .into_iter()
            .flatten()
            .find(|p| p.name_any() == pod)
            .is_none_or(|p| observed.node_facts(p).is_some_and(|f| !f.ready));
        if restarting || impaired || unready_node {
            sizing.move_leader = None;
        }
    }
    // Tenants are placed when no upgrade step is taken in this pass (the next pass sees the
    // pods the step changed).
    if plan.upgrade.as_ref().is_none_or(|u| u.steps().is_empty()) {
        plan.tenants = plan_tenants(policies, cluster, valid, observed, now).await;
    }
    plan
}

/// Which module decided, in events and status: the PinotPolicy's name and the module's own.
fn policy_label(chosen: Option<&str>, info: &crate::policy::Info) -> String {
    match chosen {
        Some(policy) => format!("{policy}: {} {}", info.name, info.version),
        None => format!("{} {}", info.name, info.version),
    }
}

/// The restart stamp of each pool: asked for (`ValidCluster::restarts`), else kept from its
/// StatefulSet.
fn restart_stamps(valid: &ValidCluster, observed: &ObservedCluster) -> BTreeMap<String, String> {
    let pools = valid.pools.iter().map(|p| p.name.as_str());
    let pools = pools.chain(valid.ensemble.as_ref().map(|_| ENSEMBLE_POOL));
    pools
        .filter_map(|pool| {
            let kept = || {
                let sts = observed.statefulsets.get(pool)?;
                sts.metadata.annotations.as_ref()?.get(super::build::ANNOTATION_RESTARTED_AT).cloned()
            };
            let stamp = valid.restarts.get(pool).cloned().or_else(kept)?;
            Some((pool.to_string(), stamp))
        })
        .collect()
}

/// The policy of each kind the cluster decides with, as its status reports it.
fn resolve_policies(registry: &PolicyRegistry, namespace: &str, chosen: &ChosenPolicies) -> Vec<ClusterPolicyStatus> {
    [
        ("upgrade", PolicyKind::Upgrade, &chosen.upgrade),
        ("scaling", PolicyKind::Scaling, &chosen.scaling),
        ("tenant", PolicyKind::Tenant, &chosen.tenant),
    ]
    .into_iter()
    .map(|(field, kind, name)| match registry.resolve(namespace, name.as_deref(), kind) {
        Ok(active) => ClusterPolicyStatus {
            kind: field.into(),
            name: name.clone().unwrap_or_else(|| active.policy.info.name.clone()),
            source: Some(active.origin.clone()),
            digest: Some(active.policy.digest.clone()),
            ready: true,
            message: None,
            module: Some(format!("{} {}", active.policy.info.name, active.policy.info.version)),
            last_decision: None,
            decided_at: None,
        },
        Err(e) => ClusterPolicyStatus {
            kind: field.into(),
            name: name.clone().unwrap_or_default(),
            source: None,
            digest: None,
            ready: false,
            message: Some(format!("spec.policies.{field}: {e}")),
            module: None,
            last_decision: None,
            decided_at: None,
        },
    })
    .collect()
}

/// The cluster's policy of `kind` (`chosen`, else the bundled default), the state it decides
/// from (with its configuration) and its label; `None` when it is not loaded (the status says
/// so through `policies`).
fn ask(
    policies: &Policies,
    cluster: &PinotCluster,
    valid: &ValidCluster,
    observed: &ObservedCluster,
    chosen: Option<&str>,
    kind: PolicyKind,
    now: Timestamp,
) -> Option<(Arc<ActivePolicy>, ClusterState, String)> {
    let active = policies.registry.resolve(&valid.namespace, chosen, kind).ok()?;
    let state = state::cluster_state(cluster, valid, observed, &active.config, now);
    let policy = policy_label(chosen, &active.policy.info);
    Some((active, state, policy))
}

/// The scaling policy's checked decision, with the actions for the pools in `scalable`.
/// `None` when the scaling policy is not loaded (the status says so): no pool changes its
/// replicas.
async fn plan_scaling(
    policies: &Policies,
    cluster: &PinotCluster,
    valid: &ValidCluster,
    observed: &ObservedCluster,
    scalable: &[&str],
    now: Timestamp,
) -> Option<ScalingPlan> {
    let (active, state, policy) =
        ask(policies, cluster, valid, observed, valid.policies.scaling.as_deref(), PolicyKind::Scaling, now)?;
    let reachable = matches!(observed.pinot, PinotObservation::Reachable { .. });
    let (registry, decision_state) = (policies.registry.clone(), state.clone());
    let impaired: Vec<String> = super::zones::impaired_zones(observed).into_iter().map(|z| z.zone).collect();
    let decision = policies
        .decide(move || scaling::decide(&registry, &active, &decision_state, reachable, &impaired))
        .await
        .unwrap_or_else(|e| ScalingDecision::Refused {
            reason: "PolicyFailed",
            message: format!("scaling policy {policy}: {e}"),
        });
    let actions: Vec<Action> = decision
        .actions()
        .iter()
        .filter(|a| !matches!(a, Action::SetReplicas(s) if !scalable.contains(&s.pool.as_str())))
        .cloned()
        .collect();
    let rebalances = match &observed.pinot {
        PinotObservation::Reachable { rebalances, .. } => rebalances.clone(),
        _ => vec![],
    };
    // Not in a pass whose scaling plan rebalances or disables instances itself (a scale-in
    // draining, or a scale-out spreading segments): its rebalances come first.
    let scaling_in = actions.iter().any(|a| matches!(a, Action::RebalanceTable(_) | Action::DisableInstance(_)));
    let by_zone = if scaling_in { vec![] } else { super::zones::misplaced_tables(observed) };
    Some(ScalingPlan { policy, decision, actions, state, rebalances, by_zone })
}

/// The upgrade policy's checked decision, within the operator's upgrade slots. `None` when the
/// cluster's upgrade policy is not loaded (the status says so).
async fn plan_upgrade(
    policies: &Policies,
    cluster: &PinotCluster,
    valid: &ValidCluster,
    observed: &ObservedCluster,
    now: Timestamp,
) -> Option<UpgradePlan> {
    let (active, state, policy) =
        ask(policies, cluster, valid, observed, valid.policies.upgrade.as_deref(), PolicyKind::Upgrade, now)?;
    let drains = valid.pools.iter().map(|p| (p.name.clone(), p.drain_seconds)).collect();
    let (registry, observed_copy, decision_state) = (policies.registry.clone(), observed.clone(), state.clone());
    let decision = policies
        .decide(move || decide_upgrade(&registry, &active, &decision_state, &observed_copy, &drains))
        .await
        .unwrap_or_else(|e| UpgradeDecision::Refused {
            reason: "PolicyFailed",
            message: format!("upgrade policy {policy}: {e}"),
        });
    let decision = upgrade_slot(policies.max_concurrent_upgrades, cluster, observed, decision);
    Some(UpgradePlan { policy, decision, state })
}

/// Holds back the first step of an upgrade while `max` other clusters are upgrading (or
/// halted). A cluster already upgrading keeps going.
fn upgrade_slot(
    max: usize,
    cluster: &PinotCluster,
    observed: &ObservedCluster,
    decision: UpgradeDecision,
) -> UpgradeDecision {
    let starts = matches!(&decision, UpgradeDecision::Act(a) if !a.is_empty());
    if max == 0 || !starts || cluster.status.as_ref().is_some_and(|s| s.is_upgrading()) {
        return decision;
    }
    let others = observed.others.upgrading();
    if others.len() < max {
        return decision;
    }
    UpgradeDecision::Queued(format!(
        "waiting for an upgrade slot: {} of {max} allowed clusters are upgrading ({})",
        others.len(),
        others.join(", ")
    ))
}

/// Where the tenant policy puts the cluster's PinotTenants: among the pods the spec keeps (pods
/// a scale-in removes are not placed in tenants again) or, for an external cluster, among the
/// instances its controller reports. `None` without PinotTenants.
async fn plan_tenants(
    policies: &Policies,
    cluster: &PinotCluster,
    valid: &ValidCluster,
    observed: &ObservedCluster,
    now: Timestamp,
) -> Option<TenantPlan> {
    // A spec error is the PinotTenant controller's to report.
    let requests: Vec<(String, tenants::Tenant)> = observed
        .tenants
        .iter()
        .filter_map(|t| Some((kube::ResourceExt::name_any(t), tenants::tenant_request(t).ok()?)))
        .collect();
    if observed.tenants.is_empty() {
        return None;
    }
    let mut state = match &observed.pinot {
        PinotObservation::Reachable { .. } if !valid.external => {
            let mut state = state::cluster_state(cluster, valid, observed, &[], now);
            for pool in &mut state.pools {
                let keep = pool.desired_replicas;
                pool.pods.retain(|p| p.ordinal < keep);
            }
            state
        }
        PinotObservation::Reachable { instances, live, details, .. } => {
            let instances: Vec<String> = instances.iter().cloned().collect();
            let live: Vec<String> = live.iter().cloned().collect();
            state::external_state(cluster, &instances, &live, details, now)
        }
        _ => {
            let decision = TenantDecision::Waiting {
                reason: "WaitingForPinot",
                message: "waiting for the cluster's Pinot controller to answer".into(),
            };
            return Some(TenantPlan {
                requests,
                decision,
                tags: BTreeMap::new(),
                members: BTreeMap::new(),
                state: None,
            });
        }
    };
    // The policy must know which instances still hold segments: it never moves those.
    let segments = observed.pinot.segments_per_server();
    for pod in state.pools.iter_mut().flat_map(|p| p.pods.iter_mut()) {
        if let Some(i) = pod.instance.as_mut() {
            i.segments = segments.get(&i.id).copied().unwrap_or(0);
        }
    }
    state.tenants = requests.iter().map(|(_, r)| r.clone()).collect();
    let tags: BTreeMap<String, Vec<String>> = state
        .pools
        .iter()
        .flat_map(|p| &p.pods)
        .filter_map(|pod| pod.instance.as_ref().map(|i| (i.id.clone(), i.tags.clone())))
        .collect();
    let members = state
        .pools
        .iter()
        .flat_map(|p| &p.pods)
        .filter_map(|pod| {
            let i = pod.instance.as_ref()?;
            Some((i.id.clone(), tenants::Member { zone: pod.zone.clone(), pools: i.pools.clone(), live: i.live }))
        })
        .collect();
    let chosen = valid.policies.tenant.as_deref();
    let decision = match policies.registry.resolve(&valid.namespace, chosen, PolicyKind::Tenant) {
        Err(e) => TenantDecision::Waiting { reason: "PolicyNotReady", message: format!("tenant policy: {e}") },
        Ok(active) => {
            let (registry, decision_state) = (policies.registry.clone(), state.clone());
            policies
                .decide(move || tenants::decide(&registry, &active, &decision_state))
                .await
                .unwrap_or_else(|e| TenantDecision::Refused(format!("tenant policy: {e}")))
        }
    };
    Some(TenantPlan { requests, decision, tags, members, state: Some(state) })
}

/// Which pools this pass applies.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolPlan<'a> {
    /// Pools whose objects are applied as the spec says.
    pub pools: Vec<&'a ValidPool>,
    /// Pools left as they are, and why: the spec asks for a change the apiserver would refuse.
    pub blocked: Vec<FieldError>,
    /// Pools whose volumes grow before their StatefulSet is applied (`volumes.rs`).
    pub expansions: Vec<VolumeExpansion>,
    /// First install goes role by role: what the pools not created yet wait for.
    pub install_wait: Option<String>,
    /// The managed ZooKeeper ensemble's objects are applied (its turn has come).
    pub ensemble: bool,
}

/// What the upgrade policy decided this time, after the guardrails.
#[derive(Clone, Debug, PartialEq)]
pub enum UpgradeDecision {
    /// A StatefulSet has not yet observed its new spec: its target revision is not known.
    NotYet(String),
    /// The actions to carry out now (restarts, queries off / on); may be empty.
    Act(Vec<Action>),
    /// Nothing to do now, and why (shown as `Progressing`).
    Wait(String),
    /// What the policy asks for waits for Pinot (the routing gate: a server to serve again, a
    /// controller to lead its tables), which no watch reports: looked at again soon.
    Held(String),
    /// The upgrade would start, but `--max-concurrent-upgrades` other clusters are upgrading.
    Queued(String),
    /// The policy reports a problem the user must solve (shown as `Degraded`).
    Blocked(String),
    /// The policy failed (trap, timeout, out of memory, refusal) or asked for something the
    /// guardrails refuse; nothing of its plan is carried out.
    Refused { reason: &'static str, message: String },
}

impl UpgradeDecision {
    /// What the operator does with the decision, as `plan` and the status say it.
    pub fn outcome(&self) -> String {
        match self {
            UpgradeDecision::Act(actions) if actions.is_empty() => "do nothing".into(),
            UpgradeDecision::Act(actions) => format!("carry out: {}", describe_all(actions)),
            UpgradeDecision::NotYet(why) => format!("wait (the target revision is not known yet): {why}"),
            UpgradeDecision::Wait(why) => format!("wait: {why}"),
            UpgradeDecision::Held(why) => format!("hold until Pinot is ready: {why}"),
            UpgradeDecision::Queued(why) => format!("queue: {why}"),
            UpgradeDecision::Blocked(why) => format!("halt (UpgradeHalted): {why}"),
            UpgradeDecision::Refused { reason, message } => format!("refuse the whole plan ({reason}): {message}"),
        }
    }
}

/// The actions, described, comma-separated.
pub fn describe_all(actions: &[Action]) -> String {
    actions.iter().map(guardrails::describe).collect::<Vec<_>>().join(", ")
}

/// The actions an upgrade policy may ask for.
fn upgrade_action(action: &Action) -> bool {
    matches!(
        action,
        Action::RestartPod(_)
            | Action::DisableQueries(_)
            | Action::EnableQueries(_)
            | Action::Wait(_)
            | Action::Block(_)
    )
}

/// Runs the upgrade policy on `state` and checks what it asks for.
pub fn decide_upgrade(
    registry: &PolicyRegistry,
    policy: &ActivePolicy,
    state: &ClusterState,
    observed: &ObservedCluster,
    drains: &BTreeMap<String, i64>,
) -> UpgradeDecision {
    let stale = observed.stale_pools();
    if !stale.is_empty() {
        return UpgradeDecision::NotYet(stale_message(&stale));
    }
    let name = &policy.policy.name;
    let actions = match registry.decide(policy, state) {
        Ok(actions) => actions,
        Err(e) => {
            return UpgradeDecision::Refused {
                reason: "PolicyFailed",
                message: format!("upgrade policy {name}: {e}; no pod is restarted until it decides"),
            };
        }
    };
    if let Some((i, a)) = actions.iter().enumerate().find(|(_, a)| !upgrade_action(a)) {
        return UpgradeDecision::Refused {
            reason: "PlanRefused",
            message: format!(
                "upgrade policy {name}: action {i} ({}) refused: an upgrade policy may only restart pods, \
                 disable or enable queries, wait or block; nothing of its plan was carried out",
                guardrails::describe(a)
            ),
        };
    }
    if let Err(v) = guardrails::check(state, &actions) {
        return UpgradeDecision::Refused {
            reason: "PlanRefused",
            message: format!("upgrade policy {name}: {v}; nothing of its plan was carried out"),
        };
    }
    if let Some(why) = actions.iter().find_map(|a| if let Action::Block(why) = a { Some(why) } else { None }) {
        return UpgradeDecision::Blocked(why.clone());
    }
    // The host's zone gate: nothing goes down while a zone is impaired, and no pod on a node
    // that is not Ready is deleted, whatever the policy asks.
    let (actions, zone_held) = zone_gate(state, observed, actions);
    // The host's routing gate: no server leaves query routing (restart, queries off) while a
    // server holding a replica of one of its segments is out of it, whatever the policy asks.
    let (actions, held) = match routing_gate(state, observed, actions) {
        Ok(gated) => gated,
        Err(block) => return UpgradeDecision::Blocked(block),
    };
    // The host's drain: a server whose queries were disabled restarts only after its pool's
    // drain period, counted from the time the operator disabled them (a pod annotation).
    // A server whose queries this very plan disables has its whole drain period ahead of it.
    let mut draining = Vec::new();
    let disabled_now: Vec<&str> = actions
        .iter()
        .filter_map(|a| if let Action::DisableQueries(id) = a { Some(id.as_str()) } else { None })
        .collect();
    let work: Vec<Action> = actions
        .iter()
        .filter(|a| !matches!(a, Action::Wait(_)))
        .filter(|a| match a {
            Action::RestartPod(pod) => match drain_left(state, observed, drains, pod, &disabled_now) {
                Some(left) => {
                    draining.push(format!("draining queries of pod {pod}: {left}s left"));
                    false
                }
                None => true,
            },
            _ => true,
        })
        .cloned()
        .collect();
    if work.is_empty() && !held.is_empty() {
        let why = draining.into_iter().chain(held).collect::<Vec<_>>().join(", ");
        // Held for Pinot to answer again: no quick second look, the usual recheck.
        if !matches!(observed.pinot, PinotObservation::Reachable { .. }) {
            return UpgradeDecision::Wait(why);
        }
        return UpgradeDecision::Held(why);
    }
    if work.is_empty() && !draining.is_empty() {
        return UpgradeDecision::Wait(draining.join(", "));
    }
    // Held for a zone: the node watch brings the next pass when it changes.
    if work.is_empty() && !zone_held.is_empty() {
        return UpgradeDecision::Wait(zone_held.join(", "));
    }
    if work.is_empty()
        && let Some(why) = actions.iter().find_map(|a| if let Action::Wait(why) = a { Some(why) } else { None })
    {
        return UpgradeDecision::Wait(why.clone());
    }
    // A module older than the ensemble's tables never restarts a member: say so rather than
    // report a rollout that never ends.
    if work.is_empty()
        && let Some(ensemble) = &state.ensemble
        && !sees_ensemble(policy.policy.api_version())
        && ensemble.members.iter().any(|m| !m.leaving && m.revision != ensemble.target_revision)
    {
        return UpgradeDecision::Wait(format!(
            "upgrade policy {name} was built against {}, which does not show a policy the ZooKeeper ensemble: its members are not restarted; use an upgrade policy built against pinot:policy@1.2.0 or later (the bundled upgrade-default is)",
            policy.policy.api_version()
        ));
    }
    UpgradeDecision::Act(work)
}

/// Whether a module of contract `api_version` (`pinot:policy@x.y.z`) reads the ZooKeeper
/// ensemble (1.2.0 and later).
fn sees_ensemble(api_version: &str) -> bool {
    let version = api_version.rsplit('@').next().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 2)
}

/// The host's zone gate on an upgrade plan: a pod whose node is not Ready is not deleted (it
/// would stay Terminating, its replacement not scheduled, until the node returns), and while a
/// zone is impaired no pod that serves goes down (restarted, or its queries turned off): its
/// zone's replicas are the ones the outage left. A pod already down may still be replaced (a
/// rollback of a pod stuck on a bad image takes nothing more down). The actions kept, and why
/// the others wait.
fn zone_gate(state: &ClusterState, observed: &ObservedCluster, actions: Vec<Action>) -> (Vec<Action>, Vec<String>) {
    let impaired: Vec<String> = super::zones::impaired_zones(observed).into_iter().map(|z| z.zone).collect();
    // Whether the pod serves now (a ZooKeeper member: in sync), when it is one of the state's.
    let serving = |name: &str| {
        let member = state.ensemble.iter().flat_map(|e| &e.members).find(|m| m.pod == name);
        member
            .map(|m| m.synced)
            .or_else(|| state.pools.iter().flat_map(|p| &p.pods).find(|p| p.name == name).map(|p| p.ready))
    };
    // Scheduled on a node that is not Ready (an unscheduled pod may be deleted).
    let on_unready_node = |name: &str| {
        let pod = observed.pods.values().flatten().find(|p| p.metadata.name.as_deref() == Some(name));
        pod.and_then(|p| observed.node_facts(p)).is_some_and(|f| !f.ready)
    };
    let mut held = Vec::new();
    let kept = actions
        .into_iter()
        .filter(|a| {
            let why = match a {
                Action::RestartPod(name) => match serving(name) {
                    Some(_) if on_unready_node(name) => Some(
                        "its node is not Ready: a deleted pod would stay Terminating until the node returns"
                            .to_string(),
                    ),
                    Some(true) if !impaired.is_empty() => Some(format!(
                        "zone {} is impaired: no pod that serves goes down until it is back",
                        impaired.join(", ")
                    )),
                    _ => None,
                },
                Action::DisableQueries(_) if !impaired.is_empty() => Some(format!(
                    "zone {} is impaired: no server leaves query routing until it is back",
                    impaired.join(", ")
                )),
                _ => None,
            };
            if let Some(why) = &why {
                held.push(format!("{} waits: {why}", guardrails::describe(a)));
            }
            why.is_none()
        })
        .collect();
    (kept, held)
}

/// Why a server is out of query routing now, as brokers decide it (Pinot's
/// `BaseBrokerRoutingManager`/`BrokerRoutingManager` exclude a server that is not live, disabled,
/// shutting down or starting (`shutdownInProgress`), or has `queriesDisabled`; per segment, one
/// not ONLINE/CONSUMING in the external view); `None` when it serves every segment it holds.
fn out_of_routing(
    id: &str,
    terminating: bool,
    instances: &BTreeMap<String, crate::pinot::InstanceInfo>,
    live: &std::collections::BTreeSet<String>,
    tables: &[crate::pinot::TablePlacement],
) -> Option<String> {
    let not_serving: u32 = tables.iter().filter_map(|t| t.not_serving.get(id)).sum();
    let info = instances.get(id);
    if terminating {
        Some("its pod is stopping".into())
    } else if !live.contains(id) {
        Some("it is not live in Pinot".into())
    } else if info.is_some_and(|i| !i.enabled) {
        Some("it is disabled in Pinot".into())
    } else if info.is_some_and(|i| i.shutdown_in_progress == Some(true)) {
        Some("Pinot says its start or shutdown is in progress (shutdownInProgress)".into())
    } else if info.is_some_and(|i| i.queries_disabled) {
        Some("its queries are disabled (queriesDisabled)".into())
    } else if not_serving > 0 {
        Some(format!("{not_serving} of its segments are not ONLINE in the external view yet"))
    } else {
        None
    }
}

/// Holds back every action that would take a server out of query routing (a restart, queries
/// off) while another server holding a replica of one of its segments is out of routing, or is
/// taken out by an earlier action of the same plan: the segment would have no replica left to
/// answer queries. Holds back re-enabling the queries of a server that is still starting (the
/// whole-config update releases need would race the server's own start). The actions kept,
/// and why the others wait; an error when a server that restarted has segments in ERROR, which
/// its readiness counts as loaded and which only a person can mend.
fn routing_gate(
    state: &ClusterState,
    observed: &ObservedCluster,
    actions: Vec<Action>,
) -> Result<(Vec<Action>, Vec<String>), String> {
    let (details, live, tables, leaderless_partitions) = match &observed.pinot {
        PinotObservation::Reachable { details, live, tables, leaderless_partitions, .. } => {
            (details, live, tables, leaderless_partitions)
        }
        // Without Pinot nobody can tell whether the other replicas of a server's segments
        // serve: a ready server stays (one not ready serves nothing and may restart).
        PinotObservation::Unreachable(_) | PinotObservation::NotAsked => {
            let why = match &observed.pinot {
                PinotObservation::Unreachable(e) => format!("the Pinot controller does not answer ({e})"),
                _ => "no Pinot controller is ready to ask".to_string(),
            };
            let ready_servers: Vec<&str> = state
                .pools
                .iter()
                .filter(|p| p.role == crate::policy::model::Role::Server)
                .flat_map(|p| p.pods.iter().filter(|pod| pod.ready && !pod.terminating).map(|pod| pod.name.as_str()))
                .collect();
            let (kept, held): (Vec<Action>, Vec<Action>) = actions.into_iter().partition(|a| match a {
                Action::RestartPod(pod) => !ready_servers.contains(&pod.as_str()),
                Action::DisableQueries(_) => false,
                _ => true,
            });
            let held = held
                .iter()
                .map(|a| {
                    format!(
                        "{} waits: {why}, so nobody can tell whether the other replicas of its segments serve",
                        guardrails::describe(a)
                    )
                })
                .collect();
            return Ok((kept, held));
        }
    };
    let controller_pods: Vec<&str> = state
        .pools
        .iter()
        .filter(|p| p.role == crate::policy::model::Role::Controller)
        .flat_map(|p| p.pods.iter().map(|pod| pod.name.as_str()))
        .collect();
    let pods = state.pools.iter().filter(|p| p.role == crate::policy::model::Role::Server).flat_map(|p| &p.pods);
    // Server instance -> (pod, stopping).
    let servers: BTreeMap<&str, (&str, bool)> =
        pods.filter_map(|p| p.instance.as_ref().map(|i| (i.id.as_str(), (p.name.as_str(), p.terminating)))).collect();
    let peers = |id: &str| -> std::collections::BTreeSet<&str> {
        tables.iter().filter_map(|t| t.peers.get(id)).flatten().map(String::as_str).collect()
    };
    let why_out = |id: &str| {
        let terminating = servers.get(id).is_some_and(|(_, t)| *t);
        out_of_routing(id, terminating, details, live, tables)
    };
    // A restarted server (on its pool's target revision) with segments in ERROR stops the
    // upgrade, while one is under way.
    let upgrading = state.pools.iter().any(|p| p.pods.iter().any(|pod| pod.revision != p.target_revision));
    for pool in state.pools.iter().filter(|p| upgrading && p.role == crate::policy::model::Role::Server) {
        for pod in pool.pods.iter().filter(|p| p.revision == pool.target_revision) {
            let Some(instance) = &pod.instance else { continue };
            let errors: Vec<String> = tables
                .iter()
                .filter_map(|t| t.errors.get(&instance.id).map(|n| format!("{n} of table {}", t.name)))
                .collect();
            if !errors.is_empty() {
                return Err(format!(
                    "server {} (pod {}) has segments in ERROR after its restart ({}); Pinot's readiness counts them as \
                     loaded, so no other server restarts until they are ONLINE: reset or reload them \
                     (POST /segments/{{table}}/{{segment}}/reset) or roll the spec back",
                    instance.id,
                    pod.name,
                    errors.join(", ")
                ));
            }
        }
    }
    let instance_of_pod = |pod: &str| servers.iter().find(|(_, (p, _))| *p == pod).map(|(id, _)| *id);
    let mut leaving: Vec<&str> = Vec::new();
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for action in actions {
        let takes_out = match &action {
            // A controller restarts only while every table has a leading controller: the one
            // restarted before must have taken its tables back (Pinot's recipe for controllers).
            Action::RestartPod(pod) if controller_pods.contains(&pod.as_str()) => {
                match leaderless_partitions.filter(|n| *n > 0) {
                    Some(n) => held.push(format!(
                        "{} waits: {n} of Pinot's lead-controller partitions have no leader yet",
                        guardrails::describe(&action)
                    )),
                    None => kept.push(action),
                }
                continue;
            }
            Action::RestartPod(pod) => instance_of_pod(pod),
            Action::DisableQueries(id) => servers.get_key_value(id.as_str()).map(|(id, _)| *id),
            Action::EnableQueries(id) => {
                if details.get(id).is_some_and(|i| i.shutdown_in_progress == Some(true)) {
                    held.push(format!("waiting for server {id} to finish starting before its queries are enabled"));
                    continue;
                }
                None
            }
            _ => None,
        };
        let Some(id) = takes_out else {
            kept.push(action);
            continue;
        };
        // Already out (stopping, down): taking it out again changes nothing for routing.
        if why_out(id).is_some() {
            kept.push(action);
            continue;
        }
        let blocking = peers(id).into_iter().find_map(|peer| {
            if leaving.contains(&peer) {
                Some(format!("server {peer} leaves routing in this same step"))
            } else {
                why_out(peer)
                    .map(|why| format!("server {peer} holds replicas of its segments and is out of routing: {why}"))
            }
        });
        match blocking {
            Some(why) => held.push(format!("{} waits: {why}", guardrails::describe(&action))),
            None => {
                leaving.push(id);
                kept.push(action);
            }
        }
    }
    Ok((kept, held))
}

/// Annotation the operator sets on a pod when it disables its instance's queries: when, in
/// seconds since the Unix epoch. The drain period counts from it; the pod's replacement does
/// not carry it.
pub const ANNOTATION_QUERIES_DISABLED_AT: &str = "pinot.controlplane.dev/queries-disabled-at";

/// Seconds of drain left before `pod` may restart, if any.
fn drain_left(
    state: &ClusterState,
    observed: &ObservedCluster,
    drains: &BTreeMap<String, i64>,
    pod: &str,
    disabled_now: &[&str],
) -> Option<i64> {
    let (pool, p) = state.pools.iter().find_map(|pool| pool.pods.iter().find(|p| p.name == pod).map(|p| (pool, p)))?;
    let instance = p.instance.as_ref()?;
    let drain = drains.get(&pool.name).copied().unwrap_or(0);
    if disabled_now.contains(&instance.id.as_str()) && p.ready {
        return (drain > 0).then_some(drain);
    }
    if instance.queries_enabled || !p.ready {
        return None;
    }
    let since: i64 = observed
        .pods
        .get(&pool.name)?
        .iter()
        .find(|k| k.metadata.name.as_deref() == Some(pod))?
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_QUERIES_DISABLED_AT)?
        .parse()
        .ok()?;
    let left = since + drain - state.now_unix_seconds;
    (left > 0).then_some(left)
}

/// The pools this pass applies: every pool of the spec, in deployment order on first install
/// (a pool is created once every earlier role is ready), except a pool whose change Kubernetes
/// cannot make.
pub fn plan_pools<'a>(cluster: &'a ValidCluster, observed: &ObservedCluster) -> PoolPlan<'a> {
    let mut plan = PoolPlan {
        pools: Vec::new(),
        blocked: Vec::new(),
        expansions: Vec::new(),
        install_wait: None,
        ensemble: false,
    };
    // Roles in deployment order whose pools all exist and are ready; a pool not created yet
    // is created once every earlier role is.
    let mut earlier_not_ready: Vec<String> = Vec::new();
    for (position, role) in cluster.deployment_order.iter().enumerate() {
        if position == cluster.ensemble_position {
            ensemble_step(cluster, observed, &mut plan, &mut earlier_not_ready);
        }
        let pools: Vec<(usize, &ValidPool)> =
            cluster.pools.iter().enumerate().filter(|(_, p)| p.role == *role).collect();
        for &(i, pool) in &pools {
            let sts = observed.statefulsets.get(&pool.name);
            if sts.is_none() && !cluster.parallel_install && !earlier_not_ready.is_empty() {
                if plan.install_wait.is_none() {
                    plan.install_wait = Some(format!(
                        "installing role by role: {} waits for {}",
                        role.as_str(),
                        earlier_not_ready.join(", ")
                    ));
                }
                continue;
            }
            let claims = observed.volume_claims.get(&pool.name);
            match sts.map(|sts| volumes::change(i, &cluster.name, pool, sts, claims)) {
                Some(StorageChange::Refused(blocked)) => plan.blocked.push(blocked),
                Some(StorageChange::Expand(expansion)) => {
                    plan.expansions.push(expansion);
                    plan.pools.push(pool);
                }
                Some(StorageChange::Unchanged) | None => plan.pools.push(pool),
            }
        }
        for (_, pool) in pools {
            let ready = observed.pods.get(&pool.name).map_or(0, |pods| pods.iter().filter(|p| pod_is_ready(p)).count());
            if !observed.statefulsets.contains_key(&pool.name) || (ready as i32) < pool.replicas {
                earlier_not_ready.push(format!("pool {} to be ready", pool.name));
            }
        }
    }
    if cluster.ensemble_position >= cluster.deployment_order.len() {
        ensemble_step(cluster, observed, &mut plan, &mut earlier_not_ready);
    }
    plan
}

/// The managed ensemble's turn in the deployment order: the roles after it wait for a quorum of
/// every member, in sync, with Pinot's chroot. It never waits for the roles before it itself:
/// no Pinot role is ready without ZooKeeper, so a role placed before it (which orders upgrades)
/// is created with it.
fn ensemble_step(
    cluster: &ValidCluster,
    observed: &ObservedCluster,
    plan: &mut PoolPlan<'_>,
    earlier_not_ready: &mut Vec<String>,
) {
    let Some(ensemble) = &cluster.ensemble else { return };
    let exists = observed.statefulsets.contains_key(ENSEMBLE_POOL);
    plan.ensemble = true;
    let members = observed.ensemble.as_ref();
    // The members of the configuration the StatefulSet starts them with.
    let servers = observed
        .statefulsets
        .get(ENSEMBLE_POOL)
        .and_then(super::ensemble::statefulset_servers)
        .unwrap_or(ensemble.replicas);
    let voters: Vec<String> = (0..servers)
        .map(|i| format!("{}-{i}", crate::children::statefulset_name(&cluster.name, ENSEMBLE_POOL)))
        .collect();
    let whole = members.is_some_and(|m| m.whole(&voters, servers as u32));
    if !exists || !whole {
        earlier_not_ready.push("the ZooKeeper ensemble to have a quorum of every member".into());
    } else if members.and_then(|m| m.chroot_exists) != Some(true) {
        earlier_not_ready.push(format!("the ZooKeeper chroot {} to be created", ensemble.chroot));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use serde_json::json;

    use super::*;
    use crate::cluster::{fixtures, validate::validate};

    fn sts_with_storage(size: Option<&str>) -> StatefulSet {
        let claims = size.map(|s| {
            json!([{"metadata": {"name": "data"}, "spec": {"storageClassName": "standard", "resources": {"requests": {"storage": s}}}}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"selector": {}, "serviceName": "x", "template": {}, "volumeClaimTemplates": claims},
        }))
        .unwrap()
    }

    #[test]
    fn unchanged_pools_are_applied() {
        let mut cluster = validate(&fixtures::example()).unwrap();
        cluster.parallel_install = true;
        let mut observed = ObservedCluster::default();
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("50Gi")));
        observed.statefulsets.insert("broker-a".into(), sts_with_storage(None));
        let plan = plan_pools(&cluster, &observed);
        assert_eq!(plan.pools.len(), 6);
        assert!(plan.blocked.is_empty());
    }

    fn ready_pod(name: &str) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap()
    }

    #[test]
    fn first_install_creates_a_role_once_every_earlier_role_is_ready() {
        let cluster = validate(&fixtures::example()).unwrap();
        let names = |plan: &PoolPlan| plan.pools.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let mut observed = ObservedCluster::default();
        let first = plan_pools(&cluster, &observed);
        assert_eq!(names(&first), ["controller"]);
        assert!(first.install_wait.unwrap().contains("broker waits for pool controller to be ready"));

        // The controller exists but is not ready: still only the controller.
        let controller = cluster.pool("controller").unwrap();
        let mut sts = sts_with_storage(controller.storage.as_ref().map(|s| s.size.as_str()));
        let class = controller.storage.as_ref().and_then(|s| s.storage_class_name.clone());
        if let Some(claims) = sts.spec.as_mut().and_then(|s| s.volume_claim_templates.as_mut()) {
            claims[0].spec.as_mut().unwrap().storage_class_name = class;
        }
        observed.statefulsets.insert("controller".into(), sts);
        assert_eq!(names(&plan_pools(&cluster, &observed)), ["controller"]);

        observed.pods.insert(
            "controller".into(),
            (0..controller.replicas).map(|i| ready_pod(&format!("analytics-controller-{i}"))).collect(),
        );
        let second = plan_pools(&cluster, &observed);
        assert_eq!(names(&second), ["controller", "broker-a", "broker-b"]);

        // With parallelInstall every pool is created at once.
        let mut parallel = cluster.clone();
        parallel.parallel_install = true;
        let all = plan_pools(&parallel, &ObservedCluster::default());
        assert_eq!(all.pools.len(), 6);
        assert!(all.install_wait.is_none());
    }

    #[test]
    fn a_storage_change_blocks_only_that_pool_and_names_the_field_unless_the_volumes_can_grow() {
        let mut cluster = validate(&fixtures::example()).unwrap();
        cluster.parallel_install = true;
        let mut observed = ObservedCluster::default();
        // Smaller than the spec's 50Gi, claims not read: refused, the pool left alone.
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("20Gi")));
        let plan = plan_pools(&cluster, &observed);
        assert_eq!(plan.pools.len(), 5);
        assert!(!plan.pools.iter().any(|p| p.name == "server-offline"));
        assert_eq!(plan.blocked[0].field, "spec.pools[3].storage");
        assert!(
            plan.blocked[0].message.contains("from size 20Gi class standard to size 50Gi class standard"),
            "{}",
            plan.blocked[0]
        );

        // On a class that allows expansion: the claims still smaller grow, the pool is applied.
        let claims = |expandable| volumes::ObservedClaims {
            claims: [("data-analytics-server-offline-0", "20Gi"), ("data-analytics-server-offline-1", "50Gi")]
                .into_iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            class: Some("standard".into()),
            expandable: Some(expandable),
        };
        observed.volume_claims.insert("server-offline".into(), claims(true));
        let plan = plan_pools(&cluster, &observed);
        assert_eq!(plan.pools.len(), 6);
        assert!(plan.blocked.is_empty());
        assert_eq!(
            plan.expansions,
            [volumes::VolumeExpansion {
                pool: "server-offline".into(),
                statefulset: "analytics-server-offline".into(),
                size: "50Gi".into(),
                claims: vec!["data-analytics-server-offline-0".into()],
            }]
        );
        // A class that does not: refused, naming it.
        observed.volume_claims.insert("server-offline".into(), claims(false));
        let plan = plan_pools(&cluster, &observed);
        assert!(
            plan.blocked[0].message.contains("StorageClass standard does not allow volume expansion"),
            "{}",
            plan.blocked[0]
        );
        // The same size in the apiserver's spelling: nothing to do.
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("51200Mi")));
        let plan = plan_pools(&cluster, &observed);
        assert!(plan.blocked.is_empty() && plan.expansions.is_empty(), "{:?}", plan.blocked);
        // Larger than the spec: never shrunk.
        observed.statefulsets.insert("server-offline".into(), sts_with_storage(Some("80Gi")));
        observed.volume_claims.insert("server-offline".into(), claims(true));
        let plan = plan_pools(&cluster, &observed);
        assert!(plan.expansions.is_empty());
        assert!(
            plan.blocked[0].message.starts_with("cannot shrink the pool's volumes from 80Gi to 50Gi"),
            "{}",
            plan.blocked[0]
        );
    }
}

#[cfg(test)]
mod upgrade_tests {
    use super::*;
    use crate::policy::{
        PolicyEngine, PolicyKind, PolicyLimits,
        model::{Instance, Pod, Pool, Role},
    };
    use k8s_openapi::api::apps::v1::StatefulSet;

    fn registry() -> PolicyRegistry {
        PolicyRegistry::new(PolicyEngine::new(PolicyLimits::default()).unwrap()).unwrap()
    }

    fn server_pool(revisions: &[&str], queries_enabled: bool) -> Pool {
        let pods = revisions
            .iter()
            .enumerate()
            .map(|(o, r)| Pod {
                name: format!("c-server-{o}"),
                ordinal: o as u32,
                revision: r.to_string(),
                ready: true,
                terminating: false,
                restarts: 0,
                age_seconds: 50,
                zone: Some("a".into()),
                node_ready: true,
                instance: Some(Instance {
                    id: format!("Server_c-server-{o}.h.ns.svc.cluster.local_8098"),
                    live: true,
                    enabled: true,
                    queries_enabled,
                    tags: vec![],
                    segments: 0,
                    pools: Default::default(),
                }),
            })
            .collect::<Vec<_>>();
        Pool {
            name: "server".into(),
            role: Role::Server,
            zones: vec!["a".into()],
            desired_replicas: pods.len() as u32,
            current_replicas: pods.len() as u32,
            min_replicas: pods.len() as u32,
            max_replicas: pods.len() as u32,
            ready_replicas: pods.len() as u32,
            updated_replicas: 0,
            current_revision: "r1".into(),
            target_revision: "r2".into(),
            image: "i".into(),
            max_unavailable: 1,
            pods,
            departed: vec![],
        }
    }

    /// The zone gate: with zone b's node not Ready, no serving pod goes down anywhere and none
    /// on that node is deleted; a pod already down elsewhere may be replaced; once the zone is
    /// back, all may go.
    #[test]
    fn nothing_that_serves_goes_down_while_a_zone_is_impaired() {
        use crate::cluster::cache::NodeFacts;
        let mut state = crate::policy::runtime::empty_state();
        state.pools = vec![server_pool(&["r1", "r1", "r1"], true)];
        state.pools[0].pods[2].ready = false;
        let mut observed = answering();
        let k8s_pod = |name: &str, node: &str| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": name}, "spec": {"containers": [], "nodeName": node}}),
            )
            .unwrap()
        };
        observed.pods.insert(
            "server".into(),
            vec![k8s_pod("c-server-0", "node-a"), k8s_pod("c-server-1", "node-b"), k8s_pod("c-server-2", "node-c")],
        );
        let facts = |zone: &str, ready| NodeFacts { zone: Some(zone.into()), ready };
        observed.nodes = Some(
            [
                ("node-a".to_string(), facts("zone-a", true)),
                ("node-b".to_string(), facts("zone-b", false)),
                ("node-c".to_string(), facts("zone-c", true)),
            ]
            .into(),
        );
        let restart = |n: u32| Action::RestartPod(format!("c-server-{n}"));
        let (kept, held) = zone_gate(&state, &observed, vec![restart(0), restart(1), restart(2)]);
        assert_eq!(kept, [restart(2)], "only the pod that is down already, on a Ready node");
        assert_eq!(held.len(), 2, "{held:?}");
        assert!(held[0].contains("zone zone-b is impaired"), "{held:?}");
        assert!(held[1].contains("its node is not Ready"), "{held:?}");
        observed.nodes.as_mut().unwrap().get_mut("node-b").unwrap().ready = true;
        let (kept, held) = zone_gate(&state, &observed, vec![restart(0), restart(1)]);
        assert_eq!((kept.len(), held.len()), (2, 0));
    }

    /// A Pinot controller that answers, with every server instance of `server_pool` live.
    fn answering() -> ObservedCluster {
        ObservedCluster {
            pinot: PinotObservation::Reachable {
                version: None,
                instances: Default::default(),
                live: (0..6).map(|o| format!("Server_c-server-{o}.h.ns.svc.cluster.local_8098")).collect(),
                details: BTreeMap::new(),
                departed: BTreeMap::new(),
                tables: vec![],
                rebalances: vec![],
                leaderless_partitions: None,
            },
            ..ObservedCluster::default()
        }
    }

    fn drains() -> BTreeMap<String, i64> {
        BTreeMap::new()
    }

    fn state(pool: Pool) -> ClusterState {
        let mut s = crate::policy::runtime::empty_state();
        s.deployment_order = vec![Role::Controller, Role::Broker, Role::Server, Role::Minion];
        s.pools = vec![pool];
        s
    }

    #[test]
    fn the_default_policy_restarts_the_highest_ordinal_and_never_turns_queries_off() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let observed = answering();
        let decision =
            decide_upgrade(&registry, &policy, &state(server_pool(&["r1", "r1"], true)), &observed, &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-1".into())]));
        let done = decide_upgrade(&registry, &policy, &state(server_pool(&["r2", "r2"], true)), &observed, &drains());
        assert_eq!(done, UpgradeDecision::Act(vec![]));
        // A server whose queries someone disabled is left so, on the new revision too.
        let mut back = server_pool(&["r1", "r2"], true);
        back.pods[1].instance.as_mut().unwrap().queries_enabled = false;
        let decision = decide_upgrade(&registry, &policy, &state(back), &observed, &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-0".into())]));
    }

    /// What the controller reports for the two servers of `server_pool`, holding replicas of
    /// the same segments: server 0's `shutdownInProgress` and segments not ONLINE.
    fn sharing_servers(shutting_down: bool, not_serving: u32, errors: u32) -> ObservedCluster {
        let id = |o: u32| format!("Server_c-server-{o}.h.ns.svc.cluster.local_8098");
        let (a, b) = (id(0), id(1));
        let mut details = BTreeMap::new();
        details.insert(
            a.clone(),
            crate::pinot::InstanceInfo {
                enabled: true,
                shutdown_in_progress: Some(shutting_down),
                ..Default::default()
            },
        );
        details.insert(b.clone(), crate::pinot::InstanceInfo { enabled: true, ..Default::default() });
        let table = crate::pinot::TablePlacement {
            name: "t_OFFLINE".into(),
            replication: 2,
            segments: 4,
            servers: BTreeMap::from([(a.clone(), 4), (b.clone(), 4)]),
            not_serving: BTreeMap::from([(a.clone(), not_serving)]).into_iter().filter(|(_, n)| *n > 0).collect(),
            errors: BTreeMap::from([(a.clone(), errors)]).into_iter().filter(|(_, n)| *n > 0).collect(),
            peers: BTreeMap::from([(a.clone(), [b.clone()].into()), (b.clone(), [a.clone()].into())]),
            ..Default::default()
        };
        ObservedCluster {
            pinot: super::super::observe::PinotObservation::Reachable {
                version: None,
                instances: [a.clone(), b.clone()].into(),
                live: [a, b].into(),
                details,
                departed: BTreeMap::new(),
                tables: vec![table],
                rebalances: vec![],
                leaderless_partitions: Some(0),
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_server_waits_while_a_server_sharing_its_segments_is_not_serving_again_whatever_its_readiness() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        // Server 0 restarted (new revision), its pod is Ready, but Pinot still has its start in
        // progress: server 1 must not leave routing.
        let s = state(server_pool(&["r2", "r1"], true));
        match decide_upgrade(&registry, &policy, &s, &sharing_servers(true, 0, 0), &drains()) {
            UpgradeDecision::Held(why) => {
                assert!(why.contains("restart-pod c-server-1 waits"), "{why}");
                assert!(why.contains("shutdownInProgress"), "{why}");
            }
            other => panic!("expected the restart to wait, got {other:?}"),
        }
        // Flag cleared, but 3 segments still loading: still waiting.
        match decide_upgrade(&registry, &policy, &s, &sharing_servers(false, 3, 0), &drains()) {
            UpgradeDecision::Held(why) => assert!(why.contains("3 of its segments are not ONLINE"), "{why}"),
            other => panic!("expected the restart to wait, got {other:?}"),
        }
        // Serving again: the next server goes.
        let decision = decide_upgrade(&registry, &policy, &s, &sharing_servers(false, 0, 0), &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-1".into())]));
        // Segments in ERROR on the restarted server stop the upgrade, naming the server.
        match decide_upgrade(&registry, &policy, &s, &sharing_servers(false, 2, 2), &drains()) {
            UpgradeDecision::Blocked(why) => {
                assert!(why.contains("Server_c-server-0") && why.contains("ERROR"), "{why}")
            }
            other => panic!("expected the upgrade to halt, got {other:?}"),
        }
    }

    #[test]
    fn a_controller_restarts_only_while_every_table_has_a_leading_controller() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let mut pool = server_pool(&["r2", "r1"], true);
        pool.name = "controller".into();
        pool.role = Role::Controller;
        for pod in &mut pool.pods {
            pod.name = pod.name.replace("server", "controller");
            pod.instance = None;
        }
        let mut observed = sharing_servers(false, 0, 0);
        if let super::super::observe::PinotObservation::Reachable { leaderless_partitions, .. } = &mut observed.pinot {
            *leaderless_partitions = Some(8);
        }
        match decide_upgrade(&registry, &policy, &state(pool.clone()), &observed, &drains()) {
            UpgradeDecision::Held(why) => assert!(why.contains("8 of Pinot's lead-controller partitions"), "{why}"),
            other => panic!("expected the controller to wait, got {other:?}"),
        }
        let decision = decide_upgrade(&registry, &policy, &state(pool), &sharing_servers(false, 0, 0), &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-controller-1".into())]));
    }

    #[test]
    fn two_servers_sharing_segments_never_leave_routing_in_the_same_step() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let mut pool = server_pool(&["r1", "r1"], true);
        pool.max_unavailable = 2;
        let decision = decide_upgrade(&registry, &policy, &state(pool), &sharing_servers(false, 0, 0), &drains());
        // The policy asks for both; the second waits for the first.
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-1".into())]));
    }

    #[test]
    fn a_pod_not_ready_past_its_timeout_halts_the_upgrade() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let mut pool = server_pool(&["r1", "r2"], true);
        pool.pods[1].ready = false;
        pool.pods[1].age_seconds = 10_000;
        match decide_upgrade(&registry, &policy, &state(pool), &answering(), &drains()) {
            UpgradeDecision::Blocked(why) => assert!(why.contains("c-server-1"), "{why}"),
            other => panic!("expected a halt, got {other:?}"),
        }
    }

    #[test]
    fn with_the_budget_used_up_the_policy_waits_and_a_restart_would_be_refused() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        // One pod restarted and is not ready yet: the budget of 1 is used up, the policy waits.
        let mut pool = server_pool(&["r2", "r1"], false);
        pool.pods[0].ready = false;
        match decide_upgrade(&registry, &policy, &state(pool.clone()), &answering(), &drains()) {
            UpgradeDecision::Wait(why) => assert!(why.contains("c-server-0"), "{why}"),
            other => panic!("expected a wait, got {other:?}"),
        }
        // A restart that would exceed maxUnavailable is what the guardrails refuse.
        let s = state(pool);
        let v = guardrails::check(&s, &[Action::RestartPod("c-server-1".into())]).unwrap_err();
        assert!(v.reason.contains("maxUnavailable"), "{v}");
    }

    #[test]
    fn a_pod_down_on_the_old_revision_is_replaced_first_which_is_how_a_rollback_gets_past_a_broken_pod() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        // The spec went back to r1: pod 2 is stuck on the broken r2 and never became ready.
        let mut pool = server_pool(&["r1", "r1", "r2"], true);
        pool.target_revision = "r1".into();
        pool.pods[2].ready = false;
        pool.pods[2].instance.as_mut().unwrap().live = false;
        let decision = decide_upgrade(&registry, &policy, &state(pool), &answering(), &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-2".into())]));
    }

    #[test]
    fn without_pinot_no_ready_server_restarts_but_one_that_serves_nothing_may() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let down = ObservedCluster { pinot: PinotObservation::Unreachable("connection refused".into()), ..answering() };
        match decide_upgrade(&registry, &policy, &state(server_pool(&["r1", "r1"], true)), &down, &drains()) {
            UpgradeDecision::Wait(why) => {
                assert!(why.contains("restart-pod c-server-1 waits: the Pinot controller does not answer"), "{why}")
            }
            other => panic!("expected the restart held while Pinot does not answer, got {other:?}"),
        }
        // A server stuck on a broken revision serves nothing: the rollback may replace it.
        let mut stuck = server_pool(&["r1", "r1", "r2"], true);
        stuck.target_revision = "r1".into();
        stuck.pods[2].ready = false;
        let decision = decide_upgrade(&registry, &policy, &state(stuck), &down, &drains());
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-2".into())]));
    }

    #[test]
    fn a_server_restarts_only_after_its_drain_period() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let mut s = state(server_pool(&["r1", "r1"], false));
        s.now_unix_seconds = 1_000;
        let mut observed = answering();
        let pod = |at: i64| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "c-server-1", "annotations": {ANNOTATION_QUERIES_DISABLED_AT: at.to_string()}},
            }))
            .unwrap()
        };
        observed.pods.insert("server".into(), vec![pod(998)]);
        let drains = BTreeMap::from([("server".to_string(), 5)]);
        match decide_upgrade(&registry, &policy, &s, &observed, &drains) {
            UpgradeDecision::Wait(why) => assert_eq!(why, "draining queries of pod c-server-1: 3s left"),
            other => panic!("expected the drain to hold the restart, got {other:?}"),
        }
        observed.pods.insert("server".into(), vec![pod(990)]);
        let decision = decide_upgrade(&registry, &policy, &s, &observed, &drains);
        assert_eq!(decision, UpgradeDecision::Act(vec![Action::RestartPod("c-server-1".into())]));
    }

    #[test]
    fn nothing_is_decided_while_a_statefulset_has_not_observed_its_spec() {
        let registry = registry();
        let policy = registry.default_for(PolicyKind::Upgrade);
        let mut observed = answering();
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c-server", "generation": 3},
            "spec": {"selector": {}, "serviceName": "x", "template": {}},
            "status": {"replicas": 2, "observedGeneration": 2},
        }))
        .unwrap();
        observed.statefulsets.insert("server".into(), sts);
        let decision =
            decide_upgrade(&registry, &policy, &state(server_pool(&["r1", "r1"], true)), &observed, &drains());
        assert!(matches!(decision, UpgradeDecision::NotYet(ref m) if m.contains("server")), "{decision:?}");
    }
}
