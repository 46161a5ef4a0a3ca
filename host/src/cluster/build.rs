//! Step 4 of the pipeline, pure: builds every Kubernetes object a [`ValidCluster`] needs. Per
//! pool a StatefulSet, a headless Service (stable pod DNS names, which Pinot uses as instance
//! host names), a ConfigMap with the role's Pinot configuration and a PodDisruptionBudget; per
//! cluster a Service for the controllers and one for the brokers.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy},
        core::v1::{
            Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
            HTTPGetAction, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSpec,
            PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume,
            VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use serde::Serialize;

use super::validate::{Placement, ValidCluster, ValidPool};
use crate::{
    children::{
        ANNOTATION_CONFIG_DIGEST, ChildKind, LABEL_CLUSTER, LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY,
        LABEL_NAME, LABEL_POOL, LABEL_ROLE, MANAGED_BY, PdbVersion, pool_selector,
    },
    role::Role,
};

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// One object to apply, already serialised with its `apiVersion` and `kind`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildObject {
    pub kind: ChildKind,
    pub name: String,
    /// The pool it belongs to; `None` for cluster-wide objects.
    pub pool: Option<String>,
    pub object: serde_json::Value,
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
}

pub fn statefulset_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}")
}

pub fn headless_service_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}-headless")
}

pub fn configmap_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}-config")
}

pub fn role_service_name(cluster: &str, role: Role) -> String {
    format!("{cluster}-{role}")
}

/// Builds every object of the cluster for the pools the plan says to apply.
pub fn build_cluster(cluster: &ValidCluster, pools: &[&ValidPool], ctx: &BuildContext) -> DesiredObjects {
    let mut objects = Vec::new();
    for role in [Role::Controller, Role::Broker] {
        if cluster.has_role(role) {
            objects.push(child(ChildKind::Service, None, build_role_service(cluster, role, ctx)));
        }
    }
    for pool in pools {
        let config = build_pool_configmap(cluster, pool, ctx);
        let digest = config_digest(&config);
        objects.push(child(ChildKind::ConfigMap, Some(pool), config));
        objects.push(child(ChildKind::Service, Some(pool), build_pool_headless_service(cluster, pool, ctx)));
        objects.push(child(ChildKind::StatefulSet, Some(pool), build_pool_statefulset(cluster, pool, &digest, ctx)));
        let mut pdb = to_json(&build_pool_pdb(cluster, pool, ctx));
        pdb["apiVersion"] = ctx.pdb_version.api_version().into();
        objects.push(ChildObject {
            kind: ChildKind::PodDisruptionBudget,
            name: statefulset_name(&cluster.name, &pool.name),
            pool: Some(pool.name.clone()),
            object: pdb,
        });
    }
    DesiredObjects { objects }
}

fn child<K: Serialize + kube::Resource<DynamicType = ()>>(kind: ChildKind, pool: Option<&ValidPool>, obj: K) -> ChildObject {
    let name = obj.meta().name.clone().unwrap_or_default();
    ChildObject { kind, name, pool: pool.map(|p| p.name.clone()), object: to_json(&obj) }
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
    let mut labels = cluster_labels(cluster, pool.role);
    labels.insert(LABEL_POOL.into(), pool.name.clone());
    labels
}

