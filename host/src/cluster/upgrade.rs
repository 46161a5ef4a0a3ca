//! Carries out the upgrade policy's checked actions: restarting a pod (deleting it, guarded by
//! its uid, so its StatefulSet recreates it on the target revision; Pinot's server takes itself
//! out of routing on SIGTERM) and taking a server's queries out of and back into Pinot's
//! routing the way the cluster's release allows (`PinotClient::set_queries_disabled`). Every
//! step is an event; a step that fails is reported and the next reconcile decides again from
//! what it observes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
};

use super::{observe::ObservedCluster, plan::ANNOTATION_QUERIES_DISABLED_AT};
use crate::{
    pinot::PinotClient,
    policy::{Action, guardrails},
};

/// One step carried out, for an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub reason: &'static str,
    pub note: String,
    /// The pod the step is about, so that events about different pods are separate series.
    pub pod: Option<String>,
}

/// Carries out `actions` in order; stops at the first failure.
pub async fn carry_out(
    client: &Client,
    pinot: &PinotClient,
    namespace: &str,
    observed: &ObservedCluster,
    pod_instances: &BTreeMap<String, String>,
    policy: &str,
    actions: &[Action],
) -> (Vec<Step>, Option<String>) {
    // The pod each instance runs in.
    let pod_of = |id: &str| pod_instances.iter().find(|(_, i)| *i == id).map(|(pod, _)| pod.clone());
    let mut done = Vec::new();
    for action in actions {
        let result = match action {
            Action::RestartPod(name) => restart(client, namespace, observed, name).await.map(|revision| Step {
                reason: "RestartedPod",
                note: format!("restarted pod {name} to move it to revision {revision} (upgrade policy {policy})"),
                pod: Some(name.clone()),
            }),
            Action::DisableQueries(id) => {
                // The drain counts from this mark; it is written first, so a crash between the
                // two writes can only make the drain start earlier than Pinot's change, never skip it.
                let pod = pod_of(id);
                let mark = match &pod {
                    Some(pod) => mark_drain(client, namespace, pod).await,
                    None => Ok(()),
                };
                let disabled = match mark {
                    Ok(()) => pinot.set_queries_disabled(id, true).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                disabled.map(|()| Step {
                    reason: "QueriesDisabled",
                    note: format!("disabled queries on {id} before its pod restarts (upgrade policy {policy})"),
                    pod,
                })
            }
            Action::EnableQueries(id) => {
                pinot.set_queries_disabled(id, false).await.map_err(|e| e.to_string()).map(|()| Step {
                    reason: "QueriesEnabled",
                    note: format!(
                        "enabled queries on {id}: it is back, live and on its new revision (upgrade policy {policy})"
                    ),
                    pod: pod_of(id),
                })
            }
            other => Err(format!("{} is not carried out by the upgrade step", guardrails::describe(other))),
        };
        match result {
            Ok(step) => done.push(step),
            Err(e) => return (done, Some(format!("{}: {e}", guardrails::describe(action)))),
        }
    }
    (done, None)
}

/// Marks when the pod's queries were disabled, for the drain period.
async fn mark_drain(client: &Client, namespace: &str, pod: &str) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let now = k8s_openapi::jiff::Timestamp::now().as_second().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_QUERIES_DISABLED_AT: now}}});
    api.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("annotating pod {pod}: {e}"))
}

/// Deletes the pod observed under `name`, only if it is still that pod (same uid): a pod the
/// StatefulSet already recreated is never restarted a second time for the same decision.
async fn restart(client: &Client, namespace: &str, observed: &ObservedCluster, name: &str) -> Result<String, String> {
    let (pool, pod) = observed
        .pods
        .iter()
        .find_map(|(pool, pods)| pods.iter().find(|p| p.name_any() == name).map(|p| (pool, p)))
        .ok_or("the pod is gone")?;
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
        Err(e) => Err(e.to_string()),
    }
}
