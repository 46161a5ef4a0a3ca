//! The simulated clusters' state: schemas, tables, tenants (as instance tags), instances,
//! segments per server, jobs, the request log and the faults a test switched on.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Mutex, MutexGuard},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `(namespace, name)` of the PinotCluster a simulated cluster belongs to.
pub type ClusterKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum InstanceRole {
    Controller,
    Broker,
    Server,
    Minion,
}

impl InstanceRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "controller" => Some(Self::Controller),
            "broker" => Some(Self::Broker),
            "server" => Some(Self::Server),
            "minion" => Some(Self::Minion),
            _ => None,
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Self::Controller => "Controller",
            Self::Broker => "Broker",
            Self::Server => "Server",
            Self::Minion => "Minion",
        }
    }

    /// The port in the instance id, as Pinot builds it.
    pub fn port(self) -> u16 {
        match self {
            Self::Controller => 9000,
            Self::Broker => 8099,
            Self::Server => 8098,
            Self::Minion => 9514,
        }
    }

    /// The tag a new instance gets with tenant isolation on (Pinot's default), or off.
    fn default_tags(self, isolation: bool) -> Vec<String> {
        match (self, isolation) {
            (Self::Controller, _) => vec![],
            (Self::Broker, true) => vec!["DefaultTenant_BROKER".into()],
            (Self::Server, true) => vec!["DefaultTenant_OFFLINE".into(), "DefaultTenant_REALTIME".into()],
            (Self::Broker, false) => vec!["broker_untagged".into()],
            (Self::Server, false) => vec!["server_untagged".into()],
            (Self::Minion, _) => vec!["minion_untagged".into()],
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub role: InstanceRole,
    pub host: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub queries_disabled: bool,
    pub live: bool,
    /// Set when a minion was asked to drain.
    pub draining: bool,
    /// The pod this instance runs in, when the kubelet registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// One request as the simulator received it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path below the cluster's base URL, e.g. `/tables/airlineStats`.
    pub path: String,
    pub query: String,
    pub body: String,
    pub status: u16,
}

/// Faults a test can switch on for one cluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// The next N Pinot API calls fail with `failStatus` (default 500).
    pub fail_next: u32,
    pub fail_status: Option<u16>,
    /// Every Pinot API call is answered this much later.
    pub delay_ms: u64,
    /// `/health` answers 503 and every other call 503 too.
    pub unhealthy: bool,
    /// Answer `200 {}` for a missing table, as Pinot before 0.11 did, instead of 404.
    pub legacy_missing_table: bool,
    /// Answer 401 to every request whose `Authorization` header is not exactly this (Pinot
    /// with basic or token auth on).
    pub required_authorization: Option<String>,
    /// Rebalances run in the background and move one segment every this many milliseconds
    /// (their jobs say `IN_PROGRESS` until done), as Pinot's do; 0: they finish at once.
    pub rebalance_step_ms: u64,
}

/// What a test checks a scale-in against: what the simulator saw happen to data.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Servers whose pod stopped, or that were dropped, while they still held segments.
    pub removed_holding_segments: Vec<String>,
    /// Per table, the fewest live, enabled servers any of its segments had at any moment.
    pub lowest_replicas: BTreeMap<String, usize>,
}

/// A rebalance running in the background: the assignment it moves the table to.
#[derive(Clone, Debug, Default)]
pub struct PendingRebalance {
    pub job: String,
    pub target: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub table: String,
    pub status: String,
    pub submitted_by: String,
}

/// One simulated Pinot cluster.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Instances come and go with pods; the API is down while no controller is live.
    pub kubelet_managed: bool,
    /// Pinot's `cluster.tenant.isolation.enable` (default true).
    pub tenant_isolation: bool,
    pub schemas: BTreeMap<String, Value>,
    /// Table configs by name with type, e.g. `airlineStats_OFFLINE`.
    pub tables: BTreeMap<String, Value>,
    pub instances: BTreeMap<String, Instance>,
    /// Segments: table with type -> segment name -> servers holding it.
    pub segments: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    pub jobs: BTreeMap<String, Job>,
    pub faults: Faults,
    pub requests: Vec<RecordedRequest>,
    pub audit: Audit,
    /// Rebalances still moving segments, by table.
    #[serde(skip)]
    pub pending: BTreeMap<String, PendingRebalance>,
    #[serde(skip)]
    last_step: Option<std::time::Instant>,
    #[serde(skip)]
    next_job: u64,
}

