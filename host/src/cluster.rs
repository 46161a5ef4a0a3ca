//! The PinotCluster controller. One reconcile follows one cluster through a pipeline, in the
//! order of the files:
//!
//! `observe` (client) → `validate` (pure) → `plan` (policies decide) → `build` (pure) →
//! `apply` (client) → `status` (pure computation, then one write).
//!
//! Nothing is kept in memory between reconciles: every decision is derived again from what is
//! observed, so the operator can be stopped at any moment and continue where it was.

pub mod apply;
pub mod build;
pub mod cache;
pub mod observe;
pub mod plan;
pub mod scaling;
pub mod state;
pub mod status;
pub mod tenants;
pub mod upgrade;
pub mod validate;

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ObjectReference, Pod},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DynamicObject, PartialObjectMeta},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use pinot_crds::{ClusterPolicyStatus, PinotCluster, PinotTenant};

use self::{
    apply::ApplyReport,
    build::{BuildContext, build_cluster},
    status::{Problem, StatusInput, compute_status, write_status},
};
use crate::{
    access::ControllerAccess,
    children::{ChildApis, ChildKind, LABEL_MANAGED_BY, MANAGED_BY, PdbVersion},
    pinot::{ControllerLocator, PinotClient, http_client},
    policy::{PolicyKind, PolicyRegistry},
};

/// The default of `ControllerConfig::debounce` (`--reconcile-debounce-ms`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// How soon to look again while the watches have not listed everything once.
const CACHE_WAIT: Duration = Duration::from_millis(500);

/// How soon to look again while a cluster names a policy that is not loaded.
const POLICY_RECHECK: Duration = Duration::from_secs(10);

/// How soon to look again while the Pinot controller's view lags the pods'.
const PINOT_RECHECK: Duration = Duration::from_secs(3);

/// How soon to look again while an upgrade waits for something the operator does not watch
/// (Pinot's view of its instances, a drain period, another cluster's slot).
const UPGRADE_RECHECK: Duration = Duration::from_secs(1);

/// How soon to look again while the routing gate holds a restart back: a server serving again
/// (its segments ONLINE, its flag cleared) or a controller leading its tables again is seen only
/// by asking Pinot, and the next restart should follow it closely.
const GATE_RECHECK: Duration = Duration::from_millis(250);

/// How long one pass asks Pinot again while the routing gate holds a restart back, and how
/// often: a server loading its segments usually serves within seconds.
const GATE_WAIT: Duration = Duration::from_secs(3);
const GATE_POLL: Duration = Duration::from_millis(100);

/// How soon to decide again after carrying out a step: a step in Pinot (queries off / on)
/// changes nothing the operator watches, and the next step may follow at once.
const AFTER_STEP: Duration = Duration::from_millis(200);

/// How long to wait before deciding again. A policy that waits while no upgrade is under way
/// (`in_flight`: a pod is off its target revision, or an instance has its queries off) waits
/// for pods to start or become ready, which the watches report: no need to look sooner. A
/// StatefulSet that has not observed its spec yet reports that too.
fn upgrade_recheck(decision: &plan::UpgradeDecision, in_flight: bool) -> Option<Duration> {
    match decision {
        // Done, unless an instance still has its queries off: the policy may give them back once
        // Pinot shows the instance live again, which no watch reports.
        plan::UpgradeDecision::Act(actions) if actions.is_empty() => in_flight.then_some(UPGRADE_RECHECK * 5),
        plan::UpgradeDecision::Act(_) => Some(AFTER_STEP),
        plan::UpgradeDecision::Blocked(_) | plan::UpgradeDecision::Refused { .. } => Some(UPGRADE_RECHECK * 5),
        plan::UpgradeDecision::Queued(_) => Some(UPGRADE_RECHECK),
        plan::UpgradeDecision::Wait(_) | plan::UpgradeDecision::NotYet(_) => in_flight.then_some(UPGRADE_RECHECK),
        plan::UpgradeDecision::Held(_) => Some(GATE_RECHECK),
    }
}

/// How soon to look again while a pool scales (segments moving, instances leaving).
const SCALING_RECHECK: Duration = Duration::from_secs(2);

/// How often an external cluster's controller is asked whether it is up.
const EXTERNAL_RECHECK: Duration = Duration::from_secs(30);

/// How long to wait before retrying after an error the operator cannot see the end of.
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// Settings of the controller.
#[derive(Clone)]
pub struct ControllerConfig {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Where each cluster's Pinot controller is reached.
    pub controllers: ControllerLocator,
    /// The policies clusters decide with.
    pub registry: Arc<PolicyRegistry>,
    /// How many clusters may upgrade at once (0: no limit).
    pub max_concurrent_upgrades: usize,
    /// How often Ready PinotSchemas and PinotTables are compared with Pinot to repair drift.
    pub drift_interval: Duration,
    /// How long a cluster's reconcile waits for more changes after one arrives (trailing
    /// edge), so that a burst of them (a pod turning ready, its StatefulSet's and PDB's status
    /// following) costs one pass instead of several.
    pub debounce: Duration,
    /// How many clusters are reconciled at the same time (0: no limit). Bounds the memory and
    /// the policy instances a burst of changes takes; a pass waiting for an unreachable Pinot
    /// controller holds one of them for up to its timeout.
    pub concurrency: u16,
    /// The Kubernetes cluster's DNS domain (`cluster.local` unless the cluster says otherwise),
    /// part of every Pinot instance id.
    pub cluster_domain: String,
}

/// The default of `ControllerConfig::concurrency` (`--max-concurrent-reconciles`).
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// The only state shared between reconciles: clients and settings, never cluster state.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub apis: ChildApis,
    pub access: ControllerAccess,
    pub registry: Arc<PolicyRegistry>,
    pub max_concurrent_upgrades: usize,
    /// The PinotClusters the controller sees, to count those upgrading.
    pub clusters: Store<PinotCluster>,
    /// Every cluster's children, pods and PinotTenants as the watches see them.
    pub caches: Arc<cache::Caches>,
    /// Policy decisions running at once: each takes a blocking thread and a pooled instance.
    pub decisions: tokio::sync::Semaphore,
    /// The Kubernetes cluster's DNS domain.
    pub cluster_domain: String,
}

