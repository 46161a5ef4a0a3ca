//! Step 4 of the pipeline, pure: builds every Kubernetes object the plan applies. Per
//! pool a StatefulSet, a headless Service (stable pod DNS names, which Pinot uses as instance
//! host names), a ConfigMap with the role's Pinot configuration and a PodDisruptionBudget; per
//! cluster a Service for the controllers and one for the brokers.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy},
        core::v1::{
            Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, HTTPGetAction, KeyToPath, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext,
            PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext,
            Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
            VolumeResourceRequirements, WeightedPodAffinityTerm,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
            IngressSpec, IngressTLS, ServiceBackendPort,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use pinot_crds::{PinotCluster, PodOverrides, SecretKey};
use serde::Serialize;

use super::{
    cache::ZONE_LABEL,
    plan::Plan,
    validate::{
        self, Placement, PodSecurityProfile, ValidBasicAuth, ValidCluster, ValidDeepStorage, ValidIngress, ValidPool,
        ValidStorage, ValidTls,
        deep_storage::secret_env,
        pod::{LOG_DIR, TMP_DIR},
        security::{SERVICE_TOKEN_ENV, SERVICE_TOKEN_KEY, TLS_DIR, TLS_PASSWORD_ENV, service_token_secret},
    },
};
pub use crate::children::{configmap_name, headless_service_name, role_service_name, statefulset_name};
use crate::{
    children::{
        ANNOTATION_CONFIG_DIGEST, ChildKind, LABEL_CLUSTER, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY,
        LABEL_NAME, LABEL_POOL, LABEL_ROLE, MANAGED_BY, PdbVersion, pool_selector,
    },
    role::{Role, relaxed_key, sets_system_property},
};

mod ensemble;
pub use ensemble::{ZOOKEEPER_CONTAINER, ZOOKEEPER_ROLE_LABEL};

const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// One object to apply, already serialised with its `apiVersion` and `kind`: as JSON text,
/// which is what an apply sends and a fraction of the memory of a `serde_json::Value` (the
/// operator keeps every cluster's last build, see `cache::BuiltObjects`).
#[derive(Clone, Debug)]
pub struct ChildObject {
    pub kind: ChildKind,
    pub name: String,
    /// The pool it belongs to; `None` for cluster-wide objects.
    pub pool: Option<String>,
    pub object: Box<serde_json::value::RawValue>,
    /// A digest of `object`, to tell whether it changed since it was applied.
    pub digest: u64,
}

impl PartialEq for ChildObject {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.name, &self.pool, self.object.get())
            == (other.kind, &other.name, &other.pool, other.object.get())
    }
}

impl ChildObject {
    pub fn new(kind: ChildKind, name: String, pool: Option<String>, object: serde_json::Value) -> Self {
        let object = serde_json::value::to_raw_value(&object).expect("a JSON value serializes");
        let digest = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            object.get().hash(&mut hasher);
            hasher.finish()
        };
        Self { kind, name, pool, object, digest }
    }

    /// The object as a JSON value, to look into.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.object.get()).expect("built from a JSON value")
    }
}

/// Everything one cluster should have, in the order it is applied (configuration and
/// Services before the StatefulSets that use them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredObjects {
    pub objects: Vec<ChildObject>,
}

impl DesiredObjects {
    pub fn contains(&self, kind: ChildKind, name: &str) -> bool {
        self.objects.iter().any(|o| o.kind == kind && o.name == name)
    }
}

/// What the build step needs besides the validated spec.
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub owner: OwnerReference,
    pub pdb_version: PdbVersion,
    /// The replicas each pool's StatefulSet gets, as the scaling policy decided (a pool not
    /// listed gets its spec's replicas).
    pub replicas: BTreeMap<String, i32>,
    /// The managed ensemble's members and the members its configuration lists, as the plan
    /// decided (one step of a resize at a time); `None`: its objects are not applied in this pass.
    pub ensemble: Option<EnsembleShape>,
    /// The restart stamp of each pool, as the plan decided (`Plan::restarts`).
    pub restarts: BTreeMap<String, String>,
}

pub use super::ensemble::EnsembleShape;

/// The objects last built for each cluster (by the PinotCluster's uid) and a digest of what they
/// were built from: a pass with the same inputs (most passes: a pod became ready) reuses them
/// instead of building, serializing and digesting every object again.
#[derive(Default)]
pub struct BuiltObjects {
    by_cluster: std::sync::Mutex<HashMap<String, (u64, Arc<DesiredObjects>)>>,
}

impl BuiltObjects {
    pub fn get_or_build(&self, uid: &str, inputs: u64, build: impl FnOnce() -> DesiredObjects) -> Arc<DesiredObjects> {
        if let Some((built_from, objects)) = self.by_cluster.lock().expect("built lock poisoned").get(uid)
            && *built_from == inputs
        {
            return objects.clone();
        }
        let objects = Arc::new(build());
        self.by_cluster.lock().expect("built lock poisoned").insert(uid.to_string(), (inputs, objects.clone()));
        objects
    }

    pub fn forget(&self, uid: &str) {
        self.by_cluster.lock().expect("built lock poisoned").remove(uid);
    }
}

/// Step 4 (pure): the objects of the pools the plan applies, with the replicas it decided. A
/// pass with the same inputs as the last (most passes: a pod became ready) reuses what was
/// built then. Nothing when the plan holds everything back.
pub fn build(
    cluster: &PinotCluster,
    valid: Option<&ValidCluster>,
    plan: &Plan<'_>,
    owner: OwnerReference,
    pdb_version: PdbVersion,
    built: &BuiltObjects,
) -> Arc<DesiredObjects> {
    let (Some(valid), None, Some(uid)) = (valid, &plan.hold, cluster.metadata.uid.as_deref()) else {
        return Arc::new(DesiredObjects { objects: vec![] });
    };
    // What the objects are built from besides the cluster's uid: its spec (generation) and
    // metadata, the pools planned and their replicas.
    let inputs = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        super::cache::spec_and_metadata(cluster).hash(&mut hasher);
        plan.pools.pools.iter().map(|p| &p.name).collect::<Vec<_>>().hash(&mut hasher);
        plan.replicas.hash(&mut hasher);
        plan.ensemble.as_ref().map(|e| e.shape).hash(&mut hasher);
        plan.restarts.hash(&mut hasher);
        pdb_version.api_version().hash(&mut hasher);
        hasher.finish()
    };
    built.get_or_build(uid, inputs, || {
        let ctx = BuildContext {
            owner,
            pdb_version,
            replicas: plan.replicas.clone(),
            ensemble: plan.ensemble.as_ref().map(|e| e.shape),
            restarts: plan.restarts.clone(),
        };
        build_cluster(valid, &plan.pools.pools, &ctx)
    })
}

/// The managed ensemble's StatefulSet with `replicas` members configured with `servers`.
pub fn ensemble_statefulset(cluster: &ValidCluster, replicas: i32, servers: i32, ctx: &BuildContext) -> StatefulSet {
    let managed = cluster.ensemble.as_ref().expect("a managed ensemble");
    ensemble::build_statefulset(cluster, managed, replicas, servers, ctx)
}

/// Builds every object of the cluster for the pools the plan says to apply.
pub fn build_cluster(cluster: &ValidCluster, pools: &[&ValidPool], ctx: &BuildContext) -> DesiredObjects {
    let mut objects = Vec::new();
    if let (Some(ensemble), Some(shape)) = (&cluster.ensemble, ctx.ensemble) {
        let pool = Some(validate::zookeeper::ENSEMBLE_POOL.to_string());
        let named = |kind: ChildKind, value: serde_json::Value| {
            let name = value["metadata"]["name"].as_str().unwrap_or_default().to_string();
            ChildObject::new(kind, name, pool.clone(), value)
        };
        objects.push(named(ChildKind::Service, to_json(&ensemble::build_headless_service(cluster, ctx))));
        objects.push(named(ChildKind::Service, to_json(&ensemble::build_client_service(cluster, ctx))));
        objects.push(named(
            ChildKind::StatefulSet,
            to_json(&ensemble::build_statefulset(cluster, ensemble, shape.replicas, shape.servers, ctx)),
        ));
        let mut pdb = to_json(&ensemble::build_pdb(cluster, ctx));
        pdb["apiVersion"] = ctx.pdb_version.api_version().into();
        objects.push(named(ChildKind::PodDisruptionBudget, pdb));
    }
    for role in [Role::Controller, Role::Broker] {
        if cluster.has_role(role) {
            objects.push(child(ChildKind::Service, None, build_role_service(cluster, role, ctx)));
        }
    }
    if let Some(ingress) = &cluster.exposure.controller_ingress {
        objects.push(child(ChildKind::Ingress, None, build_controller_ingress(cluster, ingress, ctx)));
    }
    for pool in pools {
        let config = build_pool_configmap(cluster, pool, ctx);
        let digest = config_digest(&config);
        objects.push(child(ChildKind::ConfigMap, Some(pool), config));
        objects.push(child(ChildKind::Service, Some(pool), build_pool_headless_service(cluster, pool, ctx)));
        objects.push(child(ChildKind::StatefulSet, Some(pool), build_pool_statefulset(cluster, pool, &digest, ctx)));
        let mut pdb = to_json(&build_pool_pdb(cluster, pool, ctx));
        pdb["apiVersion"] = ctx.pdb_version.api_version().into();
        objects.push(ChildObject::new(
            ChildKind::PodDisruptionBudget,
            statefulset_name(&cluster.name, &pool.name),
            Some(pool.name.clone()),
            pdb,
        ));
    }
    DesiredObjects { objects }
}

fn child<K: Serialize + kube::Resource<DynamicType = ()>>(
    kind: ChildKind,
    pool: Option<&ValidPool>,
    obj: K,
) -> ChildObject {
    let name = obj.meta().name.clone().unwrap_or_default();
    ChildObject::new(kind, name, pool.map(|p| p.name.clone()), to_json(&obj))
}

/// Serialises a typed object with its `apiVersion` and `kind`, as server-side apply needs.
fn to_json<K: Serialize + kube::Resource<DynamicType = ()>>(obj: &K) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).expect("Kubernetes objects always serialise");
    v["apiVersion"] = K::api_version(&()).into();
    v["kind"] = K::kind(&()).into();
    v
}

