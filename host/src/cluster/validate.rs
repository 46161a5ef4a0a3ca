//! Step 2 of the pipeline, pure: checks a PinotCluster spec and turns it into a
//! [`ValidCluster`], or lists every problem with the field it is in and how to fix it. A valid
//! spec may still carry warnings (`ValidCluster::warnings`): what Pinot accepts but loses
//! segments with.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::api::core::v1::ResourceRequirements;
use pinot_crds::{NodePool, PinotCluster, PinotClusterSpec, PodOverrides, PoolStorage};

use crate::role::{self, OwnedBy, Role};

pub mod deep_storage;
pub mod exposure;
pub mod metrics;
pub mod pod;
pub mod security;
pub mod zookeeper;
pub use deep_storage::ValidDeepStorage;
pub use exposure::{ValidExposure, ValidIngress, ValidService};
pub use metrics::ValidMetrics;
pub use pod::PodSecurityProfile;
pub use security::{ValidBasicAuth, ValidTls};
pub use zookeeper::ValidEnsemble;

/// The longest `<cluster>-<pool>` name: a StatefulSet's pods carry the label
/// `controller-revision-hash: <statefulset>-<10 chars>`, which must fit in 63 characters.
pub const MAX_POOL_OBJECT_NAME: usize = 52;

/// A spec that passed validation; the build step works only from this.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    /// The PinotCluster's name, which the Kubernetes objects are named after.
    pub name: String,
    pub namespace: String,
    /// The Helix cluster name every Pinot role is configured with: `spec.clusterName`, else
    /// the PinotCluster's name.
    pub helix_cluster_name: String,
    /// The connect string Pinot's roles get (the managed ensemble's, with its chroot).
    pub zookeeper: String,
    /// The ZooKeeper ensemble the operator runs (`spec.zookeeper.managed`).
    pub ensemble: Option<ValidEnsemble>,
    /// The Pinot roles in deployment order.
    pub deployment_order: Vec<Role>,
    /// Where the managed ensemble comes in the deployment order: the number of Pinot roles
    /// before it (0, first, unless `spec.deploymentOrder` says otherwise).
    pub ensemble_position: usize,
    pub pools: Vec<ValidPool>,
    pub paused: bool,
    /// Create every pool at once instead of role by role.
    pub parallel_install: bool,
    /// What is allowed but probably not what the user wants (several controllers sharing no
    /// deep store, a controller's segments on an emptyDir), each naming its field and the fix.
    pub warnings: Vec<FieldError>,
    /// The PinotPolicies the cluster names (`spec.policies`); `None`: the bundled default.
    pub policies: ChosenPolicies,
    /// An existing Pinot cluster the operator only reads and places tenants in
    /// (`spec.external`): it deploys nothing for it.
    pub external: bool,
    /// `spec.deepStorage`, as the controller, server and minion pools get it.
    pub deep_storage: Option<ValidDeepStorage>,
    /// The client Services and the controller's Ingress (`spec.exposure`).
    pub exposure: ValidExposure,
    /// The JMX Prometheus exporter of every Pinot JVM (`spec.metrics`), when enabled.
    pub metrics: Option<ValidMetrics>,
    /// Pinot's basic auth (`spec.security.basicAuth`).
    pub basic_auth: Option<ValidBasicAuth>,
    /// HTTPS on controllers and brokers (`spec.security.tls`).
    pub tls: Option<ValidTls>,
    /// Rolling restarts asked for (`kubectl pinot restart`): the stamp of each pool (and of
    /// the managed ensemble, `zookeeper`) whose pods are to restart, which goes into its pod
    /// template so that the upgrade policy restarts them pod by pod like an upgrade.
    pub restarts: BTreeMap<String, String>,
}

/// Asks for a rolling restart of every pool (and the managed ensemble); the value is any stamp
/// (`kubectl pinot restart` writes the time): a new value is a new restart.
pub const ANNOTATION_RESTART: &str = "pinot.controlplane.dev/restart";
/// `restart.pinot.controlplane.dev/<pool>`: a rolling restart of one pool (`zookeeper`: the
/// managed ensemble).
pub const ANNOTATION_RESTART_POOL_PREFIX: &str = "restart.pinot.controlplane.dev/";

/// The restart stamp of each pool in `pools` (and `zookeeper` when `ensemble`) from the
/// cluster's annotations; an annotation naming no pool is a warning naming it.
fn restarts(
    cluster: &PinotCluster,
    pools: &[&str],
    ensemble: bool,
    warnings: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    let annotations = cluster.metadata.annotations.clone().unwrap_or_default();
    let all = annotations.get(ANNOTATION_RESTART).filter(|v| !v.trim().is_empty());
    let mut known: Vec<&str> = pools.to_vec();
    if ensemble {
        known.push(zookeeper::ENSEMBLE_POOL);
    }
    for (key, _) in annotations.iter().filter(|(k, _)| k.starts_with(ANNOTATION_RESTART_POOL_PREFIX)) {
        let pool = &key[ANNOTATION_RESTART_POOL_PREFIX.len()..];
        // A warning, not an invalid spec: a typo, or a pool removed while its annotation stayed,
        // must not hold the whole cluster.
        if !known.contains(&pool) {
            warnings.push(FieldError {
                field: format!("metadata.annotations[{key}]"),
                message: format!(
                    "there is no pool {pool:?} to restart (pools: {}); remove the annotation",
                    known.join(", ")
                ),
            });
        }
    }
    known
        .into_iter()
        .filter_map(|pool| {
            let own =
                annotations.get(&format!("{ANNOTATION_RESTART_POOL_PREFIX}{pool}")).filter(|v| !v.trim().is_empty());
            let stamp: Vec<&str> = [all, own].into_iter().flatten().map(|s| s.trim()).collect();
            (!stamp.is_empty()).then(|| (pool.to_string(), stamp.join(" ")))
        })
        .collect()
}

