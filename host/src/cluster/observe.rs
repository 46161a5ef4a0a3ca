//! Step 1 of the pipeline: reads what exists for one PinotCluster — its StatefulSets, their
//! pods, and every other child the operator manages — so that every later decision is derived
//! from observed state, never from memory.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{ResourceExt, api::ObjectMeta};
use pinot_crds::{PinotCluster, PinotTenant, RebalanceJob};

pub use crate::children::{pod_is_ready, pod_ordinal, pod_revision};
use crate::{
    access::ControllerAccess,
    children::headless_service_name,
    children::{ChildKind, LABEL_MANAGED_BY, LABEL_POOL, LABEL_ROLE, MANAGED_BY},
    cluster::{
        cache::{Caches, NodeFacts, node_of},
        validate::helix_cluster_name,
    },
    pinot::{ClusterRelease, InstanceInfo, PinotClient, TablePlacement, http_client, instance_id},
    role::Role,
};

/// Where a pass reads from: the caches the controller's watches fill, the Pinot controllers,
/// and the other PinotClusters (for the upgrade slots).
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub caches: &'a Caches,
    pub access: &'a ControllerAccess,
    pub clusters: &'a kube::runtime::reflector::Store<PinotCluster>,
    /// The Kubernetes cluster's DNS domain, part of every Pinot instance id.
    pub cluster_domain: &'a str,
    /// How long a load balancer may take to get its address.
    pub load_balancer_grace: std::time::Duration,
}

/// Step 1: everything one pass decides from. Its children and pods and PinotTenants from the
/// caches; its Pinot controller (for an external cluster, only its controller); the release
/// the operator acts for, from the controller and every image; the other clusters (for the
/// upgrade slots). A failure to reach Pinot is observed state, never an error of the pass.
pub async fn observe_cluster(sources: &Sources<'_>, cluster: &PinotCluster) -> ObservedCluster {
    let pinot_url = sources.access.url_for(cluster);
    let (pinot, access_problem) = match sources.access.client_for(cluster).await {
        Ok(pinot) => (pinot, None),
        Err(e) => (PinotClient::new(http_client(), pinot_url.clone()), Some(e.to_string())),
    };
    let external = cluster.spec.external.is_some();
    let mut observed = match external {
        true => ObservedCluster::default(),
        false => observe(sources.caches, cluster),
    };
    observed.tenants = tenants_of(sources.caches, cluster);
    observed.others = OtherClusters { store: Some(sources.clusters.clone()), uid: cluster.uid() };
    if external {
        observed.pinot = match &access_problem {
            Some(problem) => PinotObservation::Unreachable(problem.clone()),
            None => observe_external(&pinot, !observed.tenants.is_empty()).await,
        };
        observed.release = cluster_release(&observed.pinot, &[]);
    } else {
        let (name, namespace) = (cluster.name_any(), cluster.namespace().unwrap_or_default());
        let domain = sources.cluster_domain;
        observed.pod_instances = pod_instance_ids(&name, &namespace, domain, &observed);
        let pool_instances = pool_instances(&name, &namespace, domain, &observed);
        let rebalances = cluster.status.as_ref().map(|s| s.rebalances.clone()).unwrap_or_default();
        let upgrading = off_target(&observed);
        let helix_cluster = helix_cluster_name(cluster);
        observed.pinot =
            observe_pinot(&pinot, &observed, &pool_instances, &rebalances, &helix_cluster, upgrading).await;
        let spec_images = std::iter::once(cluster.spec.image.as_str())
            .chain(cluster.spec.pools.iter().filter_map(|p| p.image.as_deref()));
        observed.release = cluster_release(&observed.pinot, &images(&observed, spec_images));
    }
    if let Some(managed) = cluster.spec.zookeeper.managed.as_ref().filter(|_| !external) {
        let chroot = managed.chroot.as_deref().unwrap_or(super::validate::zookeeper::DEFAULT_CHROOT);
        let pods = observed.pods.get(super::validate::zookeeper::ENSEMBLE_POOL).map(Vec::as_slice).unwrap_or_default();
        observed.ensemble = Some(super::ensemble::observe(pods, chroot).await);
    }
    if !external {
        observed.volume_claims = super::volumes::observe(sources.client, cluster, &observed.statefulsets).await;
        observed.client_services = client_services(sources.client, cluster).await;
        observed.load_balancer_grace = sources.load_balancer_grace;
    }
    let references = super::references::of(cluster);
    if !references.is_empty() {
        let namespace = cluster.namespace().unwrap_or_default();
        let seen = super::references::observe(sources.client, &namespace, &references).await;
        observed.missing_references = super::references::problems(&namespace, &references, &seen);
    }
    // The Pinot calls of this pass use only what the cluster's release offers.
    observed.controller =
        Some(Controller { url: pinot_url, client: pinot.with_release(observed.release.effective), access_problem });
    observed
}