fn cluster_labels(cluster: &ValidCluster, role: Role) -> BTreeMap<String, String> {
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

fn service_ports(role: Role) -> Vec<ServicePort> {
    role.ports()
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

/// The cluster's Service for one role (controller 9000, broker 8099).
pub fn build_role_service(cluster: &ValidCluster, role: Role, ctx: &BuildContext) -> Service {
    let labels = cluster_labels(cluster, role);
    let selector =
        BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.name.clone()), (LABEL_ROLE.to_string(), role.to_string())]);
    Service {
        metadata: metadata(role_service_name(&cluster.name, role), cluster, labels, ctx),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(service_ports(role)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The headless Service that gives each pod of the pool a stable DNS name,
/// `<pod>.<cluster>-<pool>-headless.<namespace>.svc.cluster.local`.
pub fn build_pool_headless_service(cluster: &ValidCluster, pool: &ValidPool, ctx: &BuildContext) -> Service {
    Service {
        metadata: metadata(headless_service_name(&cluster.name, &pool.name), cluster, pool_labels(cluster, pool), ctx),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Pinot registers in Helix with its DNS name before it is Ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(pool_selector(&cluster.name, &pool.name)),
            ports: Some(service_ports(pool.role)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The role's Pinot properties: role defaults with the pool's `config` merged over them.
pub fn pinot_properties(cluster: &ValidCluster, pool: &ValidPool) -> BTreeMap<String, String> {
    let controller_host =
        format!("{}.{}.svc.cluster.local", role_service_name(&cluster.name, Role::Controller), cluster.namespace);
    let mut props: BTreeMap<String, String> =
        pool.role.default_config(&cluster.name, &cluster.zookeeper, &controller_host).into_iter().collect();
    props.extend(pool.config.clone());
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

pub fn build_pool_statefulset(cluster: &ValidCluster, pool: &ValidPool, config_digest: &str, ctx: &BuildContext) -> StatefulSet {
    let role = pool.role;
    let labels = pool_labels(cluster, pool);
    let selector = pool_selector(&cluster.name, &pool.name);

    let mut pod_labels = pool.overrides.labels.clone();
    pod_labels.extend(labels.clone());
    let mut pod_annotations = pool.overrides.annotations.clone();
    pod_annotations.insert(ANNOTATION_CONFIG_DIGEST.into(), config_digest.into());

    let mut args = vec![role.start_command().to_string()];
    if role != Role::Controller {
        args.extend(["-clusterName".into(), cluster.name.clone(), "-zkAddress".into(), cluster.zookeeper.clone()]);
    }
    args.extend(["-configFileName".into(), format!("{}/{}", role.config_dir(), role.config_file())]);

    let mut env = vec![EnvVar { name: "JAVA_OPTS".into(), value: Some(pool.jvm_opts.clone()), ..Default::default() }];
    for e in &pool.overrides.env {
        env.retain(|x| x.name != e.name);
        env.push(e.clone());
    }

    let probe = |path: &str, initial_delay: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(role.main_port()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    };

    let container = Container {
        name: "pinot".into(),
        image: Some(pool.image.clone()),
        args: Some(args),
        env: Some(env),
        ports: Some(
            role.ports()
                .iter()
                .map(|(name, port)| ContainerPort {
                    name: Some(name.to_string()),
                    container_port: *port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        readiness_probe: Some(probe(role.readiness_path(), 10, 3)),
        liveness_probe: Some(probe(role.liveness_path(), 60, 6)),
        resources: pool.resources.clone(),
        volume_mounts: Some(vec![
            VolumeMount { name: "config".into(), mount_path: role.config_dir(), ..Default::default() },
            VolumeMount { name: "data".into(), mount_path: role.data_dir(), ..Default::default() },
        ]),
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
    let claim_templates = match &pool.storage {
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
            volumes.push(Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() });
            None
        }
    };

    let node_selector = (!pool.overrides.node_selector.is_empty()).then(|| pool.overrides.node_selector.clone());
    let tolerations = (!pool.overrides.tolerations.is_empty()).then(|| pool.overrides.tolerations.clone());
    let spread = match &pool.placement {
        Placement::Zones(zones) if zones.len() > 1 => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: ZONE_LABEL.into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector { match_labels: Some(selector.clone()), ..Default::default() }),
            ..Default::default()
        }]),
        _ => None,
    };

    StatefulSet {
        metadata: metadata(statefulset_name(&cluster.name, &pool.name), cluster, labels, ctx),
        spec: Some(StatefulSetSpec {
            replicas: Some(pool.replicas),
            service_name: Some(headless_service_name(&cluster.name, &pool.name)),
            // Pods of a pool start together; the order that matters (between roles, and pod
            // by pod during upgrades) is decided by the operator's policies, not by the
            // StatefulSet controller.
            pod_management_policy: Some("Parallel".into()),
            // Only the operator decides when a pod restarts onto a new revision.
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), ..Default::default() }),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    affinity: Some(build_affinity(pool, &selector)),
                    node_selector,
                    tolerations,
                    topology_spread_constraints: spread,
                    termination_grace_period_seconds: Some(if role == Role::Server { 60 } else { 30 }),
                    ..Default::default()
                }),
            },
            volume_claim_templates: claim_templates,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pool's zone(s) as required node affinity, combined (AND) with every node affinity
/// term the user gave; pods of one pool prefer different nodes unless the user set their own
/// pod anti-affinity.
fn build_affinity(pool: &ValidPool, selector: &BTreeMap<String, String>) -> Affinity {
    let mut affinity = pool.overrides.affinity.clone().unwrap_or_default();
    if let Placement::Zones(zones) = &pool.placement {
        let zone_requirement = NodeSelectorRequirement {
            key: ZONE_LABEL.into(),
            operator: "In".into(),
            values: Some(zones.clone()),
        };
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