impl Context {
    /// Runs a policy decision on a blocking thread, at most `PARALLEL_DECISIONS` at a time (a
    /// burst of reconciles would otherwise take a thread each and exhaust the instance pool).
    async fn decide<T: Send + 'static>(&self, decide: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let _permit = self.decisions.acquire().await.map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(decide).await.map_err(|e| e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("the PinotCluster has no owner reference data (name or uid missing)")]
    MissingObjectKey,
}

impl Error {
    /// A bounded label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::WriteStatus(_) => "write_status",
            Error::MissingObjectKey => "object_key",
        }
    }
}

/// Runs the PinotCluster controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), kube::Error> {
    let apis = ChildApis { pdb_version: PdbVersion::discover(&client).await? };
    tracing::info!(pdb = apis.pdb_version.api_version(), namespace = ?config.namespace, "starting PinotCluster controller");
    let (clusters, statefulsets, pods, tenants) = match &config.namespace {
        Some(ns) => (
            Api::<PinotCluster>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<PinotTenant>::namespaced(client.clone(), ns),
        ),
        None => {
            (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()))
        }
    };
    let pdb_resource = apis.resource(ChildKind::PodDisruptionBudget);
    let metadata_api = |resource: &kube::api::ApiResource| -> Api<PartialObjectMeta<DynamicObject>> {
        match &config.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        }
    };
    let (cm_resource, svc_resource) = (apis.resource(ChildKind::ConfigMap), apis.resource(ChildKind::Service));
    let (pdbs, configmaps, services) =
        (metadata_api(&pdb_resource), metadata_api(&cm_resource), metadata_api(&svc_resource));
    let ours = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let recorder = Recorder::new(client.clone(), Reporter { controller: "pinot-operator".into(), instance: None });
    // A reconcile writes the cluster's status, and the status is its own report: only changes
    // to its spec (generation), labels and annotations start another pass.
    let (reader, writer) = reflector::store();
    let caches = Arc::new(cache::Caches::default());
    let c = caches.clone();
    let cluster_events = watcher(clusters, watcher::Config::default())
        .default_backoff()
        // A cluster that is gone needs no memory of what was built for it.
        .inspect_ok(move |e| {
            if let watcher::Event::Delete(cluster) = e
                && let Some(uid) = cluster.uid()
            {
                c.built.forget(&uid);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(|c: &PinotCluster| Some(cache::spec_and_metadata(c)), Default::default());
    let controller = Controller::for_stream(cluster_events, reader);
    let access = ControllerAccess::new(client.clone(), config.controllers.clone());
    let ctx = Arc::new(Context {
        client,
        recorder,
        apis,
        access,
        registry: config.registry.clone(),
        max_concurrent_upgrades: config.max_concurrent_upgrades,
        clusters: controller.store(),
        caches: caches.clone(),
        decisions: tokio::sync::Semaphore::new(crate::policy::runtime::PARALLEL_DECISIONS),
        cluster_domain: config.cluster_domain.clone(),
    });

    let store = controller.store();
    crate::metrics::set_phase_source(move || {
        let mut phases = std::collections::BTreeMap::new();
        for c in store.state() {
            *phases.entry(phase(&c).to_string()).or_insert(0) += 1;
        }
        phases
    });
    let ready = controller.store();
    let caches_ready = caches.clone();
    tokio::spawn(async move {
        // The store's readiness wakes only the last task that waited on it (a oneshot), and the
        // controller waits on it too: ask again every half second instead of waiting once.
        loop {
            match tokio::time::timeout(Duration::from_millis(500), ready.wait_until_ready()).await {
                Ok(Ok(())) if caches_ready.is_ready() => break crate::metrics::set_ready(),
                Ok(Ok(())) => tokio::time::sleep(Duration::from_millis(500)).await,
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });
    // Every watch both triggers reconciles and fills the caches a pass observes from (see
    // `cache.rs`).
    let statefulsets = follow_child(watcher(statefulsets, ours.clone()), &caches, |c| &c.statefulsets);
    let configmaps = follow_child(watcher(configmaps, ours.clone()), &caches, |c| &c.configmaps);
    let services = follow_child(watcher(services, ours.clone()), &caches, |c| &c.services);
    let pdbs = follow_child(watcher(pdbs, ours.clone()), &caches, |c| &c.pdbs);
    let c = caches.clone();
    let pods = follow(watcher(pods, ours), move |e| c.pods.apply(e));
    let c = caches.clone();
    let tenants = follow(watcher(tenants, watcher::Config::default()), move |e| c.tenants.apply(e));
    controller
        .owns_stream(statefulsets)
        .owns_stream_with(services, svc_resource)
        .owns_stream_with(configmaps, cm_resource)
        .owns_stream_with(pdbs, pdb_resource)
        // Pods are the StatefulSets' children, not the cluster's: a pod's readiness reaches the
        // StatefulSet's status only after the StatefulSet controller's next sync, so an upgrade
        // step would wait for that hop. Watching the pods lets the next step follow at once.
        .watches_stream(pods, cluster_of_pod)
        // A PinotTenant is placed by its cluster's reconcile.
        .watches_stream(tenants, |t: PinotTenant| Some(ObjectRef::new(&t.spec.cluster).within(t.namespace()?.as_str())))
        .graceful_shutdown_on(shutdown)
        .with_config(
            kube::runtime::controller::Config::default().debounce(config.debounce).concurrency(config.concurrency),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, namespace = ?obj.namespace, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

/// A watch stream that keeps `cache` up to date, as the stream of objects it touches (what
/// triggers reconciles).
fn follow<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    cache: impl Fn(&mut watcher::Event<K>) -> bool + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Clone + Send + 'static,
{
    events
        .default_backoff()
        .map_ok(move |mut event| {
            let touches = cache(&mut event);
            let touched = match event {
                _ if !touches => None,
                watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => Some(Ok(o)),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            futures::stream::iter(touched)
        })
        .try_flatten()
}

/// `follow` for a kind of child the operator applies: its cache in `caches` (`grouped`), and a
/// child that is gone needs no memory of what was applied to it.
fn follow_child<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    caches: &Arc<cache::Caches>,
    grouped: fn(&cache::Caches) -> &cache::Grouped<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
{
    let caches = caches.clone();
    follow(events, move |event| {
        if let watcher::Event::Delete(object) = event
            && let Some(uid) = object.uid()
        {
            caches.applied.forget(&uid);
        }
        grouped(&caches).apply_unless_echo(event, |meta| caches.applied.is_echo(meta))
    })
}

/// An external cluster: nothing to deploy; available when its controller answers.
async fn reconcile_external(cluster: &PinotCluster, ctx: &Context) -> Result<Action, Error> {
    let url = ctx.access.url_for(cluster);
    let mut reachable = None;
    let mut release = crate::pinot::ClusterRelease::default();
    let answer = if !cluster.spec.pools.is_empty() {
        Err("spec.pools: an external cluster deploys nothing; remove its pools, or remove spec.external to let the operator install the cluster".to_string())
    } else {
        match ctx.access.client_for(cluster).await {
            Err(e) => Err(e.to_string()),
            Ok(pinot) => match pinot.health().await {
                Err(e) => Err(e.to_string()),
                Ok(()) => match tokio::try_join!(pinot.version(), pinot.instances(), pinot.live_instances()) {
                    Ok((version, instances, live)) => {
                        let answer = Ok((instances.len(), live.len()));
                        release = crate::pinot::ClusterRelease::effective(version.as_deref(), []);
                        reachable = Some((pinot.with_release(release.effective), instances, live));
                        answer
                    }
                    Err(e) => Err(e.to_string()),
                },
            },
        }
    };
    // Its PinotTenants are placed from what its controller reports.
    let resources = match &reachable {
        Some(_) => tenants_of(ctx, cluster),
        None => Vec::new(),
    };
    if let Some((pinot, instances, live)) = reachable.filter(|_| !resources.is_empty()) {
        let details = futures::future::join_all(instances.iter().map(|id| {
            let pinot = &pinot;
            async move { pinot.instance(id).await.ok().map(|info| (id.clone(), info)) }
        }))
        .await
        .into_iter()
        .flatten()
        .collect();
        let state = state::external_state(cluster, &instances, &live, &details, Timestamp::now());
        place_tenants(ctx, cluster, &resources, state, &pinot, true).await;
    }
    let status = status::external_status(cluster, &url, answer, &release, Timestamp::now());
    write_status(&ctx.client, cluster, &status).await.map_err(Error::WriteStatus)?;
    Ok(Action::requeue(EXTERNAL_RECHECK))
}

/// Everything `observe` reads for one cluster: its children and pods from the caches, then its
/// Pinot controller (with `pinot`), and the release the operator acts for, from the controller
/// and every image.
async fn observe_cluster(ctx: &Context, cluster: &PinotCluster, pinot: &PinotClient) -> observe::ObservedCluster {
    let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
    let mut observed = observe::observe(&ctx.caches, cluster);
    let domain = &ctx.cluster_domain;
    let pod_instances = observe::pod_instance_ids(&name, &namespace, domain, &observed);
    let pool_instances = observe::pool_instances(&name, &namespace, domain, &observed);
    let rebalances = cluster.status.as_ref().map(|s| s.rebalances.clone()).unwrap_or_default();
    let upgrading = observe::off_target(&observed);
    observed.pinot = observe::observe_pinot(
        pinot,
        &observed,
        &pod_instances,
        &pool_instances,
        &rebalances,
        &validate::helix_cluster_name(cluster),
        upgrading,
    )
    .await;
    let spec_images = std::iter::once(cluster.spec.image.as_str())
        .chain(cluster.spec.pools.iter().filter_map(|p| p.image.as_deref()));
    observed.release = observe::cluster_release(&observed.pinot, &observe::images(&observed, spec_images));
    observed.pod_instances = pod_instances;
    observed
}

/// The PinotCluster a pod of ours belongs to, from its cluster label.
fn cluster_of_pod(pod: Pod) -> Option<ObjectRef<PinotCluster>> {
    let cluster = pod.labels().get(crate::children::LABEL_CLUSTER)?;
    Some(ObjectRef::new(cluster).within(pod.namespace()?.as_str()))
}

fn error_policy(cluster: Arc<PinotCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), category = error.category(), error = %error, "reconcile failed; retrying");
    Action::requeue(RETRY_AFTER)
}

/// One pass of the pipeline for one cluster, timed and counted in the metrics.
pub async fn reconcile(cluster: Arc<PinotCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument;
    // Instrumented rather than entered: a span entered across an await point would stay
    // entered on the worker thread while other clusters' passes run there.
    let span = tracing::info_span!("reconcile", cluster = %cluster.name_any(), namespace = ?cluster.namespace());
    crate::metrics::timed("PinotCluster", reconcile_pass(cluster, ctx), Error::category).instrument(span).await
}

async fn reconcile_pass(cluster: Arc<PinotCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let client = &ctx.client;
    let namespace = cluster.namespace().unwrap_or_default();
    let owner = cluster.controller_owner_ref(&()).ok_or(Error::MissingObjectKey)?;

    if cluster.spec.external.is_some() {
        return reconcile_external(&cluster, &ctx).await;
    }
    // Until every watch has listed once, a missing object may only not be seen yet.
    if !ctx.caches.is_ready() {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let pinot_url = ctx.access.url_for(&cluster);
    let (pinot, access_problem) = match ctx.access.client_for(&cluster).await {
        Ok(pinot) => (pinot, None),
        Err(e) => (PinotClient::new(http_client(), pinot_url.clone()), Some(e.to_string())),
    };
    let observed = observe_cluster(&ctx, &cluster, &pinot).await;
    // The Pinot calls of this pass use only what the cluster's release offers.
    let pinot = pinot.with_release(observed.release.effective);
    let pod_instances = &observed.pod_instances;

    let valid = match validate::validate(&cluster) {
        Ok(valid) => valid,
        Err(invalid) => {
            let message = format!("{invalid}. Nothing was changed.");
            if cluster.status.as_ref().and_then(|s| s.message.as_ref()) != Some(&message) {
                publish(&ctx, &cluster, EventType::Warning, "InvalidSpec", "Validate", message.clone()).await;
            }
            let problem = Some(Problem { reason: "InvalidSpec", message });
            let status = compute_status(&StatusInput {
                cluster: &cluster,
                valid: None,
                observed: &observed,
                problem,
                now: Timestamp::now(),
                pinot_url: &pinot_url,
                progress: None,
                upgrading: false,
                scaling: None,
            });
            write_status(client, &cluster, &status).await.map_err(Error::WriteStatus)?;
            return Ok(Action::await_change());
        }
    };

    if valid.paused {
        let status = compute_status(&StatusInput {
            cluster: &cluster,
            valid: Some(&valid),
            observed: &observed,
            problem: None,
            now: Timestamp::now(),
            pinot_url: &pinot_url,
            progress: None,
            upgrading: false,
            scaling: None,
        });
        if !cluster.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| c.type_ == status::RECONCILIATION_PAUSED && c.status == "True")
        }) {
            publish(
                &ctx,
                &cluster,
                EventType::Normal,
                "Paused",
                "Pause",
                "spec.paused is true: no object of this cluster is changed until it is false".into(),
            )
            .await;
        }
        write_status(client, &cluster, &status).await.map_err(Error::WriteStatus)?;
        return Ok(Action::await_change());
    }

    // A Pinot release the operator does not know is said once, when it is first seen (and
    // kept in `status.pinot` once a controller pod is ready).
    if let Some(unknown) = &observed.release.unknown
        && !matches!(observed.pinot, observe::PinotObservation::NotAsked)
        && cluster.status.as_ref().and_then(|s| s.pinot.as_ref()).and_then(|p| p.release_message.as_ref())
            != Some(unknown)
    {
        publish(&ctx, &cluster, EventType::Warning, "UnknownPinotRelease", "Observe", unknown.clone()).await;
    }
    // What the spec allows but will likely regret, said once per generation.
    if cluster.status.as_ref().and_then(|s| s.observed_generation) != cluster.metadata.generation {
        for warning in &valid.warnings {
            publish(&ctx, &cluster, EventType::Warning, "SpecWarning", "Validate", warning.to_string()).await;
        }
    }
    let policies = resolve_policies(&ctx.registry, &cluster);
    let plan = plan::plan(&valid, &observed);
    let reachable = matches!(observed.pinot, observe::PinotObservation::Reachable { .. });

    // Scaling first: its Pinot steps (untag, rebalance, disable, drop) are carried out now, and
    // the replicas it decides go into the StatefulSets this pass applies.
    // Replicas are set only for pools this pass applies (or that leave the spec); a pool that
    // waits for its turn at install gets them when it is created.
    let leaving = state::leaving_pools(&valid, &observed);
    let scalable: Vec<&str> =
        plan.pools.iter().map(|p| p.name.as_str()).chain(leaving.iter().map(|(p, _)| *p)).collect();
    let scaled = scaling_step(&ctx, &cluster, &valid, &observed, pod_instances, &pinot, &scalable).await;
    let decided = scaled.as_ref().map(|(_, _, o)| o.replicas.clone()).unwrap_or_default();
    let current_replicas = |pool: &str| {
        observed.statefulsets.get(pool).and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).map(|r| r.max(0) as u32)
    };
    // Without a decision a pool keeps the pods it has (a new pool starts with none).
    let replicas: std::collections::BTreeMap<String, i32> = plan
        .pools
        .iter()
        .map(|p| {
            let r = decided.get(&p.name).copied().or_else(|| current_replicas(&p.name)).unwrap_or(0);
            (p.name.clone(), r as i32)
        })
        .collect();
    let mut leaving_failures = Vec::new();
    let mut keep_pools: Vec<&str> = valid.pools.iter().map(|p| p.name.as_str()).collect();
    for &(pool, _) in &leaving {
        let sts = build::statefulset_name(&valid.name, pool);
        if let Some(r) = decided.get(pool).copied().filter(|r| Some(*r) != current_replicas(pool))
            && let Err(e) = scaling::scale_leaving(client, &namespace, &sts, r).await
        {
            leaving_failures.push(e);
        }
        // Its objects go once it has no pod left and Pinot has forgotten its instances.
        let departed = match &observed.pinot {
            observe::PinotObservation::Reachable { departed, .. } => departed.get(pool).is_some_and(|d| !d.is_empty()),
            _ => true,
        };
        let emptied = current_replicas(pool) == Some(0) && observed.pods.get(pool).is_none_or(Vec::is_empty);
        if !emptied || departed {
            keep_pools.push(pool);
        }
    }
    let owner_uid = cluster.uid().ok_or(Error::MissingObjectKey)?;
    // What the objects are built from besides the cluster's uid: its spec (generation) and
    // metadata, the pools planned and their replicas.
    let inputs = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        cache::spec_and_metadata(cluster.as_ref()).hash(&mut hasher);
        plan.pools.iter().map(|p| &p.name).collect::<Vec<_>>().hash(&mut hasher);
        replicas.hash(&mut hasher);
        ctx.apis.pdb_version.api_version().hash(&mut hasher);
        hasher.finish()
    };
    let desired = ctx.caches.built.get_or_build(&owner_uid, inputs, || {
        build_cluster(&valid, &plan.pools, &BuildContext { owner, pdb_version: ctx.apis.pdb_version, replicas })
    });
    let spec_pools: std::collections::BTreeSet<&str> = keep_pools.into_iter().collect();
    // Mid-upgrade a pass usually starts because a restarted pod became ready, and every
    // StatefulSet already has the pod template this pass would apply: then the upgrade step
    // goes first (the apply cannot change a revision under it) and the next pod does not wait
    // for the apply's round trips. Otherwise the policy decides after the apply, and not at
    // all when the apply changed a StatefulSet: the next pass (its status change triggers one)
    // decides from the new revisions.
    let (early, early_failure) = if apply::templates_current(&ctx.caches.applied, &desired, &observed) {
        upgrade_step(&ctx, &cluster, &valid, &observed, &pinot).await
    } else {
        (None, None)
    };
    let report =
        apply::apply(client, &ctx.apis, &ctx.caches.applied, &namespace, &owner_uid, &desired, &observed, &spec_pools)
            .await;
    publish_report(&ctx, &cluster, &report).await;
    let sts_changed = report.created.iter().chain(&report.updated).any(|(k, _)| *k == ChildKind::StatefulSet);
    let (upgrade, upgrade_failure) = match early {
        Some(decided) => (Some(decided), early_failure),
        None if sts_changed || !report.failed.is_empty() => (None, None),
        None => upgrade_step(&ctx, &cluster, &valid, &observed, &pinot).await,
    };
    // Tenants are placed when no upgrade step was taken in this pass (the next pass sees the
    // pods the step changed).
    let mut tenants_recheck = None;
    if !matches!(&upgrade, Some((_, plan::UpgradeDecision::Act(a))) if !a.is_empty()) {
        let resources = tenants_of(&ctx, &cluster);
        if !resources.is_empty() {
            let mut state = state::cluster_state(&cluster, &valid, &observed, pod_instances, &[], Timestamp::now());
            // Pods a scale-in removes are not placed in tenants again.
            for pool in &mut state.pools {
                let keep = pool.desired_replicas;
                pool.pods.retain(|p| p.ordinal < keep);
            }
            tenants_recheck = place_tenants(&ctx, &cluster, &resources, state, &pinot, reachable).await;
        }
    }
    let previous_message = cluster.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    match &upgrade {
        Some((_, plan::UpgradeDecision::Blocked(why))) if !previous_message.contains(why.as_str()) => {
            publish(
                &ctx,
                &cluster,
                EventType::Warning,
                "UpgradeHalted",
                "Upgrade",
                format!("{why}; no further pod is restarted"),
            )
            .await;
        }
        Some((_, plan::UpgradeDecision::Refused { reason, message }))
            if !previous_message.contains(message.as_str()) =>
        {
            publish(&ctx, &cluster, EventType::Warning, reason, "Plan", message.clone()).await;
        }
        _ => {}
    }

    for blocked in &plan.blocked {
        if cluster.status.as_ref().and_then(|s| s.message.as_ref()).is_none_or(|m| !m.contains(&blocked.field)) {
            publish(&ctx, &cluster, EventType::Warning, "ChangeRefused", "Plan", blocked.to_string()).await;
        }
    }
    let scaling_failure = scaled.as_ref().and_then(|(_, _, o)| o.failure.clone());
    let problem = if !report.failed.is_empty() {
        Some(Problem {
            reason: "ApplyFailed",
            message: report.failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        })
    } else if !leaving_failures.is_empty() {
        Some(Problem { reason: "ApplyFailed", message: leaving_failures.join("; ") })
    } else if let Some(failure) = scaling_failure {
        Some(Problem { reason: "ScalingStepFailed", message: failure })
    } else if let Some((_, scaling::ScalingDecision::Blocked { why, .. }, _)) = &scaled {
        Some(Problem { reason: "ScalingBlocked", message: why.clone() })
    } else if let Some((_, scaling::ScalingDecision::Refused { reason, message }, _)) = &scaled {
        Some(Problem { reason, message: message.clone() })
    } else if let Some(failure) = upgrade_failure {
        Some(Problem { reason: "UpgradeStepFailed", message: failure })
    } else if let Some((_, plan::UpgradeDecision::Blocked(why))) = &upgrade {
        Some(Problem { reason: "UpgradeHalted", message: format!("{why}; no further pod is restarted") })
    } else if let Some((_, plan::UpgradeDecision::Refused { reason, message })) = &upgrade {
        Some(Problem { reason, message: message.clone() })
    } else if !plan.blocked.is_empty() {
        Some(Problem {
            reason: "ChangeRefused",
            message: plan.blocked.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        })
    } else if let Some(message) = access_problem {
        Some(Problem { reason: "ControllerAccess", message })
    } else if policies.iter().any(|p| !p.ready) {
        Some(Problem {
            reason: "PolicyNotReady",
            message: policies.iter().filter_map(|p| p.message.clone()).collect::<Vec<_>>().join("; "),
        })
    } else {
        None
    };
    let upgrade_progress = match &upgrade {
        Some((
            _,
            plan::UpgradeDecision::Wait(why)
            | plan::UpgradeDecision::Held(why)
            | plan::UpgradeDecision::NotYet(why)
            | plan::UpgradeDecision::Queued(why),
        )) => Some(why.clone()),
        Some((_, plan::UpgradeDecision::Act(actions))) if !actions.is_empty() => Some(format!(
            "upgrade step: {}",
            actions.iter().map(crate::policy::guardrails::describe).collect::<Vec<_>>().join(", ")
        )),
        _ => None,
    };
    // Upgrading: some pod is not on its pool's target revision and the policy is working on it
    // (not merely waiting for a slot).
    let off_target = observe::off_target(&observed);
    let upgrading = off_target && !matches!(&upgrade, Some((_, plan::UpgradeDecision::Queued(_))));
    // An upgrade is under way while a pod is off its target revision or an instance still has
    // its queries off; otherwise a waiting policy waits for pods (watched), not for Pinot.
    let queries_off = match &observed.pinot {
        observe::PinotObservation::Reachable { details, .. } => details.values().any(|i| i.queries_disabled),
        _ => false,
    };
    let upgrade_in_flight = off_target || queries_off;
    let progress = match (plan.install_wait.clone(), upgrade_progress) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    let mut status = compute_status(&StatusInput {
        cluster: &cluster,
        valid: Some(&valid),
        observed: &observed,
        problem,
        now: Timestamp::now(),
        pinot_url: &pinot_url,
        progress,
        upgrading,
        scaling: scaled.as_ref().and_then(|(_, d, _)| d.progress()),
    });
    let policies_ready = policies.iter().all(|p| p.ready);
    status.policies = policies;
    if let Some((_, _, outcome)) = &scaled {
        for job in &outcome.rebalances {
            status.rebalances.retain(|j| j.table != job.table);
            status.rebalances.push(job.clone());
        }
    }
    write_status(client, &cluster, &status).await.map_err(Error::WriteStatus)?;

    // The soonest of the reasons to look again; none: the next watched change. Steps carried
    // out in Pinot (tags, rebalances, instances) change nothing the operator watches, so a
    // pass that took one looks again at once.
    let scaling_steps = scaled.as_ref().map(|(_, _, o)| (!o.notes.is_empty(), o.failure.is_some()));
    let rechecks = [
        (!report.failed.is_empty() || !leaving_failures.is_empty()).then_some(RETRY_AFTER),
        status::pinot_lags(&status).then_some(PINOT_RECHECK),
        upgrade.as_ref().and_then(|(_, d)| upgrade_recheck(d, upgrade_in_flight)),
        // Segments move and instances leave without an event the operator watches.
        status
            .conditions
            .iter()
            .any(|c| c.type_ == status::PROGRESSING && c.reason == status::SCALING)
            .then_some(SCALING_RECHECK),
        scaling_steps.and_then(|(took, failed)| match (took, failed) {
            (_, true) => Some(RETRY_AFTER),
            (true, false) => Some(AFTER_STEP),
            (false, false) => None,
        }),
        tenants_recheck,
        (!policies_ready).then_some(POLICY_RECHECK),
    ];
    let next = rechecks.into_iter().flatten().min();
    tracing::debug!(?next, applied = report.created.len() + report.updated.len(), "pass done");
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

/// A cluster's phase for the metrics: what its conditions say first.
fn phase(cluster: &PinotCluster) -> &'static str {
    let is = |kind: &str| {
        cluster.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    if cluster.spec.paused {
        "Paused"
    } else if is(status::DEGRADED) {
        "Degraded"
    } else if is(status::PROGRESSING) {
        "Progressing"
    } else if is(status::AVAILABLE) {
        "Available"
    } else {
        "Pending"
    }
}

/// Whether a cluster is in the middle of an upgrade, as its status says: upgrading, or halted.
pub fn is_upgrading(cluster: &PinotCluster) -> bool {
    cluster.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.status == "True"
                && ((c.type_ == status::PROGRESSING && c.reason == status::UPGRADING)
                    || (c.type_ == status::DEGRADED && c.reason == "UpgradeHalted"))
        })
    })
}

