//! The operator's client for a Pinot controller's REST API, and how the operator finds each
//! cluster's controller.
//!
//! In a Kubernetes cluster the controller is reached through its Service DNS name. Out of the
//! cluster (the sandbox, a laptop) the same code path is used with another URL: the operator's
//! `--controller-url-template` (e.g. `http://127.0.0.1:19000/clusters/{namespace}/{name}`), or
//! for one cluster its `pinot.controlplane.dev/controller-url` annotation.

mod release;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use kube::ResourceExt;
use pinot_crds::PinotCluster;
use serde_json::Value;

pub use self::release::{ClusterRelease, PinotRelease};

/// The cluster DNS domain when the operator is not told another (`--cluster-domain`).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Annotation on a PinotCluster that sets its controller's base URL explicitly.
pub const ANNOTATION_CONTROLLER_URL: &str = "pinot.controlplane.dev/controller-url";

/// The default: the cluster's controller Service, from inside the Kubernetes cluster
/// (`{domain}` is the cluster DNS domain, `--cluster-domain`).
pub const DEFAULT_CONTROLLER_URL_TEMPLATE: &str = "http://{name}-controller.{namespace}.svc.{domain}:9000";

/// Finds the base URL of each cluster's Pinot controller.
#[derive(Clone, Debug)]
pub struct ControllerLocator {
    template: String,
    domain: String,
}

impl Default for ControllerLocator {
    fn default() -> Self {
        Self::new(DEFAULT_CONTROLLER_URL_TEMPLATE)
    }
}

impl ControllerLocator {
    /// `template` may use `{name}`, `{namespace}` and `{domain}` (the cluster DNS domain).
    pub fn new(template: impl Into<String>) -> Self {
        Self { template: template.into(), domain: DEFAULT_CLUSTER_DOMAIN.into() }
    }

