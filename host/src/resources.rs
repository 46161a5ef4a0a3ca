//! PinotSchemas, PinotTables and PinotTenants: Pinot's own objects kept equal to the live objects in the
//! Pinot controller of the PinotCluster they name.
//!
//! Each pass reads the live object from Pinot (never a copy in status), compares it with the
//! spec ([`compare`]) and writes only on a real difference, so a steady state makes no writes
//! and a change made in Pinot directly is repaired at the next drift check. A request Pinot
//! refuses (4xx) leaves `Ready=False` with Pinot's message and is not repeated until the spec
//! changes; an unreachable or failing (5xx) controller is retried with exponential backoff.
//! Deletion goes through a finalizer and honours `deletionPolicy`; tables go before their
//! schema.

pub mod compare;
mod schema;
mod table;
mod tenant;

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt};
use k8s_openapi::{NamespaceResourceScope, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        finalizer::{self, finalizer},
        reflector::{self, ObjectRef, Store},
        watcher::{self, watcher},
    },
};
use pinot_crds::{
    ClusterCondition, DeletionPolicy, PinotCluster, PinotObjectStatus, PinotSchema, PinotTable, PinotTenant,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    access::{AccessError, ControllerAccess},
    events::{self, Event, EventPublisher, EventType},
    pinot::{PinotClient, PinotError},
};

/// The finalizer that lets the operator honour `deletionPolicy` before a resource goes.
pub const FINALIZER: &str = "pinot.controlplane.dev/pinot-object";

/// How often a Ready object is compared with Pinot again by default, to repair drift.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(300);

/// Backoff after a transient failure: 1 s, 2 s, 4 s, ... up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How soon to retry when the finalizer list changed between the cache and the patch.
const FINALIZER_RETRY: Duration = Duration::from_millis(300);

/// How soon to look again while waiting on another object (a schema to be Ready, the tables of
/// a schema to be deleted), in case no watch event brings it earlier: the watches of the two
/// kinds are separate streams, so the event that releases a waiting object can arrive before
/// the object itself is in the cache. The check is against the caches only.
const WAITING_RECHECK: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct ResourcesConfig {
    /// Watch only this namespace (tests), or all.
    pub namespace: Option<String>,
    /// How often Ready objects are compared with Pinot to repair drift.
    pub drift_interval: Duration,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self { namespace: None, drift_interval: DEFAULT_DRIFT_INTERVAL }
    }
}

pub struct Context {
    pub client: Client,
    pub events: EventPublisher,
    pub access: ControllerAccess,
    pub drift_interval: Duration,
    pub schemas: Store<PinotSchema>,
    pub tables: Store<PinotTable>,
    pub tenants: Store<PinotTenant>,
    pub clusters: Store<PinotCluster>,
    /// Consecutive transient failures per object, for the backoff.
    failures: Mutex<Backoffs>,
    /// The refusals this process has seen, for the passes whose cached object does not show
    /// them yet.
    refusals: Mutex<Refusals>,
    /// The generation this process last saw each object applied at.
    applied: Mutex<HashMap<String, AppliedAt>>,
}

/// An object's uid and the generation Pinot holds.
type AppliedAt = (Option<String>, Option<i64>);

/// Transient failures per object ([`key`]), and when each may be tried again.
///
/// The backoff is kept here, not only in the controller's requeue, because watch events start
/// passes too: the status write that reports the failure, a status change of the cluster
/// (tenants, schemas) the object hears of. Without a check a dead controller was asked again
/// every few hundred milliseconds whatever the backoff said. A pass that starts before the
/// backoff is up does nothing and waits out the rest, unless something that may make the next
/// attempt succeed has changed since the failure ([`Inputs`]).
#[derive(Default)]
struct Backoffs(HashMap<String, Backoff>);

struct Backoff {
    /// Consecutive transient failures.
    attempts: u32,
    /// When the next attempt is due.
    retry_at: Instant,
    /// The object and its cluster as they were at the failure.
    inputs: Inputs,
}

/// What ends a backoff early when it changes: the object's spec (its generation), its deletion,
/// and its cluster (another cluster of that name, its spec, its controller URL, whether it is
/// available).
#[derive(Clone, Debug, PartialEq)]
struct Inputs {
    generation: Option<i64>,
    deleting: bool,
    cluster: Option<ClusterInputs>,
}

