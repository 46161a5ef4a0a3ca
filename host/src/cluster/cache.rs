//! What the controller's watches have seen, grouped by the PinotCluster each object belongs
//! to, so that observing one cluster reads its own objects instead of listing them from the
//! apiserver (a list per kind per reconcile made every pass cost the apiserver a read of the
//! whole namespace) and instead of scanning every cluster's objects.
//!
//! The groups follow the watch streams the controller runs anyway (they also trigger its
//! reconciles), the way a kube-runtime reflector follows them: a relist replaces a kind's
//! groups only once it is complete. A kind is ready once its first list is complete; the
//! controller does not reconcile before every kind is, so that a pass never takes a missing
//! cache for missing objects (and, say, a StatefulSet it cannot see for one with no replicas).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Node, Pod},
};
use kube::{
    Resource, ResourceExt,
    api::{DynamicObject, ObjectMeta, PartialObjectMeta},
    runtime::watcher::Event,
};
use pinot_crds::PinotTenant;

use crate::children::{ChildKind, LABEL_CLUSTER};

/// A namespace and the name of a PinotCluster in it.
pub type ClusterKey = (String, String);

type Groups<K> = HashMap<ClusterKey, BTreeMap<String, Arc<K>>>;

struct Inner<K> {
    groups: Groups<K>,
    /// Where each object is filed, by namespace and name (an object whose cluster changes
    /// moves).
    filed: HashMap<(String, String), ClusterKey>,
    /// A relist under way: what it has listed so far.
    relist: Option<Vec<Arc<K>>>,
}

/// Objects of one kind, by the cluster they belong to.
pub struct Grouped<K> {
    inner: RwLock<Inner<K>>,
    ready: AtomicBool,
    /// The cluster an object belongs to, if it belongs to one.
    cluster_of: fn(&K) -> Option<String>,
    /// What of an object matters to its cluster's reconcile: a change that leaves it the same
    /// triggers none (`None`: every change matters).
    fingerprint: Option<fn(&K) -> u64>,
    /// Drops what no pass reads, to keep the cache small.
    trim: fn(&mut K),
}

impl<K: Resource> Grouped<K> {
    pub fn new(cluster_of: fn(&K) -> Option<String>) -> Self {
        Self {
            inner: RwLock::new(Inner { groups: HashMap::new(), filed: HashMap::new(), relist: None }),
            ready: AtomicBool::new(false),
            cluster_of,
            fingerprint: None,
            trim: |_| {},
        }
    }

    /// `trim` drops from each object what no pass reads (managedFields are always dropped).
    pub fn with_trim(mut self, trim: fn(&mut K)) -> Self {
        self.trim = trim;
        self
    }

    /// Changes that leave `fingerprint` the same do not trigger a reconcile.
    pub fn with_fingerprint(mut self, fingerprint: fn(&K) -> u64) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Follows one event of the kind's watch stream; whether it should trigger a reconcile.
    /// The event's object is trimmed in place (its managedFields and what `trim` drops), so
    /// that neither the cache nor the controller it goes on to copies what nobody reads.
    pub fn apply(&self, event: &mut Event<K>) -> bool
    where
        K: Clone,
    {
        self.apply_unless_echo(event, |_| false)
    }