/// Labels on every object of a pool.
fn pool_labels(cluster: &ValidCluster, pool: &ValidPool) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(cluster, pool.role.as_str());
    labels.insert(LABEL_POOL.into(), pool.name.clone());
    labels
}

/// Labels on every object of a cluster's role (`role`: a Pinot role, or `zookeeper`).
fn cluster_labels(cluster: &ValidCluster, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "pinot".to_string()),
        (LABEL_INSTANCE.to_string(), cluster.name.clone()),
        (LABEL_COMPONENT.to_string(), role.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_CLUSTER.to_string(), cluster.name.clone()),
        (LABEL_ROLE.to_string(), role.to_string()),
    ])
}

fn metadata(name: String, cluster: &ValidCluster, labels: BTreeMap<String, String>, ctx: &BuildContext) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(cluster.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![ctx.owner.clone()]),
        ..Default::default()
    }
}

fn service_ports(ports: &[(&str, i32)]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|(name, port)| ServicePort {
            name: Some(name.to_string()),
            port: *port,
            target_port: Some(IntOrString::Int(*port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect()
}

/// The cluster's Service for one role, on the port clients use (controller 9000, broker
/// 8099); Pinot's own traffic goes pod to pod.
pub fn build_role_service(cluster: &ValidCluster, role: Role, ctx: &BuildContext) -> Service {
    let labels = cluster_labels(cluster, role.as_str());
    let selector =
        BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.name.clone()), (LABEL_ROLE.to_string(), role.to_string())]);
    let exposure = cluster.exposure.service(role).cloned().unwrap_or_default();
    let mut ports = service_ports(&role.ports()[..1]);
    ports[0].node_port = exposure.node_port;
    let mut meta = metadata(role_service_name(&cluster.name, role), cluster, labels, ctx);
    meta.annotations = (!exposure.annotations.is_empty()).then(|| exposure.annotations.clone());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(if exposure.type_.is_empty() { "ClusterIP".into() } else { exposure.type_.clone() }),
            selector: Some(selector),
            ports: Some(ports),
            load_balancer_source_ranges: (!exposure.load_balancer_source_ranges.is_empty())
                .then(|| exposure.load_balancer_source_ranges.clone()),
            external_traffic_policy: exposure.external_traffic_policy.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The controller's Ingress (`spec.exposure.controllerIngress`): its host and path to the
/// controllers' Service on port 9000.
pub fn build_controller_ingress(cluster: &ValidCluster, ingress: &ValidIngress, ctx: &BuildContext) -> Ingress {
    let mut meta = metadata(
        role_service_name(&cluster.name, Role::Controller),
        cluster,
        cluster_labels(cluster, Role::Controller.as_str()),
        ctx,
    );
    meta.annotations = (!ingress.annotations.is_empty()).then(|| ingress.annotations.clone());
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: role_service_name(&cluster.name, Role::Controller),
            port: Some(ServiceBackendPort { number: Some(Role::Controller.main_port()), ..Default::default() }),
        }),
        ..Default::default()
    };
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(ingress.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(ingress.path.clone()),
                        path_type: "Prefix".into(),
                        backend,
                    }],
                }),
            }]),
            tls: ingress.tls_secret.as_ref().map(|secret| {
                vec![IngressTLS { hosts: Some(vec![ingress.host.clone()]), secret_name: Some(secret.clone()) }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The headless Service that gives each pod of the pool a stable DNS name,
/// `<pod>.<cluster>-<pool>-headless.<namespace>.svc.<cluster domain>`: the host name Pinot
/// registers the pod's instance with.
pub fn build_pool_headless_service(cluster: &ValidCluster, pool: &ValidPool, ctx: &BuildContext) -> Service {
    Service {
        metadata: metadata(headless_service_name(&cluster.name, &pool.name), cluster, pool_labels(cluster, pool), ctx),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Pinot registers in Helix with its DNS name before it is Ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(pool_selector(&cluster.name, &pool.name)),
            ports: Some(service_ports(pool.role.ports())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The role's Pinot properties: role defaults, then what the cluster's sections write for the
/// role (deep storage, basic auth, TLS), then the pool's `config` merged over them. A
/// pool key replaces the default Pinot reads as the same key whatever its spelling (both in one
/// file would stop Pinot from starting); validation has refused the keys the operator owns.
pub fn pinot_properties(cluster: &ValidCluster, pool: &ValidPool) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> =
        pool.role.default_config(&cluster.helix_cluster_name, &cluster.zookeeper).into_iter().collect();
    let mut sections = cluster.deep_storage.as_ref().map(|d| d.role_properties(pool.role)).unwrap_or_default();
    sections.extend(cluster.basic_auth.iter().flat_map(|a| a.role_properties(pool.role)));
    if let Some(tls) = &cluster.tls {
        if let Some(plain) = ValidTls::replaced_key(pool.role) {
            props.retain(|k, _| relaxed_key(k) != relaxed_key(plain));
        }
        sections.extend(tls.role_properties(pool.role));
    }
    for (key, value) in sections.iter().map(|(k, v)| (k, v)).chain(&pool.config) {
        let relaxed = relaxed_key(key);
        props.retain(|default, _| relaxed_key(default) != relaxed);
        props.insert(key.clone(), value.clone());
    }
    props
}

pub fn build_pool_configmap(cluster: &ValidCluster, pool: &ValidPool, ctx: &BuildContext) -> ConfigMap {
    let text: String = pinot_properties(cluster, pool).iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    ConfigMap {
        metadata: metadata(configmap_name(&cluster.name, &pool.name), cluster, pool_labels(cluster, pool), ctx),
        data: Some(BTreeMap::from([(pool.role.config_file(), text)])),
        ..Default::default()
    }
}

/// FNV-1a over the ConfigMap's data: stable across builds and Rust versions, unlike
/// `DefaultHasher`, so an operator upgrade alone never changes a pod template.
fn config_digest(config: &ConfigMap) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in config.data.iter().flatten() {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The pod template annotation of a rolling restart: a new stamp is a new revision, which the
/// upgrade policy rolls out pod by pod.
pub const ANNOTATION_RESTARTED_AT: &str = "pinot.controlplane.dev/restarted-at";

/// Puts the restart stamp of `pool` (if any) into its pod template's annotations (and
/// `operator_statefulset` onto the StatefulSet, where the next plan finds it).
pub(crate) fn restart_stamp(ctx: &BuildContext, pool: &str, annotations: &mut BTreeMap<String, String>) {
    if let Some(stamp) = ctx.restarts.get(pool) {
        annotations.insert(ANNOTATION_RESTARTED_AT.into(), stamp.clone());
    }
}

pub fn build_pool_statefulset(
    cluster: &ValidCluster,
    pool: &ValidPool,
    config_digest: &str,
    ctx: &BuildContext,
) -> StatefulSet {
    let role = pool.role;
    let labels = pool_labels(cluster, pool);
    let selector = pool_selector(&cluster.name, &pool.name);

    let mut pod_labels = pool.overrides.labels.clone();
    pod_labels.extend(labels.clone());
    let mut pod_annotations = pool.overrides.annotations.clone();
    if let Some(metrics) = &cluster.metrics {
        // The convention of Prometheus' Kubernetes service discovery examples; the Helm
        // chart's PodMonitor selects the port by name instead.
        for (k, v) in [
            ("prometheus.io/scrape", "true".to_string()),
            ("prometheus.io/port", metrics.port.to_string()),
            ("prometheus.io/path", "/metrics".to_string()),
        ] {
            pod_annotations.entry(k.to_string()).or_insert(v);
        }
    }
    pod_annotations.insert(ANNOTATION_CONFIG_DIGEST.into(), config_digest.into());
    restart_stamp(ctx, &pool.name, &mut pod_annotations);

    // `StartController` with a config file ignores `-clusterName` and `-zkAddress`; the other
    // roles use them only where the file has no `pinot.cluster.name` / `pinot.zk.server`, and
    // it always has: they are passed with the same values, as the official chart does.
    let mut args = vec![role.start_command().to_string()];
    if role != Role::Controller {
        args.extend([
            "-clusterName".into(),
            cluster.helix_cluster_name.clone(),
            "-zkAddress".into(),
            cluster.zookeeper.clone(),
        ]);
    }
    args.extend(["-configFileName".into(), format!("{}/{}", role.config_dir(), role.config_file())]);

    let mut env = Vec::new();
    if let Some(tls) = &cluster.tls {
        // Before JAVA_OPTS, which names it as `$(PINOT_TLS_PASSWORD)`.
        env.push(secret_env(TLS_PASSWORD_ENV, &tls.password));
    }
    env.extend([
        EnvVar { name: "JAVA_OPTS".into(), value: Some(java_opts(cluster, pool)), ..Default::default() },
        // The role's log4j file logs to the console at this level (default warn).
        EnvVar { name: "LOG4J_CONSOLE_LEVEL".into(), value: Some("info".into()), ..Default::default() },
    ]);
    let deep_storage = cluster.deep_storage.as_ref().filter(|_| ValidDeepStorage::used_by(role));
    env.extend(deep_storage.iter().flat_map(|d| d.env.iter().cloned()));
    if let Some(auth) = &cluster.basic_auth {
        env.extend(auth_env(&cluster.name, auth, role));
    }
    for e in &pool.overrides.env {
        env.retain(|x| x.name != e.name);
        env.push(e.clone());
    }

    let https = cluster.tls.is_some() && ValidTls::serves_https(role);
    let probe = |path: &str, timeout: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(role.main_port()),
            scheme: https.then(|| "HTTPS".to_string()),
            ..Default::default()
        }),
        period_seconds: Some(PROBE_PERIOD_SECONDS),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    // Liveness and readiness start once the startup probe has passed; the startup probe
    // gives the role its whole start (`Role::startup_budget_seconds`), then a live role is
    // restarted only after its liveness path failed for 100 s (the chart's 10 x 10 s).
    let startup_budget = pool.role.startup_budget_seconds(&pool.config);
    let startup_failures = i32::try_from(startup_budget.div_ceil(PROBE_PERIOD_SECONDS as u64)).unwrap_or(i32::MAX);
    let startup_probe = Probe { initial_delay_seconds: Some(10), ..probe(role.liveness_path(), 10, startup_failures) };
    let liveness_probe = probe(role.liveness_path(), 10, 10);
    let readiness_probe = probe(role.readiness_path(), 5, 3);

    let resources = pool.resources.clone().unwrap_or_else(|| {
        let (cpu, memory) = role.default_requests(&pool.jvm_opts);
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(cpu)),
                ("memory".to_string(), Quantity(memory)),
            ])),
            ..Default::default()
        }
    });

    let mut volume_mounts = vec![
        VolumeMount { name: "config".into(), mount_path: role.config_dir(), ..Default::default() },
        VolumeMount { name: "data".into(), mount_path: role.data_dir(), ..Default::default() },
    ];
    if pool.pod_security == PodSecurityProfile::Restricted {
        volume_mounts.push(VolumeMount { name: "logs".into(), mount_path: LOG_DIR.into(), ..Default::default() });
        volume_mounts.push(VolumeMount { name: "tmp".into(), mount_path: TMP_DIR.into(), ..Default::default() });
    }
    volume_mounts.extend(deep_storage.iter().flat_map(|d| d.mounts.iter().map(|(_, m)| m.clone())));
    if cluster.tls.is_some() {
        volume_mounts.push(VolumeMount {
            name: "pinot-tls".into(),
            mount_path: TLS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    volume_mounts.extend(pool.overrides.volume_mounts.iter().cloned());

    let container = Container {
        name: "pinot".into(),
        image: Some(pool.image.clone()),
        args: Some(args),
        env: Some(env),
        ports: Some(
            role.ports()
                .iter()
                .copied()
                .chain(cluster.metrics.as_ref().map(|m| ("metrics", m.port)))
                .map(|(name, port)| ContainerPort {
                    name: Some(name.to_string()),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        startup_probe: Some(startup_probe),
        readiness_probe: Some(readiness_probe),
        liveness_probe: Some(liveness_probe),
        resources: Some(resources),
        volume_mounts: Some(volume_mounts),
        env_from: (!pool.overrides.env_from.is_empty()).then(|| pool.overrides.env_from.clone()),
        security_context: pool.overrides.container_security_context.clone(),
        ..Default::default()
    };

    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: configmap_name(&cluster.name, &pool.name),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let claim_templates = data_volume(pool.storage.as_ref(), &selector, &mut volumes);

    if pool.pod_security == PodSecurityProfile::Restricted {
        // The image's directories belong to root: Pinot's logs and its temporary files.
        for name in ["logs", "tmp"] {
            volumes.push(Volume {
                name: name.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
        }
    }
    volumes.extend(deep_storage.iter().flat_map(|d| d.mounts.iter().map(|(v, _)| v.clone())));
    if let Some(tls) = &cluster.tls {
        let item = |key: &str| KeyToPath { key: key.into(), path: key.into(), ..Default::default() };
        volumes.push(Volume {
            name: "pinot-tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret.clone()),
                items: Some(vec![item("keystore.p12"), item("truststore.p12")]),
                // Readable by the pods' group under the restricted profile (fsGroup).
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut sts_metadata = metadata(statefulset_name(&cluster.name, &pool.name), cluster, labels, ctx);
    if let Some(ensemble) = &cluster.ensemble {
        // Which ensemble and chroot Pinot's state is in: a later spec may not switch it away.
        sts_metadata.annotations =
            Some(BTreeMap::from([(super::ensemble::ANNOTATION_PINOT_CHROOT.to_string(), ensemble.chroot.clone())]));
    }
    operator_statefulset(PodSet {
        metadata: sts_metadata,
        replicas: ctx.replicas.get(&pool.name).copied().unwrap_or(pool.replicas),
        service_name: headless_service_name(&cluster.name, &pool.name),
        selector,
        pod_labels,
        pod_annotations,
        container,
        volumes,
        claim_templates,
        placement: &pool.placement,
        overrides: &pool.overrides,
        profile: pool.pod_security,
        grace_seconds: role.termination_grace_seconds(&pool.config),
        fs_group: None,
    })
}

/// What a StatefulSet of the operator's is made of: a Pinot pool's or the ZooKeeper ensemble's.
struct PodSet<'a> {
    metadata: ObjectMeta,
    replicas: i32,
    service_name: String,
    selector: BTreeMap<String, String>,
    pod_labels: BTreeMap<String, String>,
    pod_annotations: BTreeMap<String, String>,
    /// The main container; the overrides' sidecars come after it.
    container: Container,
    /// The operator's volumes; the overrides' come after them.
    volumes: Vec<Volume>,
    claim_templates: Option<Vec<PersistentVolumeClaim>>,
    placement: &'a Placement,
    overrides: &'a PodOverrides,
    profile: PodSecurityProfile,
    grace_seconds: i64,
    /// The group owning the volumes unless the pod settings name one.
    fs_group: Option<i64>,
}

/// A StatefulSet whose pods start together and restart only when the operator deletes them,
/// with the pod settings of `overrides` and the security profile applied.
fn operator_statefulset(set: PodSet<'_>) -> StatefulSet {
    let overrides = set.overrides;
    let mut volumes = set.volumes;
    volumes.extend(overrides.volumes.iter().cloned());
    let mut containers = vec![set.container];
    containers.extend(overrides.sidecars.iter().cloned());
    let mut init_containers = overrides.init_containers.clone();
    let mut security_context = security_profile(set.profile, overrides, &mut containers, &mut init_containers);
    if let Some(group) = set.fs_group {
        security_context.get_or_insert_with(Default::default).fs_group.get_or_insert(group);
    }
    let selector = set.selector;
    let mut metadata = set.metadata;
    if let Some(stamp) = set.pod_annotations.get(ANNOTATION_RESTARTED_AT) {
        metadata.annotations.get_or_insert_with(Default::default).insert(ANNOTATION_RESTARTED_AT.into(), stamp.clone());
    }
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(set.replicas),
            service_name: Some(set.service_name),
            // Pods of a pool start together; the order that matters (between roles, and pod
            // by pod during upgrades) is decided by the operator's policies, not by the
            // StatefulSet controller.
            pod_management_policy: Some("Parallel".into()),
            // Only the operator decides when a pod restarts onto a new revision.
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), ..Default::default() }),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(set.pod_labels),
                    annotations: Some(set.pod_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers,
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    volumes: Some(volumes),
                    service_account_name: overrides.service_account_name.clone(),
                    image_pull_secrets: (!overrides.image_pull_secrets.is_empty())
                        .then(|| overrides.image_pull_secrets.clone()),
                    priority_class_name: overrides.priority_class_name.clone(),
                    security_context,
                    affinity: Some(build_affinity(set.placement, overrides, &selector)),
                    node_selector: (!overrides.node_selector.is_empty()).then(|| overrides.node_selector.clone()),
                    tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
                    topology_spread_constraints: zone_spread(set.placement, &selector),
                    termination_grace_period_seconds: Some(set.grace_seconds),
                    ..Default::default()
                }),
            },
            volume_claim_templates: set.claim_templates,
            ..Default::default()
        }),
        ..Default::default()
    }
}

const PROBE_PERIOD_SECONDS: i32 = 10;

/// The pod's `data` volume: a claim template (returned) for a PersistentVolumeClaim per pod,
/// else an emptyDir added to `volumes`.
fn data_volume(
    storage: Option<&ValidStorage>,
    selector: &BTreeMap<String, String>,
    volumes: &mut Vec<Volume>,
) -> Option<Vec<PersistentVolumeClaim>> {
    match storage {
        Some(storage) => Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta { name: Some("data".into()), labels: Some(selector.clone()), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_string(), Quantity(storage.size.clone()))])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        None => {
            volumes.push(Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            None
        }
    }
}