/// An external cluster's controller: whether it answers, its version, instances and which are
/// live; with `placing` (it has PinotTenants to place), each instance's details and its tables.
async fn observe_external(pinot: &PinotClient, placing: bool) -> PinotObservation {
    let result = async {
        pinot.health().await?;
        let (version, instances, live) = tokio::try_join!(pinot.version(), pinot.instances(), pinot.live_instances())?;
        let (details, tables) = match placing {
            true => tokio::try_join!(
                futures::future::try_join_all(instances.iter().map(|id| async move {
                    Ok::<_, crate::pinot::PinotError>((id.clone(), pinot.instance(id).await?))
                })),
                pinot.table_placements(),
            )?,
            false => (vec![], vec![]),
        };
        Ok::<_, crate::pinot::PinotError>(PinotObservation::Reachable {
            version,
            instances: instances.into_iter().collect(),
            live: live.into_iter().collect(),
            details: details.into_iter().collect(),
            departed: BTreeMap::new(),
            tables,
            rebalances: vec![],
            leaderless_partitions: None,
        })
    }
    .await;
    result.unwrap_or_else(|e| PinotObservation::Unreachable(e.to_string()))
}

/// The cluster's PinotTenants (those not being deleted), as the tenant watch sees them.
fn tenants_of(caches: &Caches, cluster: &PinotCluster) -> Vec<PinotTenant> {
    let namespace = cluster.namespace().unwrap_or_default();
    let mut tenants: Vec<PinotTenant> = caches
        .tenants
        .of(&namespace, &cluster.name_any())
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .map(|t| PinotTenant::clone(t))
        .collect();
    tenants.sort_by_key(|t| t.name_any());
    tenants
}

/// The other PinotClusters as the controller's store has them, read only when an upgrade would
/// start (a pass of each of a thousand clusters would otherwise look at all the others).
#[derive(Clone, Default)]
pub struct OtherClusters {
    store: Option<kube::runtime::reflector::Store<PinotCluster>>,
    /// This cluster's uid.
    uid: Option<String>,
}

impl OtherClusters {
    /// The other clusters upgrading (or halted mid-upgrade) now, as `namespace/name`.
    pub fn upgrading(&self) -> Vec<String> {
        let Some(store) = &self.store else { return vec![] };
        store
            .state()
            .iter()
            .filter(|c| c.uid() != self.uid && c.status.as_ref().is_some_and(|s| s.is_upgrading()))
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect()
    }
}

impl std::fmt::Debug for OtherClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtherClusters").field("uid", &self.uid).finish_non_exhaustive()
    }
}

/// How this pass reaches the cluster's Pinot controller.
#[derive(Clone, Debug)]
pub struct Controller {
    /// Its base URL.
    pub url: String,
    /// A client speaking the cluster's release.
    pub client: PinotClient,
    /// Why the operator could not set up access as the spec says (a Secret missing, ...).
    pub access_problem: Option<String>,
}

/// A child object as observed: enough to tell whether it is ours and whether applying it
/// changed it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedChild {
    pub kind: ChildKind,
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// What `AppliedChildren` compares (`cache::applied_version`).
    pub applied_version: String,
    /// `metadata.generation` for kinds that have one (changes only with the spec).
    pub generation: Option<i64>,
    /// Uids of the objects in its ownerReferences.
    pub owner_uids: Vec<String>,
    pub pool: Option<String>,
}