    /// `apply` for a child the operator writes: an object exactly as the operator's own
    /// write left it (`echo`) triggers nothing, the pass that wrote it knows.
    pub fn apply_unless_echo(&self, event: &mut Event<K>, echo: impl Fn(&ObjectMeta) -> bool) -> bool
    where
        K: Clone,
    {
        let mut inner = self.inner.write().expect("cache lock poisoned");
        match event {
            Event::Apply(object) => {
                self.trim(object);
                let at = (object.namespace().unwrap_or_default(), object.name_any());
                let unchanged = self.fingerprint.is_some_and(|fingerprint| {
                    let old = inner.filed.get(&at).and_then(|key| inner.groups.get(key)?.get(&at.1));
                    old.is_some_and(|old| old.uid() == object.uid() && fingerprint(old) == fingerprint(object))
                });
                let unchanged = unchanged || echo(object.meta());
                self.file(&mut inner, Arc::new(object.clone()));
                return !unchanged;
            }
            Event::Delete(object) => {
                let at = (object.namespace().unwrap_or_default(), object.name_any());
                if let Some(key) = inner.filed.remove(&at) {
                    remove(&mut inner.groups, &key, &at.1);
                }
            }
            Event::Init => inner.relist = Some(Vec::new()),
            Event::InitApply(object) => {
                self.trim(object);
                let object = Arc::new(object.clone());
                inner.relist.get_or_insert_with(Vec::new).push(object);
            }
            Event::InitDone => {
                let listed = inner.relist.take().unwrap_or_default();
                inner.groups.clear();
                inner.filed.clear();
                for object in listed {
                    self.file(&mut inner, object);
                }
                self.ready.store(true, Ordering::Release);
            }
        }
        true
    }

    /// Drops an object's managedFields (nothing reads them, and they are often most of it)
    /// and what `trim` drops.
    fn trim(&self, object: &mut K) {
        object.meta_mut().managed_fields = None;
        (self.trim)(object);
    }

    fn file(&self, inner: &mut Inner<K>, object: Arc<K>) {
        let at = (object.namespace().unwrap_or_default(), object.name_any());
        if let Some(old) = inner.filed.remove(&at) {
            remove(&mut inner.groups, &old, &at.1);
        }
        if let Some(cluster) = (self.cluster_of)(&object) {
            let key = (at.0.clone(), cluster);
            inner.groups.entry(key.clone()).or_default().insert(at.1.clone(), object);
            inner.filed.insert(at, key);
        }
    }

    /// The objects of one cluster, by name.
    pub fn of(&self, namespace: &str, cluster: &str) -> Vec<Arc<K>> {
        let inner = self.inner.read().expect("cache lock poisoned");
        inner
            .groups
            .get(&(namespace.to_string(), cluster.to_string()))
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the kind's first list is complete.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The label of a node's zone (`topology.kubernetes.io/zone`).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a pass knows of a node: its zone and whether it is Ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its `topology.kubernetes.io/zone` label.
    pub zone: Option<String>,
    /// Its `Ready` condition is `True` (its kubelet reports, and reports it healthy).
    pub ready: bool,
}

impl NodeFacts {
    pub fn of(node: &Node) -> Self {
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        NodeFacts { zone: node.labels().get(ZONE_LABEL).cloned(), ready }
    }
}

/// The nodes pods run on (cluster-wide: any cluster's pod may run on any node), by name: only
/// their zone and readiness, the rest of a node (its heartbeats are a status update every ten
/// seconds) is dropped as it arrives.
#[derive(Default)]
pub struct Nodes {
    facts: RwLock<HashMap<String, NodeFacts>>,
    relist: std::sync::Mutex<Option<HashMap<String, NodeFacts>>>,
    ready: AtomicBool,
    /// The operator may not list nodes (its role lacks `nodes` `list`/`watch`): every pass
    /// goes on without zones, and status says so.
    forbidden: AtomicBool,
}

impl Nodes {
    /// Follows one event of the node watch; the nodes whose zone or readiness changed (what
    /// should trigger the passes of clusters with pods on them).
    pub fn apply(&self, event: &Event<Node>) -> Vec<String> {
        let mut facts = self.facts.write().expect("node cache lock poisoned");
        match event {
            Event::Apply(node) => {
                let (name, new) = (node.name_any(), NodeFacts::of(node));
                match facts.insert(name.clone(), new.clone()) {
                    Some(old) if old == new => vec![],
                    _ => vec![name],
                }
            }
            Event::Delete(node) => facts.remove(&node.name_any()).map(|_| node.name_any()).into_iter().collect(),
            Event::Init => {
                *self.relist.lock().expect("node relist lock poisoned") = Some(HashMap::new());
                vec![]
            }
            Event::InitApply(node) => {
                let mut relist = self.relist.lock().expect("node relist lock poisoned");
                relist.get_or_insert_with(HashMap::new).insert(node.name_any(), NodeFacts::of(node));
                vec![]
            }
            Event::InitDone => {
                let listed = self.relist.lock().expect("node relist lock poisoned").take().unwrap_or_default();
                let changed = listed
                    .iter()
                    .filter(|(name, f)| facts.get(*name) != Some(f))
                    .map(|(name, _)| name.clone())
                    .chain(facts.keys().filter(|name| !listed.contains_key(*name)).cloned())
                    .collect();
                *facts = listed;
                self.ready.store(true, Ordering::Release);
                self.forbidden.store(false, Ordering::Release);
                changed
            }
        }
    }