/// The pod's security context from its overrides, with what the profile requires filled in
/// there and in every container.
fn security_profile(
    profile: PodSecurityProfile,
    overrides: &PodOverrides,
    containers: &mut [Container],
    init_containers: &mut [Container],
) -> Option<PodSecurityContext> {
    let security_context = overrides.security_context.clone();
    if profile != PodSecurityProfile::Restricted {
        return security_context;
    }
    for c in containers.iter_mut().chain(init_containers.iter_mut()) {
        c.security_context = Some(restricted_container_context(c.security_context.take().unwrap_or_default()));
    }
    Some(restricted_pod_context(security_context.unwrap_or_default()))
}

/// Pods of a pool placed in several zones spread evenly over them.
fn zone_spread(placement: &Placement, selector: &BTreeMap<String, String>) -> Option<Vec<TopologySpreadConstraint>> {
    match placement {
        Placement::Zones(zones) if zones.len() > 1 => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: ZONE_LABEL.into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
            ..Default::default()
        }]),
        _ => None,
    }
}

/// The basic-auth environment of a role: the principals' passwords (controllers and brokers
/// check them) and the admin's token (controllers, servers and minions send it), each from its
/// Secret.
fn auth_env(cluster: &str, auth: &ValidBasicAuth, role: Role) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if matches!(role, Role::Controller | Role::Broker) {
        env.extend(auth.principals().map(|p| secret_env(&p.env, &p.password)));
    }
    if role != Role::Broker {
        let token = SecretKey { name: service_token_secret(cluster), key: SERVICE_TOKEN_KEY.into() };
        env.push(secret_env(SERVICE_TOKEN_ENV, &token));
    }
    env
}

/// The user and group Pinot runs as under the "restricted" profile unless the pod settings
/// name one: the official image has no user of its own and runs as root (`docker/images/pinot/
/// Dockerfile`, no `USER`); 1000 is the one the official chart suggests (`runAsUser: 1000`,
/// commented out in `helm/pinot/values.yaml`).
pub const RESTRICTED_USER: i64 = 1000;

/// The pod's security context under the "restricted" profile: what the user set, with what the
/// profile requires filled in (non-root with a user id, seccomp `RuntimeDefault`, and a group
/// owning the volumes so a non-root Pinot can write its data directory).
fn restricted_pod_context(mut sc: PodSecurityContext) -> PodSecurityContext {
    sc.run_as_non_root = Some(true);
    let user = *sc.run_as_user.get_or_insert(RESTRICTED_USER);
    let group = *sc.run_as_group.get_or_insert(user);
    sc.fs_group.get_or_insert(group);
    // Not every file of a server's volume again at every start (terabytes of segments): only
    // when the volume's root is not the group's yet.
    sc.fs_group_change_policy.get_or_insert_with(|| "OnRootMismatch".to_string());
    sc.seccomp_profile.get_or_insert_with(|| SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() });
    sc
}