/// Holds back the first step of an upgrade while `--max-concurrent-upgrades` other clusters
/// are upgrading (or halted). A cluster already upgrading keeps going.
fn upgrade_slot(ctx: &Context, cluster: &PinotCluster, decision: plan::UpgradeDecision) -> plan::UpgradeDecision {
    let starts = matches!(&decision, plan::UpgradeDecision::Act(a) if !a.is_empty());
    if ctx.max_concurrent_upgrades == 0 || !starts || is_upgrading(cluster) {
        return decision;
    }
    let others: Vec<String> = ctx
        .clusters
        .state()
        .iter()
        .filter(|c| c.uid() != cluster.uid() && is_upgrading(c))
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    if others.len() < ctx.max_concurrent_upgrades {
        return decision;
    }
    plan::UpgradeDecision::Queued(format!(
        "waiting for an upgrade slot: {} of {} allowed clusters are upgrading ({})",
        others.len(),
        ctx.max_concurrent_upgrades,
        others.join(", ")
    ))
}

/// Which module decided, in events and status: the PinotPolicy's name and the module's own.
fn policy_label(chosen: Option<String>, info: &crate::policy::Info) -> String {
    match chosen {
        Some(policy) => format!("{policy}: {} {}", info.name, info.version),
        None => format!("{} {}", info.name, info.version),
    }
}