    /// The watch may not list nodes: passes go on without them.
    pub fn set_forbidden(&self) {
        self.forbidden.store(true, Ordering::Release);
        self.ready.store(true, Ordering::Release);
    }

    /// The facts of the nodes named; `None` when the operator may not see nodes.
    pub fn of<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Option<BTreeMap<String, NodeFacts>> {
        if self.forbidden.load(Ordering::Acquire) {
            return None;
        }
        let facts = self.facts.read().expect("node cache lock poisoned");
        Some(names.into_iter().filter_map(|n| Some((n.to_string(), facts.get(n)?.clone()))).collect())
    }

    /// Every zone some node is in; `None` when the operator may not see nodes.
    pub fn zones(&self) -> Option<std::collections::BTreeSet<String>> {
        if self.forbidden.load(Ordering::Acquire) {
            return None;
        }
        let facts = self.facts.read().expect("node cache lock poisoned");
        Some(facts.values().filter_map(|f| f.zone.clone()).collect())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn is_forbidden(&self) -> bool {
        self.forbidden.load(Ordering::Acquire)
    }
}

/// The node a pod runs on (what the pod cache keeps of its spec).
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The watched objects of every cluster: its StatefulSets and pods in full, the metadata of
/// its other children, its PinotTenants; and the nodes pods run on.
pub struct Caches {
    pub statefulsets: Grouped<StatefulSet>,
    pub pods: Grouped<Pod>,
    pub nodes: Nodes,
    pub configmaps: Grouped<PartialObjectMeta<DynamicObject>>,
    pub services: Grouped<PartialObjectMeta<DynamicObject>>,
    pub pdbs: Grouped<PartialObjectMeta<DynamicObject>>,
    pub ingresses: Grouped<PartialObjectMeta<DynamicObject>>,
    pub tenants: Grouped<PinotTenant>,
    /// What the operator last applied to each child, by the child's uid.
    pub applied: AppliedChildren,
}

impl Default for Caches {
    fn default() -> Self {
        fn labelled<K: Resource>(o: &K) -> Option<String> {
            o.labels().get(LABEL_CLUSTER).cloned()
        }
        Self {
            // The StatefulSet controller counts ready and available pods in the status; the
            // pods themselves are watched.
            statefulsets: Grouped::new(labelled).with_fingerprint(statefulset_fingerprint).with_trim(trim_statefulset),
            // A pass reads a pod's metadata and status (revision, readiness, restarts) and of
            // its spec only the node it runs on: with 4 pods a cluster, the specs would be most
            // of the cache.
            pods: Grouped::new(labelled).with_fingerprint(pod_fingerprint).with_trim(trim_pod),
            nodes: Nodes::default(),
            configmaps: Grouped::new(labelled),
            services: Grouped::new(labelled),
            // The disruption controller updates a PDB's status with every pod change; only its
            // spec and metadata are the operator's.
            pdbs: Grouped::new(labelled).with_fingerprint(spec_and_metadata),
            // The ingress controller writes the load balancer's address into the status.
            ingresses: Grouped::new(labelled).with_fingerprint(spec_and_metadata),
            // The cluster's reconcile writes its tenants' status itself.
            tenants: Grouped::new(|t: &PinotTenant| Some(t.spec.cluster.clone())).with_fingerprint(spec_and_metadata),
            applied: AppliedChildren::default(),
        }
    }
}

impl Caches {
    /// Whether every kind has completed its first list.
    pub fn is_ready(&self) -> bool {
        self.statefulsets.is_ready()
            && self.pods.is_ready()
            && self.configmaps.is_ready()
            && self.services.is_ready()
            && self.pdbs.is_ready()
            && self.ingresses.is_ready()
            && self.tenants.is_ready()
            && self.nodes.is_ready()
    }