/// Everything that exists for one cluster.
#[derive(Clone, Debug, Default)]
pub struct ObservedCluster {
    pub children: Vec<ObservedChild>,
    /// StatefulSets by pool name.
    pub statefulsets: BTreeMap<String, StatefulSet>,
    /// Pods by pool name, in ordinal order.
    pub pods: BTreeMap<String, Vec<Pod>>,
    /// What the cluster's Pinot controller says.
    pub pinot: PinotObservation,
    /// The Pinot release the operator acts for (`cluster_release`).
    pub release: ClusterRelease,
    /// The Pinot instance id of each pod, by pod name (`pod_instance_ids`).
    pub pod_instances: BTreeMap<String, String>,
    /// The nodes the pods run on, by name; `None` when the operator may not see nodes (then
    /// no pod has a zone, and none counts as being on a node that is not Ready).
    pub nodes: Option<BTreeMap<String, NodeFacts>>,
    /// Every zone some node of the Kubernetes cluster is in; `None` when the operator may not
    /// see nodes.
    pub node_zones: Option<BTreeSet<String>>,
    /// The cluster's PinotTenants, by name.
    pub tenants: Vec<PinotTenant>,
    /// The claims of pools whose `storage.size` differs from their StatefulSet's, by pool.
    pub volume_claims: BTreeMap<String, super::volumes::ObservedClaims>,
    /// The client Services exposed as NodePort or LoadBalancer, as the apiserver has them
    /// (ClusterIP ones are not read: their address is their DNS name).
    pub client_services: Vec<ClientService>,
    /// How long a load balancer may take to get its address before it is a problem.
    pub load_balancer_grace: std::time::Duration,
    /// Objects the spec names for the pods (Secrets, ConfigMaps, the ServiceAccount, the
    /// PriorityClass) that do not exist or lack the key, each as the field naming it.
    pub missing_references: Vec<super::validate::FieldError>,
    /// The managed ZooKeeper ensemble's members, as they answer (`spec.zookeeper.managed`).
    pub ensemble: Option<super::ensemble::EnsembleObservation>,
    /// The other PinotClusters (for the upgrade slots).
    pub others: OtherClusters,
    /// How the cluster's controller is reached; `None` only in tests of the pure steps.
    pub controller: Option<Controller>,
}

/// The cluster as its Pinot controller reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum PinotObservation {
    /// No controller pod is ready yet, so the controller was not asked.
    #[default]
    NotAsked,
    /// The controller did not answer, or refused.
    Unreachable(String),
    Reachable {
        /// The controller's Pinot version (`GET /version`, without its git sha), when it says.
        version: Option<String>,
        /// Every instance Helix knows.
        instances: BTreeSet<String>,
        /// The instances live now.
        live: BTreeSet<String>,
        /// Details of the instances of this cluster's pods (and departed pods) that the
        /// controller knows. While an upgrade is under way, every server's
        /// `shutdown_in_progress` is known (read from ZooKeeper before 1.5.0).
        details: BTreeMap<String, InstanceInfo>,
        /// By pool: instances of pods gone for good (ordinals at or above the StatefulSet's
        /// replicas), which a scale-in still has to drop.
        departed: BTreeMap<String, Vec<String>>,
        /// Every table, its replication, tags and where its segments are.
        tables: Vec<TablePlacement>,
        /// The latest rebalance the operator started per table, with its status now.
        rebalances: Vec<RebalanceJob>,
        /// While an upgrade is under way: lead-controller partitions without a leader now.
        leaderless_partitions: Option<u32>,
    },
}

impl PinotObservation {
    /// Segments hosted per server, over every table.
    pub fn segments_per_server(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        if let PinotObservation::Reachable { tables, .. } = self {
            for (server, n) in tables.iter().flat_map(|t| &t.servers) {
                *out.entry(server.clone()).or_insert(0) += n;
            }
        }
        out
    }
}

/// Pinot's status of a rebalance job that is still running.
pub const IN_PROGRESS: &str = "IN_PROGRESS";

/// How the instance ids of one pool's pods look: `<prefix><ordinal><suffix>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolInstances {
    pub pool: String,
    pub prefix: String,
    pub suffix: String,
    /// The StatefulSet's replicas: instances of ordinals from here on have departed.
    pub replicas: u32,
}

impl PoolInstances {
    /// The ordinal of an instance of this pool.
    fn ordinal(&self, id: &str) -> Option<u32> {
        id.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?.parse().ok()
    }
}

