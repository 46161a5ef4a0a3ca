//! `spec.zookeeper`: an existing ensemble (`connectString`) or one the operator runs
//! (`managed`). The facts behind the defaults (image, ports, `jute.maxbuffer`, the chroot, why
//! sizes are odd) are in `pinot-facts/zookeeper.md`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use pinot_crds::{ManagedZookeeper, NodePool, PinotClusterSpec, PodOverrides};

use super::{Errors, FieldError, MAX_POOL_OBJECT_NAME, Placement, PodSecurityProfile, ValidStorage, checked, pod};

/// The name of the ensemble's pool: its objects are `<cluster>-zookeeper...`, its pods carry
/// `pinot.controlplane.dev/pool: zookeeper`.
pub const ENSEMBLE_POOL: &str = "zookeeper";
/// The deployment-order entry of the ensemble.
pub const ENSEMBLE_ORDER_ENTRY: &str = "zookeeper";
/// The official image, as Pinot's chart on master runs it.
pub const DEFAULT_IMAGE: &str = "zookeeper:3.9.3";
/// `jute.maxbuffer` of Pinot's chart (master: ZooKeeper's `jvmFlags` and every role's `jvmOpts`).
pub const DEFAULT_JUTE_MAX_BUFFER: i64 = 4_000_000;
/// ZooKeeper's own default (`0xfffff`), below which Helix's writes of 1000 KiB would fail.
pub const MIN_JUTE_MAX_BUFFER: i64 = 1_048_575;
const MAX_JUTE_MAX_BUFFER: i64 = 104_857_600;
pub const DEFAULT_CHROOT: &str = "/pinot";
pub const DEFAULT_JVM_OPTS: &str = "-Xms1G -Xmx1G";
const MAX_TIMEOUT: i64 = 86_400;

/// A managed ensemble that passed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEnsemble {
    /// Members the spec asks for (1, 3 or 5); the operator gets there one member at a time.
    pub replicas: i32,
    pub image: String,
    pub placement: Placement,
    /// A PersistentVolumeClaim per member, or `None` for an emptyDir.
    pub storage: Option<ValidStorage>,
    pub resources: Option<ResourceRequirements>,
    pub jvm_opts: String,
    pub jute_max_buffer: i64,
    /// The znode Pinot's connect string ends with, e.g. `/pinot`.
    pub chroot: String,
    pub pod_ready_timeout_seconds: Option<i64>,
    /// `spec.podOverrides` with `managed.podOverrides` merged over it.
    pub overrides: PodOverrides,
    pub pod_security: PodSecurityProfile,
}

impl ValidEnsemble {
    /// The connect string Pinot's pools get: the client Service (its ready members), with the
    /// chroot. A Service, not the member list, so that growing the ensemble restarts no Pinot pod.
    pub fn connect_string(&self, cluster: &str) -> String {
        format!("{}:{}{}", client_service_name(cluster), CLIENT_PORT, self.chroot)
    }
}

pub const CLIENT_PORT: i32 = 2181;
pub const QUORUM_PORT: i32 = 2888;
pub const ELECTION_PORT: i32 = 3888;

/// `<cluster>-zookeeper`: the StatefulSet, its PDB and the client Service.
pub fn statefulset_name(cluster: &str) -> String {
    crate::children::statefulset_name(cluster, ENSEMBLE_POOL)
}

pub fn client_service_name(cluster: &str) -> String {
    statefulset_name(cluster)
}

/// `<cluster>-zookeeper-headless`: the members' stable names, published before they are ready.
pub fn headless_service_name(cluster: &str) -> String {
    crate::children::headless_service_name(cluster, ENSEMBLE_POOL)
}

/// Checks `spec.zookeeper`: what Pinot connects to (the connect string), and the managed
/// ensemble if any. `zones` are the zones the cluster's pools name, the default spread.
pub(super) fn validate(
    cluster: &str,
    spec: &PinotClusterSpec,
    pod_security: PodSecurityProfile,
    errors: &mut Errors,
    warnings: &mut Vec<FieldError>,
) -> (String, Option<ValidEnsemble>) {
    let zk = &spec.zookeeper;
    let connect_string = zk.connect_string.trim();
    let Some(managed) = &zk.managed else {
        if connect_string.is_empty() {
            errors.push(
                "spec.zookeeper.connectString",
                "is empty; set it to the ZooKeeper ensemble Pinot uses, e.g. \"zookeeper:2181\", or set spec.zookeeper.managed to let the operator run one",
            );
        }
        return (connect_string.to_string(), None);
    };
    if !connect_string.is_empty() {
        errors.push(
            "spec.zookeeper",
            "sets both connectString and managed; keep connectString to use an existing ensemble, or managed to let the operator run one, not both",
        );
    }
    let ensemble = validate_managed(cluster, spec, managed, pod_security, errors, warnings);
    let connect = ensemble.as_ref().map(|e| e.connect_string(cluster)).unwrap_or_default();
    (connect, ensemble)
}

