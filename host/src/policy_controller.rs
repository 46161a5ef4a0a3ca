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

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    jiff::Timestamp,
};
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
use pinot_crds::{ClusterPinotPolicy, PinotPolicy, PinotPolicySpec, PinotPolicyStatus};
use serde_json::json;

use crate::{
    children::FIELD_MANAGER,
    policy::{
        PolicyRegistry,
        oci::{self, PinnedReference, Registries, RegistrySettings},
        registry::CLUSTER_SCOPE,
        reload::{self, Candidate, Rejection, Reloaded},
        signature,
    },
};

/// Label a ConfigMap carries when it holds policy modules, so the operator watches it.
pub const LABEL_POLICY_MODULE: &str = "pinot.controlplane.dev/policy-module";
const FINALIZER: &str = "pinot.controlplane.dev/policy";

#[derive(Clone, Debug, Default)]
pub struct PolicyControllerConfig {
    pub namespace: Option<String>,
    /// Where modules come from besides ConfigMaps.
    pub sources: PolicySources,
}

/// Where the operator reads policy modules from, besides ConfigMaps.
#[derive(Clone, Debug, Default)]
pub struct PolicySources {
    /// The operator's policy directory; PinotPolicies may name files in it.
    pub dir: Option<PathBuf>,
    /// How OCI registries are reached (and the module size limit, for every source).
    pub registries: RegistrySettings,
    /// The operator's namespace: ClusterPinotPolicies read their ConfigMaps and pull secrets
    /// from it.
    pub platform_namespace: Option<String>,
    /// A directory of PEM public keys (a mounted ConfigMap or Secret): when set, OCI modules
    /// load only with a cosign signature by one of them, and ConfigMap modules not at all.
    pub trusted_keys: Option<PathBuf>,
    /// Whether ClusterPinotPolicies are loaded (the operator does; tests that run several
    /// operators at once give them to one).
    pub cluster_wide: bool,
}

impl PolicySources {
    /// Only a policy directory (or none), registries as by default.
    pub fn dir(dir: Option<PathBuf>) -> Self {
        PolicySources { dir, ..Default::default() }
    }
}

/// The registry client; `pinot-operator run` has checked the settings, so a failure here
/// (a CA that does not parse) only drops the extra certificates, loudly.
fn registries(settings: &RegistrySettings) -> Registries {
    Registries::new(settings.clone()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "registries: the extra CA certificates are not used");
        let plain = RegistrySettings { extra_roots_pem: vec![], ..settings.clone() };
        Registries::new(plain).unwrap_or_else(|e| panic!("a registry client without extra certificates: {e}"))
    })
}

struct Ctx {
    client: Client,
    registry: Arc<PolicyRegistry>,
    events: crate::events::EventPublisher,
    reader: ModuleReader,
    /// The artifact each policy's module was pulled from, by module digest, so the status names
    /// the artifact of the module that is active (which is the previous one after a rejection).
    artifacts: Mutex<HashMap<(String, String), Provenance>>,
    /// The module of each policy unloaded because no trusted signature vouches for it any
    /// more, until another loads: every later status says why the policy has none.
    revoked: Mutex<HashMap<(String, String), String>>,
}

/// Reads a policy's module from where its spec says, checked as the operator checks it.
pub struct ModuleReader {
    pub client: Client,
    pub policy_dir: Option<PathBuf>,
    /// The operator's namespace, where ClusterPinotPolicies' ConfigMaps and pull secrets are.
    pub platform_namespace: Option<String>,
    pub registries: Registries,
    /// The directory of public keys modules must be signed by (none: no signatures checked).
    pub trusted_keys: Option<PathBuf>,
}

