//! `pinot-operator plan`: what the policies would do to a live cluster now, writing nothing.
//! It observes the cluster as the controller does (the same watches fill the same caches,
//! once; the same Pinot calls), validates it, and runs the plan step with the cluster's own
//! policies (or a module given to try), loaded and checked as the operator loads them; then it
//! asks each policy again on the state the plan gave it to show every action with the
//! guardrails' verdict. No build, no apply, no status: nothing is written.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, watcher},
};
use pinot_crds::{ClusterPinotPolicy, PinotCluster, PinotPolicy};

use super::{
    CacheStreams, cache, cache_streams,
    observe::{self, ObservedCluster, PinotObservation},
    plan::{self, Hold, Plan},
    validate,
};
use crate::{
    access::ControllerAccess,
    children::{ChildApis, LABEL_CLUSTER, PdbVersion},
    pinot::ControllerLocator,
    policy::{Action, ClusterState, PolicyKind, PolicyRegistry, guardrails},
    policy_controller::{self, ModuleReader},
};

/// The name a module given to try is known by (a policy name the spec validation accepts).
const TRIED: &str = "plan-module";

/// How long the watches may take to list once.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// What `plan` is asked.
pub struct PreviewRequest {
    pub namespace: String,
    pub name: String,
    pub controllers: ControllerLocator,
    pub cluster_domain: String,
    pub max_concurrent_upgrades: usize,
    /// A module to decide with instead of the cluster's policy of its kind, as
    /// (kind, name shown, bytes).
    pub module: Option<(PolicyKind, String, Vec<u8>)>,
}

/// One policy's decision on the live cluster.
#[derive(Debug)]
pub struct KindPreview {
    pub kind: PolicyKind,
    /// Which policy: its resource and module, or why it cannot decide.
    pub policy: String,
    /// Each action the policy asked for, with the guardrails' refusal (`None`: allowed).
    pub actions: Verdicts,
    /// What the operator would do with it.
    pub outcome: String,
    /// The state the policy decided from.
    pub state: Option<ClusterState>,
}

/// What the policies would do now.
#[derive(Debug)]
pub struct Preview {
    pub cluster: String,
    /// One line on what was observed.
    pub observed: String,
    /// Why the operator would change nothing at all (paused, invalid spec).
    pub hold: Option<String>,
    pub kinds: Vec<KindPreview>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("PinotCluster {0} does not exist")]
    NotFound(String),
    #[error("reading PinotCluster {0}: {1}")]
    Read(String, #[source] kube::Error),
    #[error("the watches did not list the cluster's objects within {0:?}")]
    NotListed(Duration),
}