    /// The clusters with pods on `node` (a node whose zone or readiness changed).
    pub fn clusters_on_node(&self, node: &str) -> Vec<ClusterKey> {
        let inner = self.pods.inner.read().expect("cache lock poisoned");
        inner
            .groups
            .iter()
            .filter(|(_, pods)| pods.values().any(|p| node_of(p) == Some(node)))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The metadata of one cluster's children of a kind other than StatefulSet.
    pub fn metadata(&self, kind: ChildKind) -> Option<&Grouped<PartialObjectMeta<DynamicObject>>> {
        match kind {
            ChildKind::ConfigMap => Some(&self.configmaps),
            ChildKind::Service => Some(&self.services),
            ChildKind::PodDisruptionBudget => Some(&self.pdbs),
            ChildKind::Ingress => Some(&self.ingresses),
            ChildKind::StatefulSet => None,
        }
    }
}

/// What the operator last applied to each child it manages (a digest of the desired object)
/// and the version the apply left it at (`applied_version`). A child still at that version,
/// whose desired object has the same digest, is not applied again: nobody has changed it
/// since, and the operator would not change it either. Anything else is applied (someone's
/// edit is reverted).
/// Only a cache: a restarted operator applies every child once.
///
/// It also knows the resourceVersion each apply returned: the watch event of that very
/// version is the echo of the operator's own write, and triggers no pass.
#[derive(Default)]
pub struct AppliedChildren {
    by_uid: std::sync::Mutex<HashMap<String, Applied>>,
}

struct Applied {
    digest: u64,
    version: String,
    resource_version: Option<String>,
}

impl AppliedChildren {
    pub fn unchanged(&self, uid: &str, version: &str, digest: u64) -> bool {
        let by_uid = self.by_uid.lock().expect("applied lock poisoned");
        by_uid.get(uid).is_some_and(|a| a.digest == digest && a.version == version)
    }

    /// Whether `meta` is the object exactly as the operator's last apply left it.
    pub fn is_echo(&self, meta: &ObjectMeta) -> bool {
        let (Some(uid), Some(rv)) = (&meta.uid, &meta.resource_version) else { return false };
        let by_uid = self.by_uid.lock().expect("applied lock poisoned");
        by_uid.get(uid).is_some_and(|a| a.resource_version.as_ref() == Some(rv))
    }

    /// What an apply returned (`meta`) for the desired object of `digest`; whether the
    /// operator had applied this object before.
    pub fn remember(&self, meta: &ObjectMeta, digest: u64) -> bool {
        let uid = meta.uid.clone().unwrap_or_default();
        let applied =
            Applied { digest, version: applied_version(meta), resource_version: meta.resource_version.clone() };
        self.by_uid.lock().expect("applied lock poisoned").insert(uid, applied).is_some()
    }