/// The PinotPolicy of each kind a cluster names; `None` is the bundled default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChosenPolicies {
    pub upgrade: Option<String>,
    pub scaling: Option<String>,
    pub tenant: Option<String>,
}

impl ValidCluster {
    pub fn pool(&self, name: &str) -> Option<&ValidPool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.pools.iter().any(|p| p.role == role)
    }
}

/// Where a pool's pods may run.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// Any node.
    Anywhere,
    /// Only nodes of these zones; more than one zone means spreading evenly over them.
    Zones(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ValidPool {
    pub name: String,
    pub role: Role,
    pub replicas: i32,
    pub placement: Placement,
    pub image: String,
    pub resources: Option<ResourceRequirements>,
    pub jvm_opts: String,
    /// The pool's own Pinot properties (merged over the role defaults by the build step).
    pub config: BTreeMap<String, String>,
    /// The pool's PersistentVolumeClaim; `None` is an emptyDir (`storage.ephemeral`, or a broker
    /// or minion pool without storage).
    pub storage: Option<ValidStorage>,
    pub max_unavailable: i32,
    /// The most pods a scaling policy may give the pool (at least `replicas`).
    pub max_replicas: i32,
    /// Rebalance the tables of the pool's tenants after it scales out (servers).
    pub rebalance_on_scale: bool,
    /// The health-gate timeout the upgrade policy gets, when the spec sets one.
    pub pod_ready_timeout_seconds: Option<i64>,
    /// Seconds between disabling a server's queries and restarting it.
    pub drain_seconds: i64,
    /// The cluster's pod settings with the pool's merged over them.
    pub overrides: PodOverrides,
    /// The Pod Security Standard the pool's pods are built for.
    pub pod_security: PodSecurityProfile,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ValidStorage {
    pub size: String,
    pub storage_class_name: Option<String>,
}

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.pools[1].name`.
    pub field: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid spec: {}", parts.join("; "))
    }
}

/// [`validate`], with the objects the pods need that are missing (observed): those hold
/// everything back like an invalid spec.
pub fn validate_observed(cluster: &PinotCluster, missing: &[FieldError]) -> Result<ValidCluster, InvalidSpec> {
    match (validate(cluster), missing) {
        (valid, []) => valid,
        (Ok(_), missing) => Err(InvalidSpec(missing.to_vec())),
        (Err(mut invalid), missing) => {
            invalid.0.extend_from_slice(missing);
            Err(invalid)
        }
    }
}

/// Checks `cluster` and returns what the later steps build from.
pub fn validate(cluster: &PinotCluster) -> Result<ValidCluster, InvalidSpec> {
    let mut errors = Errors::default();
    let spec = &cluster.spec;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let policies = validate_policies(cluster, &mut errors);

    if spec.external.is_some() {
        if spec.deep_storage.is_some() {
            errors.push(
                "spec.deepStorage",
                "an external cluster deploys nothing, so the operator writes no deep storage for it; remove it",
            );
        }
        if spec.zookeeper.managed.is_some() {
            errors.push(
                "spec.zookeeper.managed",
                "an external cluster deploys nothing, so the operator runs no ZooKeeper for it; remove it",
            );
        }
        if !spec.pools.is_empty() {
            errors.push(
                "spec.pools",
                "an external cluster deploys nothing; remove its pools, or remove spec.external to let the operator install the cluster",
            );
        }
        return match errors.0.is_empty() {
            true => Ok(ValidCluster {
                name,
                namespace,
                helix_cluster_name: helix_cluster_name(cluster),
                zookeeper: spec.zookeeper.connect_string.trim().to_string(),
                ensemble: None,
                deployment_order: vec![],
                ensemble_position: 0,
                pools: vec![],
                paused: spec.paused,
                parallel_install: false,
                warnings: vec![],
                policies,
                external: true,
                deep_storage: None,
                exposure: ValidExposure::default(),
                metrics: None,
                basic_auth: None,
                tls: None,
                restarts: BTreeMap::new(),
            }),
            false => Err(InvalidSpec(errors.0)),
        };
    }

    let helix_cluster_name = helix_cluster_name(cluster);
    if !is_helix_cluster_name(&helix_cluster_name) {
        let what = if spec.cluster_name.is_some() { "" } else { " (metadata.name, its default)" };
        errors.push(
            "spec.clusterName",
            format!(
                "{helix_cluster_name:?}{what} is not a valid Helix cluster name: it is the root node of the cluster in ZooKeeper and a value of Pinot's properties files; use 1 to {MAX_HELIX_CLUSTER_NAME} letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        );
    }

    let pod_security = pod::profile(spec.pod_security_profile.as_deref(), &mut errors);
    let mut warnings = Vec::new();
    let (connect_string, ensemble) = zookeeper::validate(&name, spec, pod_security, &mut errors, &mut warnings);
    let deep_storage = spec.deep_storage.as_ref().and_then(|d| deep_storage::validate(d, &mut errors));
    let mut pools = Vec::new();
    for (i, pool) in spec.pools.iter().enumerate() {
        if let Some(p) = validate_pool(&name, spec, pod_security, i, pool, &spec.pools[..i], &mut errors) {
            pools.push(p);
        }
    }
    if spec.pools.is_empty() {
        errors.push("spec.pools", "is empty; add at least one pool with role controller");
    } else if !spec.pools.iter().any(|p| p.role == Role::Controller.as_str()) {
        errors.push("spec.pools", "has no pool with role controller; a Pinot cluster needs a controller, add one");
    }

    if let Some(u) = &spec.upgrade {
        let at = |field: &str| format!("spec.upgrade.{field}");
        checked(&mut errors, at("podReadyTimeoutSeconds"), u.pod_ready_timeout_seconds, 1, MAX_TIMEOUT);
        checked(&mut errors, at("drainSeconds"), u.drain_seconds, 0, MAX_DRAIN);
    }

    let has_role = |role: Role| spec.pools.iter().any(|p| p.role == role.as_str());
    let exposure = exposure::validate(spec.exposure.as_ref(), has_role, &mut errors);
    let metrics = metrics::validate(spec.metrics.as_ref(), &mut errors);
    let basic_auth =
        spec.security.as_ref().and_then(|s| s.basic_auth.as_ref()).map(|a| security::validate(a, &mut errors));
    let tls = spec.security.as_ref().and_then(|s| s.tls.as_ref()).map(|t| security::validate_tls(t, &mut errors));

    let (deployment_order, ensemble_position) = validate_deployment_order(
        spec.deployment_order.as_deref(),
        &spec.pools,
        ensemble.is_some() || spec.zookeeper.managed.is_some(),
        &mut errors,
    );

    let pool_names: Vec<&str> = spec.pools.iter().map(|p| p.name.as_str()).collect();
    let mut restart_warnings = vec![];
    let restarts = restarts(cluster, &pool_names, spec.zookeeper.managed.is_some(), &mut restart_warnings);

    if errors.0.is_empty() {
        Ok(ValidCluster {
            restarts,
            name,
            namespace,
            helix_cluster_name,
            zookeeper: connect_string,
            ensemble,
            deployment_order,
            ensemble_position,
            paused: spec.paused,
            parallel_install: spec.upgrade.as_ref().is_some_and(|u| u.parallel_install),
            // Without errors every pool is valid: `pools[i]` is `spec.pools[i]`.
            warnings: {
                let mut w = warnings;
                w.extend(restart_warnings);
                if deep_storage.is_none() {
                    w.extend(controller_warnings(&pools));
                }
                let local_store = deep_storage.is_none()
                    && pools
                        .iter()
                        .any(|p| p.role == Role::Controller && !controller_data_dir_is_deep_store(&p.config));
                if tls.is_some() && exposure.controller_ingress.is_some() {
                    w.push(FieldError {
                        field: "spec.exposure.controllerIngress".into(),
                        message: "the controller's port serves HTTPS only (spec.security.tls), and ingress controllers speak plain HTTP to a backend unless told otherwise; add your ingress controller's backend-protocol annotation (nginx: nginx.ingress.kubernetes.io/backend-protocol: HTTPS) to annotations".into(),
                    });
                }
                if tls.is_some() && local_store {
                    w.push(FieldError {
                        field: "spec.security.tls".into(),
                        message: "segments uploaded to a controller that keeps them itself carry an http:// download URL written at upload (Pinot never rewrites it): servers cannot download those after the switch to HTTPS; use spec.deepStorage, or turn TLS on before loading data".into(),
                    });
                }
                w
            },
            pools,
            policies,
            external: false,
            deep_storage,
            exposure,
            metrics,
            basic_auth,
            tls,
        })
    } else {
        Err(InvalidSpec(errors.0))
    }
}

/// `spec.policies`: each name must be one a PinotPolicy can have. Whether it is loaded is
/// not the spec's problem (it may load later): the plan step resolves it.
fn validate_policies(cluster: &PinotCluster, errors: &mut Errors) -> ChosenPolicies {
    let chosen = cluster.spec.policies.clone().unwrap_or_default();
    for (field, name) in [("upgrade", &chosen.upgrade), ("scaling", &chosen.scaling), ("tenant", &chosen.tenant)] {
        if let Some(name) = name
            && !is_dns_subdomain(name)
        {
            errors.push(
                format!("spec.policies.{field}"),
                format!(
                    "{name:?} is not a PinotPolicy name (lowercase letters, digits, '-' and '.', at most 253); name a PinotPolicy in this namespace, or remove the field for the bundled default"
                ),
            );
        }
    }
    ChosenPolicies { upgrade: chosen.upgrade, scaling: chosen.scaling, tenant: chosen.tenant }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    /// Adds a problem, unless the same was found already (settings of the whole cluster are
    /// checked with each pool).
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let error = FieldError { field: field.into(), message: message.into() };
        if !self.0.contains(&error) {
            self.0.push(error);
        }
    }
}

/// Seconds between disabling a server's queries and restarting its pod, unless the spec says.
pub const DEFAULT_DRAIN_SECONDS: i64 = 5;
const MAX_TIMEOUT: i64 = 86_400;
const MAX_DRAIN: i64 = 3_600;

/// `value` as it is, with an error for `field` when it is set and outside `min..=max` seconds.
fn checked(errors: &mut Errors, field: String, value: Option<i64>, min: i64, max: i64) -> Option<i64> {
    if let Some(v) = value
        && (v < min || v > max)
    {
        errors.push(field, format!("is {v}; it must be between {min} and {max} seconds"));
    }
    value
}

fn validate_pool(
    cluster: &str,
    spec: &PinotClusterSpec,
    pod_security: PodSecurityProfile,
    i: usize,
    pool: &NodePool,
    earlier: &[NodePool],
    errors: &mut Errors,
) -> Option<ValidPool> {
    let at = |field: &str| format!("spec.pools[{i}].{field}");
    let before = errors.0.len();
    let (cluster_image, upgrade) = (spec.image.as_str(), spec.upgrade.as_ref());

    if !is_dns_label(&pool.name) {
        errors.push(
            at("name"),
            format!("{:?} is not a valid pool name; use lower-case letters, digits and '-', starting with a letter and ending with a letter or digit", pool.name),
        );
    } else if let Some(j) = earlier.iter().position(|p| p.name == pool.name) {
        errors.push(
            at("name"),
            format!("{:?} is already the name of spec.pools[{j}]; give every pool a unique name", pool.name),
        );
    } else if cluster.len() + 1 + pool.name.len() > MAX_POOL_OBJECT_NAME {
        errors.push(
            at("name"),
            format!(
                "\"{cluster}-{}\" is longer than {MAX_POOL_OBJECT_NAME} characters, too long for a StatefulSet's pod labels; shorten the pool or cluster name",
                pool.name
            ),
        );
    }

    let role = match pool.role.parse::<Role>() {
        Ok(r) => Some(r),
        Err(_) => {
            errors.push(
                at("role"),
                format!("{:?} is not a Pinot role; use one of controller, broker, server, minion", pool.role),
            );
            None
        }
    };

    if pool.replicas < 0 {
        errors.push(at("replicas"), format!("is {}; replicas cannot be negative, use 0 or more", pool.replicas));
    }
    let max_replicas = pool.max_replicas.unwrap_or(pool.replicas).max(pool.replicas);
    if let Some(max) = pool.max_replicas
        && max < pool.replicas
    {
        errors.push(
            at("maxReplicas"),
            format!("is {max}, below replicas ({}); raise it to at least replicas or remove it", pool.replicas),
        );
    }
    if pool.rebalance_on_scale.is_some() && role.is_some_and(|r| r != Role::Server) {
        errors.push(at("rebalanceOnScale"), "is for server pools only (tables live on servers); remove it");
    }

    let placement = match (&pool.zone, pool.zones.as_slice()) {
        (Some(_), [_, ..]) => {
            errors.push(
                at("zone"),
                "is set together with zones; use zone for one zone or zones to spread over several, not both",
            );
            Placement::Anywhere
        }
        (Some(z), []) if z.trim().is_empty() => {
            errors.push(at("zone"), "is empty; name a topology.kubernetes.io/zone value or remove the field");
            Placement::Anywhere
        }
        (Some(z), []) => Placement::Zones(vec![z.clone()]),
        (None, []) => Placement::Anywhere,
        (None, zones) => {
            for (k, z) in zones.iter().enumerate() {
                if z.trim().is_empty() {
                    errors.push(at(&format!("zones[{k}]")), "is empty; name a topology.kubernetes.io/zone value");
                } else if zones[..k].contains(z) {
                    errors.push(at(&format!("zones[{k}]")), format!("{z:?} is listed twice; list each zone once"));
                }
            }
            Placement::Zones(zones.to_vec())
        }
    };

    let image = pool.image.clone().unwrap_or_else(|| cluster_image.to_string());
    if image.trim().is_empty() {
        let field = if pool.image.is_some() { at("image") } else { "spec.image".to_string() };
        errors.push(field, "is empty; set the Pinot image, e.g. apachepinot/pinot:1.2.0");
    }

    let max_unavailable = pool.max_unavailable.unwrap_or(1);
    if max_unavailable < 1 {
        errors.push(
            at("maxUnavailable"),
            format!(
                "is {max_unavailable}; at least 1 pod must be allowed to be unavailable, or pods could never restart"
            ),
        );
    }

    // A pool's own setting, else the cluster's (checked where the cluster sets it).
    let pod_ready_timeout_seconds =
        checked(errors, at("podReadyTimeoutSeconds"), pool.pod_ready_timeout_seconds, 1, MAX_TIMEOUT)
            .or(upgrade.and_then(|u| u.pod_ready_timeout_seconds));
    let drain_seconds = checked(errors, at("drainSeconds"), pool.drain_seconds, 0, MAX_DRAIN)
        .or(upgrade.and_then(|u| u.drain_seconds))
        .unwrap_or(DEFAULT_DRAIN_SECONDS);

    let storage = validate_storage(role, pool.storage.as_ref(), &at, errors);
    let overrides = pod::merge(spec.pod_overrides.as_ref(), pool.pod_overrides.as_ref());
    for (level_at, level) in
        [("spec.podOverrides".to_string(), &spec.pod_overrides), (at("podOverrides"), &pool.pod_overrides)]
    {
        if let Some(level) = level {
            pod::check(&level_at, level, &overrides, role, pod_security, errors);
        }
    }
    if let Some(role) = role {
        let auth = spec.security.as_ref().is_some_and(|s| s.basic_auth.is_some());
        let tls = spec.security.as_ref().is_some_and(|s| s.tls.is_some());
        validate_config(role, &pool.config, spec.deep_storage.is_some(), (auth, tls), &at, errors);
    } else {
        for (k, v) in &pool.config {
            check_property_text(k, v, &at, errors);
        }
    }
    if errors.0.len() > before {
        return None;
    }
    Some(ValidPool {
        name: pool.name.clone(),
        role: role?,
        replicas: pool.replicas,
        placement,
        image,
        resources: pool.resources.clone(),
        jvm_opts: pool
            .jvm_opts
            .clone()
            .unwrap_or_else(|| role.map(Role::default_jvm_opts).unwrap_or_default().to_string()),
        config: pool.config.clone(),
        storage,
        max_unavailable,
        max_replicas,
        rebalance_on_scale: pool.rebalance_on_scale.unwrap_or(true),
        pod_ready_timeout_seconds,
        drain_seconds,
        overrides,
        pod_security,
    })
}

/// The pool's volume: a PersistentVolumeClaim (`Some`) or an emptyDir (`None`). Controllers
/// and servers must say which: their data directory holds segments.
fn validate_storage(
    role: Option<Role>,
    storage: Option<&PoolStorage>,
    at: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<ValidStorage> {
    let Some(s) = storage else {
        if let Some(role @ (Role::Controller | Role::Server)) = role {
            let holds = match role {
                Role::Controller => "the segments uploaded to it when there is no deep store",
                _ => "its segments",
            };
            errors.push(
                at("storage"),
                format!(
                    "is missing; a {role} keeps {holds} in {}: set storage.size (e.g. 10Gi) for a PersistentVolumeClaim per pod, or storage: {{ephemeral: true}} for an emptyDir that is lost with the pod",
                    role.data_dir()
                ),
            );
        }
        return None;
    };
    match (&s.size, s.ephemeral) {
        (Some(_), true) => {
            errors.push(
                at("storage"),
                "sets both size and ephemeral: true; keep size for a PersistentVolumeClaim per pod, or ephemeral for an emptyDir, not both",
            );
            None
        }
        (None, true) => {
            if s.storage_class_name.is_some() {
                errors.push(
                    at("storage.storageClassName"),
                    "is set with ephemeral: true, which uses an emptyDir and no StorageClass; remove it, or replace ephemeral by a size",
                );
            }
            None
        }
        (None, false) => {
            errors.push(
                at("storage.size"),
                "is missing; set a size such as 10Gi for a PersistentVolumeClaim per pod, or ephemeral: true for an emptyDir",
            );
            None
        }
        (Some(size), false) => {
            if !is_quantity(size) {
                errors.push(
                    at("storage.size"),
                    format!("{size:?} is not a Kubernetes quantity; write a size such as 10Gi"),
                );
            }
            Some(ValidStorage { size: size.clone(), storage_class_name: s.storage_class_name.clone() })
        }
    }
}

/// A key and value the properties file can hold as they are.
fn check_property_text(k: &str, v: &str, at: &dyn Fn(&str) -> String, errors: &mut Errors) {
    if k.trim().is_empty() || k.contains(['\n', '=']) || v.contains('\n') {
        errors.push(at(&format!("config[{k:?}]")), "is not a valid Pinot property; keys cannot be empty or contain '=' or newlines, values cannot contain newlines");
    }
}

/// The pool's Pinot properties: none may take over what the operator sets (the cluster name,
/// ZooKeeper, ports, instance ids and hosts, data directories off the pool's volume), in any
/// spelling Pinot reads as the same key.
fn validate_config(
    role: Role,
    config: &BTreeMap<String, String>,
    deep_storage: bool,
    (basic_auth, tls): (bool, bool),
    at: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) {
    let owned = role.owned_keys();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (k, v) in config {
        let field = at(&format!("config[{k:?}]"));
        check_property_text(k, v, at, errors);
        let relaxed = role::relaxed_key(k);
        if let Some(first) = seen.insert(relaxed.clone(), k) {
            errors.push(
                field,
                format!("is the same Pinot key as {first:?} (Pinot ignores case, '-' and '_' in keys) and Pinot does not start with both; keep one"),
            );
            continue;
        }
        if let Some((key, by)) = owned.iter().find(|(o, _)| role::relaxed_key(o) == relaxed) {
            errors.push(field, owned_key_message(role, key, *by));
            continue;
        }
        if basic_auth && ValidBasicAuth::writes_key(role, k) {
            errors.push(
                field,
                "is written from spec.security.basicAuth (principals, passwords and Pinot's own tokens); set the principals there and remove it here",
            );
            continue;
        }
        if tls && ValidTls::writes_key(role, k) {
            errors.push(field, "is written from spec.security.tls (listeners, key and trust stores); remove it here");
            continue;
        }
        if deep_storage && deep_storage::writes_key(role, k) {
            errors.push(
                field,
                "is written from spec.deepStorage (the store, its settings and the segment fetchers); set it there (spec.deepStorage.config for more settings of the store) and remove it here",
            );
            continue;
        }
        if role == Role::Controller && relaxed == role::relaxed_key(role::CONTROLLER_DATA_DIR_KEY) {
            let volume = role.data_dir();
            if !data_dir_allowed(role, v) {
                errors.push(
                    field,
                    format!(
                        "is {v:?}, neither a deep store URI nor a path on the controller's volume: segments written elsewhere are lost with the container; use a deep store such as s3://bucket/pinot (with its pinot.controller.storage.factory.* keys), or a path under {volume}"
                    ),
                );
            }
        } else if role == Role::Minion && relaxed == role::relaxed_key(role::MINION_DATA_DIR_KEY) {
            let volume = role.data_dir();
            if !data_dir_allowed(role, v) {
                errors.push(
                    field,
                    format!("is {v:?}, off the minion's volume mounted at {volume}; use a path under it, or remove the key (the operator sets {volume}/minion)"),
                );
            }
        } else if let Some(key) = role.timing_keys().iter().find(|t| role::relaxed_key(t) == relaxed)
            && v.trim().parse::<u64>().is_err()
        {
            errors.push(
                field,
                format!("is {v:?}; {key} is milliseconds, a whole number such as 30000 (the operator sizes the pod's probes and grace period from it)"),
            );
        }
    }
}

fn owned_key_message(role: Role, key: &str, by: OwnedBy) -> String {
    match by {
        OwnedBy::ClusterName => format!(
            "sets the Helix cluster name, which the operator writes from spec.clusterName into every role (pinot.cluster.name, which wins over {key} and -clusterName); remove it and set spec.clusterName"
        ),
        OwnedBy::Zookeeper => "sets ZooKeeper, which the operator writes from spec.zookeeper (connectString, or the managed ensemble's); remove it and set spec.zookeeper".to_string(),
        OwnedBy::Port => {
            let ports: Vec<String> = role.ports().iter().map(|(name, port)| format!("{name} {port}")).collect();
            format!(
                "sets a port the operator's Services, container ports and probes use ({role}: {}); remove it",
                ports.join(", ")
            )
        }
        OwnedBy::InstanceId => format!(
            "changes the host or id the instance registers with in Pinot; the operator finds each pod's instance as {}_<pod>.<cluster>-<pool>-headless.<namespace>.svc.<cluster domain>_{} (the pod's DNS name, with pinot.set.instance.id.to.hostname=true); remove it",
            role.instance_prefix(),
            role.instance_port()
        ),
        OwnedBy::DataDir => format!(
            "moves the {role}'s data off the pool's volume mounted at {}, where the operator points it; remove it",
            role.data_dir()
        ),
    }
}

/// Whether a pool may set its role's data directory (`controller.data.dir`, the minion's
/// `dataDir`) to `value`: a path on the pool's volume, or for a controller a deep store URI.
pub(crate) fn data_dir_allowed(role: Role, value: &str) -> bool {
    (role == Role::Controller && is_deep_store_uri(value))
        || local_path(value).is_some_and(|p| is_under(p, &role.data_dir()))
}

/// `controller.data.dir` as Pinot will read it: the pool's, else the operator's default.
fn controller_data_dir(config: &BTreeMap<String, String>) -> String {
    match role::config_value(config, role::CONTROLLER_DATA_DIR_KEY) {
        Some((_, v)) => v.to_string(),
        None => format!("{}/deepstore", Role::Controller.data_dir()),
    }
}

fn controller_data_dir_is_deep_store(config: &BTreeMap<String, String>) -> bool {
    is_deep_store_uri(&controller_data_dir(config))
}

/// A URI with a scheme other than `file` (`s3://`, `gs://`, `hdfs://`, ...): Pinot stores
/// segments through the PinotFS registered for the scheme.
fn is_deep_store_uri(v: &str) -> bool {
    uri_scheme(v).is_some_and(|s| !s.eq_ignore_ascii_case("file"))
}

fn uri_scheme(v: &str) -> Option<&str> {
    let (scheme, rest) = v.trim().split_once(':')?;
    (scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && rest.starts_with('/'))
    .then_some(scheme)
}

/// The absolute local path a directory value names: a path, or a `file:` URI.
fn local_path(v: &str) -> Option<&str> {
    let v = v.trim();
    let path = match uri_scheme(v) {
        Some(s) if s.eq_ignore_ascii_case("file") => {
            let rest = &v[s.len() + 1..];
            rest.strip_prefix("//").unwrap_or(rest)
        }
        Some(_) => return None,
        None => v,
    };
    path.starts_with('/').then_some(path)
}

/// Whether `path` is `dir` or inside it, without `..` leading out.
fn is_under(path: &str, dir: &str) -> bool {
    let path = path.trim_end_matches('/');
    (path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')))
        && !path.split('/').any(|c| c == ".." || c == ".")
}

/// Controller pools Pinot accepts but loses segments with. With a local `controller.data.dir`
/// Pinot writes the uploading controller's own URL into each segment's metadata as its download
/// URL (no VIP is set, so each controller is its own): with several controllers the others do
/// not have the file; and on an emptyDir the file is gone with the pod.
fn controller_warnings(pools: &[ValidPool]) -> Vec<FieldError> {
    let mut warnings = Vec::new();
    let most: i32 = pools.iter().filter(|p| p.role == Role::Controller).map(|p| p.max_replicas).sum();
    for (i, pool) in pools.iter().enumerate() {
        if pool.role != Role::Controller || controller_data_dir_is_deep_store(&pool.config) {
            continue;
        }
        let dir = controller_data_dir(&pool.config);
        if most > 1 {
            warnings.push(FieldError {
                field: format!("spec.pools[{i}].config[{:?}]", role::CONTROLLER_DATA_DIR_KEY),
                message: format!(
                    "is the local path {dir} while the cluster may run {most} controllers: a segment uploaded to one controller is downloaded from that controller only, and the others do not have it; set controller.data.dir to a deep store such as s3://bucket/pinot (with its pinot.controller.storage.factory.* keys), or run one controller"
                ),
            });
        }
        // A controller pool without a volume is `storage.ephemeral`: validation requires one or the other.
        if pool.storage.is_none() {
            warnings.push(FieldError {
                field: format!("spec.pools[{i}].storage.ephemeral"),
                message: format!(
                    "the controller keeps the segments uploaded to it in {dir} (controller.data.dir), which is an emptyDir here: they are lost when the pod is replaced; give the pool storage.size, or set config[\"controller.data.dir\"] to a deep store such as s3://bucket/pinot"
                ),
            });
        }
    }
    warnings
}

/// The longest Helix cluster name the operator accepts.
/// The Helix cluster name every role joins: `spec.clusterName`, else the PinotCluster's name.
/// Also what the Pinot controller is observed with before validation (its ZooKeeper records).
pub fn helix_cluster_name(cluster: &PinotCluster) -> String {
    cluster.spec.cluster_name.clone().unwrap_or_else(|| cluster.metadata.name.clone().unwrap_or_default())
}

const MAX_HELIX_CLUSTER_NAME: usize = 100;

/// A Helix cluster name that is safe as a ZooKeeper node name (`/<name>/CONFIGS/...`), as the
/// value of a properties file (a ',' would make it a list) and as a command-line argument.
fn is_helix_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HELIX_CLUSTER_NAME
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The Pinot roles in deployment order, and the managed ensemble's place among them (the
/// number of roles before it; first by default).
fn validate_deployment_order(
    order: Option<&[String]>,
    pools: &[NodePool],
    managed: bool,
    errors: &mut Errors,
) -> (Vec<Role>, usize) {
    let Some(order) = order else { return (Role::ALL.to_vec(), 0) };
    let mut roles = Vec::new();
    let mut ensemble = None;
    for (i, entry) in order.iter().enumerate() {
        if zookeeper::is_order_entry(entry) {
            match (managed, ensemble) {
                (false, _) => errors.push(
                    format!("spec.deploymentOrder[{i}]"),
                    "names zookeeper, but the operator runs no ensemble for this cluster (spec.zookeeper.managed is not set); remove it",
                ),
                (true, Some(_)) => errors.push(
                    format!("spec.deploymentOrder[{i}]"),
                    format!("{entry:?} appears more than once; list each role once"),
                ),
                (true, None) => ensemble = Some(roles.len()),
            }
            continue;
        }
        match entry.parse::<Role>() {
            Ok(role) if roles.contains(&role) => errors.push(
                format!("spec.deploymentOrder[{i}]"),
                format!("{entry:?} appears more than once; list each role once"),
            ),
            Ok(role) => roles.push(role),
            Err(_) => errors.push(
                format!("spec.deploymentOrder[{i}]"),
                format!(
                    "{entry:?} is not a Pinot role; use controller, broker, server or minion{}",
                    if managed { ", and zookeeper for the managed ensemble" } else { "" }
                ),
            ),
        }
    }
    let mut missing: Vec<&str> = Vec::new();
    if managed && ensemble.is_none() {
        missing.push(zookeeper::ENSEMBLE_ORDER_ENTRY);
    }
    for pool in pools {
        if let Ok(role) = pool.role.parse::<Role>()
            && !roles.contains(&role)
            && !missing.contains(&role.as_str())
        {
            missing.push(role.as_str());
        }
    }
    if !missing.is_empty() {
        errors.push(
            "spec.deploymentOrder",
            format!("does not list {} though pools of that role exist; add every role that has a pool (and zookeeper with a managed ensemble), or remove deploymentOrder to use the default order", missing.join(", ")),
        );
    }
    (roles, ensemble.unwrap_or(0))
}

/// RFC 1123 label, as Kubernetes requires of Service and StatefulSet names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A Kubernetes quantity as users write sizes: digits with an optional fraction and suffix.
fn is_quantity(s: &str) -> bool {
    let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    !number.is_empty()
        && number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E"].contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures;

    #[test]
    fn every_invalid_fixture_names_its_field() {
        let cases = fixtures::all("invalid");
        assert!(cases.len() >= 30, "the invalid fixtures are found");
        for (file, text) in cases {
            let field =
                text.lines().next().and_then(|l| l.strip_prefix("# field: ")).expect("first line names the field");
            let err = validate(&fixtures::cluster(&text)).expect_err(&file);
            // Each fixture is wrong in one place only, so a check that misfires elsewhere shows.
            assert!(err.0.iter().all(|e| e.field == field), "{file}: expected errors on {field} only, got {err}");
            let message = err.to_string();
            assert!(message.contains(field), "{file}: {message}");
        }
    }

    #[test]
    fn every_valid_fixture_and_the_example_pass() {
        for (file, text) in fixtures::all("valid") {
            validate(&fixtures::cluster(&text)).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let valid = validate(&fixtures::example()).expect("the README example is valid");
        assert_eq!(valid.pools.len(), 6);
        assert_eq!(valid.deployment_order, Role::ALL.to_vec());
        assert_eq!(valid.warnings, vec![], "one controller, on a volume");
        for example in ["quickstart.yaml", "pinotcluster.yaml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(example);
            let valid = validate(&fixtures::cluster(&std::fs::read_to_string(path).unwrap())).unwrap();
            assert_eq!(valid.warnings, vec![], "{example}");
        }
    }

    fn fixture(name: &str) -> PinotCluster {
        fixtures::cluster(&std::fs::read_to_string(fixtures::dir("valid").join(name)).unwrap())
    }

    #[test]
    fn the_helix_cluster_name_is_the_specs_else_the_resources_name() {
        let migrated = validate(&fixture("helm-migrated.yaml")).unwrap();
        assert_eq!((migrated.name.as_str(), migrated.helix_cluster_name.as_str()), ("pinot", "pinot-quickstart"));
        let short = validate(&fixture("short-deployment-order.yaml")).unwrap();
        assert_eq!(short.helix_cluster_name, "short");
        for ok in ["PinotCluster", "pinot-quickstart", "a.b_c-1", "0"] {
            assert!(is_helix_cluster_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a,b", "a b", "ü", &"x".repeat(MAX_HELIX_CLUSTER_NAME + 1)] {
            assert!(!is_helix_cluster_name(bad), "{bad}");
        }
    }

    #[test]
    fn ephemeral_storage_is_an_empty_dir_and_only_brokers_and_minions_may_omit_storage() {
        let short = validate(&fixture("short-deployment-order.yaml")).unwrap();
        assert_eq!(short.pool("servers").unwrap().storage, None, "ephemeral: an emptyDir");
        assert_eq!(
            short.pool("controller").unwrap().storage,
            Some(ValidStorage { size: "5Gi".into(), storage_class_name: None })
        );
        let example = validate(&fixtures::example()).unwrap();
        assert_eq!(example.pool("broker-a").unwrap().storage, None);
        assert_eq!(example.pool("minion").unwrap().storage, None);
        let mut c = fixture("short-deployment-order.yaml");
        c.spec.pools[1].storage = None;
        let err = validate(&c).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "spec.pools[1].storage");
        assert!(err.0[0].message.contains("storage.size") && err.0[0].message.contains("ephemeral: true"), "{err}");
    }

    #[test]
    fn several_controllers_without_a_deep_store_or_an_ephemeral_controller_are_warned_about() {
        let mut c = fixture("short-deployment-order.yaml");
        c.spec.pools[0].replicas = 2;
        let valid = validate(&c).unwrap();
        let fields: Vec<&str> = valid.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.pools[0].config[\"controller.data.dir\"]"]);
        assert!(valid.warnings[0].message.contains("/var/pinot/controller/data/deepstore"), "{:?}", valid.warnings);
        assert!(valid.warnings[0].message.contains("2 controllers"), "{:?}", valid.warnings);
        // One controller that a scaling policy may grow counts as several.
        c.spec.pools[0].replicas = 1;
        c.spec.pools[0].max_replicas = Some(3);
        assert_eq!(validate(&c).unwrap().warnings.len(), 1);
        // A deep store: nothing to say.
        c.spec.pools[0].config.insert("controller.data.dir".into(), "gs://bucket/pinot".into());
        assert_eq!(validate(&c).unwrap().warnings, vec![]);
        assert_eq!(validate(&fixture("helm-migrated.yaml")).unwrap().warnings, vec![], "two controllers on S3");
        // The controller's segments on an emptyDir.
        let ephemeral = validate(&fixture("overrides.yaml")).unwrap();
        let fields: Vec<&str> = ephemeral.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.pools[0].storage.ephemeral"]);
    }

    #[test]
    fn pool_config_may_not_take_over_what_the_operator_sets_in_any_spelling() {
        let with = |role: &str, key: &str, value: &str| {
            let mut c = fixture("short-deployment-order.yaml");
            let pool = if role == "server" { 1 } else { 0 };
            c.spec.pools[pool].config.insert(key.into(), value.into());
            validate(&c).err().map(|e| e.0.into_iter().map(|e| (e.field, e.message)).collect::<Vec<_>>())
        };
        for (role, key) in [
            ("controller", "pinot.cluster.name"),
            ("controller", "Controller.Helix.Cluster.Name"),
            ("controller", "CONTROLLER.ZK.STR"),
            ("controller", "controller.port"),
            ("controller", "controller.host"),
            ("controller", "pinot.controller.Instance.Id"),
            ("server", "pinot.server.adminapi.port"),
            ("server", "pinot.query.server.port"),
            ("server", "pinot.query.runner.port"),
            ("server", "pinot.server.netty.host"),
            ("server", "pinot.server.instance.id"),
            ("server", "pinot.server.instance.dataDir"),
            ("server", "pinot.set.instance.id.to.hostname"),
        ] {
            let errors = with(role, key, "1").unwrap_or_else(|| panic!("{key} is refused"));
            assert_eq!(errors.len(), 1, "{key}: {errors:?}");
            assert_eq!(errors[0].0, format!("spec.pools[{}].config[{key:?}]", if role == "server" { 1 } else { 0 }));
            assert!(errors[0].1.contains("remove it"), "{key}: {}", errors[0].1);
        }
        assert!(with("controller", "pinot.cluster.name", "x").unwrap()[0].1.contains("spec.clusterName"));
        assert!(with("server", "pinot.zk.server", "x").unwrap()[0].1.contains("set spec.zookeeper"));
        // Keys the operator has a default for but does not own, and everything else, may be set.
        for (role, key, value) in [
            ("controller", "controller.task.scheduler.enabled", "false"),
            ("controller", "controller.vip.host", "pinot-controller"),
            ("controller", "controller.data.dir", "s3://bucket/pinot"),
            ("controller", "controller.data.dir", "/var/pinot/controller/data/segments"),
            ("controller", "controller.data.dir", "file:///var/pinot/controller/data"),
            ("server", "pinot.server.instance.realtime.alloc.offheap", "false"),
            ("server", "pinot.server.grpc.port", "8090"),
            ("server", "pinot.server.shutdown.timeout_ms", "60000"),
        ] {
            assert_eq!(with(role, key, value), None, "{key}={value}");
        }
        for dir in [
            "/tmp/pinot",
            "relative/dir",
            "file:///tmp",
            "/var/pinot/controller/database",
            "/var/pinot/controller/data/../x",
        ] {
            let errors = with("controller", "controller.data.dir", dir).unwrap_or_else(|| panic!("{dir} is refused"));
            assert!(errors[0].1.contains("deep store"), "{dir}: {errors:?}");
        }
    }

    #[test]
    fn data_directories_a_pool_may_choose() {
        assert!(data_dir_allowed(Role::Controller, "s3://bucket/pinot"));
        assert!(data_dir_allowed(Role::Controller, "hdfs://namenode:8020/pinot"));
        assert!(data_dir_allowed(Role::Controller, "/var/pinot/controller/data"));
        assert!(data_dir_allowed(Role::Controller, "/var/pinot/controller/data/"));
        assert!(!data_dir_allowed(Role::Controller, "/var/pinot/controller/data2"));
        assert!(!data_dir_allowed(Role::Controller, "c:/pinot"));
        assert!(data_dir_allowed(Role::Minion, "/var/pinot/minion/data/tasks"));
        assert!(!data_dir_allowed(Role::Minion, "s3://bucket/minion"), "a minion's data dir is local");
    }

    #[test]
    fn short_deployment_order_is_kept_as_given() {
        let text = std::fs::read_to_string(fixtures::dir("valid").join("short-deployment-order.yaml")).unwrap();
        let valid = validate(&fixtures::cluster(&text)).unwrap();
        assert_eq!(valid.deployment_order, vec![Role::Server, Role::Controller]);
        assert_eq!(
            valid.pool("servers").unwrap().placement,
            Placement::Zones(vec!["zone-a".into(), "zone-b".into(), "zone-c".into()])
        );
    }

    #[test]
    fn defaults_are_filled_in() {
        let text = std::fs::read_to_string(fixtures::dir("valid").join("short-deployment-order.yaml")).unwrap();
        let valid = validate(&fixtures::cluster(&text)).unwrap();
        let controller = valid.pool("controller").unwrap();
        assert_eq!(controller.replicas, 1);
        assert_eq!(controller.max_unavailable, 1);
        assert_eq!(controller.image, "apachepinot/pinot:1.2.0");
        assert_eq!(controller.jvm_opts, Role::Controller.default_jvm_opts());
        assert_eq!(controller.placement, Placement::Anywhere);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let c = fixtures::cluster(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotCluster\nmetadata: {name: c}\nspec:\n  image: i\n  zookeeper: {connectString: z}\n  pools:\n    - {name: controller, role: controller, replicas: -1}\n    - {name: x, role: nope}\n",
        );
        let err = validate(&c).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.pools[0].replicas", "spec.pools[0].storage", "spec.pools[1].role"]);
    }

    #[test]
    fn quantities() {
        for ok in ["10Gi", "1.5Ti", "500M", "1"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "10 Gi", "-1Gi", "0", "10GB"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