/// Asks the cluster's upgrade policy what to do now, off the async runtime (a policy may run
/// up to its deadline). `None` when the cluster's upgrade policy is not loaded (the status
/// already says so).
async fn decide_upgrade(
    ctx: &Context,
    cluster: &PinotCluster,
    valid: &validate::ValidCluster,
    observed: &observe::ObservedCluster,
    pod_instances: &std::collections::BTreeMap<String, String>,
) -> Option<(String, plan::UpgradeDecision)> {
    let namespace = cluster.namespace().unwrap_or_default();
    let chosen = cluster.spec.policies.as_ref().and_then(|p| p.upgrade.clone());
    let active = ctx.registry.resolve(&namespace, chosen.as_deref(), PolicyKind::Upgrade).ok()?;
    let state = state::cluster_state(cluster, valid, observed, pod_instances, &active.config, Timestamp::now());
    let name = policy_label(chosen, &active.policy.info);
    let drains = valid.pools.iter().map(|p| (p.name.clone(), p.drain_seconds)).collect();
    let (registry, observed) = (ctx.registry.clone(), observed.clone());
    let decision = ctx.decide(move || plan::decide_upgrade(&registry, &active, &state, &observed, &drains)).await;
    let decision = decision.unwrap_or_else(|e| plan::UpgradeDecision::Refused {
        reason: "PolicyFailed",
        message: format!("upgrade policy {name}: the decision panicked: {e}"),
    });
    Some((name, decision))
}

