//! One reconcile pass of the PinotCluster controller (`pinot_operator::cluster::reconcile_pass`),
//! without an apiserver: the Kubernetes client talks to a mock service (kube-rs's tower-test
//! pair) that answers every request as the apiserver would and records it, the caches are
//! filled the way the watches fill them, and Pinot is the in-process simulator (or a closed
//! port). Each test asserts what a user would check afterwards: which objects were applied,
//! which pods were deleted, what Pinot was asked to do, the status written and the events.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::header::CONTENT_TYPE;
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Client, Resource,
    api::{DynamicObject, PartialObjectMeta},
    client::Body,
    runtime::watcher::Event,
};
use pinot_crds::{ClusterCondition, PinotCluster, PinotClusterStatus};
use pinot_operator::{
    children::{ChildApis, LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_POOL, LABEL_ROLE, MANAGED_BY, PdbVersion},
    cluster::{
        ControllerConfig, DEFAULT_DEBOUNCE, Next,
        cache::{Caches, Grouped},
        reconcile_pass,
    },
    pinot::ControllerLocator,
};
use pinot_testbed::pinot_sim::{InstanceRole, PinotSimulator, RecordedRequest, SimPod, SimState};
use serde_json::{Value, json};

const NS: &str = "ns";
const NAME: &str = "demo";
const CLUSTER_UID: &str = "uid-demo";
const IMAGE: &str = "apachepinot/pinot:1.3.0";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const STATUS_PATH: &str = "/apis/pinot.controlplane.dev/v1alpha1/namespaces/ns/pinotclusters/demo/status";

/// The cluster's pools: name, role, replicas in the spec.
const POOLS: [(&str, &str, i32); 3] =
    [("controller", "controller", 1), ("broker", "broker", 2), ("server", "server", 2)];

/// The PinotCluster as the apiserver serves it: a controller, two brokers and two servers,
/// roles installed in the default deployment order.
fn cluster() -> PinotCluster {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata: {{name: {NAME}, namespace: {NS}, uid: {CLUSTER_UID}, generation: 1}}
spec:
  image: {IMAGE}
  zookeeper: {{connectString: "zk:2181"}}
  pools:
    - {{name: controller, role: controller, replicas: 1, storage: {{ephemeral: true}}}}
    - {{name: broker, role: broker, replicas: 2}}
    - {{name: server, role: server, replicas: 2, storage: {{ephemeral: true}}}}
"#
    ))
    .expect("the test's PinotCluster parses")
}

// ---------------------------------------------------------------------------------------------
// The mock apiserver.

/// A request the mock apiserver received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Seen {
    fn is_apply(&self) -> bool {
        self.method == "PATCH" && self.content_type.starts_with("application/apply-patch")
    }

    /// A server-side apply of one of the cluster's children (not its status).
    fn is_child_apply(&self) -> bool {
        self.is_apply() && !self.path.ends_with("/status")
    }

    fn is_event(&self) -> bool {
        self.path.starts_with(EVENTS_PATH)
    }

    /// `Kind name` of an applied object.
    fn applied(&self) -> String {
        format!(
            "{} {}",
            self.body["kind"].as_str().unwrap_or("?"),
            self.body["metadata"]["name"].as_str().unwrap_or("?")
        )
    }
}

/// The uid the apiserver gives a child; the cached objects carry the same.
fn uid_of(kind: &str, name: &str) -> String {
    format!("uid-{}-{name}", kind.to_ascii_lowercase())
}

/// An apiserver that accepts every write and records it.
#[derive(Clone, Default)]
struct ApiServer {
    log: Arc<Mutex<Vec<Seen>>>,
    /// The PinotCluster as stored, returned (with the new status) by a status write.
    cluster: Arc<Mutex<Value>>,
}