/// A container's security context under the "restricted" profile: no privilege escalation,
/// every capability dropped (`NET_BIND_SERVICE` may stay added).
fn restricted_container_context(mut sc: SecurityContext) -> SecurityContext {
    sc.allow_privilege_escalation = Some(false);
    let caps = sc.capabilities.get_or_insert_with(Capabilities::default);
    let drop = caps.drop.get_or_insert_with(Vec::new);
    if !drop.iter().any(|d| d == "ALL") {
        drop.push("ALL".into());
    }
    sc
}

/// `JAVA_OPTS`: the pool's JVM options, then the system properties the image's launcher would
/// otherwise lose (`Role::system_properties`), each unless the pool's options set it.
fn java_opts(cluster: &ValidCluster, pool: &ValidPool) -> String {
    let mut opts = pool.jvm_opts.trim().to_string();
    if let Some(trust) = cluster.tls.as_ref().and_then(|_| ValidTls::java_opts(pool.role))
        && !pool.jvm_opts.contains("javax.net.ssl.trustStore")
    {
        if !opts.is_empty() {
            opts.push(' ');
        }
        opts.push_str(&trust);
    }
    if let Some(metrics) = &cluster.metrics
        && !pool.jvm_opts.contains("jmx_prometheus_javaagent")
    {
        if !opts.is_empty() {
            opts.push(' ');
        }
        opts.push_str(&metrics.java_agent(pool.role));
    }
    for (name, value) in pool.role.system_properties() {
        // A managed ensemble's limit on every client, or large znodes fail one side or the other.
        let value = match (name, &cluster.ensemble) {
            ("jute.maxbuffer", Some(ensemble)) => ensemble.jute_max_buffer.to_string(),
            _ => value,
        };
        if !sets_system_property(&pool.jvm_opts, name) {
            if !opts.is_empty() {
                opts.push(' ');
            }
            opts.push_str(&format!("-D{name}={value}"));
        }
    }
    opts
}

/// The pool's zone(s) as required node affinity, combined (AND) with every node affinity
/// term the user gave; pods of one pool prefer different nodes unless the user set their own
/// pod anti-affinity.
fn build_affinity(placement: &Placement, overrides: &PodOverrides, selector: &BTreeMap<String, String>) -> Affinity {
    let mut affinity = overrides.affinity.clone().unwrap_or_default();
    if let Placement::Zones(zones) = placement {
        let zone_requirement =
            NodeSelectorRequirement { key: ZONE_LABEL.into(), operator: "In".into(), values: Some(zones.clone()) };
        let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
        let required = node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector { node_selector_terms: vec![] });
        if required.node_selector_terms.is_empty() {
            required.node_selector_terms.push(NodeSelectorTerm::default());
        }
        for term in &mut required.node_selector_terms {
            term.match_expressions.get_or_insert_with(Vec::new).push(zone_requirement.clone());
        }
    }
    if affinity.pod_anti_affinity.is_none() {
        affinity.pod_anti_affinity = Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    topology_key: HOSTNAME_LABEL.into(),
                    label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
                    ..Default::default()
                },
            }]),
            ..Default::default()
        });
    }
    affinity
}