/// The instance-id pattern of every pool that has a StatefulSet (in the spec or leaving it).
pub fn pool_instances(cluster: &str, namespace: &str, domain: &str, observed: &ObservedCluster) -> Vec<PoolInstances> {
    observed
        .statefulsets
        .iter()
        .filter_map(|(pool, sts)| {
            let role: Role = sts.labels().get(LABEL_ROLE)?.parse().ok()?;
            let marker = '\u{1}';
            let id = instance_id(
                role,
                &format!("{}-{marker}", sts.name_any()),
                &headless_service_name(cluster, pool),
                namespace,
                domain,
            );
            let (prefix, suffix) = id.split_once(marker)?;
            Some(PoolInstances {
                pool: pool.clone(),
                prefix: prefix.to_string(),
                suffix: suffix.to_string(),
                replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0).max(0) as u32,
            })
        })
        .collect()
}

impl ObservedChild {
    /// Whether an object read back after applying differs from this observation in what the
    /// operator writes. Kinds with a generation compare it, so that a controller's status
    /// update between observing and applying is not taken for a change.
    pub fn changed_by(&self, generation: Option<i64>, resource_version: Option<&str>) -> bool {
        match (self.generation, generation) {
            (Some(old), Some(new)) => old != new,
            _ => self.resource_version.as_deref() != resource_version,
        }
    }
}

impl ObservedCluster {
    pub fn child(&self, kind: ChildKind, name: &str) -> Option<&ObservedChild> {
        self.children.iter().find(|c| c.kind == kind && c.name == name)
    }

    /// What is known of the node `pod` runs on (none while it is not scheduled, or when the
    /// operator may not see nodes).
    pub fn node_facts(&self, pod: &Pod) -> Option<&NodeFacts> {
        self.nodes.as_ref()?.get(node_of(pod)?)
    }

    /// Pools whose StatefulSet has not yet observed its latest spec (its revisions are stale).
    pub fn stale_pools(&self) -> Vec<&str> {
        self.statefulsets
            .iter()
            .filter(|(_, sts)| sts.status.as_ref().and_then(|s| s.observed_generation) < sts.metadata.generation)
            .map(|(pool, _)| pool.as_str())
            .collect()
    }
}

/// What `Progressing` says while StatefulSets have not observed their spec.
pub fn stale_message(pools: &[&str]) -> String {
    format!("waiting for the StatefulSets of pools {} to observe the change", pools.join(", "))
}

/// The cluster's children and pods as the controller's watches see them (`cache.rs`): only
/// objects that carry the operator's managed-by label count as its children.
pub fn observe(caches: &Caches, cluster: &PinotCluster) -> ObservedCluster {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let mut observed = ObservedCluster::default();
    let managed = |labels: &BTreeMap<String, String>| labels.get(LABEL_MANAGED_BY).is_some_and(|m| m == MANAGED_BY);
    let child = |kind: ChildKind, meta: &ObjectMeta| ObservedChild {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        applied_version: crate::cluster::cache::applied_version(meta),
        generation: meta.generation,
        owner_uids: meta.owner_references.iter().flatten().map(|o| o.uid.clone()).collect(),
        pool: meta.labels.as_ref().and_then(|l| l.get(LABEL_POOL)).cloned(),
    };
    for kind in ChildKind::ALL {
        let Some(objects) = caches.metadata(kind) else { continue };
        for object in objects.of(&ns, &name) {
            if managed(object.labels()) {
                observed.children.push(child(kind, &object.metadata));
            }
        }
    }
    for sts in caches.statefulsets.of(&ns, &name) {
        if !managed(sts.labels()) {
            continue;
        }
        observed.children.push(child(ChildKind::StatefulSet, &sts.metadata));
        if let Some(pool) = sts.labels().get(LABEL_POOL).cloned() {
            observed.statefulsets.insert(pool, StatefulSet::clone(&sts));
        }
    }
    for pod in caches.pods.of(&ns, &name) {
        if let Some(pool) = pod.labels().get(LABEL_POOL).cloned() {
            observed.pods.entry(pool).or_default().push(Pod::clone(&pod));
        }
    }
    for pods in observed.pods.values_mut() {
        pods.sort_by_key(pod_ordinal);
    }
    observed.nodes = caches.nodes.of(observed.pods.values().flatten().filter_map(node_of));
    observed.node_zones = caches.nodes.zones();
    observed
}