impl ApiServer {
    fn start() -> (Client, ApiServer) {
        let (service, handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
        let server = ApiServer::default();
        let answering = server.clone();
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.expect("request body");
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    content_type: parts
                        .headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, reply) = answering.answer(&seen);
                answering.log.lock().unwrap().push(seen);
                let response = http::Response::builder()
                    .status(status)
                    .header(CONTENT_TYPE, "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Client::new(service, "default"), server)
    }

    /// What the apiserver answers.
    fn answer(&self, seen: &Seen) -> (u16, Value) {
        let last = seen.path.rsplit('/').next().unwrap_or_default().to_string();
        match seen.method.as_str() {
            // The status subresource: the stored object with the status written.
            "PATCH" if seen.path.ends_with("/status") => {
                let mut object = self.cluster.lock().unwrap().clone();
                object["status"] = seen.body["status"].clone();
                object["metadata"]["resourceVersion"] = json!("2");
                (200, object)
            }
            // Server-side apply of a child: the object as applied, with what the apiserver sets.
            "PATCH" if seen.is_apply() => {
                let mut object = seen.body.clone();
                let kind = object["kind"].as_str().unwrap_or_default().to_string();
                let meta = &mut object["metadata"];
                meta["uid"] = json!(uid_of(&kind, &last));
                meta["resourceVersion"] = json!("1");
                meta["namespace"] = json!(NS);
                // The generation the cached objects have: the apply changed no spec.
                if kind == "StatefulSet" || kind == "PodDisruptionBudget" {
                    meta["generation"] = json!(1);
                }
                (200, object)
            }
            // Merge patches (a pod's annotation, an event's series): the patch, as an object.
            "PATCH" => {
                let mut object = seen.body.clone();
                if object["metadata"]["name"].is_null() {
                    object["metadata"]["name"] = json!(last);
                }
                object["metadata"]["namespace"] = json!(NS);
                (200, object)
            }
            "POST" => (201, seen.body.clone()),
            "DELETE" => (200, json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "metadata": {}})),
            _ => (
                404,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                       "message": format!("{} not found", seen.path), "metadata": {}}),
            ),
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// `Kind name` of every child applied.
    fn applied(&self) -> Vec<String> {
        self.requests().iter().filter(|s| s.is_child_apply()).map(Seen::applied).collect()
    }

    /// The body of the apply of one child.
    fn apply_of(&self, kind: &str, name: &str) -> Value {
        let wanted = format!("{kind} {name}");
        let requests = self.requests();
        let seen = requests
            .iter()
            .find(|s| s.is_child_apply() && s.applied() == wanted)
            .unwrap_or_else(|| panic!("{wanted} was not applied; applied: {:?}", self.applied()));
        seen.body.clone()
    }

    fn deletes(&self) -> Vec<Seen> {
        self.requests().into_iter().filter(|s| s.method == "DELETE").collect()
    }

    /// Every status written, in order.
    fn statuses(&self) -> Vec<PinotClusterStatus> {
        self.requests()
            .iter()
            .filter(|s| s.method == "PATCH" && s.path == STATUS_PATH)
            .map(|s| serde_json::from_value(s.body["status"].clone()).expect("the status written parses"))
            .collect()
    }

    /// The one status the pass wrote.
    fn status(&self) -> PinotClusterStatus {
        let mut statuses = self.statuses();
        assert_eq!(statuses.len(), 1, "one status write per pass: {statuses:#?}");
        statuses.remove(0)
    }

    /// Every Event written (created, or a repeat patched into its series).
    fn events(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|s| s.is_event()).map(|s| s.body).collect()
    }

    fn events_with_reason(&self, reason: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["reason"] == reason).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The controller's context, its caches and Pinot.

/// Where the pass finds the cluster's Pinot controller.
enum Pinot {
    Simulator(PinotSimulator),
    /// A port nothing listens on.
    Down(u16),
}

impl Pinot {
    async fn simulator() -> Self {
        let sim = PinotSimulator::start("127.0.0.1:0".parse().unwrap(), Arc::new(SimState::new()))
            .await
            .expect("the Pinot simulator starts");
        Pinot::Simulator(sim)
    }

