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
pub mod ensemble;
pub mod observe;
pub mod plan;
pub mod preview;
pub mod references;
pub mod scaling;
pub mod state;
pub mod status;
pub mod tenants;
pub mod validate;
pub mod volumes;
pub mod zones;

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{Node, Pod},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DynamicObject, PartialObjectMeta},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use pinot_crds::{PinotCluster, PinotTenant};

use crate::{
    access::ControllerAccess,
    children::{ChildApis, ChildKind, LABEL_MANAGED_BY, MANAGED_BY, PdbVersion},
    events::EventPublisher,
    pinot::ControllerLocator,
    policy::PolicyRegistry,
};

/// The default of `ControllerConfig::debounce` (`--reconcile-debounce-ms`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// How soon to look again while the watches have not listed everything once.
const CACHE_WAIT: Duration = Duration::from_millis(500);

/// How soon to look again while a cluster names a policy that is not loaded.
const POLICY_RECHECK: Duration = Duration::from_secs(10);

/// How soon to look again while an object the pods need (a Secret, the ServiceAccount) is
/// missing.
const REFERENCE_RECHECK: Duration = Duration::from_secs(10);

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
    /// How long a client Service of type LoadBalancer may wait for its address before the
    /// cluster reports `LoadBalancerPending`.
    pub load_balancer_grace: Duration,
}

/// The default of `ControllerConfig::load_balancer_grace`.
pub const DEFAULT_LOAD_BALANCER_GRACE: Duration = Duration::from_secs(180);

/// The default of `ControllerConfig::concurrency` (`--max-concurrent-reconciles`).
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// The only state shared between reconciles: clients and settings, never cluster state
/// (besides caches of what the watches report and what was last built and applied).
pub struct Context {
    pub client: Client,
    pub events: EventPublisher,
    pub apis: ChildApis,
    pub access: ControllerAccess,
    /// The policies and how they are asked.
    pub policies: plan::Policies,
    /// The PinotClusters the controller sees, to count those upgrading.
    pub clusters: Store<PinotCluster>,
    /// Every cluster's children, pods and PinotTenants as the watches see them.
    pub caches: Arc<cache::Caches>,
    /// What was last built for each cluster.
    pub built: Arc<build::BuiltObjects>,
    /// The Kubernetes cluster's DNS domain.
    pub cluster_domain: String,
    /// How long a load balancer may take to get its address.
    pub load_balancer_grace: Duration,
}

impl Context {
    /// A context around the caches and cluster store the controller's watches fill (a test
    /// fills them itself) and the memo of what was last built.
    pub fn new(
        client: Client,
        apis: ChildApis,
        config: &ControllerConfig,
        clusters: Store<PinotCluster>,
        caches: Arc<cache::Caches>,
        built: Arc<build::BuiltObjects>,
    ) -> Self {
        Context {
            events: EventPublisher::new(client.clone(), crate::events::CONTROLLER),
            access: ControllerAccess::new(client.clone(), config.controllers.clone()),
            client,
            apis,
            policies: plan::Policies::new(config.registry.clone(), config.max_concurrent_upgrades),
            clusters,
            caches,
            built,
            cluster_domain: config.cluster_domain.clone(),
            load_balancer_grace: config.load_balancer_grace,
        }
    }

