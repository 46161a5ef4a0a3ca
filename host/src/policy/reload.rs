//! The PinotPolicy controller: reads each policy's module (a ConfigMap's `binaryData`, or a
//! file of the operator's policy directory), checks its digest, compiles and smoke-tests it
//! off the async runtime, swaps it in, and says in the PinotPolicy's status and events what
//! happened. Changes arrive by watch (PinotPolicies, and ConfigMaps labelled
//! `pinot.controlplane.dev/policy-module: "true"`) and, for the policy directory, from
//! `notify`: the `..data` symlink swap of a mounted ConfigMap, atomic renames and in-place
//! writes all end in a rescan, at once when an event says a file is complete (a rename onto
//! its name, a close after writing), otherwise after a short quiet time; reads are ignored
//! (reading the files would otherwise trigger an endless rescan loop).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        finalizer::{self, Event as Finalizer},
        reflector::ObjectRef,
        watcher,
    },
};
use notify::{EventKind, RecursiveMode, Watcher};
use pinot_crds::{PinotPolicy, PinotPolicyStatus};
use serde_json::json;

use super::{PolicyKind, PolicyRegistry};
use crate::children::FIELD_MANAGER;

/// Label a ConfigMap carries when it holds policy modules, so the operator watches it.
pub const LABEL_POLICY_MODULE: &str = "pinot.controlplane.dev/policy-module";
const FINALIZER: &str = "pinot.controlplane.dev/policy";
/// Quiet time after the last file event before the directory is rescanned.
const DEBOUNCE: Duration = Duration::from_millis(20);

#[derive(Clone, Debug, Default)]
pub struct ReloadConfig {
    pub namespace: Option<String>,
    /// The operator's policy directory; PinotPolicies may name files in it.
    pub policy_dir: Option<PathBuf>,
}

struct Ctx {
    client: Client,
    registry: Arc<PolicyRegistry>,
    recorder: Recorder,
    policy_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing PinotPolicy status: {0}")]
    Status(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// A rejected module: the status reason and the message.
struct Rejection {
    reason: &'static str,
    message: String,
}

/// Runs the PinotPolicy controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    registry: Arc<PolicyRegistry>,
    config: ReloadConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (policies, cms) = match &config.namespace {
        Some(ns) => {
            (Api::<PinotPolicy>::namespaced(client.clone(), ns), Api::<ConfigMap>::namespaced(client.clone(), ns))
        }
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let recorder = Recorder::new(client.clone(), Reporter { controller: "pinot-operator".into(), instance: None });
    let ctx = Arc::new(Ctx { client, registry, recorder, policy_dir: config.policy_dir.clone() });
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
        match directory_changes(dir) {
            Ok(changes) => controller = controller.reconcile_all_on(changes),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch the policy directory; its files load at start only")
            }
        }
    }
    controller.graceful_shutdown_on(shutdown).run(reconcile, error_policy, ctx).for_each(|_| async {}).await;
}

/// A stream that yields once per burst of changes in `dir`: at once when an event says a file
/// is complete (a rename onto its name, which is how atomic writes and a mounted ConfigMap's
/// `..data` swap end, or the close of a file written in place), otherwise once the burst has
/// been quiet for `DEBOUNCE`.
pub fn directory_changes(dir: &Path) -> notify::Result<impl Stream<Item = ()> + Send + 'static> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && let Some(change) = Change::of(&event.kind)
        {
            let _ = tx.send(change);
        }
    })?;
    // Recursive: a write through the `..data` symlink lands in a subdirectory.
    watcher.watch(dir, RecursiveMode::Recursive)?;
    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while let Some(first) = rx.recv().await {
            // Debounce until the burst is over, unless a file is known to be complete.
            let mut complete = first == Change::Complete;
            while !complete {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(change)) => complete = change == Change::Complete,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if out_tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(tokio_stream(out_rx))
}

/// What a file event says about the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// A file is complete: renamed onto its name, or closed after writing.
    Complete,
    /// Something changed and more may follow.
    Changing,
}

impl Change {
    /// `None` for events that change nothing: reads (the rescan's own reads would otherwise
    /// trigger an endless rescan loop).
    fn of(kind: &EventKind) -> Option<Change> {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Complete),
            EventKind::Access(_) => None,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Change::Complete),
            _ => Some(Change::Changing),
        }
    }
}

