//! `spec.metrics`: the JMX Prometheus exporter agent of the official Pinot image, in every
//! Pinot JVM (`pinot-facts/deep-storage.md` §8: the jar and the per-role rules files are in the
//! image at every release; the official chart does not start it).

use std::collections::BTreeMap;

use pinot_crds::PinotMetrics;

use super::Errors;
use crate::role::Role;

/// The agent jar in the official image.
pub const AGENT_JAR: &str = "/opt/pinot/etc/jmx_prometheus_javaagent/jmx_prometheus_javaagent.jar";
/// The port it serves on unless the spec says.
pub const DEFAULT_PORT: i32 = 8008;

/// The exporter as every Pinot container gets it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMetrics {
    pub port: i32,
    pub config_files: BTreeMap<Role, String>,
}

impl ValidMetrics {
    /// The rules file of a role: the spec's, else the image's `configs/<role>.yml`.
    pub fn config_file(&self, role: Role) -> String {
        self.config_files
            .get(&role)
            .cloned()
            .unwrap_or_else(|| format!("/opt/pinot/etc/jmx_prometheus_javaagent/configs/{role}.yml"))
    }

    /// The JVM option that starts the agent.
    pub fn java_agent(&self, role: Role) -> String {
        format!("-javaagent:{AGENT_JAR}={}:{}", self.port, self.config_file(role))
    }
}

pub(super) fn validate(spec: Option<&PinotMetrics>, errors: &mut Errors) -> Option<ValidMetrics> {
    let spec = spec?;
    let port = spec.port.unwrap_or(DEFAULT_PORT);
    let taken: Vec<(Role, &str, i32)> =
        Role::ALL.iter().flat_map(|r| r.ports().iter().map(move |(name, p)| (*r, *name, *p))).collect();
    if !(1..=65535).contains(&port) {
        errors.push("spec.metrics.port", format!("{port} is not a port"));
    } else if let Some((role, name, _)) = taken.iter().find(|(_, _, p)| *p == port) {
        errors
            .push("spec.metrics.port", format!("{port} is the {role}'s {name} port; use another, e.g. {DEFAULT_PORT}"));
    }
    let mut config_files = BTreeMap::new();
    for (key, path) in &spec.config_files {
        let field = format!("spec.metrics.configFiles[{key:?}]");
        match key.parse::<Role>() {
            Err(_) => errors.push(field, format!("{key:?} is not a Pinot role; use controller, broker, server or minion")),
            Ok(_) if !path.starts_with('/') || path.contains([' ', ':', ',']) => errors.push(
                field,
                format!("{path:?} is not an absolute path without spaces, ':' or ','; give the rules file's path in the container"),
            ),
            Ok(role) => {
                config_files.insert(role, path.clone());
            }
        }
    }
    spec.enabled.unwrap_or(true).then_some(ValidMetrics { port, config_files })
}
