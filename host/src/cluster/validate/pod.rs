//! The pod settings of a pool: `spec.podOverrides` merged with the pool's own, checked for what
//! would break the pods the operator builds (a volume or container named like the operator's, a
//! mount over its directories, a mount of no volume) and, with `spec.podSecurityProfile:
//! restricted`, for what the Kubernetes "restricted" Pod Security Standard does not admit.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext, Volume};
use pinot_crds::PodOverrides;

use super::{Errors, is_dns_label, is_dns_subdomain};
use crate::role::Role;

/// Volume names the operator's own volumes have: the role's configuration, its data directory,
/// the writable log directory, and the `pinot-` volumes it adds (deep-storage keys, TLS stores).
pub const RESERVED_VOLUMES: &[&str] = &["config", "data", "logs", "tmp"];
pub const OPERATOR_VOLUME_PREFIX: &str = "pinot-";
/// Environment variables the operator sets, which Pinot's properties name as `${env:...}` (or
/// `$(...)`): an override would change what Pinot reads.
const OPERATOR_ENV: &[&str] = &["PINOT_TLS_PASSWORD", "PINOT_SERVICE_TOKEN", "PINOT_ADLS_ACCESS_KEY"];

/// The Pinot container's name.
pub const PINOT_CONTAINER: &str = "pinot";

/// The Pod Security Standard the pods are built for (`spec.podSecurityProfile`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodSecurityProfile {
    /// As the image runs (the official Pinot image: root).
    #[default]
    Unset,
    /// Kubernetes' "restricted" standard: non-root, no privilege escalation, no capabilities,
    /// seccomp `RuntimeDefault`, only volume types it allows.
    Restricted,
}

pub(super) fn profile(value: Option<&str>, errors: &mut Errors) -> PodSecurityProfile {
    match value.map(str::trim) {
        None => PodSecurityProfile::Unset,
        Some("restricted") => PodSecurityProfile::Restricted,
        Some(other) => {
            errors.push(
                "spec.podSecurityProfile",
                format!(
                    "{other:?} is not a profile the operator builds pods for; use restricted (the Kubernetes \"restricted\" Pod Security Standard) or remove the field"
                ),
            );
            PodSecurityProfile::Unset
        }
    }
}

/// The pool's pod settings: the cluster's with the pool's merged over them. A single value of
/// the pool replaces the cluster's; maps merge key by key; named lists item by item (the pool's
/// item replaces the cluster's of the same name).
pub fn merge(cluster: Option<&PodOverrides>, pool: Option<&PodOverrides>) -> PodOverrides {
    let (Some(c), Some(p)) = (cluster, pool) else {
        return pool.or(cluster).cloned().unwrap_or_default();
    };
    fn maps(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out = a.clone();
        out.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
    fn named<T: Clone>(a: &[T], b: &[T], name: impl Fn(&T) -> &str) -> Vec<T> {
        let mut out: Vec<T> = a.iter().filter(|x| !b.iter().any(|y| name(y) == name(x))).cloned().collect();
        out.extend(b.iter().cloned());
        out
    }
    fn plain<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
        let mut out = a.to_vec();
        out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
        out
    }
    PodOverrides {
        node_selector: maps(&c.node_selector, &p.node_selector),
        tolerations: plain(&c.tolerations, &p.tolerations),
        affinity: p.affinity.clone().or_else(|| c.affinity.clone()),
        labels: maps(&c.labels, &p.labels),
        annotations: maps(&c.annotations, &p.annotations),
        env: named(&c.env, &p.env, |e| e.name.as_str()),
        env_from: plain(&c.env_from, &p.env_from),
        service_account_name: p.service_account_name.clone().or_else(|| c.service_account_name.clone()),
        image_pull_secrets: named(&c.image_pull_secrets, &p.image_pull_secrets, |s| s.name.as_str()),
        priority_class_name: p.priority_class_name.clone().or_else(|| c.priority_class_name.clone()),
        volumes: named(&c.volumes, &p.volumes, |v| v.name.as_str()),
        volume_mounts: named(&c.volume_mounts, &p.volume_mounts, |m| m.mount_path.as_str()),
        init_containers: named(&c.init_containers, &p.init_containers, |c| c.name.as_str()),
        sidecars: named(&c.sidecars, &p.sidecars, |c| c.name.as_str()),
        security_context: p.security_context.clone().or_else(|| c.security_context.clone()),
        container_security_context: p
            .container_security_context
            .clone()
            .or_else(|| c.container_security_context.clone()),
    }
}