    pub fn forget(&self, uid: &str) {
        self.by_uid.lock().expect("applied lock poisoned").remove(uid);
    }
}

/// A fingerprint of what a user or the operator sets on an object (its spec, through the
/// generation; labels, annotations, deletion), not of what controllers report in its status.
pub fn spec_and_metadata<K: Resource>(object: &K) -> u64 {
    metadata_fingerprint(object.meta())
}

/// Of a StatefulSet's pod template a pass reads only the image (of a pool leaving the spec);
/// whether the template is the one the operator applied, it knows from `AppliedChildren`.
/// Replicas, selector and volume claim templates stay.
fn trim_statefulset(sts: &mut StatefulSet) {
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    if let Some(spec) = &mut sts.spec {
        let containers = spec.template.spec.as_ref().map(|p| &p.containers[..]).unwrap_or_default();
        let containers =
            containers.iter().map(|c| Container { name: c.name.clone(), image: c.image.clone(), ..Default::default() });
        spec.template = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec { containers: containers.collect(), ..Default::default() }),
        };
    }
}

/// Of a pod's spec a pass reads only the node it runs on (its zone, its readiness).
fn trim_pod(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::PodSpec;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    pod.spec =
        node_name.map(|node_name| PodSpec { node_name: Some(node_name), containers: vec![], ..Default::default() });
}

/// What of a pod a pass reads: its metadata (revision label, annotations, deletion), whether
/// it is ready and how often its containers restarted; not its scheduling, IP or container
/// states on the way to ready, each of which is a status update of its own.
pub fn pod_fingerprint(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    metadata_fingerprint(&pod.metadata).hash(&mut hasher);
    crate::children::pod_is_ready(pod).hash(&mut hasher);
    let restarts: i64 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| i64::from(c.restart_count)).sum())
        .unwrap_or(0);
    restarts.hash(&mut hasher);
    hasher.finish()
}

/// What of a StatefulSet a pass waits for: its metadata, and of its status the generation
/// observed and the update revision (a new template's pods are restarted onto it); not the
/// counts of ready, available, current or updated pods, nor the current revision, which follow
/// the pods (watched themselves) a moment later.
pub fn statefulset_fingerprint(sts: &StatefulSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    metadata_fingerprint(&sts.metadata).hash(&mut hasher);
    if let Some(status) = &sts.status {
        (&status.observed_generation, &status.update_revision).hash(&mut hasher);
    }
    hasher.finish()
}

fn metadata_fingerprint(meta: &ObjectMeta) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (&meta.generation, &meta.labels, &meta.annotations, &meta.deletion_timestamp.as_ref().map(|t| t.0.to_string()))
        .hash(&mut hasher);
    hasher.finish()
}

/// The version of a child that `AppliedChildren` compares: for kinds with a generation, the
/// generation and metadata (a controller's status update leaves it alone); for the others,
/// the resourceVersion (any change).
pub fn applied_version(meta: &ObjectMeta) -> String {
    match meta.generation {
        Some(generation) => format!("g{generation}/{:x}", metadata_fingerprint(meta)),
        None => format!("rv{}", meta.resource_version.as_deref().unwrap_or_default()),
    }
}

