//! The operator's client for a Pinot controller's REST API, and how the operator finds each
//! cluster's controller.
//!
//! In a Kubernetes cluster the controller is reached through its Service DNS name. Out of the
//! cluster (the sandbox, a laptop) the same code path is used with another URL: the operator's
//! `--controller-url-template` (e.g. `http://127.0.0.1:19000/clusters/{namespace}/{name}`), or
//! for one cluster its `pinot.controlplane.dev/controller-url` annotation.

use std::time::Duration;

use kube::ResourceExt;
use pinot_crds::PinotCluster;
use serde_json::Value;

/// Annotation on a PinotCluster that sets its controller's base URL explicitly.
pub const ANNOTATION_CONTROLLER_URL: &str = "pinot.controlplane.dev/controller-url";

/// The default: the cluster's controller Service, from inside the Kubernetes cluster.
pub const DEFAULT_CONTROLLER_URL_TEMPLATE: &str = "http://{name}-controller.{namespace}.svc.cluster.local:9000";

/// Finds the base URL of each cluster's Pinot controller.
#[derive(Clone, Debug)]
pub struct ControllerLocator {
    template: String,
}

impl Default for ControllerLocator {
    fn default() -> Self {
        Self { template: DEFAULT_CONTROLLER_URL_TEMPLATE.into() }
    }
}

impl ControllerLocator {
    /// `template` may use `{name}` and `{namespace}`.
    pub fn new(template: impl Into<String>) -> Self {
        Self { template: template.into() }
    }