/// The upgrade policy's decision (within the operator's upgrade slots), carried out with an
/// event per step; the failure, if one stopped it.
async fn upgrade_step(
    ctx: &Context,
    cluster: &PinotCluster,
    valid: &validate::ValidCluster,
    observed: &observe::ObservedCluster,
    pinot: &PinotClient,
) -> (Option<(String, plan::UpgradeDecision)>, Option<String>) {
    // A restart the routing gate holds back usually waits for a server that is loading its
    // segments and serves again within seconds: Pinot is asked again within this pass rather
    // than after a requeue, which the controller's debounce would delay by as much again.
    // A large cluster's observation takes longer (a call per table and per instance): the pause
    // is at least twice the last one, so the operator never spends more than a third of the
    // wait asking Pinot.
    let deadline = tokio::time::Instant::now() + GATE_WAIT;
    let mut pause = GATE_POLL;
    let mut fresh: Option<observe::ObservedCluster> = None;
    let (policy, decision) = loop {
        let current = fresh.as_ref().unwrap_or(observed);
        let Some((policy, decision)) = decide_upgrade(ctx, cluster, valid, current, &current.pod_instances).await
        else {
            return (None, None);
        };
        if !matches!(decision, plan::UpgradeDecision::Held(_)) || tokio::time::Instant::now() + pause >= deadline {
            break (policy, decision);
        }
        tokio::time::sleep(pause).await;
        let asked = tokio::time::Instant::now();
        let again = observe_cluster(ctx, cluster, pinot).await;
        pause = GATE_POLL.max(asked.elapsed() * 2);
        if again.pod_instances != observed.pod_instances {
            // Pods came or went meanwhile: the next pass decides from them.
            break (policy, decision);
        }
        fresh = Some(again);
    };
    let observed = fresh.as_ref().unwrap_or(observed);
    let decision = upgrade_slot(ctx, cluster, decision);
    let plan::UpgradeDecision::Act(actions) = &decision else {
        return (Some((policy, decision)), None);
    };
    let namespace = cluster.namespace().unwrap_or_default();
    let (steps, failure) =
        upgrade::carry_out(&ctx.client, pinot, &namespace, observed, &observed.pod_instances, &policy, actions).await;
    for step in steps {
        let related = step.pod.map(|pod| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod),
            namespace: Some(namespace.clone()),
            ..Default::default()
        });
        publish_related(ctx, cluster, EventType::Normal, step.reason, "Upgrade", step.note, related).await;
    }
    if let Some(failure) = &failure {
        publish(ctx, cluster, EventType::Warning, "UpgradeStepFailed", "Upgrade", failure.clone()).await;
    }
    (Some((policy, decision)), failure)
}