    fn sources(&self) -> observe::Sources<'_> {
        observe::Sources {
            client: &self.client,
            caches: &self.caches,
            access: &self.access,
            clusters: &self.clusters,
            cluster_domain: &self.cluster_domain,
            load_balancer_grace: self.load_balancer_grace,
        }
    }

    fn writer(&self, cluster: &PinotCluster) -> Result<apply::Writer<'_>, Error> {
        Ok(apply::Writer {
            client: &self.client,
            apis: &self.apis,
            applied: &self.caches.applied,
            events: &self.events,
            cluster: cluster.object_ref(&()),
            namespace: cluster.namespace().unwrap_or_default(),
            owner_uid: cluster.uid().ok_or(Error::MissingObjectKey)?,
        })
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
    let clusters = match &config.namespace {
        Some(ns) => Api::<PinotCluster>::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (pdb_resource, cm_resource, svc_resource, ingress_resource) = (
        apis.resource(ChildKind::PodDisruptionBudget),
        apis.resource(ChildKind::ConfigMap),
        apis.resource(ChildKind::Service),
        apis.resource(ChildKind::Ingress),
    );
    let ours = format!("{LABEL_MANAGED_BY}={MANAGED_BY}");
    // A reconcile writes the cluster's status, and the status is its own report: only changes
    // to its spec (generation), labels and annotations start another pass.
    let (reader, writer) = reflector::store();
    let caches = Arc::new(cache::Caches::default());
    let built = Arc::new(build::BuiltObjects::default());
    let b = built.clone();
    let cluster_events = watcher(clusters, watcher::Config::default())
        .default_backoff()
        // A cluster that is gone needs no memory of what was built for it.
        .inspect_ok(move |e| {
            if let watcher::Event::Delete(cluster) = e
                && let Some(uid) = cluster.uid()
            {
                b.forget(&uid);
            }
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(|c: &PinotCluster| Some(cache::spec_and_metadata(c)), Default::default());
    let controller = Controller::for_stream(cluster_events, reader);
    let client_for_nodes = client.clone();
    let ctx = Arc::new(Context::new(client, apis, &config, controller.store(), caches.clone(), built));
    let policy_changes = clusters_deciding_with(config.registry.changes(), controller.store());

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
        while crate::store_ready(&ready).await {
            if caches_ready.is_ready() {
                crate::metrics::set_ready();
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // Every watch both triggers reconciles and fills the caches a pass observes from (see
    // `cache.rs`).
    let CacheStreams { statefulsets, configmaps, services, pdbs, ingresses, pods, tenants, nodes } =
        cache_streams(&client_for_nodes, &ctx.apis, config.namespace.as_deref(), &ours, &caches);
    controller
        .owns_stream(statefulsets)
        .owns_stream_with(services, svc_resource)
        .owns_stream_with(configmaps, cm_resource)
        .owns_stream_with(pdbs, pdb_resource)
        .owns_stream_with(ingresses, ingress_resource)
        // Pods are the StatefulSets' children, not the cluster's: a pod's readiness reaches the
        // StatefulSet's status only after the StatefulSet controller's next sync, so an upgrade
        // step would wait for that hop. Watching the pods lets the next step follow at once.
        .watches_stream(pods, cluster_of_pod)
        // A PinotTenant is placed by its cluster's reconcile.
        .watches_stream(tenants, |t: PinotTenant| Some(ObjectRef::new(&t.spec.cluster).within(t.namespace()?.as_str())))
        // A PinotPolicy that loads a new module, changes its configuration or goes away: the
        // clusters deciding with it decide again at once, not at their next pass.
        .reconcile_on(policy_changes)
        // A node that stops reporting (a lost zone) or returns: the clusters with pods on it
        // decide again (their pods' readiness follows only after the node controller's grace).
        .reconcile_on(nodes)
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

/// The clusters that name a PinotPolicy, each time `changes` says the policy changed (all
/// clusters naming any policy when the receiver fell behind and lost some).
fn clusters_deciding_with(
    changes: tokio::sync::broadcast::Receiver<(String, String)>,
    clusters: Store<PinotCluster>,
) -> impl futures::Stream<Item = ObjectRef<PinotCluster>> + Send + 'static {
    use tokio::sync::broadcast::error::RecvError;
    let changed = futures::stream::unfold(changes, |mut changes| async move {
        match changes.recv().await {
            Ok(policy) => Some((Some(policy), changes)),
            Err(RecvError::Lagged(_)) => Some((None, changes)),
            Err(RecvError::Closed) => None,
        }
    });
    changed.flat_map(move |policy| {
        let naming = clusters
            .state()
            .into_iter()
            .filter(|c| {
                let chosen = c.spec.policies.as_ref();
                let names = chosen.into_iter().flat_map(|p| [&p.upgrade, &p.scaling, &p.tenant]).flatten();
                match &policy {
                    // A ClusterPinotPolicy may be what a cluster of any namespace decides with.
                    Some((namespace, name)) => {
                        (namespace == crate::policy::registry::CLUSTER_SCOPE
                            || c.namespace().as_deref() == Some(namespace.as_str()))
                            && names.into_iter().any(|n| n == name)
                    }
                    None => names.count() > 0,
                }
            })
            .map(|c| ObjectRef::from_obj(&*c))
            .collect::<Vec<_>>();
        futures::stream::iter(naming)
    })
}

/// Follows the nodes (cluster-wide) into `caches.nodes`, as the stream of the clusters with pods
/// on a node whose zone or readiness changed. An operator not allowed to list nodes goes on
/// without them (no zones, no node readiness), saying so in its log.
fn clusters_on_changed_nodes(
    nodes: Api<Node>,
    caches: Arc<cache::Caches>,
) -> impl futures::Stream<Item = ObjectRef<PinotCluster>> + Send + 'static {
    // Of a node only its zone label and Ready condition are read, and its heartbeats (every
    // ten seconds) change neither.
    watcher(nodes, watcher::Config::default()).default_backoff().flat_map(move |event| {
        let clusters = match event {
            Ok(event) => caches
                .nodes
                .apply(&event)
                .iter()
                .flat_map(|node| caches.clusters_on_node(node))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
                .collect(),
            Err(e) => {
                if is_forbidden(&e) && !caches.nodes.is_forbidden() {
                    tracing::error!(
                        error = %e,
                        "the operator may not list and watch nodes: zones and node readiness stay unknown (pods' zones \
                         are not observed, Pinot pools by zone are not set); grant `nodes` `list` and `watch` in its \
                         ClusterRole"
                    );
                    caches.nodes.set_forbidden();
                }
                vec![]
            }
        };
        futures::stream::iter(clusters)
    })
}

fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

type Watched<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// The watches that fill a controller's caches, each as the stream of the objects it touches.
pub(crate) struct CacheStreams {
    pub statefulsets: Watched<StatefulSet>,
    pub configmaps: Watched<PartialObjectMeta<DynamicObject>>,
    pub services: Watched<PartialObjectMeta<DynamicObject>>,
    pub pdbs: Watched<PartialObjectMeta<DynamicObject>>,
    pub ingresses: Watched<PartialObjectMeta<DynamicObject>>,
    pub pods: Watched<Pod>,
    pub tenants: Watched<PinotTenant>,
    /// The clusters with pods on a node whose zone or readiness changed.
    pub nodes: futures::stream::BoxStream<'static, ObjectRef<PinotCluster>>,
}

/// The watches of the children labelled `selector` (in `namespace`, or all), of the
/// PinotTenants and of the nodes, filling `caches`: what the controller runs, and what
/// `pinot-operator plan` runs once to observe a cluster as the controller would.
pub(crate) fn cache_streams(
    client: &Client,
    apis: &ChildApis,
    namespace: Option<&str>,
    selector: &str,
    caches: &Arc<cache::Caches>,
) -> CacheStreams {
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let metadata = |kind: ChildKind| -> Api<PartialObjectMeta<DynamicObject>> {
        let resource = apis.resource(kind);
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        }
    };
    let ours = watcher::Config::default().labels(selector);
    let c = caches.clone();
    let pods = follow(watcher(api::<Pod>(client, namespace), ours.clone()), move |e| c.pods.apply(e)).boxed();
    let c = caches.clone();
    let tenants =
        follow(watcher(api::<PinotTenant>(client, namespace), watcher::Config::default()), move |e| c.tenants.apply(e))
            .boxed();
    CacheStreams {
        statefulsets: follow_child(watcher(api::<StatefulSet>(client, namespace), ours.clone()), caches, |c| {
            &c.statefulsets
        })
        .boxed(),
        configmaps: follow_child(watcher(metadata(ChildKind::ConfigMap), ours.clone()), caches, |c| &c.configmaps)
            .boxed(),
        services: follow_child(watcher(metadata(ChildKind::Service), ours.clone()), caches, |c| &c.services).boxed(),
        pdbs: follow_child(watcher(metadata(ChildKind::PodDisruptionBudget), ours.clone()), caches, |c| &c.pdbs)
            .boxed(),
        ingresses: follow_child(watcher(metadata(ChildKind::Ingress), ours), caches, |c| &c.ingresses).boxed(),
        pods,
        tenants,
        nodes: clusters_on_changed_nodes(Api::all(client.clone()), caches.clone()).boxed(),
    }
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

/// The PinotCluster a pod of ours belongs to, from its cluster label.
fn cluster_of_pod(pod: Pod) -> Option<ObjectRef<PinotCluster>> {
    let cluster = pod.labels().get(crate::children::LABEL_CLUSTER)?;
    Some(ObjectRef::new(cluster).within(pod.namespace()?.as_str()))
}

fn error_policy(cluster: Arc<PinotCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), category = error.category(), error = %error, "reconcile failed; retrying");
    Action::requeue(RETRY_AFTER)
}

/// One reconcile of one cluster, timed and counted in the metrics: a pass of the pipeline, and
/// while only Pinot holds the next upgrade step back (the routing gate: a server to serve
/// again, a controller to lead its tables again, which no watch reports), more passes within
/// `GATE_WAIT` rather than a requeue, which the controller's debounce would delay by as much
/// again. Each later pass starts from the cluster as the store has it now.
pub async fn reconcile(cluster: Arc<PinotCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument;
    // Instrumented rather than entered: a span entered across an await point would stay
    // entered on the worker thread while other clusters' passes run there.
    let span = tracing::info_span!("reconcile", cluster = %cluster.name_any(), namespace = ?cluster.namespace());
    let passes = async move {
        let deadline = tokio::time::Instant::now() + GATE_WAIT;
        let mut cluster = cluster;
        loop {
            let started = tokio::time::Instant::now();
            let next = reconcile_pass(cluster.clone(), ctx.clone()).await?;
            // A large cluster's observation takes longer (a call per table and per instance):
            // the pause is at least twice the last pass, so the operator never spends more than
            // a third of the wait asking Pinot.
            let pause = GATE_POLL.max(started.elapsed() * 2);
            match next {
                Next::PassAgain if tokio::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    match ctx.clusters.get(&ObjectRef::from_obj(cluster.as_ref())) {
                        Some(latest) => cluster = latest,
                        None => return Ok(Action::await_change()),
                    }
                }
                Next::PassAgain => return Ok(Action::requeue(GATE_RECHECK)),
                Next::Requeue(after) => return Ok(Action::requeue(after)),
                Next::AwaitChange => return Ok(Action::await_change()),
            }
        }
    };
    crate::metrics::timed("PinotCluster", passes, Error::category).instrument(span).await
}