    /// The same locator for a cluster whose DNS domain is `domain`.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = domain.into();
        self
    }

    pub fn url_for(&self, cluster: &PinotCluster) -> String {
        if let Some(url) = cluster.annotations().get(ANNOTATION_CONTROLLER_URL).filter(|u| !u.trim().is_empty()) {
            return url.trim().trim_end_matches('/').to_string();
        }
        self.template
            .replace("{name}", &cluster.name_any())
            .replace("{namespace}", &cluster.namespace().unwrap_or_default())
            .replace("{domain}", &self.domain)
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
    /// The release whose API the client speaks: calls and parameters another release lacks are
    /// not made. The oldest supported release until the caller knows better.
    release: PinotRelease,
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
        Self { http, base: base.into(), auth: None, release: PinotRelease::OLDEST }
    }

    /// The same client, speaking `release`'s API.
    pub fn with_release(mut self, release: PinotRelease) -> Self {
        self.release = release;
        self
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

    /// `GET /liveinstances`: the instances that are live now (`{"instances": [...]}`, the shape
    /// of `GET /instances`, at every release).
    pub async fn live_instances(&self) -> Result<Vec<String>, PinotError> {
        let v = self.get_json("/liveinstances").await?;
        Ok(string_list(&v, "instances"))
    }

    /// `GET /version`: the controller's Pinot version without its git sha (`1.2.0`,
    /// `1.6.0-SNAPSHOT`), `None` when it says nothing (`{}`, as some images do). The answer
    /// maps each Pinot jar to `<version>-<sha>`; any value will do.
    pub async fn version(&self) -> Result<Option<String>, PinotError> {
        let v = self.get_json("/version").await?;
        let mut versions: Vec<&str> = v.as_object().into_iter().flatten().filter_map(|(_, v)| v.as_str()).collect();
        // A value that names a known release first, then any.
        versions.sort_by_key(|v| PinotRelease::from_version(v).is_none());
        Ok(versions.first().map(|v| strip_git_sha(v)))
    }

    /// `GET /instances/{id}`: the instance's config as the controller reports it.
    pub async fn instance(&self, id: &str) -> Result<InstanceInfo, PinotError> {
        let path = format!("/instances/{id}");
        let v = self.get_json(&path).await?;
        InstanceInfo::from_json(&v)
            .map_err(|message| PinotError::Decode { url: format!("{}{path}", self.base), message })
    }

    /// Whether a server's shutdown (or start) is in progress, as its instance's ZooKeeper record
    /// says (`GET /zk/get` on `/<helix_cluster>/CONFIGS/PARTICIPANT/<id>`): the way to read it
    /// before 1.5.0, whose `GET /instances/{id}` does not report it. `false` when the record is
    /// missing.
    pub async fn zk_shutdown_in_progress(&self, helix_cluster: &str, id: &str) -> Result<bool, PinotError> {
        let path = "/zk/get";
        let znode = format!("/{helix_cluster}/CONFIGS/PARTICIPANT/{id}");
        let (_, text) = self.call(reqwest::Method::GET, path, &[("path", znode.as_str())], None, &[404]).await?;
        if text.trim().is_empty() {
            return Ok(false);
        }
        let record = decode(&self.base, path, &text)?;
        Ok(record.pointer("/simpleFields/shutdownInProgress").and_then(Value::as_str).is_some_and(is_true))
    }

    /// How many of the lead-controller resource's partitions have no leading controller now
    /// (`GET /leader/tables`; 0 when the resource is disabled, since the Helix cluster leader
    /// then leads every table). A table whose partition has no leader gets no segment commits
    /// and no periodic tasks until one takes it.
    pub async fn leaderless_partitions(&self) -> Result<u32, PinotError> {
        let v = self.get_json("/leader/tables").await?;
        if v.get("leadControllerResourceEnabled").and_then(Value::as_bool) != Some(true) {
            return Ok(0);
        }
        let entries = v.get("leadControllerEntryMap").and_then(Value::as_object);
        Ok(entries
            .into_iter()
            .flatten()
            .filter(|(_, entry)| entry.get("leadControllerId").and_then(Value::as_str).is_none_or(str::is_empty))
            .count() as u32)
    }

    /// Takes a server's queries out of the brokers' routing (`disabled`) or puts them back,
    /// without restarting it. Master has a field-scoped call for it
    /// (`PUT /instances/{id}/state?state=queries_disable|queries_enable`); every release answers
    /// that with 400, and there the only way is `PUT /instances/{id}` with the instance's whole
    /// config and `queriesDisabled` (a partial body deletes its tags, pools and ports), read
    /// just before and checked just after.
    pub async fn set_queries_disabled(&self, id: &str, disabled: bool) -> Result<(), PinotError> {
        if self.release.has_queries_state() {
            let state = if disabled { "queries_disable" } else { "queries_enable" };
            return self.set_instance_state(id, state).await;
        }
        let before = self.instance(id).await?;
        self.rewrite_instance(id, &before, disabled, &before.pools).await
    }

    /// Sets the Pinot pools of instance `id` for the tags in `set` (its pools for other tags
    /// stay): Pinot has no pools-only endpoint, so this is `GET /instances/{id}`, then
    /// `PUT /instances/{id}?updateBrokerResource=false` with the whole instance as read (host,
    /// port, tags, the other ports, `queriesDisabled` as it is) and the pools changed, then a
    /// `GET` that checks the pools are set and nothing else moved. Returns the pools before.
    /// The PUT replaces the instance config whole without a version check, so callers do not
    /// call it while the instance starts or stops (it could undo the instance's own writes).
    pub async fn set_instance_pools(
        &self,
        id: &str,
        set: &[(String, u32)],
    ) -> Result<std::collections::BTreeMap<String, i64>, PinotError> {
        let before = self.instance(id).await?;
        let mut pools = before.pools.clone();
        pools.extend(set.iter().map(|(tag, pool)| (tag.clone(), i64::from(*pool))));
        if pools != before.pools {
            self.rewrite_instance(id, &before, before.queries_disabled, &pools).await?;
        }
        Ok(before.pools)
    }

    /// `PUT /instances/{id}?updateBrokerResource=false` with the instance's whole config as
    /// `before` read it but `queriesDisabled` and `pools` as given (a partial body deletes its
    /// tags, pools and ports), then a `GET` that checks both are set and its tags did not move.
    async fn rewrite_instance(
        &self,
        id: &str,
        before: &InstanceInfo,
        queries_disabled: bool,
        pools: &std::collections::BTreeMap<String, i64>,
    ) -> Result<(), PinotError> {
        let path = format!("/instances/{id}");
        let url = format!("{}{path}", self.base);
        let body = before
            .update_body(id, queries_disabled, pools)
            .map_err(|message| PinotError::Decode { url: url.clone(), message })?;
        self.call(reqwest::Method::PUT, &path, &[("updateBrokerResource", "false")], Some(&body), &[]).await?;
        let after = self.instance(id).await?;
        if after.queries_disabled != queries_disabled || after.tags != before.tags || after.pools != *pools {
            return Err(PinotError::Decode {
                url,
                message: format!(
                    "after the update the instance has queriesDisabled {} (asked {queries_disabled}), tags [{}] (were \
                     [{}]), pools {:?} (asked {pools:?})",
                    after.queries_disabled,
                    after.tags.join(","),
                    before.tags.join(","),
                    after.pools,
                ),
            });
        }
        Ok(())
    }

    /// `PUT /instances/{id}/state?state=enable|disable`: Helix enables or disables the instance
    /// (a disabled server unloads every segment: a scale-in step, never a restart step).
    pub async fn set_instance_enabled(&self, id: &str, enabled: bool) -> Result<(), PinotError> {
        self.set_instance_state(id, if enabled { "enable" } else { "disable" }).await
    }

    /// Drains a minion: it takes no new tasks. From 1.5.0 `state=drain` (Pinot replaces its
    /// tags with `minion_drained` and keeps the old ones); before, there is no drain state and
    /// the same tag is set with `updateTags`, which is all the drain does for task scheduling.
    pub async fn drain_minion(&self, id: &str) -> Result<(), PinotError> {
        if self.release.has_drain_state() {
            self.set_instance_state(id, "drain").await
        } else {
            self.update_tags(id, &[MINION_DRAINED.to_string()]).await
        }
    }

    /// `PUT /instances/{id}/state?state=...` (no body: the endpoint consumes `text/plain`).
    async fn set_instance_state(&self, id: &str, state: &str) -> Result<(), PinotError> {
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

    /// Every table with what placement, scaling and upgrades need: for each raw table of
    /// `GET /tables`, its configs (`GET /tables/{name}`: replication, tenant tags), where its
    /// segments are (`GET /segments/{name}/servers`, Pinot's ideal state) and whether they are
    /// served (`GET /tables/{name}/externalview`).
    pub async fn table_placements(&self) -> Result<Vec<TablePlacement>, PinotError> {
        let tables = string_list(&self.get_json("/tables").await?, "tables");
        let per_table = futures::future::try_join_all(tables.iter().map(|raw| async move {
            let configs = self.table(raw).await?;
            if configs.is_empty() {
                // Deleted between the list and now.
                return Ok(vec![]);
            }
            let path = format!("/segments/{raw}/servers");
            let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
            let servers = if status == 404 { Value::Array(vec![]) } else { decode(&self.base, &path, &text)? };
            let path = format!("/tables/{raw}/externalview");
            let (status, text) = self.call(reqwest::Method::GET, &path, &[], None, &[404]).await?;
            let view = if status == 404 { Value::Null } else { decode(&self.base, &path, &text)? };
            Ok::<_, PinotError>(placements(raw, &configs, &servers, &view))
        }))
        .await?;
        Ok(per_table.into_iter().flatten().collect())
    }

    /// `POST /tables/{name}/rebalance?type=`: moves the table's segments onto the servers that
    /// carry its tags now, without downtime, consuming segments included, recomputing instance
    /// partitions. Every parameter whose default changed between releases is passed (1.2.0 and
    /// 1.3.0 default to `reassignInstances=false`, `includeConsuming=false`,
    /// `minAvailableReplicas=1`; 1.4.0+ to `true`, `true`, `-1`). One replica of each segment
    /// stays available while it moves, except with `replication` 1, where Pinot refuses
    /// `minAvailableReplicas=1` and 0 is the only choice without a full downtime. Pinot's job
    /// id; a rebalance Pinot finds nothing to do for (`NO_OP`) has none.
    pub async fn rebalance_table(&self, table_with_type: &str, replication: u32) -> Result<Option<String>, PinotError> {
        let (raw, kind) = split_table_type(table_with_type);
        let min_available = if replication > 1 { "1" } else { "0" };
        let query = [
            ("type", kind),
            ("dryRun", "false"),
            ("reassignInstances", "true"),
            ("includeConsuming", "true"),
            ("bootstrap", "false"),
            ("downtime", "false"),
            ("minAvailableReplicas", min_available),
            ("bestEfforts", "false"),
        ];
        let path = format!("/tables/{raw}/rebalance");
        let (_, text) = self.call(reqwest::Method::POST, &path, &query, None, &[]).await?;
        let v = decode(&self.base, &path, &text)?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or_default();
        match status {
            "FAILED" | "ABORTED" | "CANCELLED" | "UNKNOWN_ERROR" => Err(PinotError::Refused {
                method: "POST",
                url: format!("{}{path}", self.base),
                status: 200,
                message: format!(
                    "rebalance {status}: {}",
                    v.get("description").and_then(Value::as_str).unwrap_or("no description")
                ),
            }),
            "NO_OP" => Ok(None),
            _ => Ok(v.get("jobId").and_then(Value::as_str).map(str::to_string).filter(|j| !j.is_empty())),
        }
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
    /// Pinot answers `reload=true` with 404 `Failed to find table <name> to reload` when no table
    /// uses the schema yet (all releases): the change is then made without a reload, which has
    /// nothing to reload anyway.
    pub async fn update_schema(&self, name: &str, schema: &Value, reload: bool) -> Result<(), PinotError> {
        let path = format!("/schemas/{name}");
        if reload {
            let (status, _) =
                self.call(reqwest::Method::PUT, &path, &[("reload", "true")], Some(schema), &[404]).await?;
            if status != 404 {
                return Ok(());
            }
        }
        self.call(reqwest::Method::PUT, &path, &[("reload", "false")], Some(schema), &[]).await?;
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

/// The tag Pinot gives a drained minion in place of its others.
pub const MINION_DRAINED: &str = "minion_drained";

/// What the controller says about one instance (`GET /instances/{id}`, read with the JSON
/// types each release answers with: `port` a string, `pools` a map of strings or `null`,
/// `queriesDisabled` the string `"true"` or absent, `shutdownInProgress` a boolean from 1.5.0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub enabled: bool,
    pub queries_disabled: bool,
    pub tags: Vec<String>,
    /// Pool number per tag (`pools`), for pool-based replica-group assignment.
    pub pools: BTreeMap<String, i64>,
    /// `shutdownInProgress`, when the release reports it (1.5.0+).
    pub shutdown_in_progress: Option<bool>,
    pub host: String,
    pub port: Option<i64>,
    /// `grpcPort`, `adminPort`, `queryServicePort`, `queryMailboxPort` (-1 or absent: unset).
    pub grpc_port: i64,
    pub admin_port: i64,
    pub query_service_port: i64,
    pub query_mailbox_port: i64,
}

impl InstanceInfo {
    /// Reads the controller's answer, accepting the type each field has at some release (and
    /// a boolean where Pinot sends a string, should one ever do so). Only a non-object, or a
    /// field of a type no release sends, is an error.
    pub fn from_json(v: &Value) -> Result<InstanceInfo, String> {
        let object = v.as_object().ok_or("the instance is not a JSON object")?;
        let flag = |key: &str| -> Result<Option<bool>, String> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(Value::String(s)) => Ok(Some(is_true(s))),
                Some(other) => Err(format!("field {key} is {other}, neither a boolean nor \"true\"/\"false\"")),
            }
        };
        let integer = |key: &str| -> Result<Option<i64>, String> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(format!("field {key} is {n}, not an integer")),
                Some(Value::String(s)) => {
                    s.trim().parse().map(Some).map_err(|_| format!("field {key} is \"{s}\", not an integer"))
                }
                Some(other) => Err(format!("field {key} is {other}, not an integer")),
            }
        };
        let tags = match object.get("tags") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(other) => return Err(format!("field tags is {other}, not a list")),
        };
        let pools = match object.get("pools") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(tag, pool)| {
                    let n = match pool {
                        Value::Number(n) => n.as_i64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    n.map(|n| (tag.clone(), n)).ok_or(format!("pool of tag {tag} is {pool}, not a number"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("field pools is {other}, not a map")),
        };
        Ok(InstanceInfo {
            enabled: flag("enabled")?.unwrap_or(true),
            queries_disabled: flag("queriesDisabled")?.unwrap_or(false),
            tags,
            pools,
            shutdown_in_progress: flag("shutdownInProgress")?,
            host: object.get("hostName").and_then(Value::as_str).unwrap_or_default().to_string(),
            port: integer("port")?,
            grpc_port: integer("grpcPort")?.unwrap_or(-1),
            admin_port: integer("adminPort")?.unwrap_or(-1),
            query_service_port: integer("queryServicePort")?.unwrap_or(-1),
            query_mailbox_port: integer("queryMailboxPort")?.unwrap_or(-1),
        })
    }

    /// The body of `PUT /instances/{id}` that keeps everything this instance has and sets
    /// `queriesDisabled` and `pools` (numbers, per tag): Pinot replaces the instance's host,
    /// port, tags, pools and ports with the body's, dropping what the body leaves out.
    pub fn update_body(
        &self,
        id: &str,
        queries_disabled: bool,
        pools: &std::collections::BTreeMap<String, i64>,
    ) -> Result<Value, String> {
        let kind = match id.split('_').next() {
            Some("Server") => "SERVER",
            Some("Broker") => "BROKER",
            Some("Controller") => "CONTROLLER",
            Some("Minion") => "MINION",
            _ => return Err(format!("{id} is not a Pinot instance id (Server_, Broker_, Controller_ or Minion_)")),
        };
        let port = self.port.ok_or(format!("Pinot reports no port for {id}; its config cannot be rewritten whole"))?;
        if self.host.is_empty() {
            return Err(format!("Pinot reports no host name for {id}; its config cannot be rewritten whole"));
        }
        let mut body = serde_json::json!({
            "host": self.host,
            "port": port,
            "type": kind,
            "tags": self.tags,
            "queriesDisabled": queries_disabled,
        });
        if !pools.is_empty() {
            body["pools"] = serde_json::json!(pools);
        }
        for (key, port) in [
            ("grpcPort", self.grpc_port),
            ("adminPort", self.admin_port),
            ("queryServicePort", self.query_service_port),
            ("queryMailboxPort", self.query_mailbox_port),
        ] {
            if port > 0 {
                body[key] = port.into();
            }
        }
        Ok(body)
    }
}