fn validate_managed(
    cluster: &str,
    spec: &PinotClusterSpec,
    m: &ManagedZookeeper,
    pod_security: PodSecurityProfile,
    errors: &mut Errors,
    warnings: &mut Vec<FieldError>,
) -> Option<ValidEnsemble> {
    let at = |field: &str| format!("spec.zookeeper.managed.{field}");
    let before = errors.0.len();
    if cluster.len() + 1 + ENSEMBLE_POOL.len() > MAX_POOL_OBJECT_NAME {
        errors.push(
            "metadata.name",
            format!(
                "\"{cluster}-{ENSEMBLE_POOL}\" (the ensemble's StatefulSet) is longer than {MAX_POOL_OBJECT_NAME} characters; shorten the cluster's name"
            ),
        );
    }
    if let Some(i) = spec.pools.iter().position(|p| p.name == ENSEMBLE_POOL) {
        errors.push(
            format!("spec.pools[{i}].name"),
            format!("{ENSEMBLE_POOL:?} is the managed ZooKeeper ensemble's pool; rename this pool"),
        );
    }

    match m.replicas {
        1 | 3 | 5 => {}
        r @ (2 | 4 | 6) => errors.push(
            at("replicas"),
            format!(
                "is {r}, an even number: a quorum is a majority, so {r} members survive no more failures than {} and need more of them up for every write; use {}",
                r - 1,
                if r == 2 { "3 (or 1 without fault tolerance)".to_string() } else { (r - 1).to_string() }
            ),
        ),
        r => errors.push(
            at("replicas"),
            format!("is {r}; use 3 (one member may be down) or 5 (two may), or 1 in a single-zone cluster"),
        ),
    }

    // The zones the members spread over: their own, else those of the cluster's pools.
    for (k, z) in m.zones.iter().enumerate() {
        if z.trim().is_empty() {
            errors.push(at(&format!("zones[{k}]")), "is empty; name a topology.kubernetes.io/zone value");
        } else if m.zones[..k].contains(z) {
            errors.push(at(&format!("zones[{k}]")), format!("{z:?} is listed twice; list each zone once"));
        }
    }
    let zones = if m.zones.is_empty() { pool_zones(&spec.pools) } else { m.zones.clone() };
    if m.replicas == 1 && zones.len() > 1 {
        let field = if m.zones.is_empty() { at("replicas") } else { at("zones") };
        errors.push(
            field,
            format!(
                "a single ZooKeeper member in a cluster spread over {}: losing the member's zone stops every Pinot role with it; use replicas 3 (a member per zone), or name the one zone it runs in with spec.zookeeper.managed.zones to accept that",
                zones.join(", ")
            ),
        );
    }
    if m.replicas > 1 && zones.len() > 1 {
        // Members per zone, spread evenly: the zone with the most must not hold a majority.
        let most = (m.replicas as usize).div_ceil(zones.len());
        if most > m.replicas as usize / 2 {
            warnings.push(FieldError {
                field: if m.zones.is_empty() { "spec.pools[].zones".into() } else { at("zones") },
                message: format!(
                    "{} ZooKeeper members over {} zones puts {most} in one zone, a majority: losing that zone stops ZooKeeper and so Pinot; spread over at least 3 zones",
                    m.replicas,
                    zones.len()
                ),
            });
        }
    }
    if m.replicas == 1 {
        warnings.push(FieldError {
            field: at("replicas"),
            message: "is 1: ZooKeeper has no fault tolerance, and every restart of its member (an upgrade) stops Pinot's writes until it is back; use 3 for a production cluster".into(),
        });
    }

    let image = m.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    if image.trim().is_empty() {
        errors.push(at("image"), format!("is empty; set a ZooKeeper image, e.g. {DEFAULT_IMAGE}, or remove the field"));
    }

    let jute_max_buffer = m.jute_max_buffer.unwrap_or(DEFAULT_JUTE_MAX_BUFFER);
    if !(MIN_JUTE_MAX_BUFFER..=MAX_JUTE_MAX_BUFFER).contains(&jute_max_buffer) {
        errors.push(
            at("juteMaxBuffer"),
            format!(
                "is {jute_max_buffer}; use {MIN_JUTE_MAX_BUFFER} (ZooKeeper's default) to {MAX_JUTE_MAX_BUFFER} bytes, or remove it for {DEFAULT_JUTE_MAX_BUFFER}"
            ),
        );
    }
    let jvm_opts = m.jvm_opts.clone().unwrap_or_else(|| DEFAULT_JVM_OPTS.to_string());
    if jvm_opts.contains("-Djute.maxbuffer") {
        errors.push(
            at("jvmOpts"),
            "sets -Djute.maxbuffer; set spec.zookeeper.managed.juteMaxBuffer instead, which gives every member and every Pinot JVM the same value",
        );
    }
    for (i, pool) in spec.pools.iter().enumerate() {
        if pool.jvm_opts.as_deref().is_some_and(|o| o.contains("-Djute.maxbuffer")) {
            errors.push(
                format!("spec.pools[{i}].jvmOpts"),
                "sets -Djute.maxbuffer, which the operator sets on every Pinot JVM to the managed ensemble's value; set spec.zookeeper.managed.juteMaxBuffer instead",
            );
        }
    }

    let chroot = m.chroot.clone().unwrap_or_else(|| DEFAULT_CHROOT.to_string());
    if let Err(why) = check_chroot(&chroot) {
        errors.push(at("chroot"), format!("{chroot:?} {why}; use a path such as {DEFAULT_CHROOT}"));
    }

    let pod_ready_timeout_seconds =
        checked(errors, at("podReadyTimeoutSeconds"), m.pod_ready_timeout_seconds, 1, MAX_TIMEOUT)
            .or(spec.upgrade.as_ref().and_then(|u| u.pod_ready_timeout_seconds));

    let storage = super::validate_storage(None, Some(&m.storage), &at, errors);
    if m.replicas == 1 && m.storage.ephemeral {
        errors.push(
            at("storage.ephemeral"),
            "a single member on an emptyDir loses Pinot's whole state (its tables, schemas and segment assignments) at its first restart, and an upgrade restarts it; set storage.size, or use 3 members",
        );
    }
    let overrides = pod::merge(spec.pod_overrides.as_ref(), m.pod_overrides.as_ref());
    if let Some(level) = &m.pod_overrides {
        pod::check(&at("podOverrides"), level, &overrides, None, pod_security, errors);
    }

    if errors.0.len() > before {
        return None;
    }
    Some(ValidEnsemble {
        replicas: m.replicas,
        image,
        placement: if zones.is_empty() { Placement::Anywhere } else { Placement::Zones(zones) },
        storage,
        resources: m.resources.clone(),
        jvm_opts,
        jute_max_buffer,
        chroot,
        pod_ready_timeout_seconds,
        overrides,
        pod_security,
    })
}