impl Cluster {
    pub fn new(kubelet_managed: bool) -> Self {
        Self { kubelet_managed, tenant_isolation: true, ..Default::default() }
    }

    /// Whether the cluster's controller answers at all.
    pub fn controller_up(&self) -> bool {
        !self.faults.unhealthy
            && (!self.kubelet_managed || self.instances.values().any(|i| i.role == InstanceRole::Controller && i.live))
    }

    pub fn next_job_id(&mut self, kind: &str) -> String {
        self.next_job += 1;
        format!("{kind}-{:08}", self.next_job)
    }

    /// Registers an instance (or brings a known one back live). A known instance keeps its
    /// tags and state, as it does in Helix across restarts.
    pub fn register(&mut self, role: InstanceRole, host: &str, pod: Option<String>) -> String {
        let port = role.port();
        let id = format!("{}_{host}_{port}", role.prefix());
        let isolation = self.tenant_isolation;
        let instance = self.instances.entry(id.clone()).or_insert_with(|| Instance {
            id: id.clone(),
            role,
            host: host.into(),
            port,
            tags: role.default_tags(isolation),
            enabled: true,
            queries_disabled: false,
            live: false,
            draining: false,
            pod: pod.clone(),
        });
        instance.live = true;
        instance.pod = pod;
        id
    }

    /// Segments hosted per server for one table, or for all tables.
    pub fn segment_counts(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (table, segments) in &self.segments {
            for servers in segments.values() {
                for server in servers {
                    *counts.entry(server.clone()).or_default().entry(table.clone()).or_default() += 1;
                }
            }
        }
        counts
    }

    pub fn segments_on(&self, instance: &str) -> usize {
        self.segments.values().flat_map(|s| s.values()).filter(|servers| servers.contains(instance)).count()
    }

    /// Servers that may host a table: enabled, live and carrying the table's server tag.
    pub fn servers_for(&self, table_with_type: &str) -> Vec<String> {
        let Some(config) = self.tables.get(table_with_type) else { return vec![] };
        let tag = server_tag(config);
        self.instances
            .values()
            .filter(|i| i.role == InstanceRole::Server && i.enabled && i.live && i.tags.contains(&tag))
            .map(|i| i.id.clone())
            .collect()
    }

    /// The assignment a rebalance moves a table to, as Pinot's balanced segment assignment
    /// does: every segment on `replication` servers of its tenant (enabled, live, tagged), the
    /// servers' loads within one of each other, and as few segments moved as that allows.
    pub fn balanced_assignment(&self, table_with_type: &str) -> BTreeMap<String, BTreeSet<String>> {
        let servers = self.servers_for(table_with_type);
        let replication = self.tables.get(table_with_type).map(replication).unwrap_or(1).max(1).min(servers.len());
        let mut target = self.segments.get(table_with_type).cloned().unwrap_or_default();
        let mut load: BTreeMap<String, usize> = servers.iter().map(|s| (s.clone(), 0)).collect();
        for holders in target.values_mut() {
            holders.retain(|h| load.contains_key(h));
            for h in holders.iter() {
                *load.get_mut(h).expect("retained holders are candidates") += 1;
            }
        }
        let least = |load: &BTreeMap<String, usize>, holders: &BTreeSet<String>| {
            load.iter()
                .filter(|(s, _)| !holders.contains(*s))
                .min_by_key(|(s, n)| (**n, (*s).clone()))
                .map(|(s, _)| s.clone())
        };
        for holders in target.values_mut() {
            while holders.len() > replication {
                let most = holders.iter().max_by_key(|h| (load[*h], (*h).clone())).cloned().expect("not empty");
                holders.remove(&most);
                *load.get_mut(&most).expect("holder is a candidate") -= 1;
            }
            while holders.len() < replication {
                let Some(server) = least(&load, holders) else { break };
                *load.get_mut(&server).expect("a candidate") += 1;
                holders.insert(server);
            }
        }
        // Even out: move a segment from the fullest server to the emptiest while they differ by
        // more than one.
        while let (Some((max, max_n)), Some((min, min_n))) = (
            load.iter().max_by_key(|(s, n)| (**n, std::cmp::Reverse((*s).clone()))).map(|(s, n)| (s.clone(), *n)),
            load.iter().min_by_key(|(s, n)| (**n, (*s).clone())).map(|(s, n)| (s.clone(), *n)),
        ) {
            if max_n <= min_n + 1 {
                break;
            }
            let Some(holders) = target.values_mut().find(|h| h.contains(&max) && !h.contains(&min)) else { break };
            holders.remove(&max);
            holders.insert(min.clone());
            *load.get_mut(&max).expect("candidate") -= 1;
            *load.get_mut(&min).expect("candidate") += 1;
        }
        target
    }

