//! Step 5 of the pipeline: server-side applies every desired object with one field manager,
//! then deletes the cluster's children that are no longer desired (a removed pool's
//! StatefulSet, Services, ConfigMap and PodDisruptionBudget). Only objects that carry this
//! cluster's owner reference are ever deleted; nothing else of the user's is touched.

use std::collections::BTreeSet;

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams},
};

use super::{
    build::{ChildObject, DesiredObjects},
    cache::AppliedChildren,
    observe::ObservedCluster,
};
use crate::children::{ChildApis, ChildKind, FIELD_MANAGER};

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

#[allow(clippy::too_many_arguments)]
pub async fn apply(
    client: &Client,
    apis: &ChildApis,
    applied: &AppliedChildren,
    namespace: &str,
    owner_uid: &str,
    desired: &DesiredObjects,
    observed: &ObservedCluster,
    spec_pools: &BTreeSet<&str>,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    // Only what changed since the operator last applied it (see `AppliedChildren`): a pass
    // that changes nothing writes nothing.
    let due: Vec<&ChildObject> = desired
        .objects
        .iter()
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
        let in_spec = child.pool.as_deref().is_some_and(|p| spec_pools.contains(p));
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
