//! The Kubernetes Pod Security Standards' "restricted" profile as a check of a pod, for tests
//! against an apiserver without Pod Security admission (1.20 has none: a namespace labelled
//! `pod-security.kubernetes.io/enforce=restricted` admits anything there). Written from the
//! standard itself (kubernetes.io/docs/concepts/security/pod-security-standards, the
//! "baseline" and "restricted" tables, policy version `latest`), independently of the
//! operator's builder: every rule of both profiles a pod can break, each violation as the field
//! and what is wrong, as `pod-security-admission` words it.

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

/// Capabilities the baseline profile allows to add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
];

/// Every way `pod` (its spec and annotations) breaks the restricted profile; empty when it
/// would be admitted.
pub fn restricted_violations(spec: &PodSpec, annotations: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let containers: Vec<(&str, &Container)> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c))
        .chain(spec.containers.iter().map(|c| ("containers", c)))
        .collect();
    let csc = |c: &Container| c.security_context.clone().unwrap_or_default();

    // Baseline: host namespaces, privileged, host paths and ports, capabilities, AppArmor,
    // SELinux, /proc mount, seccomp, sysctls, host process.
    for (flag, name) in [(spec.host_network, "hostNetwork"), (spec.host_pid, "hostPID"), (spec.host_ipc, "hostIPC")] {
        if flag == Some(true) {
            out.push(format!("host namespaces: {name}=true"));
        }
    }
    if pod_sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        out.push("hostProcess: pod".into());
    }
    for v in spec.volumes.iter().flatten() {
        if v.host_path.is_some() {
            out.push(format!("hostPath volumes: {}", v.name));
        }
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if !allowed {
            out.push(format!("restricted volume types: {}", v.name));
        }
    }
    for (key, value) in annotations {
        if let Some(container) = key.strip_prefix("container.apparmor.security.beta.kubernetes.io/")
            && !(value == "runtime/default" || value.starts_with("localhost/"))
        {
            out.push(format!("AppArmor: {container}={value}"));
        }
    }
    for s in pod_sc.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            out.push(format!("sysctls: {}", s.name));
        }
    }
    let se_linux = |at: &str, o: &Option<k8s_openapi::api::core::v1::SELinuxOptions>, out: &mut Vec<String>| {
        if let Some(o) = o {
            let t = o.type_.as_deref().unwrap_or("");
            if !matches!(t, "" | "container_t" | "container_init_t" | "container_kvm_t" | "container_engine_t") {
                out.push(format!("seLinuxOptions: {at} type {t}"));
            }
            if o.user.is_some() || o.role.is_some() {
                out.push(format!("seLinuxOptions: {at} user or role"));
            }
        }
    };
    se_linux("pod", &pod_sc.se_linux_options, &mut out);
    let seccomp_ok = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let pod_seccomp = pod_sc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if pod_seccomp.is_some_and(|t| !seccomp_ok(t)) {
        out.push(format!("seccompProfile: pod {}", pod_seccomp.unwrap_or_default()));
    }

    for (list, c) in &containers {
        let at = format!("{list} {:?}", c.name);
        let sc: SecurityContext = csc(c);
        if sc.privileged == Some(true) {
            out.push(format!("privileged: {at}"));
        }
        if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
            out.push(format!("hostProcess: {at}"));
        }
        for p in c.ports.iter().flatten() {
            if p.host_port.is_some_and(|h| h != 0) {
                out.push(format!("hostPort: {at} {}", p.host_port.unwrap_or_default()));
            }
        }
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            out.push(format!("procMount: {at}"));
        }
        se_linux(&at, &sc.se_linux_options, &mut out);
        let caps = sc.capabilities.clone().unwrap_or_default();
        for cap in caps.add.iter().flatten() {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                out.push(format!("capabilities (baseline): {at} adds {cap}"));
            }
            if cap != "NET_BIND_SERVICE" {
                out.push(format!("capabilities (restricted): {at} adds {cap}"));
            }
        }
        // Restricted: no privilege escalation, every capability dropped, non-root, seccomp.
        if sc.allow_privilege_escalation != Some(false) {
            out.push(format!("allowPrivilegeEscalation != false: {at}"));
        }
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            out.push(format!("unrestricted capabilities: {at} does not drop ALL"));
        }
        let non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root);
        if non_root != Some(true) {
            out.push(format!("runAsNonRoot != true: {at}"));
        }
        if sc.run_as_user == Some(0) {
            out.push(format!("runAsUser=0: {at}"));
        }
        match sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()).or(pod_seccomp) {
            Some(t) if seccomp_ok(t) => {}
            other => out.push(format!("seccompProfile: {at} {}", other.unwrap_or("unset"))),
        }
    }
    if pod_sc.run_as_user == Some(0) {
        out.push("runAsUser=0: pod".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, Volume};

    use super::*;

    fn restricted_pod() -> PodSpec {
        PodSpec {
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(1000),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                ..Default::default()
            }),
            containers: vec![Container {
                name: "app".into(),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_restricted_pod_passes_and_each_break_is_found() {
        let none = Default::default();
        assert_eq!(restricted_violations(&restricted_pod(), &none), Vec::<String>::new());
        let mut root = restricted_pod();
        root.security_context.as_mut().unwrap().run_as_user = Some(0);
        assert_eq!(restricted_violations(&root, &none), ["runAsUser=0: pod"]);
        let mut host = restricted_pod();
        host.volumes =
            Some(vec![Volume { name: "h".into(), host_path: Some(Default::default()), ..Default::default() }]);
        assert_eq!(restricted_violations(&host, &none), ["hostPath volumes: h", "restricted volume types: h"]);
        let mut bare = restricted_pod();
        bare.containers.push(Container { name: "sidecar".into(), ..Default::default() });
        assert_eq!(
            restricted_violations(&bare, &none),
            [
                "allowPrivilegeEscalation != false: containers \"sidecar\"",
                "unrestricted capabilities: containers \"sidecar\" does not drop ALL"
            ]
        );
        let mut plain = restricted_pod();
        plain.security_context = None;
        assert_eq!(
            restricted_violations(&plain, &none),
            ["runAsNonRoot != true: containers \"app\"", "seccompProfile: containers \"app\" unset"]
        );
    }
}