    /// Rebalances a table: at once, or (with `rebalanceStepMs`) in the background under `job`.
    /// Either way no segment ever has fewer holders than before while it moves: a new holder is
    /// added before an old one goes.
    pub fn rebalance(&mut self, table_with_type: &str, job: Option<&str>) {
        let target = self.balanced_assignment(table_with_type);
        match job.filter(|_| self.faults.rebalance_step_ms > 0) {
            Some(job) => {
                self.pending.insert(table_with_type.to_string(), PendingRebalance { job: job.to_string(), target });
            }
            None => {
                self.segments.insert(table_with_type.to_string(), target);
            }
        }
        self.check();
    }

    /// Whether a rebalance of the table runs in the background.
    pub fn rebalancing(&self, table_with_type: &str) -> bool {
        self.pending.contains_key(table_with_type)
    }

    /// Moves background rebalances on by one segment each, when their step is due.
    pub fn advance(&mut self, now: std::time::Instant) {
        let step = std::time::Duration::from_millis(self.faults.rebalance_step_ms);
        if self.pending.is_empty() || self.last_step.is_some_and(|t| now.duration_since(t) < step) {
            return;
        }
        self.last_step = Some(now);
        let mut finished = Vec::new();
        for (table, pending) in &self.pending {
            let segments = self.segments.entry(table.clone()).or_default();
            let moving = pending.target.iter().find(|(seg, want)| segments.get(*seg) != Some(*want));
            match moving {
                Some((seg, want)) => {
                    // New holders first, then the old ones go: the segment never has fewer.
                    let holders = segments.entry(seg.clone()).or_default();
                    holders.extend(want.iter().cloned());
                    holders.retain(|h| want.contains(h));
                }
                None => finished.push((table.clone(), pending.job.clone())),
            }
        }
        for (table, job) in finished {
            self.pending.remove(&table);
            if let Some(j) = self.jobs.get_mut(&job)
                && j.status == "IN_PROGRESS"
            {
                j.status = "DONE".into();
            }
        }
        self.check();
    }

    /// Records what the audit watches: the fewest live, enabled holders of each table's segments.
    pub fn check(&mut self) {
        for (table, segments) in &self.segments {
            let Some(lowest) = segments
                .values()
                .map(|holders| {
                    holders.iter().filter(|h| self.instances.get(*h).is_some_and(|i| i.live && i.enabled)).count()
                })
                .min()
            else {
                continue;
            };
            let seen = self.audit.lowest_replicas.entry(table.clone()).or_insert(lowest);
            *seen = (*seen).min(lowest);
        }
    }