/// When to look at a cluster again after a pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Next {
    /// At its next watched change.
    AwaitChange,
    /// After this long, or its next watched change.
    Requeue(Duration),
    /// Soon, within this reconcile: only Pinot holds the next step back.
    PassAgain,
}

/// One pass of the pipeline: observe → validate → plan → build → apply → status.
pub async fn reconcile_pass(cluster: Arc<PinotCluster>, ctx: Arc<Context>) -> Result<Next, Error> {
    // Until every watch has listed once, a missing object may only not be seen yet.
    if !ctx.caches.is_ready() {
        return Ok(Next::Requeue(CACHE_WAIT));
    }
    let owner = cluster.controller_owner_ref(&()).ok_or(Error::MissingObjectKey)?;
    let now = Timestamp::now();

    let observed = observe::observe_cluster(&ctx.sources(), &cluster).await;
    // An object the pods need that is missing holds everything back, like an invalid spec.
    let valid = validate::validate_observed(&cluster, &observed.missing_references);
    let plan = plan::plan(&ctx.policies, &cluster, &valid, &observed, now).await;
    let desired = build::build(&cluster, valid.as_ref().ok(), &plan, owner, ctx.apis.pdb_version, &ctx.built);
    let applied = apply::apply(&ctx.writer(&cluster)?, &plan, &desired, &observed).await;
    let status = status::status(&cluster, &valid, &observed, &plan, &applied, now);
    status::report(&ctx.client, &ctx.events, &cluster, &valid, &status).await.map_err(Error::WriteStatus)?;

    let next = next_look(valid.as_ref().is_ok_and(|v| v.external), &plan, &applied, &observed, &status);
    tracing::debug!(?next, applied = applied.children.created.len() + applied.children.updated.len(), "pass done");
    Ok(next)
}

