//! The PinotPolicy controller. It watches PinotPolicies, ConfigMaps labelled
//! [`LABEL_POLICY_MODULE`]` = "true"` (a change reconciles the policies that name them) and,
//! with `--policy-dir`, the files of the operator's policy directory (a change reconciles every
//! policy). Each reconcile reads the policy's module (a ConfigMap's `binaryData`, or a file of
//! the policy directory) and feeds it to the policy registry through
//! [`policy::reload`](crate::policy::reload), which checks its digest, compiles and
//! smoke-tests it and swaps it in; a deleted policy (finalizer) leaves the registry. It writes
//! the PinotPolicy's status (phase, reason, the active module) and publishes `Loaded` and
//! `Rejected` events.
//!
//! All the Kubernetes of policies is here; [`crate::policy`] has none.

use std::{path::PathBuf, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::ConfigMap, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType},
        finalizer::{self, Event as Finalizer},
        reflector::ObjectRef,
        watcher,
    },
};
use pinot_crds::{PinotPolicy, PinotPolicyStatus};
use serde_json::json;

use crate::{
    children::FIELD_MANAGER,
    policy::{
        PolicyRegistry,
        reload::{self, Candidate, Rejection, Reloaded},
    },
};

/// Label a ConfigMap carries when it holds policy modules, so the operator watches it.
pub const LABEL_POLICY_MODULE: &str = "pinot.controlplane.dev/policy-module";
const FINALIZER: &str = "pinot.controlplane.dev/policy";

#[derive(Clone, Debug, Default)]
pub struct PolicyControllerConfig {
    pub namespace: Option<String>,
    /// The operator's policy directory; PinotPolicies may name files in it.
    pub policy_dir: Option<PathBuf>,
}

struct Ctx {
    client: Client,
    registry: Arc<PolicyRegistry>,
    events: crate::events::EventPublisher,
    policy_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing PinotPolicy status: {0}")]
    Status(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// Runs the PinotPolicy controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    registry: Arc<PolicyRegistry>,
    config: PolicyControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (policies, cms) = match &config.namespace {
        Some(ns) => {
            (Api::<PinotPolicy>::namespaced(client.clone(), ns), Api::<ConfigMap>::namespaced(client.clone(), ns))
        }
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let events = crate::events::EventPublisher::new(client.clone(), crate::events::CONTROLLER);
    let ctx = Arc::new(Ctx { client, registry, events, policy_dir: config.policy_dir.clone() });
    let controller = Controller::new(policies, watcher::Config::default());
    let store = controller.store();
    let module_cms = watcher::Config::default().labels(&format!("{LABEL_POLICY_MODULE}=true"));
    let mut controller = controller.watches(cms, module_cms, move |cm| {
        let (ns, name) = (cm.namespace(), cm.name_any());
        store
            .state()
            .into_iter()
            .filter(|p| p.namespace() == ns && p.spec.module.config_map.as_ref().is_some_and(|c| c.name == name))
            .map(|p| ObjectRef::from_obj(&*p))
            .collect::<Vec<_>>()
    });
    if let Some(dir) = &config.policy_dir {
        match reload::directory_changes(dir) {
            Ok(changes) => controller = controller.reconcile_all_on(changes),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch the policy directory; its files load at start only")
            }
        }
    }
    controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx).for_each(|_| async {}).await;
}