/// Checks one level of pod settings (`spec.podOverrides` at `at` = "spec.podOverrides", or a
/// pool's) against the merged settings of a pool of `role`. Errors of the cluster's level are
/// found once per pool and reported once (`Errors::push` drops repeats).
pub(super) fn check(
    at: &str,
    level: &PodOverrides,
    merged: &PodOverrides,
    role: Option<Role>,
    profile: PodSecurityProfile,
    errors: &mut Errors,
) {
    let field = |f: &str| format!("{at}.{f}");
    if let Some(name) = &level.service_account_name
        && !is_dns_subdomain(name)
    {
        errors.push(
            field("serviceAccountName"),
            format!("{name:?} is not a ServiceAccount name; use lowercase letters, digits, '-' and '.'"),
        );
    }
    if let Some(name) = &level.priority_class_name
        && !is_dns_subdomain(name)
    {
        errors.push(
            field("priorityClassName"),
            format!("{name:?} is not a PriorityClass name; use lowercase letters, digits, '-' and '.'"),
        );
    }
    for (i, secret) in level.image_pull_secrets.iter().enumerate() {
        if !is_dns_subdomain(&secret.name) {
            errors.push(field(&format!("imagePullSecrets[{i}].name")), format!("{:?} is not a Secret name; name a Secret of type kubernetes.io/dockerconfigjson in the cluster's namespace", secret.name));
        }
    }
    for (i, e) in level.env.iter().enumerate() {
        if OPERATOR_ENV.contains(&e.name.as_str()) || e.name.starts_with("PINOT_AUTH_") {
            errors.push(
                field(&format!("env[{i}].name")),
                format!("{:?} is a variable the operator sets from spec.security or spec.deepStorage (Pinot's properties name it); rename it", e.name),
            );
        }
    }
    for (i, source) in level.env_from.iter().enumerate() {
        if source.config_map_ref.is_none() == source.secret_ref.is_none() {
            errors.push(field(&format!("envFrom[{i}]")), "needs exactly one of configMapRef and secretRef");
        }
    }
    for (i, volume) in level.volumes.iter().enumerate() {
        let at = field(&format!("volumes[{i}].name"));
        if !is_dns_label(&volume.name) {
            errors.push(at, format!("{:?} is not a volume name; use lowercase letters, digits and '-'", volume.name));
        } else if RESERVED_VOLUMES.contains(&volume.name.as_str()) || volume.name.starts_with(OPERATOR_VOLUME_PREFIX) {
            errors.push(
                at,
                format!(
                    "{:?} is the name of a volume the operator adds ({} and names starting with {OPERATOR_VOLUME_PREFIX:?}); rename it",
                    volume.name,
                    RESERVED_VOLUMES.join(", ")
                ),
            );
        } else if level.volumes[..i].iter().any(|v| v.name == volume.name) {
            errors.push(at, format!("{:?} is listed twice; give every volume its own name", volume.name));
        }
    }
    for (i, mount) in level.volume_mounts.iter().enumerate() {
        let at = field(&format!("volumeMounts[{i}]"));
        if !merged.volumes.iter().any(|v| v.name == mount.name) {
            errors.push(
                format!("{at}.name"),
                format!("{:?} is not one of the pods' volumes; add it to podOverrides.volumes", mount.name),
            );
        }
        if !mount.mount_path.starts_with('/') {
            errors.push(format!("{at}.mountPath"), format!("{:?} is not an absolute path", mount.mount_path));
        } else if let Some(role) = role
            && let Some(dir) = operator_dirs(role, profile).into_iter().find(|d| overlaps(&mount.mount_path, d))
        {
            errors.push(
                format!("{at}.mountPath"),
                format!(
                    "{:?} is at, above or under {dir}, where the operator mounts the {role}'s own volume; mount it elsewhere",
                    mount.mount_path
                ),
            );
        }
    }
    let names: Vec<&str> = merged.init_containers.iter().chain(&merged.sidecars).map(|c| c.name.as_str()).collect();
    for (list, key) in [(&level.init_containers, "initContainers"), (&level.sidecars, "sidecars")] {
        for (i, container) in list.iter().enumerate() {
            let at = field(&format!("{key}[{i}]"));
            if !is_dns_label(&container.name) {
                errors.push(
                    format!("{at}.name"),
                    format!("{:?} is not a container name; use lowercase letters, digits and '-'", container.name),
                );
            } else if container.name == PINOT_CONTAINER {
                errors.push(format!("{at}.name"), "\"pinot\" is the name of the Pinot container; rename it");
            } else if names.iter().filter(|n| **n == container.name).count() > 1 {
                errors.push(
                    format!("{at}.name"),
                    format!(
                        "{:?} is the name of another init container or sidecar of the pods; give each its own",
                        container.name
                    ),
                );
            }
            if container.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
                errors.push(format!("{at}.image"), "is missing; every container needs an image");
            }
            for (k, mount) in container.volume_mounts.iter().flatten().enumerate() {
                let operators = match (mount.name.as_str(), role) {
                    ("config" | "data", Some(_)) => true,
                    ("logs" | "tmp", _) => profile == PodSecurityProfile::Restricted,
                    _ => false,
                };
                if !operators && !merged.volumes.iter().any(|v| v.name == mount.name) {
                    errors.push(
                        format!("{at}.volumeMounts[{k}].name"),
                        format!(
                            "{:?} is not one of the pods' volumes (podOverrides.volumes, or the operator's config, data{}); add it to podOverrides.volumes",
                            mount.name,
                            if profile == PodSecurityProfile::Restricted { ", logs" } else { "" }
                        ),
                    );
                }
            }
        }
    }
    if profile == PodSecurityProfile::Restricted {
        restricted(at, level, errors);
    }
}