/// The Pinot instance id of each pod of the cluster, by pod name.
pub fn pod_instance_ids(
    cluster: &str,
    namespace: &str,
    domain: &str,
    observed: &ObservedCluster,
) -> BTreeMap<String, String> {
    observed
        .pods
        .iter()
        .flat_map(|(pool, pods)| pods.iter().map(move |p| (pool, p)))
        .filter_map(|(pool, pod)| {
            let role: Role = pod.labels().get(LABEL_ROLE)?.parse().ok()?;
            let name = pod.name_any();
            let id = instance_id(role, &name, &headless_service_name(cluster, pool), namespace, domain);
            Some((name, id))
        })
        .collect()
}

/// Asks the cluster's Pinot controller its version, which instances it knows and which are
/// live, the details of the instances of its pods (`observed.pod_instances`) and of departed
/// pods (`pools`), its tables, where their segments are and whether they are served, and which
/// of the `rebalances` started earlier still run, once a controller pod is ready. While an
/// upgrade is under way (`upgrading`), or for a server whose queries are off, it also reads
/// whether each server is shutting down or starting (`shutdownInProgress`: from
/// `GET /instances/{id}` from 1.5.0, from the instance's ZooKeeper record in the Helix cluster
/// `helix_cluster` before). A failure is observed state too, never an error of the reconcile.
pub async fn observe_pinot(
    pinot: &PinotClient,
    observed: &ObservedCluster,
    pools: &[PoolInstances],
    rebalances: &[RebalanceJob],
    helix_cluster: &str,
    upgrading: bool,
) -> PinotObservation {
    let pod_instances = &observed.pod_instances;
    let controller_ready = observed
        .pods
        .values()
        .flatten()
        .any(|p| p.labels().get(LABEL_ROLE).map(String::as_str) == Some("controller") && pod_is_ready(p));
    if !controller_ready {
        return PinotObservation::NotAsked;
    }
    let result = async {
        let (version, instances, live, tables, leaderless_partitions, rebalances) = futures::try_join!(
            pinot.version(),
            pinot.instances(),
            pinot.live_instances(),
            pinot.table_placements(),
            async {
                match upgrading {
                    true => pinot.leaderless_partitions().await.map(Some),
                    false => Ok(None),
                }
            },
            futures::future::try_join_all(rebalances.iter().map(|job| async move {
                let mut job = job.clone();
                if job.status == IN_PROGRESS {
                    // A job Pinot has forgotten is over.
                    job.status = pinot.rebalance_status(&job.job_id).await?.unwrap_or_else(|| "UNKNOWN".into());
                }
                Ok::<_, crate::pinot::PinotError>(job)
            })),
        )?;
        let departed = departed(&instances, pools, pod_instances);
        let known = pod_instances
            .values()
            .chain(departed.values().flatten())
            .filter(|id| instances.contains(id))
            .collect::<Vec<_>>();
        let details: BTreeMap<String, _> = futures::future::try_join_all(known.into_iter().map(|id| async move {
            let mut info = pinot.instance(id).await?;
            // Needed by the routing gate, and before queries go back on (a whole-config update
            // must not race the server's own start).
            if (upgrading || info.queries_disabled) && id.starts_with("Server_") && info.shutdown_in_progress.is_none()
            {
                info.shutdown_in_progress = Some(pinot.zk_shutdown_in_progress(helix_cluster, id).await?);
            }
            Ok::<_, crate::pinot::PinotError>((id.clone(), info))
        }))
        .await?
        .into_iter()
        .collect();
        Ok::<_, crate::pinot::PinotError>(PinotObservation::Reachable {
            version,
            instances: instances.into_iter().collect(),
            live: live.into_iter().collect(),
            details,
            departed,
            tables,
            rebalances,
            leaderless_partitions,
        })
    }
    .await;
    result.unwrap_or_else(|e| PinotObservation::Unreachable(e.to_string()))
}

