//! `spec.exposure`: the client Services of brokers and controllers (type, annotations, source
//! ranges, traffic policy, node port) and the controller's Ingress, checked.

use std::collections::BTreeMap;

use pinot_crds::{Exposure, ServiceExposure};

use super::{Errors, is_dns_subdomain};
use crate::role::Role;

/// How one client Service is built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidService {
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    pub type_: String,
    pub annotations: BTreeMap<String, String>,
    pub load_balancer_source_ranges: Vec<String>,
    pub external_traffic_policy: Option<String>,
    pub node_port: Option<i32>,
}

impl ValidService {
    fn cluster_ip() -> Self {
        Self { type_: "ClusterIP".into(), ..Default::default() }
    }

    pub fn is_load_balancer(&self) -> bool {
        self.type_ == "LoadBalancer"
    }
}

/// The controller's Ingress.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidIngress {
    pub host: String,
    pub class_name: Option<String>,
    pub path: String,
    pub annotations: BTreeMap<String, String>,
    pub tls_secret: Option<String>,
}

/// The cluster's client Services and Ingress as they are built.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidExposure {
    pub broker: ValidService,
    pub controller: ValidService,
    pub controller_ingress: Option<ValidIngress>,
}

impl Default for ValidExposure {
    fn default() -> Self {
        Self { broker: ValidService::cluster_ip(), controller: ValidService::cluster_ip(), controller_ingress: None }
    }
}

impl ValidExposure {
    pub fn service(&self, role: Role) -> Option<&ValidService> {
        match role {
            Role::Broker => Some(&self.broker),
            Role::Controller => Some(&self.controller),
            _ => None,
        }
    }
}

pub(super) fn validate(spec: Option<&Exposure>, has_role: impl Fn(Role) -> bool, errors: &mut Errors) -> ValidExposure {
    let Some(spec) = spec else { return ValidExposure::default() };
    let mut out = ValidExposure::default();
    for (role, key, service) in
        [(Role::Broker, "broker", &spec.broker), (Role::Controller, "controller", &spec.controller)]
    {
        let Some(service) = service else { continue };
        let at = format!("spec.exposure.{key}");
        if !has_role(role) {
            errors.push(
                at.clone(),
                format!("the cluster has no {role} pool, so no {role} Service to expose; add one, or remove this"),
            );
        }
        let valid = validate_service(&at, service, errors);
        match role {
            Role::Broker => out.broker = valid,
            _ => out.controller = valid,
        }
    }
    if let Some(ingress) = &spec.controller_ingress {
        let at = |f: &str| format!("spec.exposure.controllerIngress.{f}");
        if !has_role(Role::Controller) {
            errors
                .push("spec.exposure.controllerIngress", "the cluster has no controller pool; add one, or remove this");
        }
        let host = ingress.host.trim();
        if !is_dns_subdomain(host.strip_prefix("*.").unwrap_or(host)) {
            errors.push(
                at("host"),
                format!("{:?} is not a host name; write the name clients use, e.g. pinot.example.com", ingress.host),
            );
        }
        let path = ingress.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            errors.push(at("path"), format!("{path:?} is not a path; start it with /"));
        }
        if let Some(class) = &ingress.class_name
            && !is_dns_subdomain(class)
        {
            errors.push(at("className"), format!("{class:?} is not an IngressClass name"));
        }
        if let Some(secret) = &ingress.tls_secret
            && !is_dns_subdomain(secret)
        {
            errors.push(at("tlsSecret"), format!("{secret:?} is not a Secret name"));
        }
        out.controller_ingress = Some(ValidIngress {
            host: host.to_string(),
            class_name: ingress.class_name.clone(),
            path,
            annotations: ingress.annotations.clone(),
            tls_secret: ingress.tls_secret.clone(),
        });
    }
    out
}

fn validate_service(at: &str, s: &ServiceExposure, errors: &mut Errors) -> ValidService {
    let field = |f: &str| format!("{at}.{f}");
    let type_ = s.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    if !matches!(type_.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        errors.push(
            field("type"),
            format!("{type_:?} is not a Service type the operator can give a Pinot role; use ClusterIP, NodePort or LoadBalancer"),
        );
    }
    if !s.load_balancer_source_ranges.is_empty() && type_ != "LoadBalancer" {
        errors.push(
            field("loadBalancerSourceRanges"),
            format!("is only for type LoadBalancer (the type is {type_}); set the type, or remove the ranges"),
        );
    }
    for (i, range) in s.load_balancer_source_ranges.iter().enumerate() {
        if !is_cidr(range) {
            errors.push(
                field(&format!("loadBalancerSourceRanges[{i}]")),
                format!("{range:?} is not a CIDR such as 10.0.0.0/8"),
            );
        }
    }
    if let Some(policy) = &s.external_traffic_policy {
        if !matches!(policy.as_str(), "Cluster" | "Local") {
            errors.push(field("externalTrafficPolicy"), format!("{policy:?} is neither Cluster nor Local"));
        } else if type_ == "ClusterIP" {
            errors.push(
                field("externalTrafficPolicy"),
                "is only for types NodePort and LoadBalancer (ClusterIP traffic stays in the cluster); set the type, or remove it",
            );
        }
    }
    if let Some(port) = s.node_port {
        if type_ == "ClusterIP" {
            errors.push(field("nodePort"), "is only for types NodePort and LoadBalancer; set the type, or remove it");
        } else if !(1..=65535).contains(&port) {
            errors.push(
                field("nodePort"),
                format!("{port} is not a port; use one of the apiserver's node port range (30000-32767 by default)"),
            );
        }
    }
    ValidService {
        type_,
        annotations: s.annotations.clone(),
        load_balancer_source_ranges: s.load_balancer_source_ranges.clone(),
        external_traffic_policy: s.external_traffic_policy.clone(),
        node_port: s.node_port,
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.trim().split_once('/') else { return false };
    let Ok(len) = len.parse::<u8>() else { return false };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => len <= 32,
        Ok(std::net::IpAddr::V6(_)) => len <= 128,
        Err(_) => false,
    }
}