    pub fn url_for(&self, cluster: &PinotCluster) -> String {
        if let Some(url) = cluster.annotations().get(ANNOTATION_CONTROLLER_URL).filter(|u| !u.trim().is_empty()) {
            return url.trim().trim_end_matches('/').to_string();
        }
        self.template
            .replace("{name}", &cluster.name_any())
            .replace("{namespace}", &cluster.namespace().unwrap_or_default())
            .trim_end_matches('/')
            .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PinotError {
    #[error("Pinot controller at {url} is not reachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Pinot controller answered {status} to {method} {url}: {message}")]
    Refused { method: &'static str, url: String, status: u16, message: String },
    #[error("Pinot controller sent an answer to {url} that is not what its API documents: {message}")]
    Decode { url: String, message: String },
}

/// A client for one Pinot controller.
#[derive(Clone, Debug)]
pub struct PinotClient {
    http: reqwest::Client,
    base: String,
}

/// A shared HTTP client with the timeouts every Pinot call uses.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client with timeouts builds")
}

impl PinotClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self { http, base: base.into() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<(u16, String), PinotError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| PinotError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
        let status = resp.status().as_u16();
        let text =
            resp.text().await.map_err(|e| PinotError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
        Ok((status, text))
    }

    async fn get_json(&self, path: &str) -> Result<Value, PinotError> {
        let url = format!("{}{path}", self.base);
        let (status, text) = self.get(path).await?;
        if !(200..300).contains(&status) {
            return Err(PinotError::Refused { method: "GET", url, status, message: pinot_message(&text) });
        }
        serde_json::from_str(&text).map_err(|e| PinotError::Decode { url, message: e.to_string() })
    }

    /// `GET /health`: Ok when the controller says it is ready.
    pub async fn health(&self) -> Result<(), PinotError> {
        let (status, text) = self.get("/health").await?;
        if status == 200 {
            Ok(())
        } else {
            Err(PinotError::Refused {
                method: "GET",
                url: format!("{}/health", self.base),
                status,
                message: pinot_message(&text),
            })
        }
    }

    /// `GET /instances`: every instance Helix knows, live or not.
    pub async fn instances(&self) -> Result<Vec<String>, PinotError> {
        let v = self.get_json("/instances").await?;
        Ok(string_list(&v, "instances"))
    }

    /// `GET /liveinstances`: the instances that are live now.
    pub async fn live_instances(&self) -> Result<Vec<String>, PinotError> {
        let v = self.get_json("/liveinstances").await?;
        Ok(string_list(&v, "liveInstances"))
    }

    /// `GET /instances/{id}`: whether the instance is enabled, its tags and whether its queries
    /// are disabled.
    pub async fn instance(&self, id: &str) -> Result<InstanceInfo, PinotError> {
        let v = self.get_json(&format!("/instances/{id}")).await?;
        Ok(InstanceInfo {
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            queries_disabled: v.get("queriesDisabled").and_then(Value::as_bool).unwrap_or(false),
            tags: v
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        })
    }

    /// `PUT /instances/{id}/state?state=...`: `queries_disable` takes a server out of query
    /// routing before it restarts, `queries_enable` puts it back.
    pub async fn set_instance_state(&self, id: &str, state: &str) -> Result<(), PinotError> {
        let url = format!("{}/instances/{id}/state", self.base);
        let resp = self
            .http
            .put(&url)
            .query(&[("state", state)])
            .send()
            .await
            .map_err(|e| PinotError::Unreachable { url: url.clone(), message: error_chain(&e) })?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(PinotError::Refused { method: "PUT", url, status, message: pinot_message(&text) })
    }
}

/// What the controller says about one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub enabled: bool,
    pub queries_disabled: bool,
    pub tags: Vec<String>,
}

/// A list of names, whether Pinot sends a bare array or an object holding one.
fn string_list(v: &Value, key: &str) -> Vec<String> {
    let list = match v {
        Value::Array(a) => Some(a),
        Value::Object(o) => o.get(key).and_then(Value::as_array).or_else(|| o.values().find_map(Value::as_array)),
        _ => None,
    };
    list.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

/// Pinot's own error message (`{"code": .., "error": ".."}`), or the body as it is.
pub fn pinot_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(500).collect())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// The id Pinot gives the instance running in a pod of a pool: `<Role>_<pod host>_<port>`.
pub fn instance_id(role: crate::role::Role, pod: &str, headless_service: &str, namespace: &str) -> String {
    format!(
        "{}_{pod}.{headless_service}.{namespace}.svc.cluster.local_{}",
        role.instance_prefix(),
        role.instance_port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    #[test]
    fn urls_come_from_the_annotation_or_the_template() {
        let mut cluster: PinotCluster = serde_yaml::from_str(
            "apiVersion: pinot.controlplane.dev/v1alpha1\nkind: PinotCluster\nmetadata: {name: a, namespace: n}\nspec: {image: i, zookeeper: {connectString: z}}\n",
        )
        .unwrap();
        assert_eq!(ControllerLocator::default().url_for(&cluster), "http://a-controller.n.svc.cluster.local:9000");
        let local = ControllerLocator::new("http://127.0.0.1:19000/clusters/{namespace}/{name}/");
        assert_eq!(local.url_for(&cluster), "http://127.0.0.1:19000/clusters/n/a");
        cluster.metadata.annotations =
            Some([(ANNOTATION_CONTROLLER_URL.to_string(), "https://pinot.example:9443/".to_string())].into());
        assert_eq!(local.url_for(&cluster), "https://pinot.example:9443");
    }

    #[test]
    fn instance_ids_are_what_pinot_registers() {
        assert_eq!(
            instance_id(Role::Server, "a-srv-0", "a-srv-headless", "n"),
            "Server_a-srv-0.a-srv-headless.n.svc.cluster.local_8098"
        );
        assert_eq!(
            instance_id(Role::Controller, "a-c-0", "a-c-headless", "n"),
            "Controller_a-c-0.a-c-headless.n.svc.cluster.local_9000"
        );
    }

    #[test]
    fn lists_are_read_from_arrays_and_objects() {
        assert_eq!(string_list(&serde_json::json!(["a", "b"]), "x"), vec!["a", "b"]);
        assert_eq!(string_list(&serde_json::json!({"liveInstances": ["a"]}), "liveInstances"), vec!["a"]);
        assert_eq!(pinot_message(r#"{"code":404,"error":"Table x does not exist"}"#), "Table x does not exist");
    }
}
