//! Step 5 of the pipeline, the only step of a pass that writes: it carries out the [`Plan`]
//! in this order, and returns what it did ([`Applied`]), each step an event:
//!
//! 1. the scaling policy's Pinot steps (tags, rebalances, instance states, drops);
//! 2. the upgrade policy's steps (pod restarts, queries off / on) when no StatefulSet this
//!    pass applies changes its pod template;
//! 3. every desired object, server-side applied with one field manager, then the deletion of
//!    the cluster's children no longer desired (a removed pool's StatefulSet, Services,
//!    ConfigMap and PodDisruptionBudget). Only objects carrying this cluster's owner reference
//!    are ever deleted; nothing else of the user's is touched;
//! 4. the replicas of pools that left the spec;
//! 5. the upgrade steps, if they waited for the apply and it changed no StatefulSet;
//! 6. the tenant policy's tags.
//!
//! A scaling step that fails stops its plan: the pools whose replicas came after it keep
//! their StatefulSets as they are this pass.

mod steps;

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, Preconditions},
    runtime::events::{Event, EventType},
};
use pinot_crds::RebalanceJob;

pub use self::steps::{ScalingOutcome, Step, StepError, servers_digest};
use super::{
    build::{ChildObject, DesiredObjects},
    cache::AppliedChildren,
    observe::ObservedCluster,
    plan::{Plan, TenantPlan},
    tenants::TenantDecision,
};
use crate::{
    children::{ChildApis, ChildKind, FIELD_MANAGER},
    events::EventPublisher,
    policy::Action,
};

/// What apply writes with: the Kubernetes client, the Pinot controller (in `observed`), and
/// where its events go.
pub struct Writer<'a> {
    pub client: &'a Client,
    pub apis: &'a ChildApis,
    /// What the operator applied to each child, to skip what has not changed.
    pub applied: &'a AppliedChildren,
    pub events: &'a EventPublisher,
    /// The PinotCluster every event is about.
    pub cluster: ObjectReference,
    pub namespace: String,
    pub owner_uid: String,
}

impl Writer<'_> {
    /// Publishes an event about the cluster (`related`: the child or pod it is about); a
    /// failure to publish is logged, never fatal.
    pub async fn event(
        &self,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: related };
        if let Err(e) = self.events.publish(&self.cluster, &event).await {
            tracing::warn!(error = %e, reason, "publishing event failed");
        }
    }

    fn reference(&self, api_version: String, kind: String, name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some(api_version),
            kind: Some(kind),
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        }
    }

    fn child_reference(&self, kind: ChildKind, name: &str) -> ObjectReference {
        let resource = self.apis.resource(kind);
        self.reference(resource.api_version, resource.kind, name)
    }

    fn pod_reference(&self, name: &str) -> ObjectReference {
        self.reference("v1".into(), "Pod".into(), name)
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// The children created, updated, deleted, and the writes that failed.
    pub children: ApplyReport,
    /// The scaling steps taken, the rebalances started, the failure that stopped them.
    pub scaling: Option<ScalingOutcome>,
    /// The upgrade steps taken and the failure that stopped them; `None` when none was due.
    pub upgrade: Option<(Vec<Step>, Option<StepError>)>,
    /// Tags and Pinot pools set for tenants, and the failure that stopped them.
    pub tenants: Option<(Vec<String>, Option<StepError>)>,
    /// Instances whose Pinot pools wait for a later pass (they were starting or stopping).
    pub pools_held: Vec<String>,
    /// Replicas of pools that left the spec that could not be set.
    pub leaving_failures: Vec<StepError>,
    /// Pools whose volumes could not be grown (`volumes::expand`), with why: their
    /// StatefulSet is not applied this pass.
    pub expansion_failures: Vec<(String, String)>,
}

impl Applied {
    /// The rebalances the status records: those observed, with those started now.
    pub fn rebalances(&self, observed: &[RebalanceJob]) -> Vec<RebalanceJob> {
        let mut jobs = observed.to_vec();
        for job in self.scaling.iter().flat_map(|s| &s.rebalances) {
            jobs.retain(|j| j.table != job.table);
            jobs.push(job.clone());
        }
        jobs
    }

    /// Whether a step was taken in Pinot, which no watch reports: the next pass should look soon.
    pub fn took_pinot_steps(&self) -> bool {
        self.scaling.as_ref().is_some_and(|s| !s.notes.is_empty())
            || self.tenants.as_ref().is_some_and(|(done, _)| !done.is_empty())
            || !self.pools_held.is_empty()
    }