#[derive(Clone, Debug, PartialEq)]
struct ClusterInputs {
    uid: Option<String>,
    generation: Option<i64>,
    url: String,
    available: bool,
}

impl Backoffs {
    /// Records a transient failure at `now`: the attempt number and the delay until the next.
    fn fail(&mut self, key: String, inputs: Inputs, now: Instant) -> (u32, Duration) {
        let attempts = self.0.get(&key).map_or(0, |b| b.attempts).saturating_add(1);
        let delay = Duration::from_secs(1u64 << (attempts - 1).min(16)).min(MAX_BACKOFF);
        self.0.insert(key, Backoff { attempts, retry_at: now + delay, inputs });
        (attempts, delay)
    }

    /// How much longer a pass starting at `now` has to wait, if the object is backing off and
    /// nothing in `inputs` changed since its failure.
    fn pending(&self, key: &str, inputs: &Inputs, now: Instant) -> Option<Duration> {
        let backoff = self.0.get(key)?;
        if backoff.inputs != *inputs {
            return None;
        }
        backoff.retry_at.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    /// The object succeeded: its next failure starts the backoff again.
    fn clear(&mut self, key: &str) {
        self.0.remove(key);
    }
}

/// Refusals per object ([`key`]): the generation Pinot refused and the condition's message.
///
/// The status write that records a refusal (`refusedGeneration`) takes a moment to reach the
/// watch cache, and a pass started meanwhile (by the status change of the object's cluster,
/// say) reads the object without it: it would send the refused spec again. What this process
/// saw refused is therefore kept here too and consulted besides the status. An operator that
/// restarts (or a new leader) lists the objects afresh, with the status that was written.
#[derive(Default)]
struct Refusals(HashMap<String, Refusal>);

struct Refusal {
    /// The object's uid: another object of the same name is not refused.
    uid: Option<String>,
    generation: Option<i64>,
    message: String,
    /// Whether the status saying so was written (the write may have failed).
    written: bool,
}

impl Refusals {
    fn record(&mut self, key: String, uid: Option<String>, generation: Option<i64>, message: String) {
        self.0.insert(key, Refusal { uid, generation, message, written: false });
    }

    /// The refusal of this very object and generation, if one was recorded: its message and
    /// whether its status was written.
    fn get(&self, key: &str, uid: Option<&str>, generation: Option<i64>) -> Option<(&str, bool)> {
        let r = self.0.get(key)?;
        (r.uid.as_deref() == uid && r.generation == generation).then_some((r.message.as_str(), r.written))
    }

    fn written(&mut self, key: &str) {
        if let Some(r) = self.0.get_mut(key) {
            r.written = true;
        }
    }