pub fn build_pool_pdb(cluster: &ValidCluster, pool: &ValidPool, ctx: &BuildContext) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(statefulset_name(&cluster.name, &pool.name), cluster, pool_labels(cluster, pool), ctx),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(pool.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(pool_selector(&cluster.name, &pool.name)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;
    use crate::cluster::{fixtures, validate::validate};

    fn ctx(pdb_version: PdbVersion) -> BuildContext {
        BuildContext {
            restarts: Default::default(),
            owner: OwnerReference {
                api_version: "pinot.controlplane.dev/v1alpha1".into(),
                kind: "PinotCluster".into(),
                name: "analytics".into(),
                uid: "uid-1".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            pdb_version,
            replicas: Default::default(),
            ensemble: None,
        }
    }

    fn example() -> ValidCluster {
        validate(&fixtures::example()).unwrap()
    }

    fn overrides() -> ValidCluster {
        let text = std::fs::read_to_string(fixtures::dir("valid").join("overrides.yaml")).unwrap();
        validate(&fixtures::cluster(&text)).unwrap()
    }

    fn required_terms(spec: &PodSpec) -> &Vec<k8s_openapi::api::core::v1::NodeSelectorTerm> {
        &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms
    }

    fn pod_spec(sts: &StatefulSet) -> &PodSpec {
        sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn sts(cluster: &ValidCluster, pool: &str) -> StatefulSet {
        let pool = cluster.pool(pool).unwrap();
        let digest = config_digest(&build_pool_configmap(cluster, pool, &ctx(PdbVersion::V1)));
        build_pool_statefulset(cluster, pool, &digest, &ctx(PdbVersion::V1))
    }

    #[test]
    fn cluster_objects_are_complete_and_owned() {
        let cluster = example();
        let pools: Vec<&ValidPool> = cluster.pools.iter().collect();
        let desired = build_cluster(&cluster, &pools, &ctx(PdbVersion::V1beta1));
        let count = |kind| desired.objects.iter().filter(|o| o.kind == kind).count();
        assert_eq!(count(ChildKind::StatefulSet), 6);
        assert_eq!(count(ChildKind::ConfigMap), 6);
        assert_eq!(count(ChildKind::PodDisruptionBudget), 6);
        assert_eq!(count(ChildKind::Service), 6 + 2, "a headless Service per pool, controller and broker Services");
        for o in &desired.objects {
            let object = o.value();
            assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-1", "{} {}", o.kind.as_str(), o.name);
            assert_eq!(object["metadata"]["namespace"], "analytics-ns");
            assert_eq!(object["metadata"]["labels"]["app.kubernetes.io/managed-by"], "pinot-operator");
            assert_eq!(object["metadata"]["labels"]["pinot.controlplane.dev/cluster"], "analytics");
            assert!(object["apiVersion"].is_string() && object["kind"].is_string());
        }
        let pdb = desired.objects.iter().find(|o| o.kind == ChildKind::PodDisruptionBudget).unwrap();
        assert_eq!(pdb.value()["apiVersion"], "policy/v1beta1");
        assert!(desired.contains(ChildKind::Service, "analytics-controller"));
        assert!(desired.contains(ChildKind::Service, "analytics-broker"));
    }

    #[test]
    fn role_services_exist_only_for_roles_with_pools() {
        let text = std::fs::read_to_string(fixtures::dir("valid").join("short-deployment-order.yaml")).unwrap();
        let cluster = validate(&fixtures::cluster(&text)).unwrap();
        let pools: Vec<&ValidPool> = cluster.pools.iter().collect();
        let desired = build_cluster(&cluster, &pools, &ctx(PdbVersion::V1));
        assert!(desired.contains(ChildKind::Service, "short-controller"));
        assert!(!desired.contains(ChildKind::Service, "short-broker"));
    }

    #[test]
    fn statefulset_lets_only_the_operator_restart_pods() {
        let s = sts(&example(), "server-offline");
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.update_strategy.as_ref().unwrap().type_.as_deref(), Some("OnDelete"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.service_name.as_deref(), Some("analytics-server-offline-headless"));
        assert_eq!(spec.selector.match_labels.as_ref().unwrap(), &pool_selector("analytics", "server-offline"),);
    }

    #[test]
    fn server_container_runs_pinot_with_its_config_ports_and_probes() {
        let s = sts(&example(), "server-offline");
        let c = &pod_spec(&s).containers[0];
        assert_eq!(c.image.as_deref(), Some("apachepinot/pinot:1.2.0"));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "StartServer",
                "-clusterName",
                "analytics",
                "-zkAddress",
                "zookeeper.zookeeper.svc.cluster.local:2181",
                "-configFileName",
                "/var/pinot/server/config/pinot-server.conf",
            ]
        );
        let ports: Vec<i32> = c.ports.as_ref().unwrap().iter().map(|p| p.container_port).collect();
        assert_eq!(ports, vec![8098, 8097, 7321, 7732]);
        let readiness = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!((readiness.path.as_deref(), &readiness.port), (Some("/health/readiness"), &IntOrString::Int(8097)));
        let java = c.env.as_ref().unwrap().iter().find(|e| e.name == "JAVA_OPTS").unwrap();
        assert_eq!(
            java.value.as_deref(),
            Some(
                "-XX:+UseG1GC -Xms1G -Xmx4G -Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-server-log4j2.xml -Dplugins.dir=/opt/pinot/plugins -Djute.maxbuffer=4000000"
            )
        );
        // The pool's own resources, as they are.
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!((&requests["cpu"], &requests["memory"]), (&Quantity("1".into()), &Quantity("4Gi".into())));
        // Storage: a claim template mounted at the data directory.
        let claims = s.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let req = claims[0].spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req["storage"], Quantity("50Gi".into()));
        assert_eq!(claims[0].spec.as_ref().unwrap().storage_class_name.as_deref(), Some("standard"));
        let mounts = c.volume_mounts.as_ref().unwrap();
        assert!(mounts.iter().any(|m| m.name == "data" && m.mount_path == "/var/pinot/server/data"));
        assert!(mounts.iter().any(|m| m.name == "config" && m.mount_path == "/var/pinot/server/config"));
    }

    #[test]
    fn controller_reads_cluster_and_zookeeper_from_its_config_file() {
        let s = sts(&example(), "controller");
        let c = &pod_spec(&s).containers[0];
        assert_eq!(
            c.args.as_ref().unwrap(),
            &["StartController", "-configFileName", "/var/pinot/controller/config/pinot-controller.conf"]
        );
        let cluster = example();
        let props = pinot_properties(&cluster, cluster.pool("controller").unwrap());
        assert_eq!(props["controller.zk.str"], "zookeeper.zookeeper.svc.cluster.local:2181");
        assert_eq!(props["controller.helix.cluster.name"], "analytics");
        assert_eq!(props["pinot.cluster.name"], "analytics");
        assert_eq!(props["controller.port"], "9000");
        assert_eq!(props["controller.task.scheduler.enabled"], "true");
        // Each controller is its own VIP: a download URL names the controller holding the file.
        assert!(!props.keys().any(|k| k.starts_with("controller.vip")), "{props:?}");
    }

    #[test]
    fn pools_without_storage_use_an_empty_dir() {
        let s = sts(&example(), "broker-a");
        assert!(s.spec.as_ref().unwrap().volume_claim_templates.is_none());
        let data = pod_spec(&s).volumes.as_ref().unwrap().iter().find(|v| v.name == "data").unwrap();
        assert!(data.empty_dir.is_some());
    }

    #[test]
    fn single_zone_is_required_node_affinity() {
        let s = sts(&example(), "broker-b");
        let affinity = pod_spec(&s).affinity.as_ref().unwrap();
        let terms = required_terms(pod_spec(&s));
        assert_eq!(terms.len(), 1);
        let req = &terms[0].match_expressions.as_ref().unwrap()[0];
        assert_eq!(
            (req.key.as_str(), req.operator.as_str(), req.values.as_ref().unwrap().as_slice()),
            ("topology.kubernetes.io/zone", "In", &["zone-b".to_string()][..])
        );
        assert!(pod_spec(&s).topology_spread_constraints.is_none(), "one zone needs no spreading");
        assert!(affinity.pod_anti_affinity.is_some(), "pods of a pool prefer different nodes");
    }

    #[test]
    fn several_zones_spread_evenly() {
        let s = sts(&example(), "controller");
        let spread = pod_spec(&s).topology_spread_constraints.as_ref().unwrap();
        assert_eq!(spread[0].max_skew, 1);
        assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
        assert_eq!(spread[0].when_unsatisfiable, "DoNotSchedule");
        assert_eq!(
            spread[0].label_selector.as_ref().unwrap().match_labels.as_ref().unwrap(),
            &pool_selector("analytics", "controller")
        );
        let terms = required_terms(pod_spec(&s));
        assert_eq!(
            terms[0].match_expressions.as_ref().unwrap()[0].values.as_ref().unwrap(),
            &vec!["zone-a".to_string(), "zone-b".to_string()]
        );
    }

    fn production_example(file: &str) -> ValidCluster {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/production").join(file);
        let mut cluster = fixtures::cluster(&std::fs::read_to_string(path).unwrap());
        cluster.metadata.namespace = Some("analytics".into());
        validate(&cluster).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// The managed ensemble is what the official image and ZooKeeper expect
    /// (`pinot-facts/zookeeper.md`): ids from ordinals, a server list of every member with its
    /// client port, OnDelete so only the operator restarts a member, peers published before they
    /// are ready; Pinot gets the client Service with the chroot and the members' jute.maxbuffer.
    #[test]
    fn the_managed_ensemble_is_built_as_the_zookeeper_image_reads_it_and_pinot_connects_to_it() {
        let valid = production_example("managed-zookeeper.yaml");
        let ctx = BuildContext { ensemble: Some(EnsembleShape { replicas: 3, servers: 3 }), ..ctx(PdbVersion::V1) };
        let pools: Vec<_> = valid.pools.iter().collect();
        let objects = build_cluster(&valid, &pools, &ctx);
        let names: Vec<(ChildKind, &str)> = objects
            .objects
            .iter()
            .filter(|o| o.pool.as_deref() == Some("zookeeper"))
            .map(|o| (o.kind, o.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (ChildKind::Service, "analytics-zookeeper-headless"),
                (ChildKind::Service, "analytics-zookeeper"),
                (ChildKind::StatefulSet, "analytics-zookeeper"),
                (ChildKind::PodDisruptionBudget, "analytics-zookeeper"),
            ]
        );
        let ensemble = valid.ensemble.as_ref().unwrap();
        let s = ensemble::build_statefulset(&valid, ensemble, 3, 3, &ctx);
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.update_strategy.as_ref().unwrap().type_.as_deref(), Some("OnDelete"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(spec.service_name.as_deref(), Some("analytics-zookeeper-headless"));
        let c = &pod_spec(&s).containers[0];
        assert_eq!(c.image.as_deref(), Some("zookeeper:3.9.3"));
        let env = |name: &str| c.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone());
        assert_eq!(
            env("ZOO_SERVERS").as_deref(),
            Some(
                "server.1=analytics-zookeeper-0.analytics-zookeeper-headless.analytics.svc:2888:3888;2181 \
                 server.2=analytics-zookeeper-1.analytics-zookeeper-headless.analytics.svc:2888:3888;2181 \
                 server.3=analytics-zookeeper-2.analytics-zookeeper-headless.analytics.svc:2888:3888;2181"
            )
        );
        assert_eq!(env("ZOO_4LW_COMMANDS_WHITELIST").as_deref(), Some("srvr,mntr,ruok"));
        assert_eq!(env("ZOO_AUTOPURGE_PURGEINTERVAL").as_deref(), Some("1"));
        assert_eq!(env("JVMFLAGS").as_deref(), Some("-Xms1G -Xmx1G -Djute.maxbuffer=4000000"));
        let command = c.command.as_ref().unwrap().join(" ");
        assert!(command.contains("ZOO_MY_ID=$((${HOSTNAME##*-} + 1))"), "{command}");
        assert!(command.ends_with("exec /docker-entrypoint.sh zkServer.sh start-foreground"), "{command}");
        let readiness = c.readiness_probe.as_ref().unwrap().exec.as_ref().unwrap().command.as_ref().unwrap().join(" ");
        assert!(readiness.contains("echo srvr") && readiness.contains("Mode: (leader|follower"), "{readiness}");
        let mounts: Vec<(&str, Option<&str>)> =
            c.volume_mounts.iter().flatten().map(|m| (m.mount_path.as_str(), m.sub_path.as_deref())).collect();
        assert!(mounts.contains(&("/data", Some("data"))) && mounts.contains(&("/datalog", Some("datalog"))));
        assert_eq!(pod_spec(&s).topology_spread_constraints.as_ref().map(Vec::len), Some(1), "one member per zone");
        assert_eq!(pod_spec(&s).security_context.as_ref().unwrap().fs_group, Some(1000));
        let headless = ensemble::build_headless_service(&valid, &ctx);
        assert_eq!(headless.spec.as_ref().unwrap().publish_not_ready_addresses, Some(true));

        // A member being added: the StatefulSet has four pods, all configured with four.
        let growing = ensemble::build_statefulset(&valid, ensemble, 4, 4, &ctx);
        assert_eq!(growing.spec.as_ref().unwrap().replicas, Some(4));
        assert!(ensemble::servers(&valid, 4).contains("server.4=analytics-zookeeper-3."));

        // Pinot connects through the client Service, with the chroot, and the same jute limit.
        let controller = sts(&valid, "controller");
        assert_eq!(valid.zookeeper, "analytics-zookeeper:2181/pinot");
        let java_opts = env_of(&controller, "JAVA_OPTS");
        assert!(java_opts.contains("-Djute.maxbuffer=4000000"), "{java_opts}");
        // Another limit reaches the members and every Pinot JVM alike, once.
        let mut custom = valid.clone();
        custom.ensemble.as_mut().unwrap().jute_max_buffer = 5_000_000;
        let java_opts = env_of(&sts(&custom, "server"), "JAVA_OPTS");
        assert_eq!(java_opts.matches("-Djute.maxbuffer=").count(), 1, "{java_opts}");
        assert!(java_opts.contains("-Djute.maxbuffer=5000000"), "{java_opts}");
        let member = ensemble::build_statefulset(&custom, custom.ensemble.as_ref().unwrap(), 3, 3, &ctx);
        let member_env = pod_spec(&member).containers[0].env.clone().unwrap_or_default();
        let jvm = member_env.iter().find(|e| e.name == "JVMFLAGS").and_then(|e| e.value.clone()).unwrap();
        assert!(jvm.ends_with("-Djute.maxbuffer=5000000"), "{jvm}");
        let config = build_pool_configmap(&valid, valid.pool("controller").unwrap(), &ctx);
        let file = config.data.as_ref().unwrap().values().next().unwrap();
        assert!(file.contains("analytics-zookeeper:2181/pinot"), "{file}");
    }

    fn env_of(s: &StatefulSet, name: &str) -> String {
        container(s).env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone()).unwrap_or_default()
    }

    /// Each deep-storage example writes the keys Pinot reads for its store
    /// (`pinot-facts/deep-storage.md`): the PinotFS of the URI's scheme for controllers,
    /// servers and minions (brokers none), the controller's data dir, the fetcher protocols;
    /// credentials only as Secret references or files, never in the ConfigMap.
    #[test]
    fn deep_storage_examples_write_what_pinot_reads_and_no_credential_into_a_configmap() {
        type Expect = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static [&'static str]);
        let cases: &[Expect] = &[
            (
                "deep-storage-s3.yaml",
                "s3",
                &[
                    ("class.s3", "org.apache.pinot.plugin.filesystem.S3PinotFS"),
                    ("s3.region", "eu-west-1"),
                    ("s3.httpclient.maxConnections", "100"),
                ],
                &[
                    "AWS_ACCESS_KEY_ID=secret pinot-s3/accessKeyId",
                    "AWS_SECRET_ACCESS_KEY=secret pinot-s3/secretAccessKey",
                ],
            ),
            ("deep-storage-s3-irsa.yaml", "s3", &[("s3.region", "eu-west-1")], &[]),
            (
                "deep-storage-gcs.yaml",
                "gs",
                &[
                    ("class.gs", "org.apache.pinot.plugin.filesystem.GcsPinotFS"),
                    ("gs.projectId", "analytics-prod"),
                    ("gs.gcpKey", "/var/pinot/deep-storage/gcs/key.json"),
                ],
                &["GOOGLE_APPLICATION_CREDENTIALS=/var/pinot/deep-storage/gcs/key.json"],
            ),
            (
                "deep-storage-adls.yaml",
                "abfss",
                &[
                    ("class.abfss", "org.apache.pinot.plugin.filesystem.ADLSGen2PinotFS"),
                    ("abfss.accountName", "analyticsprod"),
                    ("abfss.fileSystemName", "segments"),
                    ("abfss.authenticationType", "DEFAULT"),
                ],
                &[],
            ),
            (
                "deep-storage-hdfs.yaml",
                "hdfs",
                &[
                    ("class.hdfs", "org.apache.pinot.plugin.filesystem.HadoopPinotFS"),
                    ("hdfs.hadoop.conf.path", "/var/pinot/deep-storage/hadoop"),
                    ("hdfs.hadoop.kerberos.principle", "pinot@EXAMPLE.COM"),
                    ("hdfs.hadoop.kerberos.keytab", "/var/pinot/deep-storage/kerberos/pinot.keytab"),
                ],
                &[],
            ),
        ];
        for (file, scheme, fs, env_expected) in cases {
            let cluster = production_example(file);
            for pool in &cluster.pools {
                let props = pinot_properties(&cluster, pool);
                let s = sts(&cluster, &pool.name);
                let prefix = match pool.role {
                    Role::Controller => "pinot.controller",
                    Role::Server => "pinot.server",
                    Role::Minion => "pinot.minion",
                    Role::Broker => {
                        assert!(
                            !props.keys().any(|k| k.contains("storage.factory")),
                            "{file}: brokers need no deep store"
                        );
                        continue;
                    }
                };
                for (suffix, value) in *fs {
                    let key = format!("{prefix}.storage.factory.{suffix}");
                    assert_eq!(props.get(&key).map(String::as_str), Some(*value), "{file} {}: {key}", pool.name);
                }
                assert_eq!(props[&format!("{prefix}.segment.fetcher.protocols")], format!("file,http,{scheme}"));
                if pool.role == Role::Controller {
                    assert!(props["controller.data.dir"].starts_with(&format!("{scheme}://")), "{file}");
                    assert!(
                        props["controller.local.temp.dir"].starts_with("/var/pinot/controller/data"),
                        "{file}: required with a deep store"
                    );
                }
                let env: Vec<String> = container(&s)
                    .env
                    .iter()
                    .flatten()
                    .filter(|e| e.name != "JAVA_OPTS" && e.name != "LOG4J_CONSOLE_LEVEL")
                    .map(|e| match &e.value_from {
                        Some(from) => {
                            let r = from.secret_key_ref.as_ref().unwrap();
                            format!("{}=secret {}/{}", e.name, r.name, r.key)
                        }
                        None => format!("{}={}", e.name, e.value.clone().unwrap_or_default()),
                    })
                    .collect();
                assert_eq!(env, *env_expected, "{file} {}", pool.name);
                let text = build_pool_configmap(&cluster, pool, &ctx(PdbVersion::V1))
                    .data
                    .unwrap()
                    .into_values()
                    .collect::<String>();
                for secret_word in ["accessKey=", "secretKey=", "AWS_", "jsonKey"] {
                    assert!(!text.contains(secret_word), "{file} {}: {secret_word} in\n{text}", pool.name);
                }
            }
        }
        // Files are mounted where the properties say.
        let hdfs = production_example("deep-storage-hdfs.yaml");
        let s = sts(&hdfs, "server");
        let mounts: Vec<&str> = container(&s).volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(
            mounts[2..],
            ["/var/pinot/deep-storage/hadoop", "/var/pinot/deep-storage/kerberos", "/etc/krb5.conf"]
        );
        // No warning about several controllers sharing no deep store.
        assert!(production_example("deep-storage-s3.yaml").warnings.is_empty());
    }

    /// `spec.podOverrides` reaches every pool; a pool's own values replace single fields and
    /// join lists by name; under the restricted profile every container gets what the profile
    /// requires, keeping what the user set where the profile allows it.
    #[test]
    fn cluster_pod_settings_reach_every_pool_and_the_restricted_profile_fills_in_the_rest() {
        let cluster = validate(&fixtures::cluster(
            &std::fs::read_to_string(fixtures::dir("valid").join("identity.yaml")).unwrap(),
        ))
        .unwrap();
        let controller = sts(&cluster, "controller");
        let server = sts(&cluster, "server");
        let (c, s) = (pod_spec(&controller), pod_spec(&server));
        assert_eq!(c.service_account_name.as_deref(), Some("pinot"));
        assert_eq!(s.service_account_name.as_deref(), Some("pinot-server"), "the pool's replaces the cluster's");
        let pulls =
            |p: &PodSpec| -> Vec<String> { p.image_pull_secrets.iter().flatten().map(|r| r.name.clone()).collect() };
        assert_eq!(pulls(c), ["registry-creds"]);
        assert_eq!(pulls(s), ["registry-creds", "mirror-creds"]);
        assert_eq!(s.priority_class_name.as_deref(), Some("data-platform"));
        let names = |list: &[Container]| -> Vec<String> { list.iter().map(|c| c.name.clone()).collect() };
        assert_eq!(names(&c.containers), ["pinot", "log-shipper"]);
        assert_eq!(names(&s.containers), ["pinot", "log-shipper"], "one log shipper: the pool's");
        assert_eq!(s.containers[1].image.as_deref(), Some("fluent/fluent-bit:3.1"));
        assert_eq!(names(s.init_containers.as_ref().unwrap()), ["warm-up"]);
        assert!(c.init_containers.is_none());
        let volumes = |p: &PodSpec| -> Vec<String> { p.volumes.iter().flatten().map(|v| v.name.clone()).collect() };
        assert_eq!(volumes(c), ["config", "logs", "tmp", "ca"], "the controller's data is a claim");
        assert_eq!(volumes(s), ["config", "logs", "tmp", "ca", "scratch"]);
        let pinot = &s.containers[0];
        let mounts: Vec<(&str, &str)> =
            pinot.volume_mounts.iter().flatten().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
        assert_eq!(
            mounts,
            [
                ("config", "/var/pinot/server/config"),
                ("data", "/var/pinot/server/data"),
                ("logs", "/opt/pinot/logs"),
                ("tmp", "/tmp"),
                ("ca", "/etc/corp-ca"),
                ("scratch", "/scratch")
            ]
        );
        let env_from: Vec<String> = pinot
            .env_from
            .iter()
            .flatten()
            .map(|e| {
                e.config_map_ref
                    .as_ref()
                    .map(|r| r.name.clone())
                    .or(e.secret_ref.as_ref().map(|r| r.name.clone()))
                    .unwrap()
            })
            .collect();
        assert_eq!(env_from, ["pinot-env", "server-env"]);

        // The restricted profile: the user's id stays, the rest is filled in.
        let sc = s.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.run_as_non_root, sc.run_as_user, sc.run_as_group, sc.fs_group),
            (Some(true), Some(2000), Some(2000), Some(2000))
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        for container in s.containers.iter().chain(s.init_containers.iter().flatten()) {
            let csc = container.security_context.as_ref().unwrap();
            assert_eq!(csc.allow_privilege_escalation, Some(false), "{}", container.name);
            let caps = csc.capabilities.as_ref().unwrap();
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]), "{}", container.name);
        }
        let shipper = s.containers[1].security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
        assert_eq!(shipper.add.as_deref(), Some(&["NET_BIND_SERVICE".to_string()][..]), "the one capability allowed");

        // Without the profile nothing of it is added.
        let plain = example();
        let p = pod_spec(&sts(&plain, "server-offline")).clone();
        assert!(p.security_context.is_none() && p.containers[0].security_context.is_none());
        assert!(!volumes(&p).contains(&"logs".to_string()));
    }

    #[test]
    fn pod_overrides_are_merged_and_the_operators_labels_win() {
        let cluster = overrides();
        let s = sts(&cluster, "brokers");
        let template = &s.spec.as_ref().unwrap().template;
        let labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels["team"], "bi");
        assert_eq!(labels["pinot.controlplane.dev/pool"], "brokers");
        let annotations = template.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert!(annotations.contains_key(ANNOTATION_CONFIG_DIGEST));
        let spec = pod_spec(&s);
        assert_eq!(spec.node_selector.as_ref().unwrap()["disktype"], "ssd");
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("apachepinot/pinot:1.3.0"));
        let env = c.env.as_ref().unwrap();
        assert_eq!(env.iter().filter(|e| e.name == "JAVA_OPTS").count(), 1);
        assert_eq!(env.iter().find(|e| e.name == "JAVA_OPTS").unwrap().value.as_deref(), Some("-Xmx3G"));
        assert!(env.iter().any(|e| e.name == "EXTRA"));
        // Each of the user's node affinity terms is ANDed with the zone.
        let terms = required_terms(spec);
        assert_eq!(terms.len(), 2);
        for term in terms {
            let keys: Vec<&str> = term.match_expressions.as_ref().unwrap().iter().map(|r| r.key.as_str()).collect();
            assert_eq!(keys, vec!["node-type", "topology.kubernetes.io/zone"]);
        }
    }

    #[test]
    fn pool_config_is_merged_over_role_defaults() {
        let cluster = overrides();
        let cm = build_pool_configmap(&cluster, cluster.pool("brokers").unwrap(), &ctx(PdbVersion::V1));
        let text = &cm.data.as_ref().unwrap()["pinot-broker.conf"];
        assert!(text.contains("pinot.broker.timeoutMs=20000\n"));
        assert_eq!(text.matches("pinot.broker.routing.table.builder.class=").count(), 1);
        assert!(text.contains("pinot.broker.routing.table.builder.class=balanced\n"));
        assert!(text.contains("pinot.broker.client.queryPort=8099\n"));
        assert!(text.contains("pinot.zk.server=zk:2181/pinot\n"));
        assert!(text.contains("pinot.set.instance.id.to.hostname=true\n"));
    }

    #[test]
    fn config_digest_changes_with_the_config_only() {
        let cluster = overrides();
        let pool = cluster.pool("brokers").unwrap();
        let before = sts(&cluster, "brokers");
        assert_eq!(before, sts(&cluster, "brokers"), "building twice gives the same object");
        let mut changed = cluster.clone();
        changed
            .pools
            .iter_mut()
            .find(|p| p.name == "brokers")
            .unwrap()
            .config
            .insert("pinot.broker.timeoutMs".into(), "1".into());
        let after = sts(&changed, "brokers");
        let digest = |s: &StatefulSet| {
            s.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().annotations.as_ref().unwrap()
                [ANNOTATION_CONFIG_DIGEST]
                .clone()
        };
        assert_ne!(digest(&before), digest(&after));
        assert_eq!(pool.name, "brokers");
    }

    #[test]
    fn headless_service_publishes_pods_before_they_are_ready() {
        let cluster = example();
        let svc = build_pool_headless_service(&cluster, cluster.pool("server-realtime").unwrap(), &ctx(PdbVersion::V1));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(svc.metadata.name.as_deref(), Some("analytics-server-realtime-headless"));
    }

    #[test]
    fn pdb_allows_the_pools_max_unavailable() {
        let cluster = overrides();
        let pdb = build_pool_pdb(&cluster, cluster.pool("brokers").unwrap(), &ctx(PdbVersion::V1));
        assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(2)));
    }

    fn valid_fixture(name: &str) -> ValidCluster {
        let text = std::fs::read_to_string(fixtures::dir("valid").join(name)).unwrap();
        validate(&fixtures::cluster(&text)).unwrap()
    }

    fn container(s: &StatefulSet) -> &k8s_openapi::api::core::v1::Container {
        &pod_spec(s).containers[0]
    }

    fn env<'a>(s: &'a StatefulSet, name: &str) -> Option<&'a str> {
        container(s).env.as_ref().unwrap().iter().find(|e| e.name == name).and_then(|e| e.value.as_deref())
    }

    #[test]
    fn every_role_joins_the_helix_cluster_the_spec_names() {
        let cluster = valid_fixture("helm-migrated.yaml");
        for pool in &cluster.pools {
            let props = pinot_properties(&cluster, pool);
            assert_eq!(props["pinot.cluster.name"], "pinot-quickstart", "{}", pool.name);
            let s = sts(&cluster, &pool.name);
            let args = container(&s).args.clone().unwrap();
            if pool.role == Role::Controller {
                assert_eq!(props["controller.helix.cluster.name"], "pinot-quickstart");
                assert!(!args.contains(&"-clusterName".to_string()), "StartController ignores it with a config file");
            } else {
                let at = args.iter().position(|a| a == "-clusterName").expect("-clusterName");
                assert_eq!(args[at + 1], "pinot-quickstart", "{}", pool.name);
            }
            // Objects keep the PinotCluster's name.
            assert_eq!(s.metadata.name.as_deref(), Some(format!("pinot-{}", pool.name).as_str()));
        }
    }

    #[test]
    fn a_pool_key_replaces_the_default_pinot_reads_as_the_same_key() {
        let cluster = valid_fixture("helm-migrated.yaml");
        let server = pinot_properties(&cluster, cluster.pool("server").unwrap());
        assert_eq!(server["pinot.server.instance.realtime.alloc.offheap"], "false");
        assert_eq!(server["pinot.server.shutdown.timeout-ms"], "45000");
        let controller = pinot_properties(&cluster, cluster.pool("controller").unwrap());
        assert_eq!(controller["controller.data.dir"], "s3://pinot-segments/pinot");
        assert_eq!(controller["controller.task.scheduler.enabled"], "false");
        for (pool, props) in cluster.pools.iter().map(|p| (&p.name, pinot_properties(&cluster, p))) {
            let mut relaxed: Vec<String> = props.keys().map(|k| relaxed_key(k)).collect();
            relaxed.sort();
            relaxed.dedup();
            assert_eq!(relaxed.len(), props.len(), "{pool}: no key twice in Pinot's eyes: {props:?}");
        }
    }

    #[test]
    fn java_opts_keep_the_launchers_logging_unless_the_pool_sets_it() {
        let cluster = valid_fixture("helm-migrated.yaml");
        let broker = sts(&cluster, "broker");
        assert_eq!(
            env(&broker, "JAVA_OPTS"),
            Some(
                "-Xmx4G -Dlog4j2.configurationFile=/etc/log4j2/broker.xml -Dplugins.dir=/opt/pinot/plugins -Djute.maxbuffer=4000000"
            )
        );
        assert_eq!(env(&broker, "LOG4J_CONSOLE_LEVEL"), Some("info"));
        let minion = sts(&cluster, "minion");
        assert!(
            env(&minion, "JAVA_OPTS").unwrap().ends_with(
                "-Xmx1G -Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-minion-log4j2.xml -Dplugins.dir=/opt/pinot/plugins -Djute.maxbuffer=4000000"
            ),
            "{:?}",
            env(&minion, "JAVA_OPTS")
        );
        // The pool's env wins over the operator's.
        let mut cluster = overrides();
        let brokers = cluster.pools.iter_mut().find(|p| p.name == "brokers").unwrap();
        brokers.overrides.env.push(EnvVar {
            name: "LOG4J_CONSOLE_LEVEL".into(),
            value: Some("debug".into()),
            ..Default::default()
        });
        let s = sts(&cluster, "brokers");
        assert_eq!(env(&s, "LOG4J_CONSOLE_LEVEL"), Some("debug"));
        assert_eq!(container(&s).env.as_ref().unwrap().iter().filter(|e| e.name == "LOG4J_CONSOLE_LEVEL").count(), 1);
    }

    #[test]
    fn probes_give_each_role_its_start_then_check_liveness_and_readiness() {
        let probe = |s: &StatefulSet, kind: &str| {
            let c = container(s);
            let p = match kind {
                "startup" => c.startup_probe.clone(),
                "liveness" => c.liveness_probe.clone(),
                _ => c.readiness_probe.clone(),
            }
            .unwrap();
            let get = p.http_get.clone().unwrap();
            (get.path.unwrap(), get.port, p.period_seconds.unwrap() * p.failure_threshold.unwrap())
        };
        let example = example();
        let server = sts(&example, "server-offline");
        // pinot.server.startup.timeoutMs (600 s) and a minute.
        assert_eq!(probe(&server, "startup"), ("/health/liveness".into(), IntOrString::Int(8097), 660));
        assert_eq!(probe(&server, "liveness"), ("/health/liveness".into(), IntOrString::Int(8097), 100));
        assert_eq!(probe(&server, "readiness"), ("/health/readiness".into(), IntOrString::Int(8097), 30));
        let broker = sts(&example, "broker-a");
        assert_eq!(probe(&broker, "startup"), ("/health".into(), IntOrString::Int(8099), 600));
        assert_eq!(probe(&broker, "liveness"), ("/health".into(), IntOrString::Int(8099), 100));
        let controller = sts(&example, "controller");
        assert_eq!(probe(&controller, "startup"), ("/health".into(), IntOrString::Int(9000), 300));
        assert!(container(&controller).liveness_probe.as_ref().unwrap().initial_delay_seconds.is_none());
        // A pool's longer start-up timeout lengthens the startup probe.
        let migrated = valid_fixture("helm-migrated.yaml");
        assert_eq!(probe(&sts(&migrated, "server"), "startup").2, 1260);
    }

    #[test]
    fn grace_periods_outlast_pinots_own_shutdown() {
        let grace = |cluster: &ValidCluster, pool: &str| pod_spec(&sts(cluster, pool)).termination_grace_period_seconds;
        let example = example();
        assert_eq!(grace(&example, "server-offline"), Some(630), "pinot.server.shutdown.timeoutMs 600 s + 30 s");
        assert_eq!(grace(&example, "broker-a"), Some(30), "pinot.broker.delayShutdownTimeMs 10 s + 20 s");
        assert_eq!(grace(&example, "controller"), Some(30));
        assert_eq!(grace(&example, "minion"), Some(30));
        assert_eq!(grace(&valid_fixture("helm-migrated.yaml"), "server"), Some(75));
        assert_eq!(grace(&overrides(), "brokers"), Some(45), "delay-shutdown-time-ms 25 s + 20 s");
    }

    #[test]
    fn pools_without_resources_get_requests_sized_from_their_heap() {
        let requests = |cluster: &ValidCluster, pool: &str| {
            let s = sts(cluster, pool);
            let r = container(&s).resources.clone().unwrap();
            assert!(r.limits.is_none(), "{pool}: no limits");
            let q = r.requests.unwrap();
            (q["cpu"].0.clone(), q["memory"].0.clone())
        };
        let example = example();
        assert_eq!(requests(&example, "server-realtime"), ("1".into(), "2048Mi".into()), "1G heap");
        assert_eq!(requests(&example, "minion"), ("250m".into(), "1280Mi".into()));
        let migrated = valid_fixture("helm-migrated.yaml");
        assert_eq!(requests(&migrated, "broker"), ("500m".into(), "5120Mi".into()), "-Xmx4G");
        // A pool's own resources are kept as they are.
        assert_eq!(requests(&example, "broker-a"), ("500m".into(), "1Gi".into()));
    }

    #[test]
    fn multi_stage_ports_are_fixed_and_only_client_ports_are_on_role_services() {
        let cluster = example();
        let server = pinot_properties(&cluster, cluster.pool("server-offline").unwrap());
        assert_eq!(
            (server["pinot.query.server.port"].as_str(), server["pinot.query.runner.port"].as_str()),
            ("7321", "7732")
        );
        let broker = pinot_properties(&cluster, cluster.pool("broker-a").unwrap());
        assert_eq!(broker["pinot.query.runner.port"], "7732");
        assert!(!broker.contains_key("pinot.query.server.port"), "brokers only use the runner port");
        let ports = |s: &StatefulSet| -> Vec<i32> {
            container(s).ports.as_ref().unwrap().iter().map(|p| p.container_port).collect()
        };
        assert_eq!(ports(&sts(&cluster, "broker-a")), vec![8099, 7732]);
        let svc = build_role_service(&cluster, Role::Broker, &ctx(PdbVersion::V1));
        let svc_ports: Vec<i32> = svc.spec.unwrap().ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(svc_ports, vec![8099]);
        let headless =
            build_pool_headless_service(&cluster, cluster.pool("server-offline").unwrap(), &ctx(PdbVersion::V1));
        let headless_ports: Vec<i32> = headless.spec.unwrap().ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(headless_ports, vec![8098, 8097, 7321, 7732]);
    }

    #[test]
    fn no_object_names_a_cluster_domain_of_its_own() {
        // Pinot names its instances after the pods' host names (each pod's DNS name in whatever
        // domain the cluster has); the operator writes no DNS name into the objects, so nothing
        // depends on `cluster.local` and building needs no cluster domain.
        let cluster = valid_fixture("helm-migrated.yaml");
        let pools: Vec<&ValidPool> = cluster.pools.iter().collect();
        let desired = build_cluster(&cluster, &pools, &ctx(PdbVersion::V1));
        for o in &desired.objects {
            assert!(!o.object.get().contains("cluster.local"), "{} {}: {}", o.kind.as_str(), o.name, o.object.get());
            assert!(!o.object.get().contains(".svc."), "{} {}", o.kind.as_str(), o.name);
        }
    }

    /// What Pinot expects of each role, as read from its source (`config-keys.md` and
    /// `server-lifecycle.md` of the project's Pinot notes, which cite the files and release
    /// tags): the quickstart topology is built and every fact is checked, so a change that
    /// drifts from Pinot's expectations fails here.
    #[test]
    fn the_quickstart_matches_what_pinot_expects() {
        #[derive(Debug)]
        enum Fact {
            /// The role's properties file sets the key to exactly this value.
            Config(&'static str, &'static str),
            /// The role's properties file does not set the key.
            NoConfig(&'static str),
            /// The key names a directory on the pool's data volume.
            ConfigOnDataVolume(&'static str),
            /// The container's args contain this sequence.
            Args(&'static [&'static str]),
            /// The container's args do not contain this argument.
            NoArg(&'static str),
            /// The env var contains this text.
            Env(&'static str, &'static str),
            ContainerPort(i32),
            /// Probe kind, path, port.
            Probe(&'static str, &'static str, i32),
            /// The grace period is longer than this many seconds.
            GraceAbove(i64),
            /// The data volume is a PersistentVolumeClaim.
            DataOnClaim,
        }
        use Fact::*;
        const ALL: &[Role] = &[Role::Controller, Role::Broker, Role::Server, Role::Minion];
        let facts: Vec<(&[Role], Fact, &str)> = vec![
            (ALL, Config("pinot.cluster.name", "quickstart"), "config-keys §2: authoritative for every role"),
            (ALL, Config("pinot.zk.server", "zookeeper:2181"), "config-keys §2"),
            (ALL, Config("pinot.set.instance.id.to.hostname", "true"), "config-keys §4: else the pod IP is the id"),
            (
                &[Role::Controller],
                Config("controller.helix.cluster.name", "quickstart"),
                "config-keys §2: required by validateControllerConfig",
            ),
            (&[Role::Controller], Config("controller.zk.str", "zookeeper:2181"), "config-keys §2"),
            (&[Role::Controller], Config("controller.port", "9000"), "config-keys §3: no default in file mode"),
            (&[Role::Controller], ConfigOnDataVolume("controller.data.dir"), "config-keys §5"),
            (&[Role::Controller], ConfigOnDataVolume("controller.local.temp.dir"), "config-keys §5"),
            (&[Role::Controller], Config("controller.task.scheduler.enabled", "true"), "config-keys §7: minion tasks"),
            (&[Role::Controller], NoConfig("controller.vip.host"), "config-keys §6: each controller is its own VIP"),
            (&[Role::Controller], NoConfig("controller.vip.port"), "config-keys §6"),
            (&[Role::Controller], NoConfig("controller.host"), "config-keys §4: the pod's host name"),
            (
                &[Role::Broker],
                Config("pinot.broker.client.queryPort", "8099"),
                "config-keys §3: the instance id's port",
            ),
            (
                &[Role::Broker],
                Config("pinot.query.runner.port", "7732"),
                "config-keys §3: 0 = random port; the chart's 7732",
            ),
            (&[Role::Broker], NoConfig("pinot.query.server.port"), "config-keys §3: brokers only use the runner port"),
            (&[Role::Broker], NoConfig("pinot.broker.hostname"), "config-keys §4"),
            (&[Role::Server], Config("pinot.server.netty.port", "8098"), "config-keys §3: the instance id's port"),
            (&[Role::Server], Config("pinot.server.adminapi.port", "8097"), "config-keys §3"),
            (&[Role::Server], Config("pinot.query.server.port", "7321"), "config-keys §3: the chart's 7321"),
            (&[Role::Server], Config("pinot.query.runner.port", "7732"), "config-keys §3: the chart's 7732"),
            (&[Role::Server], ConfigOnDataVolume("pinot.server.instance.dataDir"), "config-keys §5: must be on a PV"),
            (&[Role::Server], ConfigOnDataVolume("pinot.server.instance.segmentTarDir"), "config-keys §5"),
            (&[Role::Server], NoConfig("pinot.server.netty.host"), "config-keys §4"),
            (&[Role::Minion], Config("pinot.minion.port", "9514"), "config-keys §3"),
            (&[Role::Minion], ConfigOnDataVolume("dataDir"), "config-keys §5: emptied at minion stop"),
            (&[Role::Minion], NoConfig("pinot.minion.host"), "config-keys §4"),
            (
                &[Role::Broker, Role::Server, Role::Minion],
                Args(&["-clusterName", "quickstart", "-zkAddress", "zookeeper:2181"]),
                "config-keys §2: the same as the file's",
            ),
            (&[Role::Controller], NoArg("-clusterName"), "config-keys §2: ignored by StartController with a file"),
            (ALL, Env("JAVA_OPTS", "-Dplugins.dir=/opt/pinot/plugins"), "config-keys §11: the chart's JAVA_OPTS"),
            (ALL, Env("JAVA_OPTS", "-Djute.maxbuffer=4000000"), "config-keys §12: the chart's from 1.4.0"),
            (
                ALL,
                Env("LOG4J_CONSOLE_LEVEL", "info"),
                "config-keys §11: the role's log4j file logs warn to the console",
            ),
            (
                &[Role::Controller],
                Env("JAVA_OPTS", "-Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-controller-log4j2.xml"),
                "config-keys §11",
            ),
            (
                &[Role::Broker],
                Env("JAVA_OPTS", "-Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-broker-log4j2.xml"),
                "config-keys §11",
            ),
            (
                &[Role::Server],
                Env("JAVA_OPTS", "-Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-server-log4j2.xml"),
                "config-keys §11",
            ),
            (
                &[Role::Minion],
                Env("JAVA_OPTS", "-Dlog4j2.configurationFile=/opt/pinot/etc/conf/pinot-minion-log4j2.xml"),
                "config-keys §11",
            ),
            (&[Role::Controller], ContainerPort(9000), "config-keys §3"),
            (&[Role::Broker], ContainerPort(8099), "config-keys §3"),
            (&[Role::Broker], ContainerPort(7732), "config-keys §3"),
            (&[Role::Server], ContainerPort(8098), "config-keys §3"),
            (&[Role::Server], ContainerPort(8097), "config-keys §3"),
            (&[Role::Server], ContainerPort(7321), "config-keys §3"),
            (&[Role::Server], ContainerPort(7732), "config-keys §3"),
            (&[Role::Minion], ContainerPort(9514), "config-keys §3"),
            (&[Role::Server], Probe("readiness", "/health/readiness", 8097), "server-lifecycle §2.3"),
            (&[Role::Server], Probe("liveness", "/health/liveness", 8097), "server-lifecycle §2.3"),
            (&[Role::Server], Probe("startup", "/health/liveness", 8097), "server-lifecycle §2.3"),
            (&[Role::Broker], Probe("readiness", "/health", 8099), "server-lifecycle §5"),
            (&[Role::Controller], Probe("readiness", "/health", 9000), "server-lifecycle §6"),
            (&[Role::Minion], Probe("readiness", "/health", 9514), "server-lifecycle §7"),
            (&[Role::Server], GraceAbove(600), "server-lifecycle §2.4: pinot.server.shutdown.timeoutMs"),
            (&[Role::Broker], GraceAbove(10), "server-lifecycle §5: pinot.broker.delayShutdownTimeMs"),
            (&[Role::Controller, Role::Server], DataOnClaim, "config-keys §5: segments on a PV"),
        ];
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/quickstart.yaml");
        let mut quickstart = fixtures::cluster(&std::fs::read_to_string(path).unwrap());
        quickstart.metadata.namespace = Some("sandbox".into());
        let cluster = validate(&quickstart).unwrap();
        for role in Role::ALL {
            assert!(cluster.has_role(role), "the quickstart has every role");
        }
        for pool in &cluster.pools {
            let role = pool.role;
            let props = pinot_properties(&cluster, pool);
            let s = sts(&cluster, &pool.name);
            let c = container(&s);
            let args = c.args.clone().unwrap();
            let data_mount =
                c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "data").unwrap().mount_path.clone();
            for (roles, fact, source) in facts.iter().filter(|(roles, _, _)| roles.contains(&role)) {
                let _ = roles;
                let holds = match fact {
                    Config(key, value) => props.get(*key).map(String::as_str) == Some(*value),
                    NoConfig(key) => !props.keys().any(|k| relaxed_key(k) == relaxed_key(key)),
                    ConfigOnDataVolume(key) => props
                        .get(*key)
                        .is_some_and(|dir| dir == &data_mount || dir.starts_with(&format!("{data_mount}/"))),
                    Args(seq) => args.windows(seq.len()).any(|w| w == *seq),
                    NoArg(arg) => !args.iter().any(|a| a == arg),
                    Env(name, text) => env(&s, name).is_some_and(|v| v.contains(text)),
                    ContainerPort(port) => c.ports.as_ref().unwrap().iter().any(|p| p.container_port == *port),
                    Probe(kind, path, port) => {
                        let probe = match *kind {
                            "startup" => c.startup_probe.as_ref(),
                            "liveness" => c.liveness_probe.as_ref(),
                            _ => c.readiness_probe.as_ref(),
                        };
                        probe
                            .and_then(|p| p.http_get.as_ref())
                            .is_some_and(|g| g.path.as_deref() == Some(*path) && g.port == IntOrString::Int(*port))
                    }
                    GraceAbove(seconds) => pod_spec(&s).termination_grace_period_seconds.is_some_and(|g| g > *seconds),
                    DataOnClaim => s
                        .spec
                        .as_ref()
                        .unwrap()
                        .volume_claim_templates
                        .as_ref()
                        .is_some_and(|t| t.iter().any(|claim| claim.metadata.name.as_deref() == Some("data"))),
                };
                assert!(holds, "{role} pool {}: {fact:?} ({source})\nargs: {args:?}\nconfig: {props:#?}", pool.name);
            }
            // The file Pinot reads is the one the args name, in the mounted ConfigMap.
            let file = format!("{}/{}", role.config_dir(), role.config_file());
            assert!(args.windows(2).any(|w| w == ["-configFileName".to_string(), file.clone()]), "config-keys §1");
            assert_eq!(args[0], role.start_command(), "config-keys §1");
            let cm = build_pool_configmap(&cluster, pool, &ctx(PdbVersion::V1));
            assert!(cm.data.unwrap().contains_key(&role.config_file()));
            assert!(
                c.volume_mounts
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|m| m.name == "config" && m.mount_path == role.config_dir())
            );
        }
    }
}