/// The directories the operator mounts into the Pinot container of `role`.
pub fn operator_dirs(role: Role, profile: PodSecurityProfile) -> Vec<String> {
    // The TLS stores and the deep store's files are mounted there when their sections are set.
    let mut dirs = vec![
        role.config_dir(),
        role.data_dir(),
        super::security::TLS_DIR.to_string(),
        super::deep_storage::MOUNT_DIR.to_string(),
        "/etc/krb5.conf".to_string(),
    ];
    if profile == PodSecurityProfile::Restricted {
        dirs.extend([LOG_DIR.to_string(), TMP_DIR.to_string()]);
    }
    dirs
}

/// Where Pinot's log4j files write, relative to the image's working directory `/opt/pinot`
/// (`docker/images/pinot/etc/conf/pinot-<role>-log4j2.xml`): with a non-root user
/// (`restricted`) the operator mounts an emptyDir there, as the image's directories belong to
/// root (no `USER` in `docker/images/pinot/Dockerfile`, 1.2.0 to master).
pub const LOG_DIR: &str = "/opt/pinot/logs";
/// `java.io.tmpdir`: `pinot-admin.sh` writes its pid file there and the JVM exits when it
/// cannot (`pinot-facts/deep-storage.md` §1); an emptyDir under `restricted`, so a read-only
/// root filesystem works too.
pub const TMP_DIR: &str = "/tmp";

/// Whether two absolute paths are the same, or one is inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let inside =
        |x: &str, y: &str| x == y || x.strip_prefix(y).is_some_and(|rest| rest.starts_with('/')) || y.is_empty();
    inside(a, b) || inside(b, a)
}

/// Volume types the "restricted" standard admits.
const RESTRICTED_VOLUME_TYPES: &str =
    "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret";

/// What one level of pod settings sets against the "restricted" Pod Security Standard
/// (Kubernetes' `pod-security-admission` rules, v1.25 and later).
fn restricted(at: &str, level: &PodOverrides, errors: &mut Errors) {
    let why = "spec.podSecurityProfile is restricted, which does not admit it";
    let field = |f: &str| format!("{at}.{f}");
    for (i, v) in level.volumes.iter().enumerate() {
        if !restricted_volume(v) {
            errors.push(
                field(&format!("volumes[{i}]")),
                format!(
                    "{:?} is not one of the volume types {why} ({RESTRICTED_VOLUME_TYPES}); use one of those",
                    v.name
                ),
            );
        }
    }
    if let Some(sc) = &level.security_context {
        pod_context(&field("securityContext"), sc, why, errors);
    }
    if let Some(sc) = &level.container_security_context {
        container_context(&field("containerSecurityContext"), sc, why, errors);
    }
    for (list, key) in [(&level.init_containers, "initContainers"), (&level.sidecars, "sidecars")] {
        for (i, c) in list.iter().enumerate() {
            let at = field(&format!("{key}[{i}]"));
            if let Some(sc) = &c.security_context {
                container_context(&format!("{at}.securityContext"), sc, why, errors);
            }
            host_ports(&at, c, why, errors);
        }
    }
}