    /// Whether some write failed.
    pub fn failed(&self) -> bool {
        !self.children.failed.is_empty()
            || !self.leaving_failures.is_empty()
            || self.scaling.as_ref().is_some_and(|s| s.failure.is_some())
            || self.upgrade.as_ref().is_some_and(|(_, f)| f.is_some())
            || self.tenants.as_ref().is_some_and(|(_, f)| f.is_some())
    }
}

/// Step 5: carries out `plan` (see the module doc for the order).
pub async fn apply(w: &Writer<'_>, plan: &Plan<'_>, desired: &DesiredObjects, observed: &ObservedCluster) -> Applied {
    let mut applied = Applied::default();
    if plan.hold.is_some() {
        return applied;
    }
    let Some(controller) = &observed.controller else { return applied };
    let pinot = &controller.client;

    // 1. Scaling's Pinot steps; the replicas of those reached go into the StatefulSets.
    let mut held_back: BTreeSet<&str> = BTreeSet::new();
    if let Some(scaling) = &plan.scaling {
        let mut outcome =
            steps::carry_out_scaling(pinot, &scaling.state, &scaling.rebalances, &scaling.policy, &scaling.actions)
                .await;
        steps::rebalance_by_zone(pinot, &scaling.state, &scaling.rebalances, &scaling.by_zone, &mut outcome).await;
        for note in &outcome.notes {
            w.event(EventType::Normal, "ScalingStep", "Scale", note.clone(), None).await;
        }
        if let Some(failure) = &outcome.failure {
            w.event(EventType::Warning, "ScalingStepFailed", "Scale", failure.to_string(), None).await;
            for a in &scaling.actions {
                if let Action::SetReplicas(s) = a
                    && !outcome.replicas.contains_key(&s.pool)
                {
                    held_back.insert(s.pool.as_str());
                }
            }
        }
        applied.scaling = Some(outcome);
    }

    // 2. Mid-upgrade a pass usually starts because a restarted pod became ready, and every
    // StatefulSet already has the pod template this pass would apply: then the upgrade step
    // goes first (the apply cannot change a revision under it) and the next pod does not wait
    // for the apply's round trips.
    let upgrade_steps = plan.upgrade.as_ref().map(|u| (u.policy.as_str(), u.steps())).filter(|(_, s)| !s.is_empty());
    let early = templates_current(w.applied, desired, observed);
    if let Some((policy, actions)) = upgrade_steps
        && early
    {
        applied.upgrade = Some(upgrade(w, observed, policy, actions).await);
    }

    // 3a. The admin's token Pinot's roles send, before the pods that read it.
    if let Some(admin) = &plan.service_token
        && let Err(why) = write_service_token(w, admin).await
    {
        w.event(EventType::Warning, "ApplyFailed", "Apply", why.clone(), None).await;
        applied.children.failed.push(ApplyError::Apply { kind: "Secret", name: service_token_name(w), message: why });
        // Pods of the roles that read it would not start without it.
        for pool in plan.pools.pools.iter().filter(|p| p.role != crate::role::Role::Broker) {
            held_back.insert(pool.name.as_str());
        }
    }

    // 3b. Pools whose volumes grow: their claims first, then their StatefulSet is replaced
    // (its pods keep running) by the apply below.
    for expansion in &plan.pools.expansions {
        match super::volumes::expand(w.client, &w.namespace, expansion).await {
            Ok(notes) => {
                for note in notes {
                    w.event(EventType::Normal, "VolumeExpanded", "Apply", note, None).await;
                }
            }
            Err(why) => {
                w.event(EventType::Warning, "VolumeExpansionFailed", "Apply", why.clone(), None).await;
                held_back.insert(expansion.pool.as_str());
                applied.expansion_failures.push((expansion.statefulset.clone(), why));
            }
        }
    }

    // 3. The children.
    let due = desired
        .objects
        .iter()
        .filter(|o| !(o.kind == ChildKind::StatefulSet && o.pool.as_deref().is_some_and(|p| held_back.contains(p))));
    applied.children = apply_children(w, due, desired, observed, &plan.keep).await;
    publish_report(w, &applied.children).await;

    // 4. Pools that left the spec.
    for leaving in &plan.leaving {
        let Some(replicas) = leaving.replicas.filter(|_| !held_back.contains(leaving.name.as_str())) else { continue };
        if let Err(e) =
            steps::scale_leaving(w.client, &w.namespace, &leaving.name, &leaving.statefulset, replicas).await
        {
            w.event(EventType::Warning, "ApplyFailed", "Apply", e.to_string(), None).await;
            applied.leaving_failures.push(e);
        }
    }

    // 4b. Pinot's chroot in the managed ensemble, once a quorum serves: neither Pinot nor
    // Helix creates it, and no Pinot role starts without it.
    if let Some(chroot) = &plan.create_chroot {
        let pods = observed.pods.get(super::validate::zookeeper::ENSEMBLE_POOL).map(Vec::as_slice).unwrap_or_default();
        let members = observed.ensemble.clone().unwrap_or_default();
        match super::ensemble::create_chroot(pods, &members, chroot).await {
            Ok(true) => {
                let note =
                    format!("created the znode {chroot} in the ZooKeeper ensemble, under which Pinot keeps its state");
                w.event(EventType::Normal, "ChrootCreated", "Apply", note, None).await;
            }
            Ok(false) => {}
            Err(e) => {
                let note = format!("creating the znode {chroot} in the ZooKeeper ensemble failed: {e}");
                w.event(EventType::Warning, "ChrootFailed", "Apply", note, None).await;
            }
        }
    }

    // 4c. The leader of a shrinking ensemble is the member to leave: restarted on its own
    // revision, so that a member that stays leads (`ensemble::Sizing::move_leader`).
    if let Some(pod) = plan.ensemble.as_ref().and_then(|s| s.move_leader.as_deref())
        && let Some(running) = observed
            .pods
            .get(super::validate::zookeeper::ENSEMBLE_POOL)
            .into_iter()
            .flatten()
            .find(|p| p.name_any() == pod)
    {
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: running.uid(), resource_version: None }),
            ..Default::default()
        };
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(w.client.clone(), &w.namespace);
        match api.delete(pod, &params).await {
            Ok(_) => {
                let note = format!(
                    "restarted ZooKeeper member {pod}, the leader, before it leaves the ensemble: a member that stays takes over"
                );
                w.event(EventType::Normal, "ZookeeperLeaderMoved", "Resize", note, None).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                let note =
                    format!("restarting ZooKeeper member {pod} to move the leadership failed: {}", kube_message(&e));
                w.event(EventType::Warning, "ApplyFailed", "Resize", note, None).await;
            }
        }
    }

    // 5. Otherwise the upgrade steps follow the apply, and wait for the next pass when it
    // changed a StatefulSet: that pass decides from the new revisions.
    let sts_changed =
        applied.children.created.iter().chain(&applied.children.updated).any(|(k, _)| *k == ChildKind::StatefulSet);
    if let Some((policy, actions)) = upgrade_steps
        && !early
        && !sts_changed
        && applied.children.failed.is_empty()
    {
        applied.upgrade = Some(upgrade(w, observed, policy, actions).await);
    }

    // 6. Tenants.
    if let Some(TenantPlan { decision: TenantDecision::Place(placement), .. }) = &plan.tenants {
        // Pools are rewritten with the instance's whole config: not while this pass restarted
        // a pod (its instance may be stopping).
        let restarted = applied.upgrade.as_ref().is_some_and(|(steps, _)| !steps.is_empty());
        let steps::Placed { done, held, failure } = steps::place(pinot, observed, placement, restarted).await;
        applied.pools_held = held;
        for note in &done {
            w.event(EventType::Normal, "TenantPlaced", "PlaceTenants", note.clone(), None).await;
        }
        if let Some(failure) = &failure {
            w.event(EventType::Warning, "TaggingFailed", "PlaceTenants", failure.to_string(), None).await;
        }
        applied.tenants = Some((done, failure));
    }
    applied
}