/// Observes the cluster and plans one pass, writing nothing.
pub async fn preview(client: &Client, reader: &ModuleReader, request: PreviewRequest) -> Result<Preview, PreviewError> {
    let PreviewRequest { namespace, name, controllers, cluster_domain, max_concurrent_upgrades, module } = request;
    let full = format!("{namespace}/{name}");
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), &namespace);
    let mut cluster = clusters
        .get_opt(&name)
        .await
        .map_err(|e| PreviewError::Read(full.clone(), e))?
        .ok_or_else(|| PreviewError::NotFound(full.clone()))?;

    // The policies: the cluster's own (or the module to try), loaded as the operator loads them.
    let engine = crate::policy::PolicyEngine::new(crate::policy::PolicyLimits::default())
        .map_err(|e| PreviewError::Read(full.clone(), kube::Error::Service(e.to_string().into())))?;
    let registry = Arc::new(
        PolicyRegistry::new(engine)
            .map_err(|e| PreviewError::Read(full.clone(), kube::Error::Service(e.to_string().into())))?,
    );
    let mut problems = Vec::new();
    if let Some((kind, label, bytes)) = &module {
        let candidate = crate::policy::reload::Candidate {
            kind: *kind,
            bytes: bytes.clone(),
            sha256: crate::policy::runtime::digest(bytes),
            config: vec![],
        };
        let tried = TRIED.to_string();
        if let Err(r) = crate::policy::reload::reload(&registry, &namespace, &tried, candidate).await {
            problems.push(format!("--module {label}: {}", r.message));
        }
        let policies = cluster.spec.policies.get_or_insert_with(Default::default);
        match kind {
            PolicyKind::Upgrade => policies.upgrade = Some(tried),
            PolicyKind::Scaling => policies.scaling = Some(tried),
            PolicyKind::Tenant => policies.tenant = Some(tried),
        }
    }
    let named: Vec<String> = cluster
        .spec
        .policies
        .iter()
        .flat_map(|p| [&p.upgrade, &p.scaling, &p.tenant])
        .flatten()
        .filter(|n| *n != TRIED)
        .cloned()
        .collect();
    let namespaced: Api<PinotPolicy> = Api::namespaced(client.clone(), &namespace);
    let shared: Api<ClusterPinotPolicy> = Api::all(client.clone());
    let mut declared = vec![];
    for policy_name in named {
        match namespaced.get_opt(&policy_name).await {
            Ok(Some(p)) => {
                declared.push((namespace.clone(), policy_name.clone()));
                if let Err(r) = policy_controller::load(reader, &registry, &p).await {
                    problems.push(format!("PinotPolicy {namespace}/{policy_name}: {} ({})", r.message, r.reason));
                }
            }
            Ok(None) => match shared.get_opt(&policy_name).await {
                Ok(Some(p)) => {
                    if let Err(r) = policy_controller::load(reader, &registry, &p).await {
                        problems.push(format!("ClusterPinotPolicy {policy_name}: {} ({})", r.message, r.reason));
                    }
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("reading ClusterPinotPolicy {policy_name}: {e}")),
            },
            Err(e) => problems.push(format!("reading PinotPolicy {namespace}/{policy_name}: {e}")),
        }
    }
    registry.declare_all(declared);

    // Observe as the controller does: its watches, listed once.
    let apis =
        ChildApis { pdb_version: PdbVersion::discover(client).await.map_err(|e| PreviewError::Read(full.clone(), e))? };
    let caches = Arc::new(cache::Caches::default());
    let selector = format!("{LABEL_CLUSTER}={name}");
    let CacheStreams { statefulsets, configmaps, services, pdbs, ingresses, pods, tenants, nodes } =
        cache_streams(client, &apis, Some(&namespace), &selector, &caches);
    let (store, writer) = reflector::store::<PinotCluster>();
    let others = watcher(Api::<PinotCluster>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .map(|_| ())
        .boxed();
    let streams = futures::stream::select_all([
        statefulsets.map(|_| ()).boxed(),
        configmaps.map(|_| ()).boxed(),
        services.map(|_| ()).boxed(),
        pdbs.map(|_| ()).boxed(),
        ingresses.map(|_| ()).boxed(),
        pods.map(|_| ()).boxed(),
        tenants.map(|_| ()).boxed(),
        nodes.map(|_| ()).boxed(),
        others,
    ]);
    let driver = tokio::spawn(streams.for_each(|()| async {}));
    let listed = tokio::time::timeout(LIST_TIMEOUT, async {
        while !caches.is_ready() || !crate::store_ready(&store).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if listed.is_err() {
        driver.abort();
        return Err(PreviewError::NotListed(LIST_TIMEOUT));
    }
    let access = ControllerAccess::new(client.clone(), controllers);
    let sources = observe::Sources {
        client,
        caches: &caches,
        access: &access,
        clusters: &store,
        cluster_domain: &cluster_domain,
        load_balancer_grace: super::DEFAULT_LOAD_BALANCER_GRACE,
    };
    let observed = observe::observe_cluster(&sources, &cluster).await;
    driver.abort();

    let valid = validate::validate_observed(&cluster, &observed.missing_references);
    let policies = plan::Policies::new(registry.clone(), max_concurrent_upgrades);
    let plan = plan::plan(&policies, &cluster, &valid, &observed, Timestamp::now()).await;
    let hold = match &plan.hold {
        Some(Hold::Paused) => Some("spec.paused is set: the operator changes nothing".to_string()),
        Some(Hold::InvalidSpec(invalid)) => {
            Some(format!("the spec is invalid, the operator changes nothing: {invalid}"))
        }
        None => None,
    };
    let tried = module.as_ref().map(|(kind, label, _)| (*kind, format!("--module {label}")));
    let mut kinds = kinds(&registry, &namespace, &plan, tried);
    if !problems.is_empty() {
        for k in &mut kinds {
            k.policy = format!("{} [{}]", k.policy, problems.join("; "));
        }
    }
    Ok(Preview { cluster: full, observed: summary(&observed), hold, kinds })
}

/// Each action with the guardrails' refusal (`None`: allowed).
type Verdicts = Vec<(Action, Option<String>)>;

/// Each kind's policy asked again on the state the plan gave it, with the verdicts.
fn kinds(
    registry: &PolicyRegistry,
    namespace: &str,
    plan: &Plan<'_>,
    tried: Option<(PolicyKind, String)>,
) -> Vec<KindPreview> {
    // (the policy, its actions with their verdicts, how it failed)
    let ask = |kind: PolicyKind, state: Option<&ClusterState>| -> (String, Verdicts, Option<String>) {
        let status = plan.policies.iter().find(|p| p.kind == kind.spec_name());
        let chosen = status.map(|p| p.name.as_str()).filter(|n| !n.is_empty());
        let chosen = chosen.filter(|_| status.and_then(|p| p.source.as_deref()) != Some("bundled"));
        match registry.resolve(namespace, chosen, kind) {
            Ok(active) => {
                let origin = match &tried {
                    Some((k, label)) if *k == kind => label.clone(),
                    _ => active.origin.clone(),
                };
                let label = format!(
                    "{origin}: {} {} ({})",
                    active.policy.info.name, active.policy.info.version, active.policy.digest
                );
                let actions = match state.map(|s| (s, registry.decide(&active, s))) {
                    Some((s, Ok(actions))) => {
                        let verdicts = guardrails::verdicts(s, &actions);
                        actions.into_iter().zip(verdicts).collect()
                    }
                    Some((_, Err(e))) => return (label, vec![], Some(format!("the policy failed: {e}"))),
                    None => vec![],
                };
                (label, actions, None)
            }
            Err(e) => (format!("not loaded: {e}"), vec![], None),
        }
    };
    let mut out = Vec::new();
    let upgrade = plan.upgrade.as_ref();
    let (policy, actions, failed) = ask(PolicyKind::Upgrade, upgrade.map(|u| &u.state));
    out.push(KindPreview {
        kind: PolicyKind::Upgrade,
        policy,
        actions,
        outcome: failed.unwrap_or_else(|| upgrade.map(|u| u.decision.outcome()).unwrap_or_else(not_asked)),
        state: upgrade.map(|u| u.state.clone()),
    });
    let scaling = plan.scaling.as_ref();
    let (policy, actions, failed) = ask(PolicyKind::Scaling, scaling.map(|s| &s.state));
    out.push(KindPreview {
        kind: PolicyKind::Scaling,
        policy,
        actions,
        outcome: failed.unwrap_or_else(|| scaling.map(|s| s.decision.outcome()).unwrap_or_else(not_asked)),
        state: scaling.map(|s| s.state.clone()),
    });
    let tenants = plan.tenants.as_ref();
    let state = tenants.and_then(|t| t.state.as_ref());
    let (policy, actions, failed) = ask(PolicyKind::Tenant, state);
    out.push(KindPreview {
        kind: PolicyKind::Tenant,
        policy,
        actions,
        outcome: failed.unwrap_or_else(|| tenants.map(|t| t.decision.outcome()).unwrap_or_else(not_asked)),
        state: state.cloned(),
    });
    out
}

fn not_asked() -> String {
    "not ask it this pass (nothing for it to decide, or the policy is not loaded)".into()
}

fn summary(observed: &ObservedCluster) -> String {
    let pods: usize = observed.pods.values().map(Vec::len).sum();
    let ready: usize = observed.pods.values().flatten().filter(|p| observe::pod_is_ready(p)).count();
    let pinot = match &observed.pinot {
        PinotObservation::Reachable { instances, .. } => format!("Pinot answers ({} instances)", instances.len()),
        PinotObservation::Unreachable(why) => format!("Pinot does not answer ({why})"),
        _ => "Pinot not asked".into(),
    };
    format!("{} StatefulSets, {pods} pods ({ready} ready); {pinot}", observed.statefulsets.len())
}