/// `true` for Pinot's `"true"` in any case.
fn is_true(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("true")
}

/// `1.2.0` from `1.2.0-8a3d7c1f`, `1.6.0-SNAPSHOT` from `1.6.0-SNAPSHOT-210c2951e72`: what
/// `GET /version` appends is the build's git sha.
fn strip_git_sha(version: &str) -> String {
    let version = version.trim();
    match version.rsplit_once('-') {
        Some((head, tail)) if tail != "SNAPSHOT" && !tail.is_empty() && tail.chars().all(|c| c.is_ascii_hexdigit()) => {
            head.to_string()
        }
        _ => version.to_string(),
    }
}

/// One table (of one type) as placement, scaling and upgrades see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablePlacement {
    /// Name with type, e.g. `airlineStats_OFFLINE`.
    pub name: String,
    pub replication: u32,
    pub server_tag: String,
    pub broker_tag: String,
    /// Segments in the ideal state.
    pub segments: u32,
    /// Segments per server (ideal state).
    pub servers: BTreeMap<String, u32>,
    /// Per server, segments the ideal state gives it that the external view does not show
    /// ONLINE or CONSUMING on it (loading, offline, or in ERROR).
    pub not_serving: BTreeMap<String, u32>,
    /// Per server, its segments in ERROR in the external view.
    pub errors: BTreeMap<String, u32>,
    /// Per server, the other servers holding a replica of at least one of its segments.
    pub peers: BTreeMap<String, BTreeSet<String>>,
    /// The distinct sets of servers a segment is given to (ideal state), with how many
    /// segments each holds: few with replica groups (one set per position in the groups).
    pub holder_sets: BTreeMap<BTreeSet<String>, u32>,
    /// The pool-based replica-group assignment the config asks for (`OFFLINE`, or
    /// `CONSUMING` for REALTIME, in `instanceAssignmentConfigMap`), if any.
    pub replica_groups: Option<ReplicaGroups>,
}