/// Every image the cluster runs or is moving to, repeats included: each running Pinot
/// container's (as its pod's status reports it), each StatefulSet template's, and `spec_images`
/// (the pools' as the spec says).
pub fn images<'a>(observed: &'a ObservedCluster, spec_images: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let running =
        observed.pods.values().flatten().flat_map(|p| {
            p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).map(|c| c.image.as_str())
        });
    let templates = observed
        .statefulsets
        .values()
        .filter_map(|s| s.spec.as_ref()?.template.spec.as_ref()?.containers.first().and_then(|c| c.image.as_deref()));
    running.chain(templates).chain(spec_images).collect()
}

/// The release the operator acts for: what the controller reports (when it was asked and
/// answered) and what every image says (`images`).
pub fn cluster_release(pinot: &PinotObservation, images: &[&str]) -> ClusterRelease {
    let reported = match pinot {
        PinotObservation::Reachable { version, .. } => version.as_deref(),
        _ => None,
    };
    ClusterRelease::effective(reported, images.iter().copied())
}

/// Whether some pod is off its pool's target revision: an upgrade (or rollback) is under way.
pub fn off_target(observed: &ObservedCluster) -> bool {
    observed.pods.iter().any(|(pool, pods)| {
        let target =
            observed.statefulsets.get(pool).and_then(|s| s.status.as_ref()).and_then(|s| s.update_revision.as_deref());
        pods.iter().any(|p| target.is_some_and(|t| pod_revision(p) != Some(t)))
    })
}

/// By pool, the instances Pinot knows of ordinals at or above the StatefulSet's replicas whose
/// pods are gone.
fn departed(
    instances: &[String],
    pools: &[PoolInstances],
    pod_instances: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let with_pod: BTreeSet<&String> = pod_instances.values().collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pool in pools {
        let mut ids: Vec<(u32, &String)> = instances
            .iter()
            .filter(|id| !with_pod.contains(id))
            .filter_map(|id| pool.ordinal(id).filter(|o| *o >= pool.replicas).map(|o| (o, id)))
            .collect();
        ids.sort();
        if !ids.is_empty() {
            out.insert(pool.pool.clone(), ids.into_iter().map(|(_, id)| id.clone()).collect());
        }
    }
    out
}

/// A client Service of the cluster exposed outside it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientService {
    pub role: Role,
    pub name: String,
    /// Its type as the apiserver has it.
    pub type_: String,
    /// The node port of its port, once allocated.
    pub node_port: Option<i32>,
    /// The load balancer's addresses (IPs or host names); empty while pending.
    pub load_balancer: Vec<String>,
    /// When the operator last changed it (its field manager's entry): how long a load balancer
    /// has been pending.
    pub changed_at: Option<k8s_openapi::jiff::Timestamp>,
}

/// Reads the client Services the spec exposes as NodePort or LoadBalancer (at most two GETs);
/// one that cannot be read is left out (not created yet, or the apiserver failed).
async fn client_services(client: &kube::Client, cluster: &PinotCluster) -> Vec<ClientService> {
    let Some(exposure) = &cluster.spec.exposure else { return vec![] };
    let namespace = cluster.namespace().unwrap_or_default();
    let api: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(client.clone(), &namespace);
    let mut out = Vec::new();
    for (role, service) in [(Role::Broker, &exposure.broker), (Role::Controller, &exposure.controller)] {
        let exposed = service.as_ref().and_then(|s| s.type_.as_deref()).is_some_and(|t| t != "ClusterIP");
        if !exposed {
            continue;
        }
        let name = crate::children::role_service_name(&cluster.name_any(), role);
        let svc = match api.get_opt(&name).await {
            Ok(Some(svc)) => svc,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(service = %name, error = %e, "could not read a client Service (the operator needs get on services): its address and load balancer are not reported");
                continue;
            }
        };
        let spec = svc.spec.clone().unwrap_or_default();
        let load_balancer = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
            .collect();
        let changed_at = svc
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| m.manager.as_deref() == Some(crate::children::FIELD_MANAGER))
            .filter_map(|m| m.time.as_ref().map(|t| t.0))
            .max();
        out.push(ClientService {
            role,
            name,
            type_: spec.type_.unwrap_or_default(),
            node_port: spec.ports.iter().flatten().next().and_then(|p| p.node_port),
            load_balancer,
            changed_at,
        });
    }
    out
}