fn restricted_volume(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some()
}

fn host_ports(at: &str, c: &Container, why: &str, errors: &mut Errors) {
    for (i, p) in c.ports.iter().flatten().enumerate() {
        if p.host_port.is_some_and(|h| h != 0) {
            errors.push(format!("{at}.ports[{i}].hostPort"), format!("is set; {why}; remove it"));
        }
    }
}

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
];

fn pod_context(at: &str, sc: &PodSecurityContext, why: &str, errors: &mut Errors) {
    let identity =
        Identity { non_root: sc.run_as_non_root, user: sc.run_as_user, seccomp: sc.seccomp_profile.as_ref() };
    identity.check(at, why, errors);
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            errors.push(format!("{at}.sysctls[{i}]"), format!("{:?} is not a safe sysctl; {why}", s.name));
        }
    }
    if let Some(se) = &sc.se_linux_options {
        se_linux(&format!("{at}.seLinuxOptions"), se, why, errors);
    }
}

/// What a pod's and a container's security context both say about who runs and how.
struct Identity<'a> {
    non_root: Option<bool>,
    user: Option<i64>,
    seccomp: Option<&'a k8s_openapi::api::core::v1::SeccompProfile>,
}

impl Identity<'_> {
    fn check(&self, at: &str, why: &str, errors: &mut Errors) {
        if self.non_root == Some(false) {
            errors.push(format!("{at}.runAsNonRoot"), format!("is false; {why}; remove it"));
        }
        if self.user == Some(0) {
            errors.push(format!("{at}.runAsUser"), format!("is 0 (root); {why}; use another user id"));
        }
        if let Some(p) = self.seccomp
            && !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
        {
            errors.push(
                format!("{at}.seccompProfile.type"),
                format!("is {:?}; {why}; use RuntimeDefault or Localhost", p.type_),
            );
        }
    }
}

fn container_context(at: &str, sc: &SecurityContext, why: &str, errors: &mut Errors) {
    if sc.privileged == Some(true) {
        errors.push(format!("{at}.privileged"), format!("is true; {why}; remove it"));
    }
    if sc.allow_privilege_escalation == Some(true) {
        errors.push(format!("{at}.allowPrivilegeEscalation"), format!("is true; {why}; remove it"));
    }
    let identity =
        Identity { non_root: sc.run_as_non_root, user: sc.run_as_user, seccomp: sc.seccomp_profile.as_ref() };
    identity.check(at, why, errors);
    if let Some(caps) = &sc.capabilities {
        for (i, cap) in caps.add.iter().flatten().enumerate() {
            if cap != "NET_BIND_SERVICE" {
                errors.push(
                    format!("{at}.capabilities.add[{i}]"),
                    format!("{cap:?}: {why} (only NET_BIND_SERVICE may be added); remove it"),
                );
            }
        }
    }
    if sc.proc_mount.as_deref().is_some_and(|p| p != "Default") {
        errors.push(format!("{at}.procMount"), format!("is not Default; {why}; remove it"));
    }
    if let Some(se) = &sc.se_linux_options {
        se_linux(&format!("{at}.seLinuxOptions"), se, why, errors);
    }
}

fn se_linux(at: &str, se: &k8s_openapi::api::core::v1::SELinuxOptions, why: &str, errors: &mut Errors) {
    if se.user.is_some() || se.role.is_some() {
        errors.push(at.to_string(), format!("sets user or role; {why}; remove them"));
    }
    if let Some(t) = &se.type_
        && !matches!(t.as_str(), "" | "container_t" | "container_init_t" | "container_kvm_t" | "container_engine_t")
    {
        errors.push(format!("{at}.type"), format!("{t:?}: {why}; use container_t or remove it"));
    }
}