/// The soonest of the reasons to look again; none: the next watched change. Steps carried out
/// in Pinot (tags, rebalances, instances) change nothing the operator watches, so a pass that
/// took one looks again at once.
/// How soon a pass looks again while the managed ensemble's sync or chroot is waited for.
const ENSEMBLE_RECHECK: Duration = Duration::from_secs(2);

fn next_look(
    external: bool,
    plan: &plan::Plan<'_>,
    applied: &apply::Applied,
    observed: &observe::ObservedCluster,
    status: &pinot_crds::PinotClusterStatus,
) -> Next {
    match &plan.hold {
        // Nothing the operator watches says when a missing Secret or ServiceAccount appears.
        Some(_) if !observed.missing_references.is_empty() => return Next::Requeue(REFERENCE_RECHECK),
        Some(_) => return Next::AwaitChange,
        None if external => return Next::Requeue(EXTERNAL_RECHECK),
        None => {}
    }
    if matches!(plan.upgrade.as_ref().map(|u| &u.decision), Some(plan::UpgradeDecision::Held(_))) && !applied.failed() {
        return Next::PassAgain;
    }
    // An upgrade is under way while a pod is off its target revision or an instance still has
    // its queries off; otherwise a waiting policy waits for pods (watched), not for Pinot.
    let queries_off = match &observed.pinot {
        observe::PinotObservation::Reachable { details, .. } => details.values().any(|i| i.queries_disabled),
        _ => false,
    };
    let in_flight = observe::off_target(observed) || queries_off;
    let rechecks = [
        applied.failed().then_some(RETRY_AFTER),
        status::pinot_lags(status).then_some(PINOT_RECHECK),
        plan.upgrade.as_ref().and_then(|u| upgrade_recheck(&u.decision, in_flight)),
        // Segments move and instances leave without an event the operator watches.
        status
            .conditions
            .iter()
            .any(|c| c.type_ == status::PROGRESSING && c.reason == status::SCALING)
            .then_some(SCALING_RECHECK),
        applied.took_pinot_steps().then_some(AFTER_STEP),
        plan.policies.iter().any(|p| !p.ready).then_some(POLICY_RECHECK),
        // A ZooKeeper member's sync and the chroot are not watched: while the install or a
        // resize waits for them, or the chroot was just created, look again soon.
        (plan.create_chroot.is_some()
            || plan.ensemble.as_ref().is_some_and(|s| s.progress.is_some() || s.move_leader.is_some())
            || plan.pools.install_wait.as_deref().is_some_and(|w| w.contains("ZooKeeper")))
        .then_some(ENSEMBLE_RECHECK),
        // A load balancer's address arrives in the Service's status (watched), but its grace
        // running out is seen only by looking.
        observed
            .client_services
            .iter()
            .any(|s| s.type_ == "LoadBalancer" && s.load_balancer.is_empty())
            .then_some(observed.load_balancer_grace.clamp(Duration::from_secs(1), POLICY_RECHECK)),
    ];
    match rechecks.into_iter().flatten().min() {
        Some(after) => Next::Requeue(after),
        None => Next::AwaitChange,
    }
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

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher};
    use pinot_crds::{ClusterPolicies, PinotCluster};

    use super::{ObjectRef, clusters_deciding_with, fixtures};

    fn cluster(namespace: &str, name: &str, upgrade: Option<&str>, tenant: Option<&str>) -> PinotCluster {
        let mut c = fixtures::example();
        c.metadata.namespace = Some(namespace.into());
        c.metadata.name = Some(name.into());
        c.spec.policies =
            Some(ClusterPolicies { upgrade: upgrade.map(Into::into), scaling: None, tenant: tenant.map(Into::into) });
        c
    }

    /// A PinotPolicy that changes queues the clusters of its namespace that name it, for any
    /// kind, and no other; a receiver that lost changes queues every cluster naming a policy.
    #[tokio::test]
    async fn a_changed_policy_queues_the_clusters_that_name_it() {
        let (store, mut writer) = reflector::store::<PinotCluster>();
        for c in [
            cluster("team-a", "events", Some("careful"), None),
            cluster("team-a", "clicks", None, Some("careful")),
            cluster("team-a", "logs", Some("fast"), None),
            cluster("team-b", "events", Some("careful"), None),
            cluster("team-b", "plain", None, None),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(c));
        }
        let (changes, receiver) = tokio::sync::broadcast::channel(2);
        let mut queued = Box::pin(clusters_deciding_with(receiver, store));
        let mut next = async |n: usize| {
            let mut refs: Vec<String> = Vec::new();
            for _ in 0..n {
                let r: ObjectRef<PinotCluster> = queued.next().await.unwrap();
                refs.push(format!("{}/{}", r.namespace.unwrap(), r.name));
            }
            refs.sort();
            refs
        };
        changes.send(("team-a".into(), "careful".into())).unwrap();
        assert_eq!(next(2).await, ["team-a/clicks", "team-a/events"]);
        changes.send(("team-b".into(), "fast".into())).unwrap();
        changes.send(("team-b".into(), "careful".into())).unwrap();
        assert_eq!(next(1).await, ["team-b/events"]);
        // Three changes into a channel of two: the oldest is lost, so everything naming a policy.
        for name in ["fast", "careful", "fast"] {
            changes.send(("team-a".into(), name.into())).unwrap();
        }
        assert_eq!(next(4).await, ["team-a/clicks", "team-a/events", "team-a/logs", "team-b/events"]);
    }
}