impl ModuleReader {
    pub fn new(client: Client, sources: &PolicySources) -> Self {
        ModuleReader {
            client,
            policy_dir: sources.dir.clone(),
            platform_namespace: sources.platform_namespace.clone(),
            registries: registries(&sources.registries),
            trusted_keys: sources.trusted_keys.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing PinotPolicy status: {0}")]
    Status(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// What the controller needs of a PinotPolicy or a ClusterPinotPolicy: one spec, one status,
/// one way to load; they differ in where they are kept and where they read from.
pub trait PolicyObject:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    fn spec(&self) -> &PinotPolicySpec;
    fn status(&self) -> Option<&PinotPolicyStatus>;
    /// The namespace it is kept under in the registry ([`CLUSTER_SCOPE`] for a cluster policy).
    fn scope(&self) -> String;
    /// The namespace its ConfigMap and pull secret are read from.
    fn home(&self, reader: &ModuleReader) -> Option<String>;
    fn api(&self, client: Client) -> Api<Self>;
}

impl PolicyObject for PinotPolicy {
    const KIND: &'static str = "PinotPolicy";
    fn spec(&self) -> &PinotPolicySpec {
        &self.spec
    }
    fn status(&self) -> Option<&PinotPolicyStatus> {
        self.status.as_ref()
    }
    fn scope(&self) -> String {
        self.namespace().unwrap_or_default()
    }
    fn home(&self, _reader: &ModuleReader) -> Option<String> {
        self.namespace()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl PolicyObject for ClusterPinotPolicy {
    const KIND: &'static str = "ClusterPinotPolicy";
    fn spec(&self) -> &PinotPolicySpec {
        &self.spec.policy
    }
    fn status(&self) -> Option<&PinotPolicyStatus> {
        self.status.as_ref()
    }
    fn scope(&self) -> String {
        CLUSTER_SCOPE.to_string()
    }
    fn home(&self, reader: &ModuleReader) -> Option<String> {
        reader.platform_namespace.clone()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

/// Runs the PinotPolicy and ClusterPinotPolicy controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    registry: Arc<PolicyRegistry>,
    config: PolicyControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let (policies, cms) = match &config.namespace {
        Some(ns) => {
            (Api::<PinotPolicy>::namespaced(client.clone(), ns), Api::<ConfigMap>::namespaced(client.clone(), ns))
        }
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let events = crate::events::EventPublisher::new(client.clone(), crate::events::CONTROLLER);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        registry,
        events,
        reader: ModuleReader::new(client.clone(), &config.sources),
        artifacts: Mutex::default(),
        revoked: Mutex::default(),
    });
    let module_cms = || watcher::Config::default().labels(&format!("{LABEL_POLICY_MODULE}=true"));

    let namespaced = Controller::new(policies, watcher::Config::default());
    let store = namespaced.store();
    // Once every PinotPolicy is known, a cluster whose namespace has none of a name may fall
    // back to the ClusterPinotPolicy of that name.
    let (known, registry) = (store.clone(), ctx.registry.clone());
    tokio::spawn(async move {
        if crate::store_ready(&known).await {
            registry.declare_all(known.state().iter().map(|p| (p.namespace().unwrap_or_default(), p.name_any())));
        }
    });
    let mut namespaced = namespaced.watches(cms, module_cms(), move |cm| {
        let (ns, name) = (cm.namespace(), cm.name_any());
        store
            .state()
            .into_iter()
            .filter(|p| p.namespace() == ns && p.spec.module.config_map.as_ref().is_some_and(|c| c.name == name))
            .map(|p| ObjectRef::from_obj(&*p))
            .collect::<Vec<_>>()
    });

    let cluster_wide_enabled = config.sources.cluster_wide;
    let cluster_wide = Controller::new(Api::<ClusterPinotPolicy>::all(client.clone()), watcher::Config::default());
    let cluster_store = cluster_wide.store();
    let platform_cms: Api<ConfigMap> = match &config.sources.platform_namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let platform = config.sources.platform_namespace.clone();
    let mut cluster_wide = cluster_wide.watches(platform_cms, module_cms(), move |cm| {
        let name = cm.name_any();
        let mine = platform.is_some() && cm.namespace() == platform;
        cluster_store
            .state()
            .into_iter()
            .filter(|p| mine && p.spec.policy.module.config_map.as_ref().is_some_and(|c| c.name == name))
            .map(|p| ObjectRef::from_obj(&*p))
            .collect::<Vec<_>>()
    });

    // A change in the policy directory, or of the trusted keys (every OCI module's verdict),
    // reconciles every policy.
    let watched = [
        (&config.sources.dir, "the policy directory; its files load at start only"),
        (&config.sources.trusted_keys, "the trusted keys; they are read again at each policy's change"),
    ];
    for (dir, unwatched) in watched.into_iter().filter_map(|(dir, why)| Some((dir.as_ref()?, why))) {
        for is_namespaced in [true, false].into_iter().filter(|n| *n || cluster_wide_enabled) {
            match reload::directory_changes(dir) {
                Ok(changes) if is_namespaced => namespaced = namespaced.reconcile_all_on(changes),
                Ok(changes) => cluster_wide = cluster_wide.reconcile_all_on(changes),
                Err(e) => tracing::error!(dir = %dir.display(), error = %e, "cannot watch {unwatched}"),
            }
        }
    }
    tokio::join!(
        namespaced
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile::<PinotPolicy>, error_policy::<PinotPolicy>, ctx.clone())
            .for_each(|_| async {}),
        async move {
            if cluster_wide_enabled {
                cluster_wide
                    .graceful_shutdown_on(shutdown)
                    .run(reconcile::<ClusterPinotPolicy>, error_policy::<ClusterPinotPolicy>, ctx)
                    .for_each(|_| async {})
                    .await;
            }
        },
    );
}

fn error_policy<P: PolicyObject>(policy: Arc<P>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(kind = P::KIND, policy = %policy.name_any(), error = %error, "policy reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

async fn reconcile<P: PolicyObject>(policy: Arc<P>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::metrics::timed(P::KIND, reconcile_policy(policy, ctx), |_| "reconcile").await
}

async fn reconcile_policy<P: PolicyObject>(policy: Arc<P>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let scope = policy.scope();
    let api = policy.api(ctx.client.clone());
    finalizer::finalizer(&api, FINALIZER, policy, |event| async {
        match event {
            Finalizer::Apply(p) => apply(p, ctx.clone()).await,
            Finalizer::Cleanup(p) => {
                ctx.registry.remove(&scope, &p.name_any());
                ctx.artifacts.lock().unwrap_or_else(|e| e.into_inner()).remove(&(scope.clone(), p.name_any()));
                ctx.revoked.lock().unwrap_or_else(|e| e.into_inner()).remove(&(scope.clone(), p.name_any()));
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply<P: PolicyObject>(policy: Arc<P>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = policy.scope();
    let name = policy.name_any();
    if ns != CLUSTER_SCOPE {
        ctx.registry.declare(&ns, &name);
    }
    let mut retry = false;
    let outcome = match candidate(&*policy, &ctx.reader).await {
        Err(Fetch { rejection, transient, untrusted }) => {
            retry = transient;
            // A key revoked (or a signature deleted) takes the module it vouched for out of
            // service: keeping it as "the last good one" would keep an untrusted module deciding.
            if let Some(module) = untrusted
                && ctx.registry.get(&ns, &name).is_some_and(|a| a.policy.digest == module)
            {
                ctx.registry.unload(&ns, &name);
                ctx.revoked.lock().unwrap_or_else(|e| e.into_inner()).insert((ns.clone(), name.clone()), module);
            }
            Err(rejection)
        }
        Ok((candidate, provenance)) => {
            let reloaded = reload::reload(&ctx.registry, &ns, &name, candidate).await;
            // The artifact is recorded once its module is the active one; a module from a
            // ConfigMap or file has none.
            if reloaded.is_ok() {
                ctx.revoked.lock().unwrap_or_else(|e| e.into_inner()).remove(&(ns.clone(), name.clone()));
                let mut artifacts = ctx.artifacts.lock().unwrap_or_else(|e| e.into_inner());
                match provenance {
                    Some(artifact) => artifacts.insert((ns.clone(), name.clone()), artifact),
                    None => artifacts.remove(&(ns.clone(), name.clone())),
                };
            }
            reloaded
        }
    };
    let active = ctx.registry.get(&ns, &name);
    let unloaded = ctx.revoked.lock().unwrap_or_else(|e| e.into_inner()).get(&(ns.clone(), name.clone())).cloned();
    let mut status = PinotPolicyStatus { observed_generation: policy.meta().generation, ..Default::default() };
    if let Some(a) = &active {
        let artifacts = ctx.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        let provenance =
            artifacts.get(&(ns.clone(), name.clone())).filter(|p| p.module_digest == a.policy.digest).cloned();
        status.artifact = provenance.as_ref().map(|p| p.artifact.clone());
        status.signed_by = provenance.and_then(|p| p.signed_by);
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
                publish(&ctx, &*policy, EventType::Normal, "Loaded", note).await;
            }
        }
        Err(rejection) => {
            crate::metrics::inc("pinot_operator_policy_reloads_total", &[("result", rejection.reason)]);
            status.phase = Some("Rejected".into());
            status.reason = Some(rejection.reason.into());
            let kept = match (&active, &unloaded) {
                (Some(a), _) => format!("; the module loaded before ({}) stays active", a.policy.digest),
                (None, Some(module)) => format!(
                    "; the active module {module} was unloaded (no trusted signature vouches for it): clusters using this policy get no decisions from it until a trusted module loads"
                ),
                (None, None) => "; clusters using this policy get no decisions from it until it loads".into(),
            };
            status.message = Some(format!("{}{kept}", rejection.message));
            let previous = policy.status().and_then(|s| s.message.clone());
            if previous.as_ref() != status.message.as_ref() {
                publish(&ctx, &*policy, EventType::Warning, "Rejected", status.message.clone().unwrap_or_default())
                    .await;
            }
        }
    }
    if policy.status() != Some(&status) {
        let api = policy.api(ctx.client.clone());
        let patch = json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": P::KIND, "status": status});
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(Error::Status)?;
    }
    // A registry that failed is asked again; anything else waits for a change of the policy.
    Ok(if retry { Action::requeue(ctx.reader.registries.settings().retry) } else { Action::await_change() })
}

/// Loads `policy`'s module into `registry` as the operator does (its digest, size, signature
/// and smoke test checked); the reason it is rejected otherwise.
pub async fn load<P: PolicyObject>(
    reader: &ModuleReader,
    registry: &Arc<PolicyRegistry>,
    policy: &P,
) -> Result<(), Rejection> {
    let (candidate, _) = candidate(policy, reader).await.map_err(|f| f.rejection)?;
    reload::reload(registry, &policy.scope(), &policy.name_any(), candidate).await.map(|_| ())
}

/// Where an OCI module came from and who signed it.
#[derive(Clone, Debug)]
struct Provenance {
    module_digest: String,
    artifact: String,
    signed_by: Option<String>,
}

/// Why a policy's module could not be read, and whether reading it again later may succeed.
struct Fetch {
    rejection: Rejection,
    transient: bool,
    /// The module whose signature no trusted key vouches for (any more): if it is the active
    /// one, it is unloaded.
    untrusted: Option<String>,
}

impl From<Rejection> for Fetch {
    fn from(rejection: Rejection) -> Self {
        Fetch { rejection, transient: false, untrusted: None }
    }
}

impl From<oci::PullError> for Fetch {
    fn from(e: oci::PullError) -> Self {
        Fetch {
            transient: e.is_transient(),
            rejection: Rejection { reason: e.reason(), message: e.to_string() },
            untrusted: None,
        }
    }
}

/// The policy's module as its spec names it: read from its ConfigMap, from the policy
/// directory or from its registry, with the kind, digest and configuration the spec gives;
/// and, for an OCI module, its digest and the artifact it came from.
async fn candidate<P: PolicyObject>(policy: &P, ctx: &ModuleReader) -> Result<(Candidate, Option<Provenance>), Fetch> {
    let spec = policy.spec();
    let kind = reload::parse_kind(&spec.kind)?;
    let module = &spec.module;
    let reviewed = spec.sha256.clone().filter(|s| !s.trim().is_empty());
    let home = || {
        policy.home(ctx).ok_or_else(|| {
            Rejection::not_found(format!(
                "a {} reads its configMap and pullSecret from the operator's namespace, which the operator does not know: run it with --operator-namespace (or POD_NAMESPACE)",
                P::KIND
            ))
        })
    };
    let mut pulled_from = None;
    let (bytes, sha256) = match (&module.config_map, &module.file, &module.oci) {
        (Some(cm), None, None) => {
            if let Some(dir) = &ctx.trusted_keys {
                return Err(Rejection {
                    reason: "SignatureRequired",
                    message: format!(
                        "the operator requires modules signed by a trusted key ({}): publish it as an OCI artifact and sign it (`pinot-operator policy push`, `policy sign`), then name it in spec.module.oci",
                        dir.display()
                    ),
                }
                .into());
            }
            let sha256 = reviewed.ok_or_else(|| Rejection::invalid_spec(SHA256_REQUIRED))?;
            let ns = home()?;
            let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
            let map = api
                .get_opt(&cm.name)
                .await
                .map_err(|e| Rejection::not_found(format!("reading ConfigMap {}: {e}", cm.name)))?
                .ok_or_else(|| Rejection::not_found(format!("ConfigMap {ns}/{} does not exist", cm.name)))?;
            let bytes = map.binary_data.as_ref().and_then(|d| d.get(&cm.key)).map(|b| b.0.clone());
            let bytes = bytes.ok_or_else(|| {
                Rejection::not_found(format!("ConfigMap {ns}/{} has no binaryData key {:?}", cm.name, cm.key))
            })?;
            (bytes, sha256)
        }
        (None, Some(file), None) => {
            let sha256 = reviewed.ok_or_else(|| Rejection::invalid_spec(SHA256_REQUIRED))?;
            (reload::read_module_file(ctx.policy_dir.as_deref(), file).await?, sha256)
        }
        (None, None, Some(artifact)) => {
            let reference = PinnedReference::parse("spec.module.oci.reference", &artifact.reference)?;
            let auth = match artifact.pull_secret.as_deref().filter(|s| !s.is_empty()) {
                Some(secret) => pull_credentials(ctx, &home()?, secret, reference.registry()).await?,
                None => oci_client::secrets::RegistryAuth::Anonymous,
            };
            let pulled = ctx.registries.pull(&reference, &auth).await?;
            tracing::debug!(kind = P::KIND, policy = %policy.name_any(), %reference, cached = pulled.cached, "pulled policy module");
            let signed_by = match &ctx.trusted_keys {
                Some(dir) => Some(verify_signature(ctx, dir, &reference, &auth).await.map_err(|mut f| {
                    if matches!(f.rejection.reason, "Unsigned" | "SignatureNotTrusted") {
                        f.untrusted = Some(pulled.module_digest.clone());
                    }
                    f
                })?),
                None => None,
            };
            pulled_from = Some(Provenance {
                module_digest: pulled.module_digest.clone(),
                artifact: reference.to_string(),
                signed_by,
            });
            // The reference pins the module; a digest the spec gives must be the same module.
            let sha256 = reviewed.unwrap_or_else(|| pulled.module_digest.clone());
            (pulled.bytes, sha256)
        }
        _ => {
            return Err(Rejection::invalid_spec("spec.module must set exactly one of configMap, file and oci").into());
        }
    };
    let limit = ctx.registries.settings().max_module_bytes;
    if bytes.len() as u64 > limit {
        return Err(Rejection {
            reason: "ModuleTooLarge",
            message: format!(
                "the module is {} bytes, over the operator's limit of {limit} (--max-module-bytes)",
                bytes.len()
            ),
        }
        .into());
    }
    Ok((Candidate { kind, bytes, sha256, config: spec.config.clone().into_iter().collect() }, pulled_from))
}

/// The trusted key that signed the artifact `reference` pins.
async fn verify_signature(
    ctx: &ModuleReader,
    dir: &std::path::Path,
    reference: &PinnedReference,
    auth: &oci_client::secrets::RegistryAuth,
) -> Result<String, Fetch> {
    let keys = signature::read_trusted_keys(dir).await;
    if keys.keys.is_empty() {
        return Err(Rejection {
            reason: "SignatureNotTrusted",
            message: format!("no trusted key can be read from {}: {}", dir.display(), keys.problems.join("; ")),
        }
        .into());
    }
    let layers = ctx.registries.signatures(reference, auth).await?;
    if layers.is_empty() {
        let unsigned = signature::VerifyError::Unsigned {
            artifact: reference.to_string(),
            tag: signature::signature_tag(&reference.digest),
        };
        // Signing often follows publishing (a pipeline pushes, then signs): look again later.
        return Err(Fetch {
            rejection: Rejection { reason: "Unsigned", message: unsigned.to_string() },
            transient: true,
            untrusted: None,
        });
    }
    signature::verify(&reference.to_string(), &reference.digest, &layers, &keys.keys)
        .map(|key| key.name.clone())
        .map_err(|e| Fetch {
            rejection: Rejection { reason: "SignatureNotTrusted", message: e.to_string() },
            transient: true,
            untrusted: None,
        })
}

const SHA256_REQUIRED: &str = "spec.sha256 is required with spec.module.configMap and spec.module.file: write the digest `pinot-operator policy inspect` prints";

/// The credentials of `secret` (a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`
/// Secret in `ns`) for `registry`.
async fn pull_credentials(
    ctx: &ModuleReader,
    ns: &str,
    name: &str,
    registry: &str,
) -> Result<oci_client::secrets::RegistryAuth, Fetch> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && !part.starts_with('-')
                && !part.ends_with('-')
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !valid {
        return Err(Rejection::invalid_spec(format!(
            "spec.module.oci.pullSecret {name:?} is not a Secret name (lowercase letters, digits, '-' and '.')"
        ))
        .into());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    // Secrets are not watched: a missing or wrong one is looked at again, so creating or fixing
    // it is enough.
    let not_found = |message: String| Fetch {
        rejection: Rejection { reason: "RegistryUnauthorized", message },
        transient: true,
        untrusted: None,
    };
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| not_found(format!("reading Secret {ns}/{name}: {e}")))?
        .ok_or_else(|| not_found(format!("spec.module.oci.pullSecret: Secret {ns}/{name} does not exist")))?;
    let data = secret.data.unwrap_or_default();
    let json = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
        (Some(json), _) => json.0.clone(),
        // The legacy format is the `auths` map alone.
        (None, Some(cfg)) => {
            let auths: serde_json::Value = serde_json::from_slice(&cfg.0).unwrap_or_default();
            serde_json::to_vec(&json!({ "auths": auths })).unwrap_or_default()
        }
        (None, None) => {
            return Err(not_found(format!(
                "spec.module.oci.pullSecret: Secret {ns}/{name} has no .dockerconfigjson (create it with `kubectl create secret docker-registry`)"
            )));
        }
    };
    oci::credentials_from_docker_config(&json, registry)
        .map_err(|e| not_found(format!("spec.module.oci.pullSecret: Secret {ns}/{name}: {e}")))
}

async fn publish<P: PolicyObject>(ctx: &Ctx, policy: &P, type_: EventType, reason: &str, note: String) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: "Load".into(), secondary: None };
    if let Err(e) = ctx.events.publish(&policy.object_ref(&()), &event).await {
        tracing::warn!(error = %e, "publishing event failed");
    }
}