/// A table's pool-based replica-group instance assignment, as its config asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaGroups {
    /// The tag whose instances are the candidates.
    pub tag: String,
    /// `numReplicaGroups`.
    pub groups: u32,
    /// `numPools` (0: every pool).
    pub pools: u32,
}

impl ReplicaGroups {
    /// From one entry of `instanceAssignmentConfigMap`: only a pool-based, replica-group based
    /// one.
    pub fn of(entry: &Value) -> Option<ReplicaGroups> {
        let tags = &entry["tagPoolConfig"];
        let groups = &entry["replicaGroupPartitionConfig"];
        if tags["poolBased"].as_bool() != Some(true) || groups["replicaGroupBased"].as_bool() != Some(true) {
            return None;
        }
        Some(ReplicaGroups {
            tag: tags["tag"].as_str()?.to_string(),
            groups: groups["numReplicaGroups"].as_u64().and_then(|n| u32::try_from(n).ok())?,
            pools: tags["numPools"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        })
    }
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

/// The placements of one raw table's types, from its configs, `/segments/{t}/servers` (the
/// ideal state) and `/tables/{t}/externalview` (`{"OFFLINE": {segment: {server: state}}, ...}`).
fn placements(raw: &str, configs: &BTreeMap<String, Value>, servers: &Value, view: &Value) -> Vec<TablePlacement> {
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
            // Segment -> servers the ideal state gives it.
            let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for entry in servers.as_array().into_iter().flatten() {
                if entry.get("tableName").and_then(Value::as_str).is_some_and(|t| t != name) {
                    continue;
                }
                for (server, segments) in entry["serverToSegmentsMap"].as_object().into_iter().flatten() {
                    for segment in segments.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        holders.entry(segment).or_default().push(server);
                    }
                }
            }
            let states = view.get(kind.as_str()).and_then(Value::as_object);
            let assignment =
                &config["instanceAssignmentConfigMap"][if kind == "REALTIME" { "CONSUMING" } else { "OFFLINE" }];
            let mut placement = TablePlacement {
                server_tag: format!("{}_{kind}", tenant("server")),
                broker_tag: format!("{}_BROKER", tenant("broker")),
                name,
                replication,
                segments: holders.len() as u32,
                replica_groups: ReplicaGroups::of(assignment),
                ..Default::default()
            };
            for (segment, servers) in &holders {
                let set = servers.iter().map(|s| s.to_string()).collect();
                *placement.holder_sets.entry(set).or_insert(0) += 1;
                for server in servers {
                    *placement.servers.entry(server.to_string()).or_insert(0) += 1;
                    let state =
                        states.and_then(|s| s.get(*segment)).and_then(|s| s.get(*server)).and_then(Value::as_str);
                    if !matches!(state, Some("ONLINE" | "CONSUMING")) {
                        *placement.not_serving.entry(server.to_string()).or_insert(0) += 1;
                    }
                    if state == Some("ERROR") {
                        *placement.errors.entry(server.to_string()).or_insert(0) += 1;
                    }
                    let peers = placement.peers.entry(server.to_string()).or_default();
                    peers.extend(servers.iter().filter(|s| *s != server).map(|s| s.to_string()));
                }
            }
            placement
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

/// The cluster DNS domain a pod's resolver searches (`search <ns>.svc.<domain> svc.<domain>
/// <domain>` in a pod's /etc/resolv.conf), when it says.
pub fn cluster_domain_from_resolv_conf(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("search"))
        .flat_map(str::split_whitespace)
        .find_map(|entry| entry.strip_prefix("svc.").map(|d| d.trim_end_matches('.').to_string()))
        .filter(|d| !d.is_empty())
}

/// The id Pinot gives the instance running in a pod of a pool: `<Role>_<pod host>_<port>`, the
/// host being the pod's DNS name under the pool's headless Service in the cluster DNS `domain`.
pub fn instance_id(
    role: crate::role::Role,
    pod: &str,
    headless_service: &str,
    namespace: &str,
    domain: &str,
) -> String {
    format!("{}_{pod}.{headless_service}.{namespace}.svc.{domain}_{}", role.instance_prefix(), role.instance_port())
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
            instance_id(Role::Server, "a-srv-0", "a-srv-headless", "n", "cluster.local"),
            "Server_a-srv-0.a-srv-headless.n.svc.cluster.local_8098"
        );
        assert_eq!(
            instance_id(Role::Controller, "a-c-0", "a-c-headless", "n", "corp.example"),
            "Controller_a-c-0.a-c-headless.n.svc.corp.example_9000"
        );
    }

    #[test]
    fn instances_are_read_with_the_types_each_release_answers_with() {
        // 1.2.0 - 1.4.0: port a string, pools strings or null, queriesDisabled the string
        // "true" only when set, no shutdownInProgress.
        let v = serde_json::json!({
            "instanceName": "Server_h_8098", "hostName": "h", "enabled": true, "port": "8098",
            "tags": ["DefaultTenant_OFFLINE"], "pools": {"DefaultTenant_OFFLINE": "1"},
            "grpcPort": 8090, "adminPort": 8097, "queryServicePort": 7321, "queryMailboxPort": -1,
            "queriesDisabled": "true", "systemResourceInfo": null
        });
        let info = InstanceInfo::from_json(&v).unwrap();
        assert!(info.queries_disabled, "the string \"true\" is a disabled flag");
        assert_eq!(info.port, Some(8098));
        assert_eq!(info.pools, BTreeMap::from([("DefaultTenant_OFFLINE".to_string(), 1)]));
        assert_eq!(info.shutdown_in_progress, None);
        let v = serde_json::json!({"hostName": "h", "enabled": false, "port": "8098", "tags": [], "pools": null});
        let info = InstanceInfo::from_json(&v).unwrap();
        assert!(!info.queries_disabled && !info.enabled && info.pools.is_empty());
        // 1.5.0+: shutdownInProgress, a boolean, always there.
        let v = serde_json::json!({"hostName": "h", "port": "8098", "tags": [], "shutdownInProgress": true});
        assert_eq!(InstanceInfo::from_json(&v).unwrap().shutdown_in_progress, Some(true));
        // A shape no release has is an error that names the field.
        let err = InstanceInfo::from_json(&serde_json::json!({"queriesDisabled": 3})).unwrap_err();
        assert!(err.contains("queriesDisabled"), "{err}");
        assert!(InstanceInfo::from_json(&serde_json::json!(["x"])).is_err());
    }

    #[test]
    fn a_whole_config_update_keeps_everything_the_instance_has() {
        let v = serde_json::json!({
            "hostName": "s-0.h.ns.svc.cluster.local", "enabled": true, "port": "8098",
            "tags": ["a_OFFLINE", "a_REALTIME"], "pools": {"a_OFFLINE": "0"},
            "grpcPort": 8090, "adminPort": 8097, "queryServicePort": 7321, "queryMailboxPort": 7732
        });
        let info = InstanceInfo::from_json(&v).unwrap();
        let body = info.update_body("Server_s-0.h.ns.svc.cluster.local_8098", true, &info.pools).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "host": "s-0.h.ns.svc.cluster.local", "port": 8098, "type": "SERVER",
                "tags": ["a_OFFLINE", "a_REALTIME"], "pools": {"a_OFFLINE": 0}, "queriesDisabled": true,
                "grpcPort": 8090, "adminPort": 8097, "queryServicePort": 7321, "queryMailboxPort": 7732
            })
        );
        // New pools: numbers per tag (Pinot stores them as strings; it reads numbers), the rest
        // as it was.
        let pools = BTreeMap::from([("a_OFFLINE".to_string(), 2), ("a_REALTIME".to_string(), 2)]);
        let body = info.update_body("Server_s-0.h.ns.svc.cluster.local_8098", false, &pools).unwrap();
        assert_eq!(body["pools"], serde_json::json!({"a_OFFLINE": 2, "a_REALTIME": 2}));
        assert_eq!(
            (&body["tags"], &body["queriesDisabled"], &body["grpcPort"]),
            (&v["tags"], &false.into(), &8090.into())
        );
        // Without the host and port Pinot needs, nothing is sent.
        assert!(InstanceInfo::default().update_body("Server_x_8098", false, &pools).is_err());
        assert!(info.update_body("Helix_x", false, &pools).is_err());
    }

    #[test]
    fn versions_lose_their_git_sha() {
        assert_eq!(strip_git_sha("1.2.0-8a3d7c1f0e"), "1.2.0");
        assert_eq!(strip_git_sha("1.6.0-SNAPSHOT-210c2951e72"), "1.6.0-SNAPSHOT");
        assert_eq!(strip_git_sha("1.6.0-SNAPSHOT"), "1.6.0-SNAPSHOT");
        assert_eq!(strip_git_sha("1.5.1"), "1.5.1");
    }

    #[test]
    fn the_cluster_domain_is_the_resolvers_svc_search_entry() {
        let text = "search ns.svc.corp.example svc.corp.example corp.example\nnameserver 10.0.0.10\noptions ndots:5\n";
        assert_eq!(cluster_domain_from_resolv_conf(text).as_deref(), Some("corp.example"));
        assert_eq!(cluster_domain_from_resolv_conf("nameserver 1.1.1.1\n"), None);
    }

    #[test]
    fn placements_say_which_segments_a_server_does_not_serve_and_who_shares_them() {
        let configs = BTreeMap::from([(
            "OFFLINE".to_string(),
            serde_json::json!({"segmentsConfig": {"replication": "2"}, "tenants": {"server": "t"}}),
        )]);
        let servers = serde_json::json!([{"tableName": "x_OFFLINE", "serverToSegmentsMap": {
            "S1": ["s0", "s1"], "S2": ["s0"], "S3": ["s1"]
        }}]);
        let view = serde_json::json!({"OFFLINE": {
            "s0": {"S1": "ONLINE", "S2": "OFFLINE"},
            "s1": {"S1": "ONLINE", "S3": "ERROR"}
        }, "REALTIME": null});
        let p = &placements("x", &configs, &servers, &view)[0];
        assert_eq!(
            (p.name.as_str(), p.replication, p.server_tag.as_str(), p.segments),
            ("x_OFFLINE", 2, "t_OFFLINE", 2)
        );
        assert_eq!(p.servers, BTreeMap::from([("S1".into(), 2), ("S2".into(), 1), ("S3".into(), 1)]));
        assert_eq!(p.not_serving, BTreeMap::from([("S2".into(), 1), ("S3".into(), 1)]));
        assert_eq!(p.errors, BTreeMap::from([("S3".into(), 1)]));
        assert_eq!(p.peers["S1"], BTreeSet::from(["S2".to_string(), "S3".to_string()]));
        assert_eq!(p.peers["S2"], BTreeSet::from(["S1".to_string()]));
        // No external view yet: nothing is served.
        let p = &placements("x", &configs, &servers, &Value::Null)[0];
        assert_eq!(p.not_serving.values().sum::<u32>(), 4);
    }

    #[test]
    fn lists_are_read_from_arrays_and_objects() {
        assert_eq!(string_list(&serde_json::json!(["a", "b"]), "x"), vec!["a", "b"]);
        assert_eq!(string_list(&serde_json::json!({"liveInstances": ["a"]}), "liveInstances"), vec!["a"]);
        assert_eq!(pinot_message(r#"{"code":404,"error":"Table x does not exist"}"#), "Table x does not exist");
    }
}