fn tokio_stream(mut rx: tokio::sync::mpsc::UnboundedReceiver<()>) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
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
    let config: Vec<(String, String)> = policy.spec.config.clone().into_iter().collect();
    let outcome = match load_module(&policy, &ctx).await {
        Err(rejection) => Err(rejection),
        Ok((kind, bytes)) => {
            let expected = super::registry::normalise_digest(&policy.spec.sha256);
            let found = super::runtime::digest(&bytes);
            match ctx.registry.get(&ns, &name) {
                // The module changed behind the spec's back: keep what runs.
                _ if found != expected => Err(Rejection {
                    reason: "DigestMismatch",
                    message: super::InstallError::DigestMismatch { expected, found }.to_string(),
                }),
                // Same module: only the configuration may have changed.
                Some(active) if active.policy.digest == expected && active.policy.kind == kind => {
                    if active.config != config {
                        ctx.registry.reconfigure(&ns, &name, config);
                    }
                    Ok(false)
                }
                _ => {
                    let registry = ctx.registry.clone();
                    let (ns2, name2) = (ns.clone(), name.clone());
                    let sha = policy.spec.sha256.clone();
                    // Compiling takes CPU time: keep it off the runtime that serves reconciles.
                    match tokio::task::spawn_blocking(move || {
                        registry.install(&ns2, &name2, kind, &bytes, &sha, config)
                    })
                    .await
                    {
                        Ok(result) => {
                            result.map(|_| true).map_err(|e| Rejection { reason: e.reason(), message: e.to_string() })
                        }
                        Err(e) => {
                            Err(Rejection { reason: "SmokeTestFailed", message: format!("loading panicked: {e}") })
                        }
                    }
                }
            }
        }
    };
    let active = ctx.registry.get(&ns, &name);
    let mut status = PinotPolicyStatus { observed_generation: policy.metadata.generation, ..Default::default() };
    if let Some(a) = &active {
        status.digest = Some(a.policy.digest.clone());
        status.policy_name = Some(a.policy.info.name.clone());
        status.policy_version = Some(a.policy.info.version.clone());
        status.api_version = Some(a.policy.info.api_version.clone());
        status.loaded_at = Some(a.loaded_at.to_string());
    }
    match &outcome {
        Ok(reloaded) => {
            status.phase = Some("Ready".into());
            status.message =
                active.as_ref().map(|a| format!("{} {} is active", a.policy.info.name, a.policy.info.version));
            if *reloaded {
                crate::metrics::inc("pinot_operator_policy_reloads_total", &[("result", "loaded")]);
            }
            if *reloaded && let Some(a) = &active {
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

async fn load_module(policy: &PinotPolicy, ctx: &Ctx) -> Result<(PolicyKind, Vec<u8>), Rejection> {
    let invalid = |message: String| Rejection { reason: "InvalidSpec", message };
    let kind = PolicyKind::parse(&policy.spec.kind)
        .ok_or_else(|| invalid(format!("spec.kind {:?} is not upgrade, scaling or tenant", policy.spec.kind)))?;
    let not_found = |message: String| Rejection { reason: "ModuleNotFound", message };
    match (&policy.spec.module.config_map, &policy.spec.module.file) {
        (Some(cm), None) => {
            let ns = policy.namespace().unwrap_or_default();
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
            let map = api
                .get_opt(&cm.name)
                .await
                .map_err(|e| not_found(format!("reading ConfigMap {}: {e}", cm.name)))?
                .ok_or_else(|| not_found(format!("ConfigMap {ns}/{} does not exist", cm.name)))?;
            let bytes = map.binary_data.as_ref().and_then(|d| d.get(&cm.key)).map(|b| b.0.clone());
            let bytes = bytes
                .ok_or_else(|| not_found(format!("ConfigMap {ns}/{} has no binaryData key {:?}", cm.name, cm.key)))?;
            Ok((kind, bytes))
        }
        (None, Some(file)) => {
            let Some(dir) = &ctx.policy_dir else {
                return Err(not_found("spec.module.file is set but the operator runs without --policy-dir".into()));
            };
            if file.contains('/') || file.starts_with('.') || file.is_empty() {
                return Err(invalid(format!(
                    "spec.module.file {file:?} must be a plain file name in the policy directory"
                )));
            }
            let path = dir.join(file);
            let bytes =
                tokio::fs::read(&path).await.map_err(|e| not_found(format!("reading {}: {e}", path.display())))?;
            Ok((kind, bytes))
        }
        _ => Err(invalid("spec.module must set exactly one of configMap and file".into())),
    }
}

async fn publish(ctx: &Ctx, policy: &PinotPolicy, type_: EventType, reason: &str, note: String) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: "Load".into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&event, &policy.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing event failed");
    }
}

#[cfg(test)]
mod change_tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};

    use super::*;

    #[test]
    fn completed_files_trigger_at_once_writes_in_progress_wait_and_reads_are_ignored() {
        let complete = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        ];
        for kind in complete {
            assert_eq!(Change::of(&kind), Some(Change::Complete), "{kind:?}");
        }
        let changing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(notify::event::RemoveKind::File),
        ];
        for kind in changing {
            assert_eq!(Change::of(&kind), Some(Change::Changing), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert_eq!(Change::of(&kind), None, "{kind:?}");
        }
    }
}