    fn down() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Pinot::Down(port)
    }

    fn url_template(&self) -> String {
        let addr = match self {
            Pinot::Simulator(sim) => sim.addr.to_string(),
            Pinot::Down(port) => format!("127.0.0.1:{port}"),
        };
        format!("http://{addr}/clusters/{{namespace}}/{{name}}")
    }

    fn sim(&self) -> &PinotSimulator {
        match self {
            Pinot::Simulator(sim) => sim,
            Pinot::Down(_) => panic!("Pinot is down in this test"),
        }
    }

    /// Every request the simulated controller of the cluster received.
    fn requests(&self) -> Vec<RecordedRequest> {
        self.sim().state.with(&key(), |c| c.requests.clone()).unwrap_or_default()
    }

    /// The requests that change something in Pinot.
    fn writes(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.method != "GET").collect()
    }

    fn tags(&self, instance: &str) -> Vec<String> {
        self.sim().state.with(&key(), |c| c.instances[instance].tags.clone()).expect("the simulated cluster exists")
    }

    /// An instance's Pinot pools, as Pinot stores them (strings).
    fn pools(&self, instance: &str) -> std::collections::BTreeMap<String, String> {
        self.sim().state.with(&key(), |c| c.instances[instance].pools.clone()).expect("the simulated cluster exists")
    }
}

fn key() -> (String, String) {
    (NS.to_string(), NAME.to_string())
}

/// What exists of the cluster in Kubernetes before the pass: per pool its StatefulSet's
/// replicas and ready pods, all on `pod_revision`, while the StatefulSets' update revision is
/// `update_revision`.
struct Existing {
    pools: Vec<(&'static str, &'static str, i32)>,
    pod_revision: &'static str,
    update_revision: &'static str,
    /// The zones of the nodes pods run on: pod `i` of a pool on node `node-<zone i % n>`
    /// (none: no node is known and pods say none).
    zones: &'static [&'static str],
    /// The cluster's PinotTenants, as YAML specs.
    tenants: Vec<&'static str>,
}

impl Existing {
    /// Every pool of the spec, installed and ready on its current revision.
    fn installed() -> Self {
        Existing { pools: POOLS.to_vec(), pod_revision: "r1", update_revision: "r1", zones: &[], tenants: vec![] }
    }

    /// Nothing yet.
    fn nothing() -> Self {
        Existing { pools: vec![], pod_revision: "r1", update_revision: "r1", zones: &[], tenants: vec![] }
    }

    /// The node pod `name` runs on.
    fn node_of(&self, name: &str) -> Option<String> {
        let ordinal: usize = name.rsplit('-').next()?.parse().ok()?;
        (!self.zones.is_empty()).then(|| format!("node-{}", self.zones[ordinal % self.zones.len()]))
    }

    fn pods(&self) -> Vec<(String, &'static str, &'static str)> {
        self.pools
            .iter()
            .flat_map(|(pool, role, replicas)| {
                (0..*replicas).map(move |i| (format!("{NAME}-{pool}-{i}"), *pool, *role))
            })
            .collect()
    }
}

fn labels(pool: Option<&str>, role: &str) -> Value {
    let mut labels = json!({LABEL_CLUSTER: NAME, LABEL_ROLE: role, LABEL_MANAGED_BY: MANAGED_BY});
    if let Some(pool) = pool {
        labels[LABEL_POOL] = json!(pool);
    }
    labels
}

fn owner() -> Value {
    json!([{"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "name": NAME, "uid": CLUSTER_UID,
            "controller": true, "blockOwnerDeletion": true}])
}

fn statefulset(pool: &str, role: &str, replicas: i32, existing: &Existing) -> StatefulSet {
    let name = format!("{NAME}-{pool}");
    let updated = if existing.pod_revision == existing.update_revision { replicas } else { 0 };
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS, "uid": uid_of("StatefulSet", &name), "resourceVersion": "1",
                     "generation": 1, "labels": labels(Some(pool), role), "ownerReferences": owner()},
        "spec": {
            "replicas": replicas,
            "serviceName": format!("{NAME}-{pool}-headless"),
            "selector": {"matchLabels": {LABEL_CLUSTER: NAME, LABEL_POOL: pool}},
            "template": {"spec": {"containers": [{"name": "pinot", "image": IMAGE}]}},
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                   "updatedReplicas": updated, "observedGeneration": 1,
                   "currentRevision": existing.pod_revision, "updateRevision": existing.update_revision},
    }))
    .unwrap()
}