    fn forget(&mut self, key: &str) {
        self.0.remove(key);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Pinot(#[from] PinotError),
    #[error("{0}")]
    Access(#[from] AccessError),
    #[error("writing status: {0}")]
    WriteStatus(kube::Error),
    #[error("{0}")]
    Finalizer(Box<finalizer::Error<Error>>),
    /// Deleting waits on something else (the tables of a schema); the finalizer stays.
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// A bounded label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Pinot(_) => "pinot",
            Error::Access(_) => "controller_access",
            Error::WriteStatus(_) => "write_status",
            Error::Finalizer(_) => "finalizer",
            Error::Waiting(_) => "waiting",
        }
    }
}

/// What the resources have in common.
pub trait PinotObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    fn cluster(&self) -> &str;
    fn status(&self) -> Option<&PinotObjectStatus>;
    fn deletion_policy(&self) -> DeletionPolicy;
}

/// The three kinds share their spec's `cluster` and `deletionPolicy` and their status type.
macro_rules! pinot_object {
    ($($kind:ident),*) => {$(
        impl PinotObject for $kind {
            const KIND: &'static str = stringify!($kind);
            fn cluster(&self) -> &str {
                &self.spec.cluster
            }
            fn status(&self) -> Option<&PinotObjectStatus> {
                self.status.as_ref()
            }
            fn deletion_policy(&self) -> DeletionPolicy {
                self.spec.deletion_policy
            }
        }
    )*};
}

pinot_object!(PinotSchema, PinotTable, PinotTenant);

/// Runs the PinotSchema, PinotTable and PinotTenant controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    access: ControllerAccess,
    config: ResourcesConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let shutdown = shutdown.boxed().shared();
    let (schemas, tables, tenants, clusters): (Api<PinotSchema>, Api<PinotTable>, Api<PinotTenant>, Api<PinotCluster>) =
        match &config.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => {
                (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()))
            }
        };
    let schema_controller = Controller::new(schemas.clone(), watcher::Config::default());
    let table_controller = Controller::new(tables.clone(), watcher::Config::default());
    let tenant_controller = Controller::new(tenants.clone(), watcher::Config::default());
    let (cluster_store, cluster_writer) = reflector::store();
    let cluster_reflector = reflector::reflector(cluster_writer, watcher(clusters.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .take_until(shutdown.clone())
        .for_each(|_| std::future::ready(()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: EventPublisher::new(client.clone(), events::CONTROLLER),
        access,
        drift_interval: config.drift_interval,
        schemas: schema_controller.store(),
        tables: table_controller.store(),
        tenants: tenant_controller.store(),
        clusters: cluster_store.clone(),
        failures: Mutex::default(),
        refusals: Mutex::default(),
        applied: Mutex::default(),
    });

    // A schema hears of the tables that use it (it is deleted after them); a table hears of
    // its schema (it is created once the schema is Ready); both hear of their cluster (its
    // controller coming up).
    let table_store = ctx.tables.clone();
    let schema_store = ctx.schemas.clone();
    let schema_run = schema_controller
        // Only a table going away matters to its schema (which may be waiting to be deleted).
        .watches(tables.clone(), watcher::Config::default(), |t: PinotTable| {
            let ns = t.namespace().unwrap_or_default();
            t.metadata.deletion_timestamp.as_ref()?;
            t.spec.schema_ref.map(|s| ObjectRef::new(&s).within(&ns))
        })
        .watches(clusters.clone(), watcher::Config::default(), move |c: PinotCluster| {
            objects_of_cluster(&schema_store, &c)
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_schema, error_policy, ctx.clone())
        .for_each(log_result);
    let table_run = table_controller
        // A schema that is Ready releases the tables waiting for it.
        .watches(schemas, watcher::Config::default(), move |s: PinotSchema| {
            let ns = s.namespace();
            let name = s.name_any();
            let ready = s
                .status
                .as_ref()
                .is_some_and(|st| st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                return Vec::new();
            }
            table_store
                .state()
                .into_iter()
                .filter(|t| t.namespace() == ns && t.spec.schema_ref.as_deref() == Some(name.as_str()))
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        })
        .watches(clusters.clone(), watcher::Config::default(), {
            let tables = ctx.tables.clone();
            move |c: PinotCluster| objects_of_cluster(&tables, &c)
        })
        // A table whose config names a tenant waits until that PinotTenant is placed.
        .watches(tenants, watcher::Config::default(), {
            let tables = ctx.tables.clone();
            move |t: PinotTenant| {
                let Ok(request) = crate::cluster::tenants::tenant_request(&t) else { return Vec::new() };
                tables
                    .state()
                    .into_iter()
                    .filter(|table| table.namespace() == t.namespace() && table.spec.cluster == t.spec.cluster)
                    .filter(|table| table::tenants_named(table).contains(&request.name))
                    .map(|table| ObjectRef::from_obj(&*table))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_table, error_policy, ctx.clone())
        .for_each(log_result);
    let tenant_run = tenant_controller
        // The cluster's pass reports where each of its tenants is in its status.
        .watches(clusters.clone(), watcher::Config::default(), {
            let tenants = ctx.tenants.clone();
            move |c: PinotCluster| objects_naming(&tenants, &c)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile_tenant, error_policy, ctx.clone())
        .for_each(log_result);
    // Objects are reconciled once the clusters they name are known.
    let controllers = async move {
        let _ = cluster_store.wait_until_ready().await;
        tokio::join!(schema_run, table_run, tenant_run);
    };
    tokio::join!(cluster_reflector, controllers);
}

async fn log_result<K: Debug, E: std::fmt::Display>(result: Result<K, E>) {
    match result {
        Ok(obj) => tracing::debug!(object = ?obj, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "reconcile failed"),
    }
}

/// Whether the cluster's controller may answer: it is external, or the cluster is Available.
fn cluster_available(cluster: &PinotCluster) -> bool {
    cluster.spec.external.is_some()
        || cluster
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Available" && c.status == "True"))
}

/// The objects that name `cluster`, when it is available (its controller may have come up).
fn objects_of_cluster<K: PinotObject>(store: &Store<K>, cluster: &PinotCluster) -> Vec<ObjectRef<K>> {
    match cluster_available(cluster) {
        true => objects_naming(store, cluster),
        false => Vec::new(),
    }
}

/// The objects that name `cluster`.
fn objects_naming<K: PinotObject>(store: &Store<K>, cluster: &PinotCluster) -> Vec<ObjectRef<K>> {
    let ns = cluster.namespace();
    let name = cluster.name_any();
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == ns && o.cluster() == name)
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

fn key<K: PinotObject>(obj: &K) -> String {
    format!("{}/{}/{}", K::KIND, obj.namespace().unwrap_or_default(), obj.name_any())
}

/// What of the object and its cluster may end its backoff early (see [`Backoffs`]).
fn inputs_of<K: PinotObject>(ctx: &Context, obj: &K) -> Inputs {
    let cluster = ctx.clusters.get(&ObjectRef::new(obj.cluster()).within(&obj.namespace().unwrap_or_default()));
    Inputs {
        generation: obj.meta().generation,
        deleting: obj.meta().deletion_timestamp.is_some(),
        cluster: cluster.map(|c| ClusterInputs {
            uid: c.uid(),
            generation: c.metadata.generation,
            url: ctx.access.url_for(&c),
            available: cluster_available(&c),
        }),
    }
}

/// How much longer the object has to wait before its next attempt, if it is backing off from a
/// transient failure and nothing that could change the outcome has changed since.
fn backoff_left<K: PinotObject>(ctx: &Context, obj: &K) -> Option<Duration> {
    let inputs = inputs_of(ctx, obj);
    ctx.failures.lock().expect("failure counts poisoned").pending(&key(obj), &inputs, Instant::now())
}

fn error_policy<K: PinotObject>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Waiting(message) = error {
        tracing::debug!(kind = K::KIND, name = %obj.name_any(), %message, "waiting");
        return waiting();
    }
    if let Error::Finalizer(e) = error
        && matches!(**e, finalizer::Error::AddFinalizer(kube::Error::Api(ref s)) | finalizer::Error::RemoveFinalizer(kube::Error::Api(ref s)) if s.code == 409 || s.code == 422)
    {
        // The cached object lagged behind the finalizer list (the patch tests it): try again
        // once the cache has caught up, without counting it as a failure.
        tracing::debug!(kind = K::KIND, name = %obj.name_any(), "finalizer list changed meanwhile; retrying");
        return Action::requeue(FINALIZER_RETRY);
    }
    let inputs = inputs_of(&ctx, &*obj);
    let (attempt, delay) =
        ctx.failures.lock().expect("failure counts poisoned").fail(key(&*obj), inputs, Instant::now());
    tracing::warn!(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace(), attempt, retry_in = ?delay, error = %error, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// A pass that a watch event started while the object backs off waits out the backoff instead
/// (see [`Backoffs`]); it is not counted as a reconcile.
fn backing_off<K: PinotObject>(obj: &K, ctx: &Context) -> Option<Action> {
    let left = backoff_left(ctx, obj)?;
    tracing::debug!(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace(), retry_in = ?left, "backing off");
    Some(Action::requeue(left))
}

async fn reconcile_schema(obj: Arc<PinotSchema>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_object(obj, ctx, schema::apply, schema::cleanup).await
}

async fn reconcile_tenant(obj: Arc<PinotTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_object(obj, ctx, tenant::apply, tenant::cleanup).await
}

async fn reconcile_table(obj: Arc<PinotTable>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile_object(obj, ctx, table::apply, table::cleanup).await
}

/// One reconcile of a Pinot object, timed and counted, unless it is backing off (then it only
/// waits out the rest, uncounted): `apply` or, once the resource is being deleted, `cleanup`,
/// behind the finalizer.
async fn reconcile_object<K, A, AF, C, CF>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: PinotObject,
    A: FnOnce(Arc<K>, Arc<Context>) -> AF,
    AF: Future<Output = Result<Action, Error>>,
    C: FnOnce(Arc<K>, Arc<Context>) -> CF,
    CF: Future<Output = Result<Action, Error>>,
{
    if let Some(action) = backing_off(&*obj, &ctx) {
        return Ok(action);
    }
    let reconcile = async move {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
        let k = key(&*obj);
        // With `Retain` deleting the resource does nothing in Pinot, so it carries no finalizer (and
        // never holds up the deletion of its namespace). One that still has it, from an earlier
        // `Delete`, goes through the finalizer, which then simply lets it go.
        let ours = obj.finalizers().iter().any(|f| f == FINALIZER);
        if obj.meta().deletion_timestamp.is_some() {
            ctx.refusals.lock().expect("refusals poisoned").forget(&k);
            ctx.applied.lock().expect("applied poisoned").remove(&k);
        }
        let result = if obj.deletion_policy() == DeletionPolicy::Retain && !ours {
            if obj.meta().deletion_timestamp.is_some() {
                Ok(Action::await_change())
            } else {
                apply(obj, ctx.clone()).await
            }
        } else {
            finalizer(&api, FINALIZER, obj, |event| async {
                match event {
                    finalizer::Event::Apply(o) => apply(o, ctx.clone()).await,
                    finalizer::Event::Cleanup(o) => cleanup(o, ctx.clone()).await,
                }
            })
            .await
            .map_err(|e| match e {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
                other => Error::Finalizer(Box::new(other)),
            })
        };
        if result.is_ok() {
            ctx.failures.lock().expect("failure counts poisoned").clear(&k);
        }
        result
    };
    crate::metrics::timed(K::KIND, reconcile, Error::category).await
}

/// The PinotCluster an object names and a client for its controller, or why there is none.
pub(crate) enum Reach {
    Ready(PinotClient),
    /// No such cluster: the message for the condition.
    NoCluster(String),
}

pub(crate) async fn reach<K: PinotObject>(ctx: &Context, obj: &K) -> Result<Reach, Error> {
    match named_cluster(ctx, obj) {
        Ok(cluster) => Ok(Reach::Ready(ctx.access.client_for(&cluster).await?)),
        Err(message) => Ok(Reach::NoCluster(message)),
    }
}

/// The PinotCluster the object names (from the watched clusters: no API call per reconcile),
/// or the message for its condition when there is none.
pub(crate) fn named_cluster<K: PinotObject>(ctx: &Context, obj: &K) -> Result<Arc<PinotCluster>, String> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.cluster();
    if name.trim().is_empty() {
        return Err("spec.cluster is empty: name the PinotCluster (same namespace)".into());
    }
    ctx.clusters
        .get(&ObjectRef::new(name).within(&ns))
        .ok_or_else(|| format!("PinotCluster {name} (spec.cluster) does not exist in namespace {ns}"))
}

/// Another object of the same kind and cluster that manages the Pinot object `name` and was
/// created first: two resources may not manage one object, and the older one keeps it.
pub(crate) fn older_owner<K: PinotObject>(
    store: &Store<K>,
    obj: &K,
    name: &str,
    pinot_name: impl Fn(&K) -> Option<String>,
) -> Option<String> {
    let ns = obj.namespace();
    let mine = (obj.meta().creation_timestamp.clone(), obj.name_any());
    store
        .state()
        .into_iter()
        .filter(|o| o.namespace() == ns && o.cluster() == obj.cluster() && o.name_any() != obj.name_any())
        .filter(|o| pinot_name(o).as_deref() == Some(name))
        .filter(|o| (o.meta().creation_timestamp.clone(), o.name_any()) < mine)
        .map(|o| o.name_any())
        .next()
}

/// The client of the object's cluster for an apply; when there is none, the status says why
/// and the caller returns the given action. A transient failure is reported and returned as
/// the error (retried with backoff).
pub(crate) async fn reach_for_apply<K: PinotObject>(
    ctx: &Context,
    obj: &K,
    status: &PinotObjectStatus,
) -> Result<Result<PinotClient, Action>, Error> {
    match reach(ctx, obj).await {
        Ok(Reach::Ready(pinot)) => Ok(Ok(pinot)),
        Ok(Reach::NoCluster(message)) => {
            write_status(&ctx.client, obj, status.clone(), ready(false, "ClusterNotFound", message)).await?;
            Ok(Err(waiting()))
        }
        Err(e) => report_transient(ctx, obj, e).await.map(Err),
    }
}

/// The client of the object's cluster for a `Delete` cleanup: `None` when the cluster is gone
/// (nothing can be deleted from it; an event says so and the resource may go).
pub(crate) async fn reach_for_cleanup<K: PinotObject>(
    ctx: &Context,
    obj: &K,
    what: &str,
) -> Result<Option<PinotClient>, Error> {
    match reach(ctx, obj).await {
        Ok(Reach::Ready(pinot)) => Ok(Some(pinot)),
        Ok(Reach::NoCluster(message)) => {
            publish(ctx, obj, true, "NotDeleted", format!("{what} not deleted from Pinot: {message}")).await;
            Ok(None)
        }
        Err(e) => report_transient(ctx, obj, e).await.map(|_| None),
    }
}

/// Whether the current generation was applied: the cached status says so, or this process saw
/// it applied and the cache lags behind that status write. (A stale status must not make the
/// reconcile send a spec to Pinot again; asking the API server would need `get` on the status,
/// which the operator's role does not grant.)
pub(crate) fn applied_freshly<K: PinotObject>(ctx: &Context, obj: &K) -> bool {
    let generation = obj.meta().generation;
    obj.status().is_some_and(|s| s.applied_generation == generation)
        || ctx.applied.lock().expect("applied poisoned").get(&key(obj)) == Some(&(obj.uid(), generation))
}

/// Whether Pinot refused the object's current generation already, so that its spec is not sent
/// again until the spec changes: the status says so, or this process saw the refusal and the
/// cached object does not show it yet ([`Refusals`]). If the status write of that refusal
/// failed, it is made now: `status`, filled in by the caller as for the refusal, with
/// `refusedGeneration` and the refusal's condition.
pub(crate) async fn refused_already<K: PinotObject>(
    ctx: &Context,
    obj: &K,
    mut status: PinotObjectStatus,
) -> Result<bool, Error> {
    let k = key(obj);
    let (uid, generation) = (obj.uid(), obj.meta().generation);
    let message = {
        let mut refusals = ctx.refusals.lock().expect("refusals poisoned");
        let recorded = refusals.get(&k, uid.as_deref(), generation).map(|(m, written)| (m.to_string(), written));
        if status.refused_generation.is_some() && status.refused_generation == generation {
            // The cached object shows the refusal: the record has done its work.
            if recorded.is_some() {
                refusals.forget(&k);
            }
            return Ok(true);
        }
        match recorded {
            None => return Ok(false),
            // Written, and not in the cache yet.
            Some((_, true)) => return Ok(true),
            Some((message, false)) => message,
        }
    };
    status.refused_generation = generation;
    write_status(&ctx.client, obj, status, ready(false, "PinotRefused", message)).await?;
    refusal_written(ctx, obj);
    Ok(true)
}

/// Records that Pinot refused the object's current generation, with the condition's message;
/// call it before the status write that says so, and [`refusal_written`] after it.
pub(crate) fn record_refusal<K: PinotObject>(ctx: &Context, obj: &K, message: &str) {
    ctx.refusals.lock().expect("refusals poisoned").record(key(obj), obj.uid(), obj.meta().generation, message.into());
}

/// The status saying that Pinot refused the object's current generation was written.
pub(crate) fn refusal_written<K: PinotObject>(ctx: &Context, obj: &K) {
    ctx.refusals.lock().expect("refusals poisoned").written(&key(obj));
}

/// Pinot holds the object's current spec: a refusal of it is forgotten, and the generation is
/// remembered as applied for the passes whose cached object does not show it yet.
pub(crate) fn holds_spec<K: PinotObject>(ctx: &Context, obj: &K) {
    ctx.refusals.lock().expect("refusals poisoned").forget(&key(obj));
    ctx.applied.lock().expect("applied poisoned").insert(key(obj), (obj.uid(), obj.meta().generation));
}

/// A `Ready` condition.
pub(crate) fn ready(status: bool, reason: &str, message: impl Into<String>) -> ClusterCondition {
    ClusterCondition {
        type_: "Ready".into(),
        status: if status { "True" } else { "False" }.into(),
        last_transition_time: String::new(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
    }
}

/// Every field of `PinotObjectStatus` as serialized (checked by a test).
const STATUS_FIELDS: &[&str] = &[
    "observedGeneration",
    "conditions",
    "pinotName",
    "appliedGeneration",
    "refusedGeneration",
    "tableTypes",
    "instances",
    "zones",
];

/// Writes `status` (with `condition` as its Ready condition and the object's generation) if
/// it differs from what the object has.
pub(crate) async fn write_status<K: PinotObject>(
    client: &Client,
    obj: &K,
    status: PinotObjectStatus,
    condition: ClusterCondition,
) -> Result<(), Error> {
    write_status_with(client, obj, status, condition, vec![]).await
}

/// `write_status` with conditions of other types after `Ready` (a table's `ZoneSpread`).
pub(crate) async fn write_status_with<K: PinotObject>(
    client: &Client,
    obj: &K,
    mut status: PinotObjectStatus,
    condition: ClusterCondition,
    others: Vec<ClusterCondition>,
) -> Result<(), Error> {
    let generation = obj.meta().generation;
    let old = obj.status();
    let mut conditions = vec![condition];
    conditions.extend(others);
    for condition in &mut conditions {
        let previous = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == condition.type_));
        condition.observed_generation = generation;
        condition.last_transition_time = match previous {
            Some(p) if p.status == condition.status => p.last_transition_time.clone(),
            _ => Timestamp::now().to_string(),
        };
    }
    status.observed_generation = generation;
    status.conditions = conditions;
    if old == Some(&status) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    // A merge patch leaves out what the status no longer has (a refusal the spec has fixed, a
    // tenant's instances now none): say null for every field it omits, so that it is removed.
    let mut body = serde_json::to_value(&status).map_err(|e| Error::Waiting(e.to_string()))?;
    if let Some(fields) = body.as_object_mut() {
        for field in STATUS_FIELDS {
            fields.entry(*field).or_insert(serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({"status": body});
    api.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::WriteStatus)?;
    Ok(())
}

/// Publishes an event about the object; a failure to publish is logged, never fatal.
pub(crate) async fn publish<K: PinotObject>(ctx: &Context, obj: &K, warning: bool, reason: &str, note: String) {
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&obj.object_ref(&()), &event).await {
        tracing::warn!(error = %e, reason, "publishing event failed");
    }
}

/// What a write to Pinot came to, for status.
pub(crate) enum Outcome {
    /// Pinot holds the spec.
    Synced,
    /// Pinot refused the spec (4xx): its message. Not retried until the spec changes.
    Refused(String),
}

/// Turns a Pinot error from a write into an outcome, or into an error to retry with backoff.
pub(crate) fn outcome_of(result: Result<(), PinotError>) -> Result<Outcome, PinotError> {
    match result {
        Ok(()) => Ok(Outcome::Synced),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => Ok(Outcome::Refused(e.pinot_message().to_string())),
    }
}

/// The condition and requeue for an error that will be retried with backoff: the status says
/// so before the error goes to the error policy.
pub(crate) async fn report_transient<K: PinotObject>(ctx: &Context, obj: &K, error: Error) -> Result<Action, Error> {
    let status = obj.status().cloned().unwrap_or_default();
    let reason = match &error {
        Error::Access(e) if !e.is_transient() => "InvalidAccess",
        Error::Access(_) => "AccessUnavailable",
        _ => "PinotUnavailable",
    };
    let message = format!("{error}; retrying with backoff");
    write_status(&ctx.client, obj, status, ready(false, reason, message)).await?;
    Err(error)
}

/// Requeue for a Ready object: the next drift check.
pub(crate) fn drift_check(ctx: &Context) -> Action {
    Action::requeue(ctx.drift_interval)
}

pub(crate) fn waiting() -> Action {
    Action::requeue(WAITING_RECHECK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(generation: i64) -> Inputs {
        Inputs {
            generation: Some(generation),
            deleting: false,
            cluster: Some(ClusterInputs {
                uid: Some("c-uid".into()),
                generation: Some(1),
                url: "http://pinot:9000".into(),
                available: true,
            }),
        }
    }

    #[test]
    fn a_pass_before_the_backoff_is_up_waits_out_the_rest() {
        let mut backoffs = Backoffs::default();
        let t0 = Instant::now();
        assert_eq!(backoffs.fail("t".into(), inputs(1), t0), (1, Duration::from_secs(1)));
        // A watch event 100 ms later (the failure's own status write, the cluster's): no attempt.
        let ms = Duration::from_millis;
        assert_eq!(backoffs.pending("t", &inputs(1), t0 + ms(100)), Some(ms(900)));
        // Once it is up, the attempt is made; the next failure doubles the delay.
        assert_eq!(backoffs.pending("t", &inputs(1), t0 + ms(1000)), None);
        let t1 = t0 + ms(1000);
        assert_eq!(backoffs.fail("t".into(), inputs(1), t1), (2, Duration::from_secs(2)));
        assert_eq!(backoffs.pending("t", &inputs(1), t1 + ms(1500)), Some(ms(500)));
        // Other objects are not held back.
        assert_eq!(backoffs.pending("u", &inputs(1), t1), None);
        // Success starts over.
        backoffs.clear("t");
        assert_eq!(backoffs.pending("t", &inputs(1), t1), None);
        assert_eq!(backoffs.fail("t".into(), inputs(1), t1), (1, Duration::from_secs(1)));
    }

    #[test]
    fn a_change_that_may_fix_the_failure_ends_the_backoff() {
        let mut backoffs = Backoffs::default();
        let t0 = Instant::now();
        backoffs.fail("t".into(), inputs(1), t0);
        let now = t0 + Duration::from_millis(10);
        // A new spec.
        assert_eq!(backoffs.pending("t", &inputs(2), now), None);
        // Deletion.
        assert_eq!(backoffs.pending("t", &Inputs { deleting: true, ..inputs(1) }, now), None);
        // The cluster becoming available, another controller URL, no cluster any more.
        let mut cluster = inputs(1);
        cluster.cluster.as_mut().unwrap().available = false;
        backoffs.fail("c".into(), cluster, t0);
        assert_eq!(backoffs.pending("c", &inputs(1), now), None);
        let mut url = inputs(1);
        url.cluster.as_mut().unwrap().url = "http://other:9000".into();
        assert_eq!(backoffs.pending("t", &url, now), None);
        assert_eq!(backoffs.pending("t", &Inputs { cluster: None, ..inputs(1) }, now), None);
        // The delay is capped.
        for _ in 0..20 {
            backoffs.fail("t".into(), inputs(1), t0);
        }
        assert_eq!(backoffs.pending("t", &inputs(1), t0), Some(MAX_BACKOFF));
    }

    #[test]
    fn a_refusal_is_remembered_for_that_object_and_generation_only() {
        let mut refusals = Refusals::default();
        refusals.record("t".into(), Some("uid-1".into()), Some(2), "no schema".into());
        assert_eq!(refusals.get("t", Some("uid-1"), Some(2)), Some(("no schema", false)));
        refusals.written("t");
        assert_eq!(refusals.get("t", Some("uid-1"), Some(2)), Some(("no schema", true)));
        // A new spec is sent; so is the spec of an object of the same name created anew.
        assert_eq!(refusals.get("t", Some("uid-1"), Some(3)), None);
        assert_eq!(refusals.get("t", Some("uid-2"), Some(2)), None);
        assert_eq!(refusals.get("u", Some("uid-1"), Some(2)), None);
        refusals.forget("t");
        assert_eq!(refusals.get("t", Some("uid-1"), Some(2)), None);
    }

    #[test]
    fn status_fields_name_every_field_of_the_status() {
        let full = PinotObjectStatus {
            observed_generation: Some(1),
            conditions: vec![ready(true, "Ready", "")],
            pinot_name: Some("x".into()),
            applied_generation: Some(1),
            refused_generation: Some(1),
            table_types: Some("OFFLINE".into()),
            instances: vec!["i".into()],
            zones: vec![pinot_crds::TenantZone { zone: "a".into(), pool: Some(0), servers: 1, live: 1 }],
        };
        let value = serde_json::to_value(&full).unwrap();
        let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = STATUS_FIELDS.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }
}