/// Asks the cluster's scaling policy what to do now (off the async runtime), carries out its
/// Pinot steps and publishes an event per step. `None` when the scaling policy is not loaded
/// (the status already says so): then no pool changes its replicas.
async fn scaling_step(
    ctx: &Context,
    cluster: &PinotCluster,
    valid: &validate::ValidCluster,
    observed: &observe::ObservedCluster,
    pod_instances: &std::collections::BTreeMap<String, String>,
    pinot: &PinotClient,
    scalable: &[&str],
) -> Option<(String, scaling::ScalingDecision, scaling::Outcome)> {
    let reachable = matches!(observed.pinot, observe::PinotObservation::Reachable { .. });
    let namespace = cluster.namespace().unwrap_or_default();
    let chosen = cluster.spec.policies.as_ref().and_then(|p| p.scaling.clone());
    let active = ctx.registry.resolve(&namespace, chosen.as_deref(), PolicyKind::Scaling).ok()?;
    let state = state::cluster_state(cluster, valid, observed, pod_instances, &active.config, Timestamp::now());
    let name = policy_label(chosen, &active.policy.info);
    let registry = ctx.registry.clone();
    let decision_state = state.clone();
    let decision = ctx
        .decide(move || scaling::decide(&registry, &active, &decision_state, reachable))
        .await
        .unwrap_or_else(|e| scaling::ScalingDecision::Refused {
            reason: "PolicyFailed",
            message: format!("scaling policy {name}: the decision panicked: {e}"),
        });
    let previous_message = cluster.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
    match &decision {
        scaling::ScalingDecision::Blocked { why, .. } if !previous_message.contains(why.as_str()) => {
            publish(ctx, cluster, EventType::Warning, "ScalingBlocked", "Scale", why.clone()).await;
        }
        scaling::ScalingDecision::Refused { reason, message } if !previous_message.contains(message.as_str()) => {
            publish(ctx, cluster, EventType::Warning, reason, "Scale", message.clone()).await;
        }
        _ => {}
    }
    let previous = match &observed.pinot {
        observe::PinotObservation::Reachable { rebalances, .. } => rebalances.clone(),
        _ => vec![],
    };
    let actions: Vec<crate::policy::Action> = decision
        .actions()
        .iter()
        .filter(|a| !matches!(a, crate::policy::Action::SetReplicas(s) if !scalable.contains(&s.pool.as_str())))
        .cloned()
        .collect();
    let outcome = scaling::carry_out(pinot, &state, &previous, &name, &actions).await;
    for note in &outcome.notes {
        publish(ctx, cluster, EventType::Normal, "ScalingStep", "Scale", note.clone()).await;
    }
    if let Some(failure) = &outcome.failure {
        publish(ctx, cluster, EventType::Warning, "ScalingStepFailed", "Scale", failure.clone()).await;
    }
    Some((name, decision, outcome))
}

