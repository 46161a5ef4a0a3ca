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

impl PinotError {
    /// Whether trying again later may succeed: the controller was unreachable, timed out or
    /// failed on its side (5xx, 408, 429). A 4xx is Pinot refusing the request itself.
    pub fn is_transient(&self) -> bool {
        match self {
            PinotError::Unreachable { .. } | PinotError::Decode { .. } => true,
            PinotError::Refused { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        }
    }

    /// Pinot's own message, for a condition.
    pub fn pinot_message(&self) -> &str {
        match self {
            PinotError::Unreachable { message, .. }
            | PinotError::Refused { message, .. }
            | PinotError::Decode { message, .. } => message,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            PinotError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client for one Pinot controller.
#[derive(Clone, Debug)]
pub struct PinotClient {
    http: reqwest::Client,
    base: String,
    /// The `Authorization` header every request carries, when the controller wants one.
    auth: Option<reqwest::header::HeaderValue>,
}

/// Makes ring the process's TLS crypto provider (the one the Kubernetes client uses too).
/// reqwest is built without a provider of its own, so a process must call this before it
/// builds any reqwest client; calling it again does nothing.
pub fn install_tls_provider() {
    // Installing fails only when a provider is installed already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A shared HTTP client with the timeouts every Pinot call uses.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client with timeouts builds")
}

/// The settings of every client for Pinot: timeouts, and rustls with the ring provider (the
/// one the Kubernetes client uses too) for `https` controllers.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(10))
}

impl PinotClient {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Self {
        Self { http, base: base.into(), auth: None }
    }

    /// The same client, sending `authorization` (e.g. `Basic ...` or `Bearer ...`) with every
    /// request.
    pub fn with_auth(mut self, authorization: reqwest::header::HeaderValue) -> Self {
        self.auth = Some(authorization);
        self
    }

    /// Sends one request; the answer's status and body. Only an unreachable controller is an
    /// error here.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String), PinotError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).query(query);
        if let Some(auth) = &self.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let name = method_name(&method);
        let resp = request.send().await.map_err(|e| {
            crate::metrics::inc(
                "pinot_operator_pinot_requests_total",
                &[("method", name), ("endpoint", &crate::metrics::endpoint(path)), ("status", "unreachable")],
            );
            PinotError::Unreachable { url: url.clone(), message: error_chain(&e) }
        })?;
        let status = resp.status().as_u16();
        crate::metrics::inc(
            "pinot_operator_pinot_requests_total",
            &[("method", name), ("endpoint", &crate::metrics::endpoint(path)), ("status", &status.to_string())],
        );
        let text = resp.text().await.map_err(|e| PinotError::Unreachable { url, message: error_chain(&e) })?;
        Ok((status, text))
    }

    /// Sends one request and turns anything but a 2xx into [`PinotError::Refused`], unless its
    /// status is one of `also_fine` (e.g. 404 for a delete).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        also_fine: &[u16],
    ) -> Result<(u16, String), PinotError> {
        let name = method_name(&method);
        let (status, text) = self.send(method, path, query, body).await?;
        if (200..300).contains(&status) || also_fine.contains(&status) {
            Ok((status, text))
        } else {
            Err(PinotError::Refused {
                method: name,
                url: format!("{}{path}", self.base),
                status,
                message: pinot_message(&text),
            })
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<(u16, String), PinotError> {
        self.send(reqwest::Method::GET, path, &[], None).await
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
        self.call(reqwest::Method::PUT, &format!("/instances/{id}/state"), &[("state", state)], None, &[]).await?;
        Ok(())
    }

    /// `PUT /instances/{id}/updateTags`: replaces the instance's tags.
    pub async fn update_tags(&self, id: &str, tags: &[String]) -> Result<(), PinotError> {
        let tags = tags.join(",");
        let query = [("tags", tags.as_str()), ("updateBrokerResource", "true")];
        self.call(reqwest::Method::PUT, &format!("/instances/{id}/updateTags"), &query, None, &[]).await?;
        Ok(())
    }

    /// Segments per server instance over every table: `GET /tables`, then
    /// `GET /segments/{table}/servers` for each.
    pub async fn segments_per_server(&self) -> Result<std::collections::BTreeMap<String, u32>, PinotError> {
        let tables = string_list(&self.get_json("/tables").await?, "tables");
        let mut out = std::collections::BTreeMap::new();
        for table in tables {
            let path = format!("/segments/{table}/servers");
            let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
            if status == 404 {
                continue;
            }
            for entry in decode(&self.base, &path, &text)?.as_array().into_iter().flatten() {
                for (server, segments) in entry["serverToSegmentsMap"].as_object().into_iter().flatten() {
                    *out.entry(server.clone()).or_default() += segments.as_array().map_or(0, |a| a.len() as u32);
                }
            }
        }
        Ok(out)
    }

    /// Every table with what placement and scaling need: for each raw table of `GET /tables`,
    /// its configs (`GET /tables/{name}`: replication, tenant tags) and where its segments are
    /// (`GET /segments/{name}/servers`, Pinot's ideal state).
    pub async fn table_placements(&self) -> Result<Vec<TablePlacement>, PinotError> {
        let tables = string_list(&self.get_json("/tables").await?, "tables");
        let per_table = futures::future::try_join_all(tables.iter().map(|raw| async move {
            let configs = self.table(raw).await?;
            let path = format!("/segments/{raw}/servers");
            let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
            let servers = if status == 404 { Value::Array(vec![]) } else { decode(&self.base, &path, &text)? };
            Ok::<_, PinotError>(placements(raw, &configs, &servers))
        }))
        .await?;
        Ok(per_table.into_iter().flatten().collect())
    }

    /// `POST /tables/{name}/rebalance?type=`: moves the table's segments onto the servers that
    /// carry its tags now, without downtime (one replica of each segment stays available),
    /// consuming segments included. Pinot's job id.
    pub async fn rebalance_table(&self, table_with_type: &str) -> Result<String, PinotError> {
        let (raw, kind) = split_table_type(table_with_type);
        let query = [
            ("type", kind),
            ("dryRun", "false"),
            ("reassignInstances", "true"),
            ("includeConsuming", "true"),
            ("downtime", "false"),
            ("minAvailableReplicas", "1"),
        ];
        let path = format!("/tables/{raw}/rebalance");
        let (_, text) = self.call(reqwest::Method::POST, &path, &query, None, &[]).await?;
        let v = decode(&self.base, &path, &text)?;
        Ok(v.get("jobId").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    /// `GET /rebalanceStatus/{jobId}`: the job's status (`IN_PROGRESS`, `DONE`, `FAILED`, ...);
    /// `None` when Pinot no longer knows the job.
    pub async fn rebalance_status(&self, job: &str) -> Result<Option<String>, PinotError> {
        let path = format!("/rebalanceStatus/{job}");
        let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
        if status == 404 {
            return Ok(None);
        }
        let v = decode(&self.base, &path, &text)?;
        Ok(v.pointer("/tableRebalanceProgressStats/status").and_then(Value::as_str).map(str::to_string))
    }

    /// `DELETE /instances/{id}`: removes an instance from Pinot (refused while it is live or
    /// holds segments); one that is already gone is fine.
    pub async fn drop_instance(&self, id: &str) -> Result<(), PinotError> {
        self.call(reqwest::Method::DELETE, &format!("/instances/{id}"), &[], None, &[404]).await?;
        Ok(())
    }

    /// `GET /tenants/{name}/tables`: the tables that use a tenant.
    pub async fn tenant_tables(&self, tenant: &str) -> Result<Vec<String>, PinotError> {
        let path = format!("/tenants/{tenant}/tables");
        let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        Ok(string_list(&decode(&self.base, &path, &text)?, "tables"))
    }

    /// `DELETE /tenants/{name}?type=SERVER|BROKER`: Pinot takes the tenant's tags off its
    /// instances (400 while tables use it); a tenant that is already gone is fine.
    pub async fn delete_tenant(&self, tenant: &str, role: &str) -> Result<(), PinotError> {
        self.call(reqwest::Method::DELETE, &format!("/tenants/{tenant}"), &[("type", role)], None, &[404]).await?;
        Ok(())
    }

    /// `GET /schemas/{name}`: the live schema, `None` when Pinot has none of that name.
    pub async fn schema(&self, name: &str) -> Result<Option<Value>, PinotError> {
        let path = format!("/schemas/{name}");
        let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
        if status == 404 {
            return Ok(None);
        }
        decode(&self.base, &path, &text).map(Some)
    }

    /// `POST /schemas?override=false`: adds a new schema.
    pub async fn create_schema(&self, schema: &Value) -> Result<(), PinotError> {
        self.call(reqwest::Method::POST, "/schemas", &[("override", "false")], Some(schema), &[]).await?;
        Ok(())
    }

    /// `PUT /schemas/{name}?reload=`: changes a schema; with `reload`, Pinot reloads the
    /// segments of the tables using it.
    pub async fn update_schema(&self, name: &str, schema: &Value, reload: bool) -> Result<(), PinotError> {
        let reload = if reload { "true" } else { "false" };
        self.call(reqwest::Method::PUT, &format!("/schemas/{name}"), &[("reload", reload)], Some(schema), &[]).await?;
        Ok(())
    }

    /// `DELETE /schemas/{name}`; a schema that is already gone is fine.
    pub async fn delete_schema(&self, name: &str) -> Result<(), PinotError> {
        self.call(reqwest::Method::DELETE, &format!("/schemas/{name}"), &[], None, &[404]).await?;
        Ok(())
    }

    /// `GET /tables/{name}`: the live configs by table type (`OFFLINE`, `REALTIME`). Empty when
    /// the table does not exist, whether Pinot says so with a 404 (current Pinot) or with
    /// `200 {}` (older Pinot).
    pub async fn table(&self, raw_name: &str) -> Result<std::collections::BTreeMap<String, Value>, PinotError> {
        let path = format!("/tables/{raw_name}");
        let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
        if status == 404 {
            return Ok(Default::default());
        }
        match decode(&self.base, &path, &text)? {
            Value::Object(map) => Ok(map
                .into_iter()
                .filter(|(k, v)| matches!(k.as_str(), "OFFLINE" | "REALTIME") && v.is_object())
                .collect()),
            _ => Err(PinotError::Decode { url: format!("{}{path}", self.base), message: "not a JSON object".into() }),
        }
    }

    /// `POST /tables`: adds a table of the config's `tableType`.
    pub async fn create_table(&self, config: &Value) -> Result<(), PinotError> {
        self.call(reqwest::Method::POST, "/tables", &[], Some(config), &[]).await?;
        Ok(())
    }

    /// `PUT /tables/{name}`: changes the table of the config's `tableType`.
    pub async fn update_table(&self, raw_name: &str, config: &Value) -> Result<(), PinotError> {
        self.call(reqwest::Method::PUT, &format!("/tables/{raw_name}"), &[], Some(config), &[]).await?;
        Ok(())
    }

    /// `DELETE /tables/{name}?type=`: deletes one type of the table with its segments; a table
    /// that is already gone is fine.
    pub async fn delete_table(&self, raw_name: &str, table_type: &str) -> Result<(), PinotError> {
        let query = [("type", table_type)];
        self.call(reqwest::Method::DELETE, &format!("/tables/{raw_name}"), &query, None, &[404]).await?;
        Ok(())
    }
}

fn decode(base: &str, path: &str, text: &str) -> Result<Value, PinotError> {
    serde_json::from_str(text).map_err(|e| PinotError::Decode { url: format!("{base}{path}"), message: e.to_string() })
}

fn method_name(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// What the controller says about one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub enabled: bool,
    pub queries_disabled: bool,
    pub tags: Vec<String>,
}

/// One table (of one type) as placement and scaling see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePlacement {
    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub name: String,
    pub replication: u32,
    pub server_tag: String,
    pub broker_tag: String,
    /// Segments in the ideal state.
    pub segments: u32,
    /// Segments per server.
    pub servers: std::collections::BTreeMap<String, u32>,
}

/// `("airlineStats", "OFFLINE")` from `airlineStats_OFFLINE`.
pub fn split_table_type(table_with_type: &str) -> (&str, &str) {
    for kind in ["OFFLINE", "REALTIME"] {
        if let Some(raw) = table_with_type.strip_suffix(kind).and_then(|r| r.strip_suffix('_')) {
            return (raw, kind);
        }
    }
    (table_with_type, "OFFLINE")
}

/// The placements of one raw table's types, from its configs and `/segments/{t}/servers`.
fn placements(raw: &str, configs: &std::collections::BTreeMap<String, Value>, servers: &Value) -> Vec<TablePlacement> {
    configs
        .iter()
        .map(|(kind, config)| {
            let name = format!("{raw}_{kind}");
            let number = |v: Option<&Value>| {
                v.and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
            };
            let segments_config = config.get("segmentsConfig");
            // Realtime tables replicate per partition; `replication` is the older spelling.
            let replication = if kind == "REALTIME" {
                number(segments_config.and_then(|s| s.get("replicasPerPartition")))
                    .or_else(|| number(segments_config.and_then(|s| s.get("replication"))))
            } else {
                number(segments_config.and_then(|s| s.get("replication")))
            }
            .unwrap_or(1) as u32;
            let tenants = config.get("tenants");
            let tenant = |key: &str| {
                tenants.and_then(|t| t.get(key)).and_then(Value::as_str).unwrap_or("DefaultTenant").to_string()
            };
            let mut per_server = std::collections::BTreeMap::new();
            let mut names = std::collections::BTreeSet::new();
            for entry in servers.as_array().into_iter().flatten() {
                if entry.get("tableName").and_then(Value::as_str).is_some_and(|t| t != name) {
                    continue;
                }
                for (server, segments) in entry["serverToSegmentsMap"].as_object().into_iter().flatten() {
                    let list = segments.as_array().map(Vec::as_slice).unwrap_or_default();
                    *per_server.entry(server.clone()).or_insert(0) += list.len() as u32;
                    names.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
                }
            }
            TablePlacement {
                server_tag: format!("{}_{kind}", tenant("server")),
                broker_tag: format!("{}_BROKER", tenant("broker")),
                name,
                replication,
                segments: names.len() as u32,
                servers: per_server,
            }
        })
        .collect()
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