fn service_token_name(w: &Writer<'_>) -> String {
    super::validate::security::service_token_secret(&w.cluster.name.clone().unwrap_or_default())
}

/// Keeps the Secret `<cluster>-pinot-service-token` holding the admin's basic-auth token
/// (`base64(name:password)`, what Pinot's `StaticTokenAuthProvider` sends after `Basic `),
/// derived from the admin's password Secret: read both, write only when the token differs.
/// Owned by the PinotCluster (deleted with it). A password change reaches the pods at their
/// next restart (environment variables are read at start).
async fn write_service_token(w: &Writer<'_>, admin: &super::validate::security::ValidPrincipal) -> Result<(), String> {
    use base64::Engine as _;
    use k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.namespace);
    let source = secrets
        .get_opt(&admin.password.name)
        .await
        .map_err(|e| format!("reading Secret {}: {}", admin.password.name, kube_message(&e)))?
        .ok_or_else(|| format!("Secret {} does not exist", admin.password.name))?;
    let password = source
        .data
        .as_ref()
        .and_then(|d| d.get(&admin.password.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| format!("Secret {} has no key {:?}", admin.password.name, admin.password.key))?;
    let token = crate::access::basic_auth_header(admin.name.as_bytes(), &password);
    let name = service_token_name(w);
    let current = secrets.get_opt(&name).await.map_err(|e| format!("reading Secret {name}: {}", kube_message(&e)))?;
    let key = super::validate::security::SERVICE_TOKEN_KEY;
    if current.and_then(|s| s.data).and_then(|d| d.get(key).cloned()).is_some_and(|t| t.0 == token.as_bytes()) {
        return Ok(());
    }
    let owner = serde_json::json!({
        "apiVersion": w.cluster.api_version, "kind": w.cluster.kind, "name": w.cluster.name,
        "uid": w.owner_uid, "controller": true, "blockOwnerDeletion": true,
    });
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": w.namespace, "ownerReferences": [owner],
            "labels": {crate::children::LABEL_MANAGED_BY: crate::children::MANAGED_BY,
                       crate::children::LABEL_CLUSTER: w.cluster.name}},
        "type": "Opaque",
        "data": {key: base64::engine::general_purpose::STANDARD.encode(&token)},
    });
    secrets
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret))
        .await
        .map_err(|e| format!("writing Secret {name}: {}", kube_message(&e)))?;
    w.event(
        EventType::Normal,
        "Updated",
        "Apply",
        format!("wrote Secret {name}: the admin's basic-auth token for Pinot's roles"),
        None,
    )
    .await;
    Ok(())
}