/// The cluster's PinotTenants (those not being deleted), as the tenant watch sees them.
fn tenants_of(ctx: &Context, cluster: &PinotCluster) -> Vec<PinotTenant> {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut tenants: Vec<PinotTenant> = ctx
        .caches
        .tenants
        .of(&namespace, &cluster.name_any())
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .map(|t| PinotTenant::clone(t))
        .collect();
    tenants.sort_by_key(|t| t.name_any());
    tenants
}

/// Places the cluster's PinotTenants with its tenant policy (see `tenants.rs`) and writes each
/// tenant's status. Problems are the tenants' own: they go to their status and events, not to
/// the cluster's conditions.
async fn place_tenants(
    ctx: &Context,
    cluster: &PinotCluster,
    resources: &[PinotTenant],
    mut state: crate::policy::model::ClusterState,
    pinot: &PinotClient,
    reachable: bool,
) -> Option<Duration> {
    use crate::resources::{ready, write_status as write_object_status};
    let namespace = cluster.namespace().unwrap_or_default();
    let mut requests = Vec::new();
    for t in resources {
        // A spec error is reported by the PinotTenant controller.
        if let Ok(r) = tenants::tenant_request(t) {
            requests.push((t, r));
        }
    }
    let set_all = |reason: &'static str, message: String| {
        let requests = &requests;
        async move {
            for (t, _) in requests {
                let status = t.status.clone().unwrap_or_default();
                if let Err(e) =
                    write_object_status(&ctx.client, *t, status, ready(false, reason, message.clone())).await
                {
                    tracing::warn!(error = %e, tenant = %t.name_any(), "writing tenant status failed");
                }
            }
        }
    };
    if !reachable {
        set_all("WaitingForPinot", "waiting for the cluster's Pinot controller to answer".into()).await;
        return None;
    }
    // The policy must know which instances still hold segments: it never moves those.
    let segments = match pinot.segments_per_server().await {
        Ok(s) => s,
        Err(e) => {
            set_all("PinotUnavailable", format!("reading segments per server: {e}")).await;
            return None;
        }
    };
    for pod in state.pools.iter_mut().flat_map(|p| p.pods.iter_mut()) {
        if let Some(i) = pod.instance.as_mut() {
            i.segments = segments.get(&i.id).copied().unwrap_or(0);
        }
    }
    state.tenants = requests.iter().map(|(_, r)| r.clone()).collect();
    let chosen = cluster.spec.policies.as_ref().and_then(|p| p.tenant.clone());
    let active = match ctx.registry.resolve(&namespace, chosen.as_deref(), PolicyKind::Tenant) {
        Ok(a) => a,
        Err(e) => {
            set_all("PolicyNotReady", format!("tenant policy: {e}")).await;
            return None;
        }
    };
    let registry = ctx.registry.clone();
    let decision_state = state.clone();
    let decision = ctx
        .decide(move || tenants::decide(&registry, &active, &decision_state))
        .await
        .unwrap_or_else(|e| tenants::TenantDecision::Refused(format!("the tenant policy's decision panicked: {e}")));
    let mut tags: std::collections::BTreeMap<String, Vec<String>> = state
        .pools
        .iter()
        .flat_map(|p| &p.pods)
        .filter_map(|pod| pod.instance.as_ref().map(|i| (i.id.clone(), i.tags.clone())))
        .collect();
    let mut recheck = None;
    let problem = match decision {
        tenants::TenantDecision::Settled => None,
        tenants::TenantDecision::Blocked(why) => Some(("Blocked", why)),
        tenants::TenantDecision::Refused(why) => Some(("PlanRefused", why)),
        tenants::TenantDecision::Retag(changes) => {
            let result = tenants::retag(pinot, &changes).await;
            let (done, failure) = match result {
                Ok(done) => (done, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            for note in done {
                publish(ctx, cluster, EventType::Normal, "TenantPlaced", "PlaceTenants", note).await;
            }
            if failure.is_none() {
                for (instance, new_tags) in changes {
                    tags.insert(instance, new_tags);
                }
            }
            // Tags are not watched: look again at once to see them (or soon, to retry).
            recheck = Some(if failure.is_some() { RETRY_AFTER } else { AFTER_STEP });
            failure.map(|f| ("TaggingFailed", f))
        }
    };
    for (t, request) in &requests {
        let (mut status, placed, message) = tenants::tenant_status(request, &tags);
        let old = t.status.clone().unwrap_or_default();
        status.applied_generation = old.applied_generation;
        let condition = match (&problem, placed) {
            (_, true) => ready(true, "Placed", message),
            (Some((reason, why)), false) => {
                if old.conditions.iter().all(|c| c.message != format!("{message}; {why}")) {
                    publish(ctx, cluster, EventType::Warning, "TenantNotPlaced", "PlaceTenants", why.clone()).await;
                }
                ready(false, reason, format!("{message}; {why}"))
            }
            (None, false) => ready(false, "Placing", message),
        };
        if let Err(e) = write_object_status(&ctx.client, *t, status, condition).await {
            tracing::warn!(error = %e, tenant = %t.name_any(), "writing tenant status failed");
        }
    }
    recheck
}

/// The policy of each kind the cluster decides with, as its status reports it.
fn resolve_policies(registry: &PolicyRegistry, cluster: &PinotCluster) -> Vec<ClusterPolicyStatus> {
    let namespace = cluster.namespace().unwrap_or_default();
    let chosen = cluster.spec.policies.clone().unwrap_or_default();
    [
        ("upgrade", PolicyKind::Upgrade, chosen.upgrade),
        ("scaling", PolicyKind::Scaling, chosen.scaling),
        ("tenant", PolicyKind::Tenant, chosen.tenant),
    ]
    .into_iter()
    .map(|(field, kind, name)| match registry.resolve(&namespace, name.as_deref(), kind) {
        Ok(active) => ClusterPolicyStatus {
            kind: field.into(),
            name: name.unwrap_or_else(|| active.policy.info.name.clone()),
            digest: Some(active.policy.digest.clone()),
            ready: true,
            message: None,
        },
        Err(e) => ClusterPolicyStatus {
            kind: field.into(),
            name: name.unwrap_or_default(),
            digest: None,
            ready: false,
            message: Some(format!("spec.policies.{field}: {e}")),
        },
    })
    .collect()
}

async fn publish_report(ctx: &Context, cluster: &PinotCluster, report: &ApplyReport) {
    for (list, reason, verb) in [
        (&report.created, "Created", "created"),
        (&report.updated, "Updated", "updated"),
        (&report.deleted, "Deleted", "deleted"),
    ] {
        if let Some(note) = apply::change_note(verb, list) {
            // The recorder counts events with the same reason and related object as repeats
            // of one and keeps the first note: relate each to the first object it names.
            let related = list.first().map(|(kind, name)| child_reference(ctx, cluster, *kind, name));
            publish_related(ctx, cluster, EventType::Normal, reason, "Apply", note, related).await;
        }
    }
    for failure in &report.failed {
        publish(ctx, cluster, EventType::Warning, "ApplyFailed", "Apply", failure.to_string()).await;
    }
}

/// A reference to a child, so that events about different children are not merged into one
/// series by the recorder.
fn child_reference(ctx: &Context, cluster: &PinotCluster, kind: ChildKind, name: &str) -> ObjectReference {
    let resource = ctx.apis.resource(kind);
    ObjectReference {
        api_version: Some(resource.api_version),
        kind: Some(resource.kind),
        name: Some(name.to_string()),
        namespace: cluster.namespace(),
        ..Default::default()
    }
}

/// Publishes an event about the cluster; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, cluster: &PinotCluster, type_: EventType, reason: &str, action: &str, note: String) {
    publish_related(ctx, cluster, type_, reason, action, note, None).await;
}

async fn publish_related(
    ctx: &Context,
    cluster: &PinotCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    secondary: Option<ObjectReference>,
) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "publishing event failed");
    }
}

/// YAML fixtures for the unit tests of the pipeline's pure steps (`host/tests/fixtures/`).
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::PathBuf;

    use pinot_crds::PinotCluster;

    pub fn dir(sub: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(sub)
    }

    /// Every fixture of a folder, by file name, with its text.
    pub fn all(sub: &str) -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir(sub))
            .expect("fixture folder")
            .map(|e| e.expect("fixture entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        files.sort();
        files
    }

    pub fn cluster(text: &str) -> PinotCluster {
        serde_yaml::from_str(text).expect("fixture is a PinotCluster")
    }

    /// The complete example users are pointed to, with a namespace as the apiserver sets it.
    pub fn example() -> PinotCluster {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/pinotcluster.yaml");
        let mut c = cluster(&std::fs::read_to_string(path).unwrap());
        c.metadata.namespace = Some("analytics-ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }
}