/// The zones the cluster's pools name, in the order first named.
fn pool_zones(pools: &[NodePool]) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    for z in pools.iter().flat_map(|p| p.zone.iter().chain(&p.zones)) {
        if !z.trim().is_empty() && !zones.contains(z) {
            zones.push(z.clone());
        }
    }
    zones
}

/// A chroot ZooKeeper's client accepts (`PathUtils.validatePath`: absolute, no empty, `.` or
/// `..` element, no trailing `/`), not ZooKeeper's own `/zookeeper`, and nothing a connect
/// string would read otherwise (`,`, whitespace).
fn check_chroot(chroot: &str) -> Result<(), &'static str> {
    if !chroot.starts_with('/') || chroot == "/" {
        return Err("is not an absolute znode path below the root");
    }
    if chroot.ends_with('/') {
        return Err("ends with '/'");
    }
    let parts: Vec<&str> = chroot[1..].split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err("has an empty, '.' or '..' element");
    }
    if parts[0] == "zookeeper" {
        return Err("is under /zookeeper, which ZooKeeper keeps for itself");
    }
    if chroot.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
        return Err("contains whitespace, a control character or ','");
    }
    Ok(())
}

/// Whether a deployment-order entry names the ensemble.
pub fn is_order_entry(entry: &str) -> bool {
    entry == ENSEMBLE_ORDER_ENTRY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chroots_are_absolute_paths_pinot_can_use() {
        for ok in ["/pinot", "/pinot/prod", "/a-b_c"] {
            assert_eq!(check_chroot(ok), Ok(()), "{ok}");
        }
        for bad in ["pinot", "/", "/pinot/", "//pinot", "/pinot/../x", "/zookeeper", "/zookeeper/x", "/a b", "/a,b"] {
            assert!(check_chroot(bad).is_err(), "{bad}");
        }
    }
}