/// The upgrade policy's steps, each an event about its pod.
async fn upgrade(
    w: &Writer<'_>,
    observed: &ObservedCluster,
    policy: &str,
    actions: &[Action],
) -> (Vec<Step>, Option<StepError>) {
    let Some(controller) = &observed.controller else { return (vec![], None) };
    let (steps, failure) =
        steps::carry_out_upgrade(w.client, &controller.client, &w.namespace, observed, policy, actions).await;
    for step in &steps {
        let related = step.pod.as_deref().map(|pod| w.pod_reference(pod));
        w.event(EventType::Normal, step.reason, "Upgrade", step.note.clone(), related).await;
    }
    if let Some(failure) = &failure {
        w.event(EventType::Warning, "UpgradeStepFailed", "Upgrade", failure.to_string(), None).await;
    }
    (steps, failure)
}

/// One event per kind of change, related to the first object it names.
async fn publish_report(w: &Writer<'_>, report: &ApplyReport) {
    for (list, reason, verb) in [
        (&report.created, "Created", "created"),
        (&report.updated, "Updated", "updated"),
        (&report.deleted, "Deleted", "deleted"),
    ] {
        if let Some(note) = change_note(verb, list) {
            let related = list.first().map(|(kind, name)| w.child_reference(*kind, name));
            w.event(EventType::Normal, reason, "Apply", note, related).await;
        }
    }
    for failure in &report.failed {
        w.event(EventType::Warning, "ApplyFailed", "Apply", failure.to_string(), None).await;
    }
}

/// How many applies of one pass are in flight at once.
const APPLY_CONCURRENCY: usize = 8;

