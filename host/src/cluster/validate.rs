//! Step 2 of the pipeline, pure: checks a PinotCluster spec and turns it into a
//! [`ValidCluster`], or lists every problem with the field it is in and how to fix it.

use std::{collections::BTreeMap, fmt};

use k8s_openapi::api::core::v1::ResourceRequirements;
use pinot_crds::{NodePool, PinotCluster, PodOverrides, UpgradeSettings};

use crate::role::Role;

/// The longest `<cluster>-<pool>` name: a StatefulSet's pods carry the label
/// `controller-revision-hash: <statefulset>-<10 chars>`, which must fit in 63 characters.
pub const MAX_POOL_OBJECT_NAME: usize = 52;

/// A spec that passed validation; the build step works only from this.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    pub name: String,
    pub namespace: String,
    pub zookeeper: String,
    pub deployment_order: Vec<Role>,
    pub pools: Vec<ValidPool>,
    pub paused: bool,
    /// Create every pool at once instead of role by role.
    pub parallel_install: bool,
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
    pub overrides: PodOverrides,
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

/// Checks `cluster` and returns what the later steps build from.
pub fn validate(cluster: &PinotCluster) -> Result<ValidCluster, InvalidSpec> {
    let mut errors = Errors::default();
    let spec = &cluster.spec;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();

    if spec.zookeeper.connect_string.trim().is_empty() {
        errors.push(
            "spec.zookeeper.connectString",
            "is empty; set it to the ZooKeeper ensemble Pinot uses, e.g. \"zookeeper:2181\"",
        );
    }

    let mut pools = Vec::new();
    for (i, pool) in spec.pools.iter().enumerate() {
        let upgrade = spec.upgrade.as_ref();
        if let Some(p) = validate_pool(&name, &spec.image, upgrade, i, pool, &spec.pools[..i], &mut errors) {
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

    let deployment_order = validate_deployment_order(spec.deployment_order.as_deref(), &spec.pools, &mut errors);

    if errors.0.is_empty() {
        Ok(ValidCluster {
            name,
            namespace,
            zookeeper: spec.zookeeper.connect_string.trim().to_string(),
            deployment_order,
            pools,
            paused: spec.paused,
            parallel_install: spec.upgrade.as_ref().is_some_and(|u| u.parallel_install),
        })
    } else {
        Err(InvalidSpec(errors.0))
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
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
    cluster_image: &str,
    upgrade: Option<&UpgradeSettings>,
    i: usize,
    pool: &NodePool,
    earlier: &[NodePool],
    errors: &mut Errors,
) -> Option<ValidPool> {
    let at = |field: &str| format!("spec.pools[{i}].{field}");
    let before = errors.0.len();

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

    let storage = pool.storage.as_ref().map(|s| {
        if !is_quantity(&s.size) {
            errors.push(
                at("storage.size"),
                format!("{:?} is not a Kubernetes quantity; write a size such as 10Gi", s.size),
            );
        }
        ValidStorage { size: s.size.clone(), storage_class_name: s.storage_class_name.clone() }
    });

    for (k, v) in &pool.config {
        if k.trim().is_empty() || k.contains(['\n', '=']) || v.contains('\n') {
            errors.push(at(&format!("config[{k:?}]")), "is not a valid Pinot property; keys cannot be empty or contain '=' or newlines, values cannot contain newlines");
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
        overrides: pool.pod_overrides.clone().unwrap_or_default(),
    })
}

fn validate_deployment_order(order: Option<&[String]>, pools: &[NodePool], errors: &mut Errors) -> Vec<Role> {
    let Some(order) = order else { return Role::ALL.to_vec() };
    let mut roles = Vec::new();
    for (i, entry) in order.iter().enumerate() {
        match entry.parse::<Role>() {
            Ok(role) if roles.contains(&role) => errors.push(
                format!("spec.deploymentOrder[{i}]"),
                format!("{entry:?} appears more than once; list each role once"),
            ),
            Ok(role) => roles.push(role),
            Err(_) => errors.push(
                format!("spec.deploymentOrder[{i}]"),
                format!("{entry:?} is not a Pinot role; use controller, broker, server or minion"),
            ),
        }
    }
    let mut missing: Vec<&str> = Vec::new();
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
            format!("does not list {} though pools of that role exist; add every role that has a pool, or remove deploymentOrder to use the default order", missing.join(", ")),
        );
    }
    roles
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
        assert!(cases.len() >= 10, "the invalid fixtures are found");
        for (file, text) in cases {
            let field =
                text.lines().next().and_then(|l| l.strip_prefix("# field: ")).expect("first line names the field");
            let err = validate(&fixtures::cluster(&text)).expect_err(&file);
            assert!(err.0.iter().any(|e| e.field == field), "{file}: expected an error on {field}, got {err}");
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
        assert_eq!(fields, vec!["spec.pools[0].replicas", "spec.pools[1].role"]);
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