fn error_policy(policy: Arc<PinotPolicy>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(policy = %policy.name_any(), error = %error, "PinotPolicy reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

async fn reconcile(policy: Arc<PinotPolicy>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::metrics::timed("PinotPolicy", reconcile_policy(policy, ctx), |_| "reconcile").await
}

async fn reconcile_policy(policy: Arc<PinotPolicy>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let api: Api<PinotPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer::finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            Finalizer::Apply(p) => apply(p, ctx.clone()).await,
            Finalizer::Cleanup(p) => {
                ctx.registry.remove(&ns, &p.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(policy: Arc<PinotPolicy>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let outcome = match candidate(&policy, &ctx).await {
        Err(rejection) => Err(rejection),
        Ok(candidate) => reload::reload(&ctx.registry, &ns, &name, candidate).await,
    };
    let active = ctx.registry.get(&ns, &name);
    let mut status = PinotPolicyStatus { observed_generation: policy.metadata.generation, ..Default::default() };
    if let Some(a) = &active {
        status.digest = Some(a.policy.digest.clone());
        status.policy_name = Some(a.policy.info.name.clone());
        status.policy_version = Some(a.policy.info.version.clone());
        status.api_version = Some(a.policy.info.api_version.clone());
        status.loaded_at = Timestamp::try_from(a.loaded_at).ok().map(|t| t.to_string());
    }
    match &outcome {
        Ok(reloaded) => {
            status.phase = Some("Ready".into());
            status.message =
                active.as_ref().map(|a| format!("{} {} is active", a.policy.info.name, a.policy.info.version));
            let installed = *reloaded == Reloaded::Installed;
            if installed {
                crate::metrics::inc("pinot_operator_policy_reloads_total", &[("result", "loaded")]);
            }
            if installed && let Some(a) = &active {
                let note = format!("loaded {} {} ({})", a.policy.info.name, a.policy.info.version, a.policy.digest);
                publish(&ctx, &policy, EventType::Normal, "Loaded", note).await;
            }
        }
        Err(rejection) => {
            crate::metrics::inc("pinot_operator_policy_reloads_total", &[("result", rejection.reason)]);
            status.phase = Some("Rejected".into());
            status.reason = Some(rejection.reason.into());
            let kept = match &active {
                Some(a) => format!("; the module loaded before ({}) stays active", a.policy.digest),
                None => "; clusters using this policy get no decisions from it until it loads".into(),
            };
            status.message = Some(format!("{}{kept}", rejection.message));
            let previous = policy.status.as_ref().and_then(|s| s.message.clone());
            if previous.as_ref() != status.message.as_ref() {
                publish(&ctx, &policy, EventType::Warning, "Rejected", status.message.clone().unwrap_or_default())
                    .await;
            }
        }
    }
    if policy.status.as_ref() != Some(&status) {
        let api: Api<PinotPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotPolicy", "status": status});
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(Error::Status)?;
    }
    Ok(Action::await_change())
}

/// The policy's module as its spec names it: read from its ConfigMap or from the policy
/// directory, with the kind, digest and configuration the spec gives.
async fn candidate(policy: &PinotPolicy, ctx: &Ctx) -> Result<Candidate, Rejection> {
    let kind = reload::parse_kind(&policy.spec.kind)?;
    let bytes = match (&policy.spec.module.config_map, &policy.spec.module.file) {
        (Some(cm), None) => {
            let ns = policy.namespace().unwrap_or_default();
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
            let map = api
                .get_opt(&cm.name)
                .await
                .map_err(|e| Rejection::not_found(format!("reading ConfigMap {}: {e}", cm.name)))?
                .ok_or_else(|| Rejection::not_found(format!("ConfigMap {ns}/{} does not exist", cm.name)))?;
            let bytes = map.binary_data.as_ref().and_then(|d| d.get(&cm.key)).map(|b| b.0.clone());
            bytes.ok_or_else(|| {
                Rejection::not_found(format!("ConfigMap {ns}/{} has no binaryData key {:?}", cm.name, cm.key))
            })?
        }
        (None, Some(file)) => reload::read_module_file(ctx.policy_dir.as_deref(), file).await?,
        _ => return Err(Rejection::invalid_spec("spec.module must set exactly one of configMap and file")),
    };
    Ok(Candidate {
        kind,
        bytes,
        sha256: policy.spec.sha256.clone(),
        config: policy.spec.config.clone().into_iter().collect(),
    })
}

async fn publish(ctx: &Ctx, policy: &PinotPolicy, type_: EventType, reason: &str, note: String) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: "Load".into(), secondary: None };
    if let Err(e) = ctx.events.publish(&policy.object_ref(&()), &event).await {
        tracing::warn!(error = %e, "publishing event failed");
    }
}