/// What applying changed, for events and status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyReport {
    pub created: Vec<(ChildKind, String)>,
    pub updated: Vec<(ChildKind, String)>,
    pub deleted: Vec<(ChildKind, String)>,
    pub failed: Vec<ApplyError>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApplyError {
    #[error("applying {kind} {name}: {message}")]
    Apply { kind: &'static str, name: String, message: String },
    #[error("deleting {kind} {name}: {message}")]
    Delete { kind: &'static str, name: String, message: String },
}

impl ApplyError {
    /// The object the write was about: `StatefulSet analytics-servers`.
    pub fn subject(&self) -> String {
        match self {
            ApplyError::Apply { kind, name, .. } | ApplyError::Delete { kind, name, .. } => format!("{kind} {name}"),
        }
    }
}

/// Server-side applies `due` (what changed since the operator last applied it, see
/// `AppliedChildren`: a pass that changes nothing writes nothing), then deletes the children of
/// pools not in `keep` that `desired` no longer has.
async fn apply_children<'o>(
    w: &Writer<'_>,
    due: impl Iterator<Item = &'o ChildObject>,
    desired: &DesiredObjects,
    observed: &ObservedCluster,
    keep: &BTreeSet<String>,
) -> ApplyReport {
    let (client, apis, applied, namespace, owner_uid) =
        (w.client, w.apis, w.applied, w.namespace.as_str(), w.owner_uid.as_str());
    let mut report = ApplyReport::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    // Only what changed since the operator last applied it (see `AppliedChildren`): a pass
    // that changes nothing writes nothing.
    let due: Vec<&ChildObject> = due
        .filter(|object| {
            let unchanged = unchanged_since_applied(applied, object, observed);
            if !unchanged {
                let version = observed.child(object.kind, &object.name).map(|l| &l.applied_version);
                tracing::debug!(kind = object.kind.as_str(), name = %object.name, ?version, digest = object.digest, "applying");
            }
            !unchanged
        })
        .collect();
    // Several applies at once (their round trips add up), in order of the results. Each is
    // remembered as soon as it returns, so that its watch event is known as its echo.
    let applies: Vec<_> = due
        .iter()
        .map(|object| async {
            let meta = apply_one(client, apis, namespace, object, &params).await?;
            let known = applied.remember(&meta, object.digest);
            Ok::<_, kube::Error>((meta, known))
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(applies).buffered(APPLY_CONCURRENCY).collect().await;
    for (object, result) in due.into_iter().zip(results) {
        match result {
            Ok((meta, known)) => {
                match observed.child(object.kind, &object.name) {
                    // Not seen yet, but applied before: the watch has not caught up.
                    None if known => {}
                    None => report.created.push((object.kind, object.name.clone())),
                    Some(old) if old.changed_by(meta.generation, meta.resource_version.as_deref()) => {
                        report.updated.push((object.kind, object.name.clone()))
                    }
                    Some(_) => {}
                }
            }
            Err(e) => report.failed.push(ApplyError::Apply {
                kind: object.kind.as_str(),
                name: object.name.clone(),
                message: kube_message(&e),
            }),
        }
    }

    for child in &observed.children {
        // Only objects of pools gone from the spec are deleted: a pool the plan leaves alone
        // this time (a refused storage change, a later role waiting for its turn to install)
        // keeps what it has.
        let in_spec = child.pool.as_deref().is_some_and(|p| keep.contains(p));
        if in_spec || desired.contains(child.kind, &child.name) || !child.owner_uids.iter().any(|u| u == owner_uid) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &apis.resource(child.kind));
        match api.delete(&child.name, &DeleteParams::background()).await {
            Ok(_) => {
                if let Some(uid) = &child.uid {
                    applied.forget(uid);
                }
                report.deleted.push((child.kind, child.name.clone()))
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => report.failed.push(ApplyError::Delete {
                kind: child.kind.as_str(),
                name: child.name.clone(),
                message: kube_message(&e),
            }),
        }
    }
    report
}

async fn apply_one(
    client: &Client,
    apis: &ChildApis,
    namespace: &str,
    object: &ChildObject,
    params: &PatchParams,
) -> Result<ObjectMeta, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &apis.resource(object.kind));
    let applied = api.patch(&object.name, params, &Patch::Apply(&object.object)).await?;
    Ok(applied.metadata)
}

/// Whether the live child is the one the operator applied from this very desired object, and
/// nobody has changed it since.
fn unchanged_since_applied(applied: &AppliedChildren, object: &ChildObject, observed: &ObservedCluster) -> bool {
    let live = observed.child(object.kind, &object.name);
    live.is_some_and(|l| l.uid.as_deref().is_some_and(|uid| applied.unchanged(uid, &l.applied_version, object.digest)))
}

/// Whether every StatefulSet this pass would apply exists already with the pod template it
/// would get, so that applying cannot start a new revision: the operator applied it from this
/// very object and nobody has changed it since. (After a restart the operator does not know
/// yet: the apply goes first, and changes nothing.)
pub fn templates_current(applied: &AppliedChildren, desired: &DesiredObjects, observed: &ObservedCluster) -> bool {
    desired
        .objects
        .iter()
        .filter(|o| o.kind == ChildKind::StatefulSet)
        .all(|o| unchanged_since_applied(applied, o, observed))
}

/// The apiserver's own message when there is one: it names the field it refused.
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Longest note an event may carry (events.k8s.io rejects notes over 1 KiB).
const NOTE_LIMIT: usize = 1024;

/// One event's note for everything a pass created (updated, deleted): `created StatefulSet
/// a, Service b, ...`, cut short with `and N more` so it stays within the API's limit. One
/// event per pass rather than one per object keeps an install of a thousand clusters from
/// writing tens of thousands of events.
pub fn change_note(verb: &str, changed: &[(ChildKind, String)]) -> Option<String> {
    if changed.is_empty() {
        return None;
    }
    let tail = if verb == "deleted" { ": no longer in the spec" } else { "" };
    let mut note = format!("{verb} ");
    for (i, (kind, name)) in changed.iter().enumerate() {
        let item = format!("{}{} {name}", if i == 0 { "" } else { ", " }, kind.as_str());
        let more = format!(" and {} more", changed.len() - i);
        if note.len() + item.len() + tail.len() + more.len() + 8 > NOTE_LIMIT {
            note.push_str(&more);
            break;
        }
        note.push_str(&item);
    }
    note.push_str(tail);
    Some(note)
}

#[cfg(test)]
mod tests {
    use crate::cluster::observe::ObservedChild;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::{
        children::PdbVersion,
        cluster::{
            build::{BuildContext, build_cluster},
            fixtures,
            validate::validate,
        },
    };

    #[test]
    fn templates_are_current_only_when_every_statefulset_is_as_the_operator_applied_it() {
        let valid = validate(&fixtures::example()).unwrap();
        let pools: Vec<_> = valid.pools.iter().collect();
        let ctx = BuildContext {
            owner: OwnerReference::default(),
            pdb_version: PdbVersion::V1,
            replicas: Default::default(),
            ensemble: None,
            restarts: Default::default(),
        };
        let desired = build_cluster(&valid, &pools, &ctx);
        let mut observed = ObservedCluster::default();
        let applied = AppliedChildren::default();
        // Nothing exists yet.
        assert!(!templates_current(&applied, &desired, &observed));
        let statefulsets: Vec<&ChildObject> =
            desired.objects.iter().filter(|o| o.kind == ChildKind::StatefulSet).collect();
        for (i, object) in statefulsets.iter().enumerate() {
            observed.children.push(ObservedChild {
                kind: ChildKind::StatefulSet,
                name: object.name.clone(),
                uid: Some(format!("uid-{i}")),
                resource_version: Some("1".into()),
                applied_version: crate::cluster::cache::applied_version(&applied_meta(i)),
                generation: Some(1),
                owner_uids: vec![],
                pool: object.pool.clone(),
            });
        }
        // They exist, but this operator has not applied them (it just started): not known.
        assert!(!templates_current(&applied, &desired, &observed));
        for (i, object) in statefulsets.iter().enumerate() {
            applied.remember(&applied_meta(i), object.digest);
        }
        assert!(templates_current(&applied, &desired, &observed));
        // Someone changed one since (its generation moved): apply first.
        observed.children[0].applied_version = "g2/0".into();
        assert!(!templates_current(&applied, &desired, &observed));
        observed.children[0].applied_version = "g1/0".into();
        // The desired object changed (a new image): apply first.
        let mut changed = valid.clone();
        changed.pools[0].image = "apachepinot/pinot:9.9.9".into();
        let changed_pools: Vec<_> = changed.pools.iter().collect();
        let desired = build_cluster(&changed, &changed_pools, &ctx);
        assert!(!templates_current(&applied, &desired, &observed));
    }

    /// What an apply of the `i`th StatefulSet returned.
    fn applied_meta(i: usize) -> ObjectMeta {
        ObjectMeta {
            uid: Some(format!("uid-{i}")),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn one_note_names_every_changed_object_within_the_limit() {
        assert_eq!(change_note("created", &[]), None);
        let few = [(ChildKind::StatefulSet, "qs-broker".to_string()), (ChildKind::Service, "qs-broker".to_string())];
        assert_eq!(change_note("created", &few).unwrap(), "created StatefulSet qs-broker, Service qs-broker");
        assert_eq!(change_note("deleted", &few[..1]).unwrap(), "deleted StatefulSet qs-broker: no longer in the spec");
        let many: Vec<_> =
            (0..100).map(|i| (ChildKind::ConfigMap, format!("a-long-cluster-name-pool-{i:03}"))).collect();
        let note = change_note("deleted", &many).unwrap();
        assert!(note.len() <= NOTE_LIMIT, "{} bytes", note.len());
        assert!(
            note.starts_with("deleted ConfigMap a-long-cluster-name-pool-000, ConfigMap a-long-cluster-name-pool-001")
        );
        let shown = note.matches("ConfigMap ").count();
        assert!(note.ends_with(&format!(" and {} more: no longer in the spec", 100 - shown)), "{note}");
    }
}