fn remove<K>(groups: &mut Groups<K>, key: &ClusterKey, name: &str) {
    if let Some(objects) = groups.get_mut(key) {
        objects.remove(name);
        if objects.is_empty() {
            groups.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, cluster: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: cluster.map(|c| [("cluster".to_string(), c.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn grouped() -> Grouped<ConfigMap> {
        Grouped::new(|c: &ConfigMap| c.labels().get("cluster").cloned())
    }

    fn names(g: &Grouped<ConfigMap>, cluster: &str) -> Vec<String> {
        g.of("ns", cluster).iter().map(|c| c.name_any()).collect()
    }

    #[test]
    fn objects_are_filed_by_cluster_and_follow_changes_and_deletes() {
        let g = grouped();
        assert!(!g.is_ready());
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitApply(cm("a-1", Some("a"))));
        g.apply(&mut Event::InitApply(cm("b-1", Some("b"))));
        g.apply(&mut Event::InitApply(cm("loose", None)));
        // Until the list is complete, nothing is served and the kind is not ready.
        assert!(names(&g, "a").is_empty());
        assert!(!g.is_ready());
        g.apply(&mut Event::InitDone);
        assert!(g.is_ready());
        assert_eq!(names(&g, "a"), ["a-1"]);
        assert_eq!(names(&g, "b"), ["b-1"]);

        g.apply(&mut Event::Apply(cm("a-2", Some("a"))));
        assert_eq!(names(&g, "a"), ["a-1", "a-2"]);
        // Relabelled to another cluster: it moves.
        g.apply(&mut Event::Apply(cm("a-2", Some("b"))));
        assert_eq!(names(&g, "a"), ["a-1"]);
        assert_eq!(names(&g, "b"), ["a-2", "b-1"]);
        g.apply(&mut Event::Delete(cm("b-1", Some("b"))));
        assert_eq!(names(&g, "b"), ["a-2"]);
        assert!(names(&g, "other").is_empty());
    }

    #[test]
    fn changes_outside_the_fingerprint_trigger_nothing() {
        let g = grouped().with_fingerprint(spec_and_metadata);
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitApply(cm("a-1", Some("a"))));
        g.apply(&mut Event::InitDone);
        let mut status_only = cm("a-1", Some("a"));
        status_only.metadata.resource_version = Some("2".into());
        assert!(!g.apply(&mut Event::Apply(status_only.clone())), "same generation, labels and annotations");
        status_only.metadata.annotations = Some([("edited".to_string(), "by hand".to_string())].into());
        assert!(g.apply(&mut Event::Apply(status_only.clone())), "an annotation changed");
        assert!(g.apply(&mut Event::Delete(status_only)), "a delete always matters");
        assert!(grouped().apply(&mut Event::Apply(cm("new", Some("a")))), "without a fingerprint every change matters");
    }

    #[test]
    fn the_echo_of_the_operators_own_write_triggers_nothing_a_later_change_does() {
        let g = grouped();
        let applied = AppliedChildren::default();
        let at = |rv: &str, data: &str| {
            let mut c = cm("a-1", Some("a"));
            c.metadata.uid = Some("u1".into());
            c.metadata.resource_version = Some(rv.into());
            c.data = Some([("k".to_string(), data.to_string())].into());
            c
        };
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitDone);
        assert!(!applied.remember(&at("5", "x").metadata, 1), "first apply");
        let echo = |m: &ObjectMeta| applied.is_echo(m);
        assert!(!g.apply_unless_echo(&mut Event::Apply(at("5", "x")), echo), "the created object, as applied");
        assert_eq!(names(&g, "a"), ["a-1"], "the cache has it all the same");
        assert!(g.apply_unless_echo(&mut Event::Apply(at("6", "edited")), echo), "someone else's edit");
        assert!(applied.remember(&at("7", "x").metadata, 1), "applied again: known");
        assert!(!g.apply_unless_echo(&mut Event::Apply(at("7", "x")), echo), "the repair, as applied");
    }

    #[test]
    fn pod_counts_in_a_statefulsets_status_trigger_nothing_its_revisions_do() {
        use k8s_openapi::api::apps::v1::StatefulSetStatus;
        let g: Grouped<StatefulSet> = Grouped::new(|_| Some("a".into())).with_fingerprint(statefulset_fingerprint);
        let sts = |ready: i32, update_revision: &str| StatefulSet {
            metadata: ObjectMeta { name: Some("a-server".into()), namespace: Some("ns".into()), ..Default::default() },
            status: Some(StatefulSetStatus {
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                update_revision: Some(update_revision.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitApply(sts(0, "r1")));
        g.apply(&mut Event::InitDone);
        assert!(!g.apply(&mut Event::Apply(sts(1, "r1"))), "a pod became ready: the pod's own event told");
        assert_eq!(g.of("ns", "a")[0].status.as_ref().unwrap().ready_replicas, Some(1), "the cache has it still");
        assert!(g.apply(&mut Event::Apply(sts(1, "r2"))), "a new update revision");
    }

    #[test]
    fn a_pod_on_its_way_to_ready_triggers_only_when_ready() {
        let g: Grouped<Pod> = Grouped::new(|_| Some("a".into())).with_fingerprint(pod_fingerprint);
        let pod = |node: Option<&str>, ready: bool| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a-server-0", "namespace": "ns", "uid": "u1"},
                "spec": {"containers": [], "nodeName": node},
                "status": {"podIP": node.map(|_| "10.0.0.1"),
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap()
        };
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitDone);
        assert!(g.apply(&mut Event::Apply(pod(None, false))), "a new pod");
        assert!(!g.apply(&mut Event::Apply(pod(Some("node-1"), false))), "scheduled, not ready");
        assert!(g.apply(&mut Event::Apply(pod(Some("node-1"), true))), "ready");
    }

    fn node(name: &str, zone: Option<&str>, ready: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": zone.map(|z| serde_json::json!({ZONE_LABEL: z}))},
            "status": {"conditions": [{"type": "Ready", "status": ready}, {"type": "MemoryPressure", "status": "False"}]},
        }))
        .unwrap()
    }

    #[test]
    fn nodes_are_known_by_zone_and_readiness_and_only_their_changes_count() {
        let nodes = Nodes::default();
        assert!(!nodes.is_ready());
        assert!(nodes.apply(&Event::Init).is_empty());
        nodes.apply(&Event::InitApply(node("n1", Some("zone-a"), "True")));
        nodes.apply(&Event::InitApply(node("n2", None, "True")));
        let mut listed = nodes.apply(&Event::InitDone);
        listed.sort();
        assert_eq!(listed, ["n1", "n2"], "new nodes count as changed");
        assert!(nodes.is_ready());
        let seen = nodes.of(["n1", "n2", "n3"]).unwrap();
        assert_eq!(seen["n1"], NodeFacts { zone: Some("zone-a".into()), ready: true });
        assert_eq!(seen["n2"], NodeFacts { zone: None, ready: true });
        assert!(!seen.contains_key("n3"), "a node nobody listed");
        // A heartbeat: nothing a pass reads changed.
        assert!(nodes.apply(&Event::Apply(node("n1", Some("zone-a"), "True"))).is_empty());
        // The kubelet stopped reporting (the node controller says Unknown).
        assert_eq!(nodes.apply(&Event::Apply(node("n1", Some("zone-a"), "Unknown"))), ["n1"]);
        assert!(!nodes.of(["n1"]).unwrap()["n1"].ready);
        assert_eq!(nodes.apply(&Event::Delete(node("n2", None, "True"))), ["n2"]);
        // Forbidden: passes go on, knowing nothing of nodes.
        nodes.set_forbidden();
        assert_eq!(nodes.of(["n1"]), None);
    }

    #[test]
    fn a_pod_keeps_its_node_only_of_its_spec() {
        let g: Grouped<Pod> = Grouped::new(|_| Some("a".into())).with_trim(trim_pod);
        let mut event = Event::Apply(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a-server-0", "namespace": "ns"},
                "spec": {"containers": [{"name": "server", "image": "x"}], "nodeName": "n1", "hostname": "h"},
            }))
            .unwrap(),
        );
        g.apply(&mut event);
        let pod = &g.of("ns", "a")[0];
        assert_eq!(node_of(pod), Some("n1"));
        assert!(pod.spec.as_ref().unwrap().containers.is_empty() && pod.spec.as_ref().unwrap().hostname.is_none());
    }

    #[test]
    fn a_relist_replaces_what_was_there_once_complete() {
        let g = grouped();
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitApply(cm("a-1", Some("a"))));
        g.apply(&mut Event::InitApply(cm("a-2", Some("a"))));
        g.apply(&mut Event::InitDone);
        // The watch restarts; a-2 was deleted meanwhile.
        g.apply(&mut Event::Init);
        g.apply(&mut Event::InitApply(cm("a-1", Some("a"))));
        assert_eq!(names(&g, "a"), ["a-1", "a-2"], "the old view serves until the relist completes");
        g.apply(&mut Event::InitDone);
        assert_eq!(names(&g, "a"), ["a-1"]);
    }
}