fn pod(name: &str, pool: &str, role: &str, revision: &str) -> Pod {
    let mut labels = labels(Some(pool), role);
    labels["controller-revision-hash"] = json!(revision);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": uid_of("Pod", name), "resourceVersion": "1", "labels": labels},
        "spec": {"containers": [{"name": "pinot", "image": IMAGE}], "subdomain": format!("{NAME}-{pool}-headless")},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

/// The metadata of a child other than a StatefulSet, as the metadata watches see it.
fn metadata(
    api_version: &str,
    kind: &str,
    name: &str,
    pool: Option<&str>,
    role: &str,
) -> PartialObjectMeta<DynamicObject> {
    let mut meta = json!({"name": name, "namespace": NS, "uid": uid_of(kind, name), "resourceVersion": "1",
                          "labels": labels(pool, role), "ownerReferences": owner()});
    if kind == "PodDisruptionBudget" {
        meta["generation"] = json!(1);
    }
    serde_json::from_value(json!({"apiVersion": api_version, "kind": kind, "metadata": meta})).unwrap()
}

/// A kind's first list, complete.
fn listed<K: Resource + Clone>(grouped: &Grouped<K>, objects: Vec<K>) {
    grouped.apply(&mut Event::Init);
    for object in objects {
        grouped.apply(&mut Event::InitApply(object));
    }
    grouped.apply(&mut Event::InitDone);
    assert!(grouped.is_ready());
}

/// The caches as the watches fill them when `existing` is what the cluster has.
fn caches(existing: &Existing) -> Arc<Caches> {
    let caches = Caches::default();
    let pools = &existing.pools;
    listed(&caches.statefulsets, pools.iter().map(|(p, r, n)| statefulset(p, r, *n, existing)).collect());
    let pods = existing.pods().into_iter().map(|(name, p, r)| {
        let name = &name;
        let mut pod = pod(name, p, r, existing.pod_revision);
        pod.spec.as_mut().unwrap().node_name = existing.node_of(name);
        pod
    });
    listed(&caches.pods, pods.collect());
    listed(
        &caches.configmaps,
        pools.iter().map(|(p, r, _)| metadata("v1", "ConfigMap", &format!("{NAME}-{p}-config"), Some(p), r)).collect(),
    );
    let mut services: Vec<_> =
        pools.iter().map(|(p, r, _)| metadata("v1", "Service", &format!("{NAME}-{p}-headless"), Some(p), r)).collect();
    for role in ["controller", "broker"] {
        if pools.iter().any(|(_, r, _)| *r == role) {
            services.push(metadata("v1", "Service", &format!("{NAME}-{role}"), None, role));
        }
    }
    listed(&caches.services, services);
    listed(
        &caches.pdbs,
        pools
            .iter()
            .map(|(p, r, _)| metadata("policy/v1", "PodDisruptionBudget", &format!("{NAME}-{p}"), Some(p), r))
            .collect(),
    );
    listed(&caches.ingresses, vec![]);
    let tenants = existing.tenants.iter().map(|spec| {
        let name = spec.split("name: ").nth(1).and_then(|n| n.split([',', '}']).next()).unwrap_or("t");
        serde_yaml::from_str(&format!(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotTenant\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n"
        ))
        .expect("the test's PinotTenant parses")
    });
    listed(&caches.tenants, tenants.collect());
    caches.nodes.apply(&Event::Init);
    for zone in existing.zones {
        let node = serde_json::from_value(json!({
            "metadata": {"name": format!("node-{zone}"), "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        caches.nodes.apply(&Event::InitApply(node));
    }
    caches.nodes.apply(&Event::InitDone);
    assert!(caches.is_ready());
    Arc::new(caches)
}

/// The Pinot instance id of a pod, as the operator computes it and the simulator registers it.
fn instance_id(pod: &str, pool: &str, role: &str) -> String {
    let role = InstanceRole::parse(role).unwrap();
    format!("{}_{}_{}", role.prefix(), host(pod, pool), role.port())
}

fn host(pod: &str, pool: &str) -> String {
    format!("{pod}.{NAME}-{pool}-headless.{NS}.svc.cluster.local")
}

/// Every ready pod's Pinot process runs and has joined the cluster.
async fn pods_joined(pinot: &Pinot, existing: &Existing) {
    let sim = pinot.sim();
    for (name, pool, role) in existing.pods() {
        let sim_pod = SimPod {
            basic_auth: None,
            https_only: false,
            name: name.clone(),
            uid: uid_of("Pod", &name),
            image: IMAGE.into(),
            segments_load: Some(Duration::ZERO),
            zone: existing.node_of(&name).map(|n| n.trim_start_matches("node-").to_string()),
        };
        let id = sim.state.pod_ready(key(), InstanceRole::parse(role).unwrap(), &host(&name, pool), &sim_pod);
        assert_eq!(id, instance_id(&name, pool, role), "the simulator and the operator name the instance alike");
    }
    // Servers finish starting on the simulator's next ticks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.state.with(&key(), |c| c.requests.clear());
}

/// One controller context: the mock apiserver, the caches, Pinot.
struct Harness {
    ctx: Arc<pinot_operator::cluster::Context>,
    api: ApiServer,
    pinot: Pinot,
}

impl Harness {
    async fn new(existing: &Existing, pinot: Pinot) -> Self {
        pinot_operator::pinot::install_tls_provider();
        let (client, api) = ApiServer::start();
        let config = ControllerConfig {
            namespace: None,
            controllers: ControllerLocator::new(pinot.url_template()),
            registry: pinot_testbed::harness::shared_registry(),
            max_concurrent_upgrades: 0,
            drift_interval: Duration::from_secs(60),
            debounce: DEFAULT_DEBOUNCE,
            concurrency: 4,
            cluster_domain: "cluster.local".into(),
            load_balancer_grace: pinot_operator::cluster::DEFAULT_LOAD_BALANCER_GRACE,
        };
        let store = kube::runtime::reflector::store::<PinotCluster>().0;
        let apis = ChildApis { pdb_version: PdbVersion::V1 };
        let ctx =
            pinot_operator::cluster::Context::new(client, apis, &config, store, caches(existing), Default::default());
        Harness { ctx: Arc::new(ctx), api, pinot }
    }

    /// One pass over `cluster`; the apiserver stores the cluster as given.
    async fn pass(&self, cluster: &PinotCluster) -> Next {
        *self.api.cluster.lock().unwrap() = serde_json::to_value(cluster).unwrap();
        reconcile_pass(Arc::new(cluster.clone()), self.ctx.clone()).await.expect("the pass completes")
    }
}

fn condition<'a>(status: &'a PinotClusterStatus, type_: &str) -> &'a ClusterCondition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition: {status:#?}"))
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn first_install_creates_the_controller_pool_first() {
    let h = Harness::new(&Existing::nothing(), Pinot::simulator().await).await;
    h.pass(&cluster()).await;

    let mut applied = h.api.applied();
    applied.sort();
    assert_eq!(
        applied,
        [
            "ConfigMap demo-controller-config",
            "PodDisruptionBudget demo-controller",
            "Service demo-broker",
            "Service demo-controller",
            "Service demo-controller-headless",
            "StatefulSet demo-controller",
        ],
        "only the controller pool (and the role Services) on the first pass"
    );
    let sts = h.api.apply_of("StatefulSet", "demo-controller");
    assert_eq!(sts["spec"]["replicas"], 1, "{sts}");
    for apply in h.api.requests().iter().filter(|s| s.is_apply()) {
        assert!(apply.query.contains("fieldManager=pinot-operator") && apply.query.contains("force=true"), "{apply:?}");
    }
    assert_eq!(sts["metadata"]["ownerReferences"][0]["uid"], CLUSTER_UID, "{sts}");

    let status = h.api.status();
    let progressing = condition(&status, "Progressing");
    assert_eq!(progressing.status, "True", "{progressing:?}");
    assert!(
        progressing.message.contains("installing role by role: broker waits for pool controller to be ready"),
        "{}",
        progressing.message
    );
    assert_eq!(condition(&status, "Available").status, "False");
    assert_eq!(condition(&status, "Degraded").status, "False", "{status:#?}");
    assert_eq!(status.observed_generation, Some(1));
    assert!(status.pinot.is_none(), "no controller pod is ready: Pinot is not asked ({:?})", status.pinot);

    assert!(h.api.deletes().is_empty(), "{:#?}", h.api.deletes());
    assert!(h.pinot.sim().state.lock().is_empty(), "Pinot was asked: {:?}", h.pinot.sim().state.summary());
    let created = h.api.events_with_reason("Created");
    assert_eq!(created.len(), 1, "{:#?}", h.api.events());
    assert!(created[0]["note"].as_str().unwrap().contains("StatefulSet demo-controller"), "{}", created[0]);
}

#[tokio::test]
async fn paused_cluster_changes_nothing() {
    let existing = Existing::installed();
    let h = Harness::new(&existing, Pinot::simulator().await).await;
    pods_joined(&h.pinot, &existing).await;
    let mut paused = cluster();
    paused.spec.paused = true;
    // The spec asks for a change that would otherwise be applied.
    paused.spec.pools[1].replicas = 3;
    let next = h.pass(&paused).await;

    assert!(h.api.applied().is_empty(), "a paused cluster's children are not applied: {:?}", h.api.applied());
    assert!(h.api.deletes().is_empty(), "{:#?}", h.api.deletes());
    assert!(
        !h.api.requests().iter().any(|s| s.method == "PATCH" && !s.is_event() && s.path != STATUS_PATH),
        "{:#?}",
        h.api.requests()
    );
    assert!(h.pinot.writes().is_empty(), "Pinot was changed: {:#?}", h.pinot.writes());

    let status = h.api.status();
    let paused_condition = condition(&status, "ReconciliationPaused");
    assert_eq!(paused_condition.status, "True", "{paused_condition:?}");
    assert_eq!(condition(&status, "Progressing").status, "False");
    assert!(status.message.as_deref().unwrap_or_default().contains("spec.paused"), "{:?}", status.message);
    assert_eq!(h.api.events_with_reason("Paused").len(), 1, "{:#?}", h.api.events());
    assert_eq!(next, Next::AwaitChange);
}

#[tokio::test]
async fn invalid_spec_names_every_field_and_changes_nothing() {
    let existing = Existing::installed();
    let h = Harness::new(&existing, Pinot::simulator().await).await;
    pods_joined(&h.pinot, &existing).await;
    let mut invalid = cluster();
    invalid.spec.pools[1].replicas = -1;
    invalid.spec.zookeeper.connect_string = String::new();
    let next = h.pass(&invalid).await;

    assert!(h.api.applied().is_empty(), "{:?}", h.api.applied());
    assert!(h.api.deletes().is_empty(), "{:#?}", h.api.deletes());
    assert!(h.pinot.writes().is_empty(), "Pinot was changed: {:#?}", h.pinot.writes());
    assert_eq!(next, Next::AwaitChange);

    let status = h.api.status();
    let mut fields: Vec<(&str, &str)> =
        status.problems.iter().map(|p| (p.reason.as_str(), p.subject.as_str())).collect();
    fields.sort();
    assert_eq!(
        fields,
        [("InvalidSpec", "spec.pools[1].replicas"), ("InvalidSpec", "spec.zookeeper.connectString")],
        "{:#?}",
        status.problems
    );
    for p in &status.problems {
        assert!(p.message.contains(&p.subject), "the message names its field: {p:?}");
    }
    let degraded = condition(&status, "Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "InvalidSpec"), "{degraded:?}");
    assert_eq!(condition(&status, "Progressing").reason, "InvalidSpec");
    let warnings = h.api.events_with_reason("InvalidSpec");
    assert_eq!(warnings.len(), 2, "one warning per problem: {:#?}", h.api.events());
    assert!(warnings.iter().all(|e| e["type"] == "Warning"), "{warnings:#?}");

    // The next pass sees the status it wrote: nothing new to say, nothing to write.
    h.api.clear();
    let mut again = invalid.clone();
    again.status = Some(status.clone());
    h.pass(&again).await;
    assert!(h.api.events_with_reason("InvalidSpec").is_empty(), "said again: {:#?}", h.api.events());
    assert!(h.api.statuses().is_empty(), "the same status is not written again: {:#?}", h.api.statuses());
    assert!(h.api.applied().is_empty(), "{:?}", h.api.applied());

    // A new generation of the spec (still invalid) is announced again.
    h.api.clear();
    again.metadata.generation = Some(2);
    h.pass(&again).await;
    assert_eq!(h.api.events_with_reason("InvalidSpec").len(), 2, "{:#?}", h.api.events());
    assert_eq!(h.api.status().observed_generation, Some(2));
    assert!(h.api.applied().is_empty(), "{:?}", h.api.applied());
}

#[tokio::test]
async fn pinot_down_is_reported_and_nothing_is_restarted() {
    let h = Harness::new(&Existing::installed(), Pinot::down()).await;
    let next = h.pass(&cluster()).await;

    let status = h.api.status();
    let pinot = status.pinot.as_ref().expect("the controller pod is ready: Pinot was asked");
    assert!(!pinot.reachable, "{pinot:?}");
    let why = pinot.message.as_deref().unwrap_or_default();
    assert!(why.contains("not reachable") && why.contains(&pinot.url), "{why}");
    assert!(pinot.url.ends_with("/clusters/ns/demo"), "{}", pinot.url);
    assert_eq!(pinot.instances, 0);
    assert!(h.api.deletes().is_empty(), "{:#?}", h.api.deletes());
    // The children are as the spec says: applying them changed nothing.
    assert!(h.api.events_with_reason("Updated").is_empty(), "{:#?}", h.api.events());
    assert!(h.api.events_with_reason("Created").is_empty(), "{:#?}", h.api.events());
    assert!(matches!(next, Next::Requeue(_)), "Pinot is looked at again soon: {next:?}");
}

#[tokio::test]
async fn one_upgrade_step_restarts_one_pod() {
    let existing = Existing { update_revision: "r2", ..Existing::installed() };
    let h = Harness::new(&existing, Pinot::simulator().await).await;
    pods_joined(&h.pinot, &existing).await;
    h.pass(&cluster()).await;

    let deletes = h.api.deletes();
    assert_eq!(deletes.len(), 1, "one pod restarts per step: {deletes:#?}");
    let delete = &deletes[0];
    assert_eq!(delete.path, "/api/v1/namespaces/ns/pods/demo-controller-0", "controllers go first: {delete:#?}");
    assert_eq!(delete.body["preconditions"]["uid"], uid_of("Pod", "demo-controller-0"), "{}", delete.body);

    let restarted = h.api.events_with_reason("RestartedPod");
    assert_eq!(restarted.len(), 1, "{:#?}", h.api.events());
    let note = restarted[0]["note"].as_str().unwrap();
    assert!(note.contains("demo-controller-0") && note.contains("revision r2"), "{note}");
    assert_eq!(restarted[0]["related"]["name"], "demo-controller-0", "{}", restarted[0]);

    let status = h.api.status();
    let progressing = condition(&status, "Progressing");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "Upgrading"), "{progressing:?}");
    assert!(h.pinot.writes().is_empty(), "a restart needs no Pinot call: {:#?}", h.pinot.writes());
}

#[tokio::test]
async fn one_scale_in_step_drains_before_removing() {
    let existing = Existing::installed();
    let h = Harness::new(&existing, Pinot::simulator().await).await;
    pods_joined(&h.pinot, &existing).await;
    let mut smaller = cluster();
    smaller.spec.pools[1].replicas = 1;
    let next = h.pass(&smaller).await;

    let sts = h.api.apply_of("StatefulSet", "demo-broker");
    assert_eq!(sts["spec"]["replicas"], 2, "the broker leaves Pinot before its pod goes: {sts}");
    assert!(h.api.deletes().is_empty(), "{:#?}", h.api.deletes());

    let leaving = instance_id("demo-broker-1", "broker", "broker");
    let writes = h.pinot.writes();
    assert_eq!(writes.len(), 1, "one Pinot step: {writes:#?}");
    assert_eq!(writes[0].path, format!("/instances/{leaving}/updateTags"), "{writes:#?}");
    assert!(writes[0].query.contains("tags=broker_untagged"), "{writes:#?}");
    assert_eq!(writes[0].status, 200, "{writes:#?}");
    assert_eq!(h.pinot.tags(&leaving), ["broker_untagged"]);
    assert_eq!(h.pinot.tags(&instance_id("demo-broker-0", "broker", "broker")), ["DefaultTenant_BROKER"]);

    let steps = h.api.events_with_reason("ScalingStep");
    assert_eq!(steps.len(), 1, "{:#?}", h.api.events());
    assert!(
        steps[0]["note"].as_str().unwrap().contains(&format!("tagged {leaving} with [broker_untagged]")),
        "{}",
        steps[0]
    );
    let status = h.api.status();
    let progressing = condition(&status, "Progressing");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "Scaling"), "{progressing:?}");
    assert!(matches!(next, Next::Requeue(_)), "a step in Pinot is followed up soon: {next:?}");
}

/// A PinotTenant whose servers run in two zones (as their nodes say; the spec pins no zone):
/// one pass tags them for the tenant and gives each the Pinot pool of its zone for both tags,
/// through Pinot's whole-config instance update.
#[tokio::test]
async fn a_tenant_over_two_zones_gets_a_pinot_pool_per_zone() {
    let existing = Existing {
        zones: &["zone-a", "zone-b"],
        tenants: vec!["{name: sales, cluster: demo, tenantRole: SERVER, offlineInstances: 2, realtimeInstances: 2}"],
        ..Existing::installed()
    };
    let h = Harness::new(&existing, Pinot::simulator().await).await;
    pods_joined(&h.pinot, &existing).await;
    h.pass(&cluster()).await;

    let (s0, s1) = (instance_id("demo-server-0", "server", "server"), instance_id("demo-server-1", "server", "server"));
    let both = ["sales_OFFLINE", "sales_REALTIME"];
    assert_eq!(h.pinot.tags(&s0), both);
    assert_eq!(h.pinot.tags(&s1), both);
    let pools = |n: &str| both.iter().map(|t| (t.to_string(), n.to_string())).collect();
    assert_eq!(h.pinot.pools(&s0), pools("0"), "zone-a");
    assert_eq!(h.pinot.pools(&s1), pools("1"), "zone-b");
    let writes: Vec<String> = h.pinot.writes().iter().map(|w| format!("{} {}", w.method, w.path)).collect();
    assert_eq!(
        writes,
        [
            format!("PUT /instances/{s0}/updateTags"),
            format!("PUT /instances/{s1}/updateTags"),
            format!("PUT /instances/{s0}"),
            format!("PUT /instances/{s1}"),
        ]
    );
    let placed = h.api.events_with_reason("TenantPlaced");
    let notes: Vec<&str> = placed.iter().filter_map(|e| e["note"].as_str()).collect();
    assert!(
        notes.contains(&format!("set the Pinot pools of {s1}: sales_OFFLINE=1, sales_REALTIME=1 (were none)").as_str()),
        "{notes:#?}"
    );
    // The tenant is placed, zone by zone, with each zone's pool.
    let status = h.api.status();
    let placement = &status.tenants[0];
    assert!(placement.placed, "{placement:#?}");
    let zones: Vec<_> = placement.zones.iter().map(|z| (z.zone.as_str(), z.pool, z.servers, z.live)).collect();
    assert_eq!(zones, [("zone-a", Some(0), 1, 1), ("zone-b", Some(1), 1, 1)]);
}

/// Mid-upgrade (controller and brokers done, both servers still on the old revision) with the
/// Pinot controller unreachable, no server may be restarted: only Pinot can tell whether the
/// other server holding replicas of its segments serves them (the routing gate), and pod
/// readiness alone is not enough (README, "routing gate"). The default upgrade policy, seeing no
/// instance for any pod, asks to restart `demo-server-1`; the host's gate holds it and says why.
#[tokio::test]
async fn pinot_down_mid_upgrade_restarts_no_server() {
    let existing = Existing { update_revision: "r2", pod_revision: "r2", ..Existing::installed() };
    let h = Harness::new(&existing, Pinot::down()).await;
    for i in 0..2 {
        let name = format!("{NAME}-server-{i}");
        h.ctx.caches.pods.apply(&mut Event::Apply(pod(&name, "server", "server", "r1")));
    }
    let next = h.pass(&cluster()).await;

    assert!(!h.api.status().pinot.expect("Pinot was asked").reachable);
    assert!(h.api.deletes().is_empty(), "a server restarted while Pinot is down: {:#?}", h.api.deletes());
    let status = h.api.status();
    let progressing = condition(&status, "Progressing");
    assert!(progressing.message.contains("does not answer"), "{progressing:?}");
    assert!(matches!(next, Next::Requeue(_)), "{next:?}");
}