    /// Adds `count` segments to a table and places them.
    pub fn add_segments(&mut self, table_with_type: &str, count: usize) {
        let segments = self.segments.entry(table_with_type.to_string()).or_default();
        let start = segments.len();
        for n in start..start + count {
            segments.insert(format!("{table_with_type}_{n}"), BTreeSet::new());
        }
        // New segments are placed at once; the audit starts from the placed segments.
        let target = self.balanced_assignment(table_with_type);
        self.segments.insert(table_with_type.to_string(), target);
        self.audit.lowest_replicas.remove(table_with_type);
        self.check();
    }
}

/// The server tag a table's segments live on, from its `tenants.server` (default tenant
/// `DefaultTenant`).
pub fn server_tag(config: &Value) -> String {
    let tenant = config["tenants"]["server"].as_str().unwrap_or("DefaultTenant");
    let suffix = if config["tableType"].as_str() == Some("REALTIME") { "REALTIME" } else { "OFFLINE" };
    format!("{tenant}_{suffix}")
}

/// The replication of a table: `segmentsConfig.replication`, or `replicasPerPartition` for
/// realtime tables. Pinot keeps these as strings or numbers.
pub fn replication(config: &Value) -> usize {
    let seg = &config["segmentsConfig"];
    let value = if config["tableType"].as_str() == Some("REALTIME") && !seg["replicasPerPartition"].is_null() {
        &seg["replicasPerPartition"]
    } else {
        &seg["replication"]
    };
    match value {
        Value::Number(n) => n.as_u64().unwrap_or(1) as usize,
        Value::String(s) => s.parse().unwrap_or(1),
        _ => 1,
    }
}

/// All simulated clusters.
#[derive(Default)]
pub struct SimState {
    clusters: Mutex<BTreeMap<ClusterKey, Cluster>>,
}

impl SimState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<ClusterKey, Cluster>> {
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on one cluster, if it exists.
    pub fn with<T>(&self, key: &ClusterKey, f: impl FnOnce(&mut Cluster) -> T) -> Option<T> {
        self.lock().get_mut(key).map(|c| {
            let out = f(c);
            c.check();
            out
        })
    }

    /// Moves every background rebalance on (called every few milliseconds).
    pub fn advance(&self) {
        let now = std::time::Instant::now();
        for cluster in self.lock().values_mut() {
            cluster.advance(now);
        }
    }

    /// Creates a standalone cluster (always up) if it does not exist.
    pub fn create_cluster(&self, key: ClusterKey) {
        self.lock().entry(key).or_insert_with(|| Cluster::new(false));
    }

    /// A pod of a PinotCluster became Ready: its instance is live.
    pub fn pod_ready(&self, key: ClusterKey, role: InstanceRole, host: &str, pod: &str) -> String {
        let mut clusters = self.lock();
        let cluster = clusters.entry(key).or_insert_with(|| Cluster::new(true));
        cluster.register(role, host, Some(pod.to_string()))
    }

    /// A pod stopped (deleted, or restarting): its instance is known but not live.
    pub fn pod_stopped(&self, key: &ClusterKey, pod: &str) {
        if let Some(cluster) = self.lock().get_mut(key) {
            let mut holding = Vec::new();
            for i in cluster.instances.values_mut().filter(|i| i.pod.as_deref() == Some(pod) && i.live) {
                i.live = false;
                holding.push(i.id.clone());
            }
            for id in holding {
                let n = cluster.segments_on(&id);
                if n > 0 {
                    cluster.audit.removed_holding_segments.push(format!("{id} stopped holding {n} segments"));
                }
            }
            cluster.check();
        }
    }

    /// A summary of every cluster, for the admin API and the sandbox.
    pub fn summary(&self) -> Value {
        let clusters = self.lock();
        let list: Vec<Value> = clusters
            .iter()
            .map(|((ns, name), c)| {
                json!({
                    "namespace": ns,
                    "name": name,
                    "controllerUp": c.controller_up(),
                    "instances": c.instances.values().collect::<Vec<_>>(),
                    "tables": c.tables.keys().collect::<Vec<_>>(),
                    "schemas": c.schemas.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "clusters": list })
    }
}
