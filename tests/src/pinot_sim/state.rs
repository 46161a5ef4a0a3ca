//! The simulated clusters' state: schemas, tables, tenants (as instance tags), instances with
//! their Helix instance config and process, the ideal state (segments per server), jobs, the
//! request log, the audit and the faults a test switched on.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::assignment::{self, Candidate, InstancePartitions};
pub use super::release::{Build, Release};

/// `(namespace, name)` of the PinotCluster a simulated cluster belongs to.
pub type ClusterKey = (String, String);

/// An ideal state or external view of one table: segment -> instance -> state.
pub type SegmentStates = BTreeMap<String, BTreeMap<String, String>>;

/// How long a (re)starting server takes to load its segments unless the cluster or the pod says
/// otherwise.
pub const DEFAULT_SEGMENTS_LOAD_MS: u64 = 1500;

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

/// Where an instance's process is (server-lifecycle.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Process {
    /// Live. A server loads its segments (OFFLINE in the external view), then has them ONLINE
    /// (or ERROR) and still says `shutdownInProgress` until it moves to `Serving`.
    Starting,
    /// Started; a server has written `shutdownInProgress=false`.
    Serving,
    /// A server got SIGTERM: it has written `shutdownInProgress=true` and drains, still live
    /// with its segments ONLINE. (Other roles leave the cluster at SIGTERM.)
    ShuttingDown,
    /// The process is gone: not live, no external view entries.
    Stopped,
}

/// One instance: its Helix instance config (`CONFIGS/PARTICIPANT/<id>`), whether it is live,
/// and where its process is.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub role: InstanceRole,
    /// `HELIX_HOST` / `HELIX_PORT`.
    pub host: String,
    pub port: u16,
    /// List field `TAG_LIST`.
    pub tags: Vec<String>,
    /// Map field `pool`: tag -> pool number, as text (as Helix stores it).
    pub pools: BTreeMap<String, String>,
    /// Simple fields `grpcPort`, `adminPort`, `queryServerPort`, `queryMailboxPort`.
    pub grpc_port: Option<u32>,
    pub admin_port: Option<u32>,
    pub query_service_port: Option<u32>,
    pub query_mailbox_port: Option<u32>,
    /// Map field `SYSTEM_RESOURCE_INFO`.
    pub system_resource_info: Option<BTreeMap<String, String>>,
    /// `HELIX_ENABLED`.
    pub enabled: bool,
    /// Simple field `queriesDisabled` (`"true"` when set, absent otherwise).
    pub queries_disabled: bool,
    /// Simple field `shutdownInProgress`: only servers write it; `None` until one does.
    pub shutdown_in_progress: Option<bool>,
    /// Simple field `pinotVersion`, written at start by instances of 1.4.0 and later (and kept
    /// by older ones).
    pub pinot_version: Option<String>,
    /// List field `previousTags`: a drained minion's tags (1.5.x+).
    pub previous_tags: Option<Vec<String>>,
    pub live: bool,
    pub process: Process,
    /// A server's segments have finished loading (its external view entries left OFFLINE).
    pub segments_loaded: bool,
    /// A server's segments went ERROR when they finished loading (`segmentErrorServers`).
    pub segments_error: bool,
    /// The Pinot build the process runs (from its pod's image).
    pub build: Build,
    /// The pod this instance runs in, when the kubelet registered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The zone its pod's node is in (or the admin API said), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip)]
    segments_online_at: Option<Instant>,
    /// When the process last stopped (for the lead-controller partitions' delayed rebalance).
    #[serde(skip)]
    pub stopped_at: Option<Instant>,
}

impl Instance {
    fn new(role: InstanceRole, host: &str, tags: Vec<String>, build: Build) -> Self {
        Self {
            id: format!("{}_{host}_{}", role.prefix(), role.port()),
            role,
            host: host.into(),
            port: role.port(),
            tags,
            pools: BTreeMap::new(),
            grpc_port: None,
            admin_port: None,
            query_service_port: None,
            query_mailbox_port: None,
            system_resource_info: None,
            enabled: true,
            queries_disabled: false,
            shutdown_in_progress: None,
            pinot_version: None,
            previous_tags: None,
            live: false,
            process: Process::Stopped,
            segments_loaded: false,
            segments_error: false,
            build,
            pod: None,
            pod_uid: None,
            zone: None,
            segments_online_at: None,
            stopped_at: None,
        }
    }

    /// Brokers route to a server iff it is live, `HELIX_ENABLED`, not `shutdownInProgress` and
    /// not `queriesDisabled` (server-lifecycle.md §4, `isEnabledServer` in the broker's routing
    /// manager, all releases).
    pub fn routable(&self) -> bool {
        self.role == InstanceRole::Server
            && self.live
            && self.enabled
            && self.shutdown_in_progress != Some(true)
            && !self.queries_disabled
    }

    /// Why a server is out of routing, if it is.
    pub fn out_of_routing_because(&self) -> Option<&'static str> {
        if !self.live {
            Some("not live")
        } else if !self.enabled {
            Some("disabled")
        } else if self.shutdown_in_progress == Some(true) {
            Some("shutdownInProgress")
        } else if self.queries_disabled {
            Some("queriesDisabled")
        } else {
            None
        }
    }

    /// The state the external view shows for this server's replica of any segment the ideal
    /// state gives it: none when it is not live (Helix drops a dead instance from the external
    /// view), OFFLINE while disabled or loading, then ONLINE, or ERROR.
    pub fn replica_state(&self) -> Option<&'static str> {
        if !self.live {
            None
        } else if !self.enabled || !self.segments_loaded {
            Some("OFFLINE")
        } else if self.segments_error {
            Some("ERROR")
        } else {
            Some("ONLINE")
        }
    }

    /// A replica on this server is routable: the server is, and the external view says
    /// ONLINE (or CONSUMING, which the simulator does not model).
    pub fn replica_routable(&self) -> bool {
        self.routable() && matches!(self.replica_state(), Some("ONLINE" | "CONSUMING"))
    }
}

/// The pod a Pinot process runs in, as the kubelet knows it.
#[derive(Clone, Debug, Default)]
pub struct SimPod {
    /// A controller's basic auth, as its properties file configures it (`None`: Pinot's
    /// default, allow all).
    pub basic_auth: Option<Vec<Principal>>,
    /// A controller whose file lists only `https` in `controller.access.protocols`.
    pub https_only: bool,
    pub name: String,
    pub uid: String,
    /// The image of the Pinot container: its tag says which release the process runs.
    pub image: String,
    /// How long this server takes to load its segments, instead of the cluster's setting.
    pub segments_load: Option<Duration>,
    /// The zone of the node the pod runs on.
    pub zone: Option<String>,
}

/// A principal of Pinot's `BasicAuthAccessControlFactory` (`controller.admin.access.control.
/// principals.<name>.*`), with the token Pinot compares headers with.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub name: String,
    /// `Basic ` + base64(`name:password`) without `=` (`BasicAuthUtils.toBasicAuthToken`).
    pub token: String,
    /// Upper-case access types; empty = all.
    pub permissions: Vec<String>,
    /// Raw table names; empty = all.
    pub tables: Vec<String>,
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

/// Faults a test can switch on for one cluster. A `PUT .../faults` replaces all of them.
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
    /// Answer 401 to every request whose `Authorization` header is not exactly this (Pinot
    /// with basic or token auth on; `/health` stays open, as in Pinot).
    pub required_authorization: Option<String>,
    /// Rebalances run in the background and move one segment every this many milliseconds
    /// (their jobs say `IN_PROGRESS` until done), as Pinot's do; 0: they finish at once.
    pub rebalance_step_ms: u64,
    /// `GET /version` answers `{}` and the `Pinot-Controller-Version` header says `Unknown`, as
    /// an image without jar manifests does (apache/pinot#7449).
    pub empty_version: bool,
    /// Servers (instance ids) whose segments go ERROR instead of ONLINE the next time they
    /// finish loading.
    pub segment_error_servers: Vec<String>,
}

/// Settings of one simulated cluster, as the admin API takes them; a field left out is left as
/// it is.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// The release the controller answers as; `null` goes back to the live controllers' images.
    #[serde(default, deserialize_with = "present")]
    pub release: Option<Option<Release>>,
    /// The Helix cluster name ZooKeeper paths use (default: the PinotCluster's name).
    pub helix_cluster_name: Option<String>,
    /// How long a (re)starting server takes to load its segments.
    pub segments_load_ms: Option<u64>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl ClusterSettings {
    pub fn apply(&self, c: &mut Cluster) {
        if let Some(release) = self.release {
            c.release_override = release;
        }
        if let Some(name) = &self.helix_cluster_name {
            c.helix_cluster_name = name.clone();
        }
        if let Some(ms) = self.segments_load_ms {
            c.segments_load_ms = ms;
        }
    }
}

/// A moment a server left routing while another holder of one of its segments was out of
/// routing already (or left with it): queries on those segments had one replica fewer to go to
/// than the operator meant to leave.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoutingGap {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub server: String,
    /// `not live`, `disabled`, `shutdownInProgress` or `queriesDisabled`.
    pub reason: String,
    /// The other holders of its segments that were not routable replicas at that moment.
    pub other_holders_out: Vec<String>,
    /// How many of its segments had another replica out.
    pub segments: usize,
}

/// What a test checks a scale-in or a restart against: what the simulator saw happen to data.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Servers whose pod got SIGTERM (or whose process went away), or that were dropped, while
    /// they still held segments in the ideal state.
    pub removed_holding_segments: Vec<String>,
    /// Per table, the fewest live, enabled servers any of its segments had at any moment.
    pub lowest_replicas: BTreeMap<String, usize>,
    /// Per table, the fewest routable replicas any of its segments had at any moment: on a
    /// routable server (live, enabled, not `shutdownInProgress`, not `queriesDisabled`) and
    /// ONLINE in the external view.
    pub lowest_routable_replicas: BTreeMap<String, usize>,
    /// Every moment a server left routing while another holder of one of its segments was out.
    pub routing_gaps: Vec<RoutingGap>,
}

/// A rebalance running in the background: the assignment it moves the table to, and the jobs
/// that wait for it.
#[derive(Clone, Debug, Default)]
pub struct PendingRebalance {
    pub jobs: Vec<String>,
    pub target: BTreeMap<String, BTreeSet<String>>,
}

/// The parameters a rebalance ran with, after the release's defaults were applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceParams {
    /// The release whose defaults applied.
    pub release: Release,
    pub dry_run: bool,
    /// 1.4.0+ only (`None` before: the parameter does not exist).
    pub pre_checks: Option<bool>,
    pub reassign_instances: bool,
    pub include_consuming: bool,
    pub bootstrap: bool,
    pub downtime: bool,
    pub min_available_replicas: i64,
    pub best_efforts: bool,
    /// 1.4.0+ only.
    pub minimize_data_movement: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub table: String,
    pub status: String,
    pub submitted_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For a table rebalance: what it ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceParams>,
}

/// One rebalance call and what it ran with (dry runs and no-ops included), for tests to read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceCall {
    pub job_id: String,
    pub table: String,
    /// What the call answered: `NO_OP`, `DONE`, `IN_PROGRESS` (see the job for how it ended).
    pub status: String,
    pub params: RebalanceParams,
}

/// One simulated Pinot cluster.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Instances come and go with pods; the API is down while no controller is live.
    pub kubelet_managed: bool,
    /// The basic auth of the last controller that started (`None`: allow all).
    #[serde(skip)]
    pub basic_auth: Option<Vec<Principal>>,
    /// The last controller that started listens only on HTTPS.
    pub https_only: bool,
    /// Pinot's `cluster.tenant.isolation.enable` (default true).
    pub tenant_isolation: bool,
    /// The release set through the admin API; `None`: the live controllers' (the oldest).
    pub release_override: Option<Release>,
    /// The Helix cluster name (the root of ZooKeeper paths).
    pub helix_cluster_name: String,
    /// How long a (re)starting server takes to load its segments.
    pub segments_load_ms: u64,
    pub schemas: BTreeMap<String, Value>,
    /// Table configs by name with type, e.g. `airlineStats_OFFLINE`.
    pub tables: BTreeMap<String, Value>,
    pub instances: BTreeMap<String, Instance>,
    /// The ideal state: table with type -> segment name -> servers it is assigned to (ONLINE).
    pub segments: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Persisted instance partitions, by name (`<raw>_OFFLINE`, `<raw>_CONSUMING`,
    /// `<raw>_COMPLETED`; ZooKeeper's `INSTANCE_PARTITIONS/`).
    pub instance_partitions: BTreeMap<String, InstancePartitions>,
    pub jobs: BTreeMap<String, Job>,
    /// Every table rebalance call, in order.
    pub rebalances: Vec<RebalanceCall>,
    pub faults: Faults,
    pub requests: Vec<RecordedRequest>,
    pub audit: Audit,
    /// Rebalances still moving segments, by table.
    #[serde(skip)]
    pub pending: BTreeMap<String, PendingRebalance>,
    #[serde(skip)]
    last_step: Option<Instant>,
    #[serde(skip)]
    next_job: u64,
    /// The servers that were routable when the audit last looked.
    #[serde(skip)]
    routable_before: BTreeSet<String>,
}

impl Cluster {
    /// A cluster named like its PinotCluster (its default Helix cluster name).
    pub fn new(kubelet_managed: bool, name: &str) -> Self {
        Self {
            kubelet_managed,
            tenant_isolation: true,
            helix_cluster_name: name.to_string(),
            segments_load_ms: DEFAULT_SEGMENTS_LOAD_MS,
            ..Default::default()
        }
    }

    /// Whether the cluster's controller answers at all.
    pub fn controller_up(&self) -> bool {
        !self.faults.unhealthy
            && (!self.kubelet_managed || self.instances.values().any(|i| i.role == InstanceRole::Controller && i.live))
    }

    /// The build the controller answers as: the oldest live controller's, unless a test set the
    /// release (then that release's build, or the controller's when it runs that release).
    pub fn build(&self) -> Build {
        let oldest = self
            .instances
            .values()
            .filter(|i| i.role == InstanceRole::Controller && i.live)
            .map(|i| i.build)
            .min_by_key(|b| (b.release, b.version));
        match (self.release_override, oldest) {
            (Some(r), Some(b)) if b.release == r => b,
            (Some(r), _) => Build::of(r),
            (None, Some(b)) => b,
            (None, None) => Build::of(Release::Master),
        }
    }

    pub fn release(&self) -> Release {
        self.build().release
    }

    /// The host of a live controller (`Pinot-Controller-Host`).
    pub fn controller_host(&self) -> Option<&str> {
        self.instances.values().find(|i| i.role == InstanceRole::Controller && i.live).map(|i| i.host.as_str())
    }

    pub fn next_job_id(&mut self, kind: &str) -> String {
        self.next_job += 1;
        format!("{kind}-{:08}", self.next_job)
    }

    /// Starts an instance's process (a new one, or a known one again), as its starter does
    /// (`BSS.updateInstanceConfigIfNeeded` and friends): it joins live, writes its host and port,
    /// default tags only if it has none, its ports, `pinotVersion` from 1.4.0, and a server sets
    /// `shutdownInProgress=true` and loads its segments for `load` (OFFLINE in the external view
    /// meanwhile). Pools, `queriesDisabled` and `HELIX_ENABLED` are left as they were. Starting
    /// an instance that already runs in the same pod does nothing.
    pub fn start_instance(
        &mut self,
        role: InstanceRole,
        host: &str,
        build: Build,
        load: Duration,
        pod: Option<&SimPod>,
    ) -> String {
        let id = format!("{}_{host}_{}", role.prefix(), role.port());
        let default_tags = role.default_tags(self.tenant_isolation);
        let instance =
            self.instances.entry(id.clone()).or_insert_with(|| Instance::new(role, host, default_tags.clone(), build));
        let same_pod = pod.is_some_and(|p| instance.pod_uid.as_deref() == Some(p.uid.as_str()));
        if instance.live && (same_pod || pod.is_none()) {
            return id;
        }
        instance.live = true;
        instance.stopped_at = None;
        instance.host = host.into();
        instance.port = role.port();
        if instance.tags.is_empty() {
            instance.tags = default_tags;
        }
        instance.build = build;
        if build.release >= Release::V1_4_0 {
            instance.pinot_version = Some(build.version.to_string());
        }
        if role == InstanceRole::Controller
            && let Some(p) = pod
        {
            // The controller that starts answers with the access control and the listeners its
            // file configures.
            self.basic_auth = p.basic_auth.clone();
            self.https_only = p.https_only;
        }
        instance.pod = pod.map(|p| p.name.clone());
        instance.pod_uid = pod.map(|p| p.uid.clone());
        if let Some(zone) = pod.and_then(|p| p.zone.clone()) {
            instance.zone = Some(zone);
        }
        if role == InstanceRole::Server {
            // Pinot's defaults: admin API 8097, gRPC 8090; the multi-stage ports are random free
            // ports in Pinot (`pinot.query.server.port` / `pinot.query.runner.port` = 0), fixed
            // here.
            instance.admin_port = Some(8097);
            instance.grpc_port = Some(8090);
            instance.query_service_port = Some(8421);
            instance.query_mailbox_port = Some(8442);
            instance.system_resource_info = Some(BTreeMap::from([
                ("maxHeapSizeMB".to_string(), "4096".to_string()),
                ("numCores".to_string(), "4".to_string()),
                ("totalMemoryMB".to_string(), "16384".to_string()),
            ]));
            instance.shutdown_in_progress = Some(true);
            instance.process = Process::Starting;
            instance.segments_loaded = false;
            instance.segments_error = false;
            instance.segments_online_at = Some(Instant::now() + load);
        } else {
            instance.process = Process::Serving;
            instance.segments_loaded = true;
        }
        id
    }

    /// SIGTERM (the pod got its deletionTimestamp): a server writes `shutdownInProgress=true`
    /// and drains while it stays live with its segments ONLINE; the other roles leave the
    /// cluster at once (they disconnect from Helix early in their stop).
    pub fn begin_shutdown(&mut self, id: &str) {
        let Some(i) = self.instances.get_mut(id) else { return };
        if !i.live || i.process == Process::ShuttingDown {
            return;
        }
        if i.role == InstanceRole::Server {
            i.process = Process::ShuttingDown;
            i.shutdown_in_progress = Some(true);
        } else {
            i.live = false;
            i.process = Process::Stopped;
            i.stopped_at = Some(Instant::now());
        }
        self.note_removed(id, "got SIGTERM");
    }

    /// The process is gone: the instance is known but not live, its external view entries go.
    /// `shutdownInProgress` stays as it was (true after a graceful stop), as in ZooKeeper.
    pub fn process_exited(&mut self, id: &str) {
        let Some(i) = self.instances.get_mut(id) else { return };
        if !i.live {
            return;
        }
        let graceful = i.process == Process::ShuttingDown;
        i.live = false;
        i.stopped_at = Some(Instant::now());
        i.process = Process::Stopped;
        i.segments_loaded = false;
        i.segments_online_at = None;
        if !graceful {
            self.note_removed(id, "stopped");
        }
    }

    /// The instance's zone is lost: its process is gone at once, without a shutdown (its node
    /// stopped, its ZooKeeper session expired).
    pub fn lost_with_zone(&mut self, id: &str) {
        let Some(i) = self.instances.get_mut(id) else { return };
        if !i.live {
            return;
        }
        i.live = false;
        i.stopped_at = Some(Instant::now());
        i.process = Process::Stopped;
        i.segments_loaded = false;
        i.segments_online_at = None;
        let zone = i.zone.clone().unwrap_or_default();
        self.note_removed(id, &format!("was lost with zone {zone}"));
    }

    fn note_removed(&mut self, id: &str, how: &str) {
        let n = self.segments_on(id);
        if n > 0 {
            self.audit.removed_holding_segments.push(format!("{id} {how} holding {n} segments"));
        }
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

    /// The ideal state of a table: segment -> instance -> state, `None` when there is no table.
    pub fn ideal_state(&self, table_with_type: &str) -> Option<SegmentStates> {
        self.tables.get(table_with_type)?;
        let segments = self.segments.get(table_with_type).cloned().unwrap_or_default();
        Some(
            segments
                .into_iter()
                .map(|(seg, holders)| (seg, holders.into_iter().map(|h| (h, "ONLINE".to_string())).collect()))
                .collect(),
        )
    }

    /// The external view of a table: the state of each assigned replica on a live server
    /// (segments no live server holds are left out), `None` when there is no table.
    pub fn external_view(&self, table_with_type: &str) -> Option<SegmentStates> {
        self.tables.get(table_with_type)?;
        let mut view = BTreeMap::new();
        for (seg, holders) in self.segments.get(table_with_type).into_iter().flatten() {
            let states: BTreeMap<String, String> = holders
                .iter()
                .filter_map(|h| Some((h.clone(), self.instances.get(h)?.replica_state()?.to_string())))
                .collect();
            if !states.is_empty() {
                view.insert(seg.clone(), states);
            }
        }
        Some(view)
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

    /// Moves a table to `target`: at once, or (with `rebalanceStepMs`, unless `at_once`) in the
    /// background under `job`. Either way no segment ever has fewer holders than before while it
    /// moves: a new holder is added before an old one goes. A rebalance already moving the
    /// table is folded into this one (its jobs finish with it).
    pub fn move_to(
        &mut self,
        table_with_type: &str,
        target: BTreeMap<String, BTreeSet<String>>,
        job: Option<&str>,
        at_once: bool,
    ) {
        match job.filter(|_| self.faults.rebalance_step_ms > 0 && !at_once) {
            Some(job) => {
                let pending = self.pending.entry(table_with_type.to_string()).or_default();
                pending.jobs.push(job.to_string());
                pending.target = target;
            }
            None => {
                self.segments.insert(table_with_type.to_string(), target);
            }
        }
        self.check();
    }

    /// Rebalances a table to its balanced assignment at once (tenant rebalances).
    pub fn rebalance(&mut self, table_with_type: &str) {
        let target = self.balanced_assignment(table_with_type);
        self.move_to(table_with_type, target, None, true);
    }

    /// The instance-partitions types of a table: `OFFLINE`, or `CONSUMING` and `COMPLETED`.
    pub fn partition_types(table_with_type: &str) -> &'static [&'static str] {
        if table_with_type.ends_with("_REALTIME") { &["CONSUMING", "COMPLETED"] } else { &["OFFLINE"] }
    }

    /// The instance partitions of one type a table's config asks for
    /// (`InstanceAssignmentDriver`), from every instance of the cluster; `existing` and
    /// `minimize` as a rebalance passes them. `None`: the table or its config has no assignment
    /// for the type.
    pub fn compute_partitions(
        &self,
        table_with_type: &str,
        kind: &str,
        existing: Option<&InstancePartitions>,
        minimize: bool,
    ) -> Option<Result<InstancePartitions, String>> {
        let config = self.tables.get(table_with_type)?;
        self.partitions_for(table_with_type, config, kind, existing, minimize)
    }

    /// `compute_partitions` for a config that is not (or not yet) the table's.
    pub fn partitions_for(
        &self,
        table_with_type: &str,
        config: &Value,
        kind: &str,
        existing: Option<&InstancePartitions>,
        minimize: bool,
    ) -> Option<Result<InstancePartitions, String>> {
        let entry = config["instanceAssignmentConfigMap"].get(kind).filter(|e| !e.is_null())?;
        let candidates: Vec<Candidate> =
            self.instances.values().map(|i| Candidate { id: &i.id, tags: &i.tags, pools: &i.pools }).collect();
        let raw = table_with_type.rsplit_once('_').map_or(table_with_type, |(raw, _)| raw);
        let name = format!("{raw}_{kind}");
        Some(assignment::assign_instances(table_with_type, &name, entry, &candidates, existing, minimize))
    }

    /// The instance partitions of every type in `kinds` that `config` has an assignment for,
    /// computed without existing ones (as at table creation, or for a type first assigned);
    /// the first failure.
    pub fn new_partitions(
        &self,
        table_with_type: &str,
        config: &Value,
        kinds: &[&str],
    ) -> Result<Vec<InstancePartitions>, String> {
        kinds.iter().filter_map(|k| self.partitions_for(table_with_type, config, k, None, false)).collect()
    }

    pub fn persist_partitions(&mut self, partitions: Vec<InstancePartitions>) {
        for ip in partitions {
            self.instance_partitions.insert(ip.instance_partitions_name.clone(), ip);
        }
    }

    /// The persisted instance partitions that place a table's segments: `OFFLINE`; for
    /// REALTIME `COMPLETED` when the config relocates completed segments, else `CONSUMING`.
    pub fn placing_partitions(&self, table_with_type: &str) -> Option<(&'static str, &InstancePartitions)> {
        let raw = table_with_type.rsplit_once('_').map_or(table_with_type, |(raw, _)| raw);
        let kinds: &[&'static str] =
            if table_with_type.ends_with("_REALTIME") { &["COMPLETED", "CONSUMING"] } else { &["OFFLINE"] };
        kinds.iter().find_map(|k| Some((*k, self.instance_partitions.get(&format!("{raw}_{k}"))?)))
    }

    /// Where a rebalance moves a table: with instance partitions, replica-group segment
    /// assignment over them (completed REALTIME segments without `COMPLETED` partitions the
    /// consuming way); without, the balanced assignment.
    pub fn target_assignment(&self, table_with_type: &str) -> BTreeMap<String, BTreeSet<String>> {
        let current = self.segments.get(table_with_type).cloned().unwrap_or_default();
        match self.placing_partitions(table_with_type) {
            Some(("CONSUMING", ip)) => {
                current.keys().map(|seg| (seg.clone(), assignment::assign_consuming_segment(ip, seg))).collect()
            }
            Some((_, ip)) if ip.groups() > 1 => assignment::rebalance_segments(table_with_type, ip, &current),
            _ => self.balanced_assignment(table_with_type),
        }
    }

    /// Whether a rebalance of the table runs in the background.
    pub fn rebalancing(&self, table_with_type: &str) -> bool {
        self.pending.contains_key(table_with_type)
    }

    /// Moves time on: background rebalances by one segment each when their step is due, and
    /// starting servers through their start (segments loaded, then `shutdownInProgress=false`
    /// on a later tick, as Pinot writes it only after its status check saw the segments).
    pub fn advance(&mut self, now: Instant) {
        let errors = self.faults.segment_error_servers.clone();
        for i in self.instances.values_mut().filter(|i| i.live && i.process == Process::Starting) {
            if !i.segments_loaded {
                if i.segments_online_at.is_none_or(|t| t <= now) {
                    i.segments_loaded = true;
                    i.segments_error = errors.contains(&i.id);
                    i.segments_online_at = None;
                }
            } else {
                i.process = Process::Serving;
                if i.role == InstanceRole::Server {
                    i.shutdown_in_progress = Some(false);
                }
            }
        }
        self.advance_rebalances(now);
        self.check();
    }

    fn advance_rebalances(&mut self, now: Instant) {
        let step = Duration::from_millis(self.faults.rebalance_step_ms);
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
                None => finished.push((table.clone(), pending.jobs.clone())),
            }
        }
        for (table, jobs) in finished {
            self.pending.remove(&table);
            for job in jobs {
                if let Some(j) = self.jobs.get_mut(&job)
                    && j.status == "IN_PROGRESS"
                {
                    j.status = "DONE".into();
                }
            }
        }
    }

    /// Records what the audit watches: the fewest live, enabled holders and the fewest routable
    /// replicas of each table's segments, and servers leaving routing while another holder of
    /// one of their segments is out.
    pub fn check(&mut self) {
        let routable_replica = |id: &String| self.instances.get(id).is_some_and(Instance::replica_routable);
        for (table, segments) in &self.segments {
            let live = segments
                .values()
                .map(|holders| {
                    holders.iter().filter(|h| self.instances.get(*h).is_some_and(|i| i.live && i.enabled)).count()
                })
                .min();
            let routable =
                segments.values().map(|holders| holders.iter().filter(|h| routable_replica(h)).count()).min();
            if let (Some(live), Some(routable)) = (live, routable) {
                let seen = self.audit.lowest_replicas.entry(table.clone()).or_insert(live);
                *seen = (*seen).min(live);
                let seen = self.audit.lowest_routable_replicas.entry(table.clone()).or_insert(routable);
                *seen = (*seen).min(routable);
            }
        }
        let routable_now: BTreeSet<String> =
            self.instances.values().filter(|i| i.routable()).map(|i| i.id.clone()).collect();
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        for server in self.routable_before.difference(&routable_now) {
            let mut others_out = BTreeSet::new();
            let mut segments = 0;
            for holders in self.segments.values().flat_map(|s| s.values()).filter(|h| h.contains(server)) {
                let out: Vec<&String> = holders.iter().filter(|h| *h != server && !routable_replica(h)).collect();
                if !out.is_empty() {
                    segments += 1;
                    others_out.extend(out.into_iter().cloned());
                }
            }
            if segments > 0 {
                let reason = self.instances.get(server).and_then(Instance::out_of_routing_because).unwrap_or("dropped");
                self.audit.routing_gaps.push(RoutingGap {
                    at_ms,
                    server: server.clone(),
                    reason: reason.into(),
                    other_holders_out: others_out.into_iter().collect(),
                    segments,
                });
            }
        }
        self.routable_before = routable_now;
    }

    /// Adds `count` segments to a table and places them: with instance partitions as Pinot
    /// assigns a new segment (one replica per replica group; a REALTIME segment where its
    /// consumers were), else balanced.
    pub fn add_segments(&mut self, table_with_type: &str, count: usize) {
        let start = self.segments.get(table_with_type).map_or(0, BTreeMap::len);
        let names: Vec<String> = (start..start + count).map(|n| format!("{table_with_type}_{n}")).collect();
        let raw = table_with_type.rsplit_once('_').map_or(table_with_type, |(raw, _)| raw).to_string();
        let placing = if table_with_type.ends_with("_REALTIME") {
            self.instance_partitions.get(&format!("{raw}_CONSUMING")).map(|ip| ("CONSUMING", ip.clone()))
        } else {
            self.instance_partitions.get(&format!("{raw}_OFFLINE")).map(|ip| ("OFFLINE", ip.clone()))
        };
        let segments = self.segments.entry(table_with_type.to_string()).or_default();
        match placing {
            Some(("CONSUMING", ip)) => {
                for name in names {
                    let holders = assignment::assign_consuming_segment(&ip, &name);
                    segments.insert(name, holders);
                }
            }
            Some((_, ip)) if ip.groups() > 1 => {
                for name in names {
                    let holders = assignment::assign_new_segment(&ip, segments);
                    segments.insert(name, holders);
                }
            }
            _ => {
                for name in names {
                    segments.insert(name, BTreeSet::new());
                }
                let target = self.balanced_assignment(table_with_type);
                self.segments.insert(table_with_type.to_string(), target);
            }
        }
        // New segments are placed at once; the audit starts from the placed segments.
        self.audit.lowest_replicas.remove(table_with_type);
        self.audit.lowest_routable_replicas.remove(table_with_type);
        self.check();
    }

    /// The admin API's view of the cluster: its state, with the release it answers as.
    pub fn to_admin_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("cluster state serialises");
        v["release"] = json!(self.release());
        v
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

/// All simulated clusters, and the zones of the data plane that are lost.
pub struct SimState {
    clusters: Mutex<BTreeMap<ClusterKey, Cluster>>,
    lost_zones: Mutex<BTreeSet<String>>,
    /// (zone, lost) each time a zone is lost or comes back: the simulated nodes and kubelet
    /// follow it.
    zone_changes: tokio::sync::broadcast::Sender<(String, bool)>,
    /// The simulated ZooKeeper ensembles of managed clusters.
    pub zookeeper: Arc<super::zookeeper::ZookeeperSim>,
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            clusters: Mutex::default(),
            lost_zones: Mutex::default(),
            zone_changes: tokio::sync::broadcast::channel(64).0,
            zookeeper: Arc::default(),
        }
    }
}

impl SimState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses a zone of the data plane, or brings it back. Lost: every Pinot instance whose pod
    /// runs there is gone at once (its ZooKeeper session ends with its node), the simulated
    /// nodes there stop reporting (Ready=Unknown) and their kubelet does nothing (a deleted
    /// pod stays Terminating, none starts). Back: the nodes are Ready again and the kubelet
    /// starts their pods' processes again (segments load as after a restart).
    pub fn set_zone_lost(&self, zone: &str, lost: bool) {
        let changed = {
            let mut zones = self.lost_zones.lock().unwrap_or_else(|e| e.into_inner());
            if lost { zones.insert(zone.to_string()) } else { zones.remove(zone) }
        };
        self.zookeeper.set_zone_lost(zone, lost);
        if lost {
            for cluster in self.lock().values_mut() {
                let ids: Vec<String> = cluster
                    .instances
                    .values()
                    .filter(|i| i.live && i.zone.as_deref() == Some(zone))
                    .map(|i| i.id.clone())
                    .collect();
                for id in ids {
                    cluster.lost_with_zone(&id);
                }
                cluster.check();
            }
        }
        if changed {
            let _ = self.zone_changes.send((zone.to_string(), lost));
        }
    }

    pub fn zone_lost(&self, zone: &str) -> bool {
        self.lost_zones.lock().unwrap_or_else(|e| e.into_inner()).contains(zone)
    }

    pub fn lost_zones(&self) -> BTreeSet<String> {
        self.lost_zones.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Zones lost and brought back, from now on.
    pub fn zone_changes(&self) -> tokio::sync::broadcast::Receiver<(String, bool)> {
        self.zone_changes.subscribe()
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

    /// Moves every cluster on in time (called every few milliseconds).
    pub fn advance(&self) {
        let now = Instant::now();
        for cluster in self.lock().values_mut() {
            cluster.advance(now);
        }
    }

    /// Creates a standalone cluster (always up) if it does not exist.
    pub fn create_cluster(&self, key: ClusterKey) {
        self.create_cluster_with(key, &ClusterSettings::default());
    }

    /// Creates a standalone cluster (always up) if it does not exist, and applies `settings`.
    pub fn create_cluster_with(&self, key: ClusterKey, settings: &ClusterSettings) {
        let mut clusters = self.lock();
        let name = key.1.clone();
        let cluster = clusters.entry(key).or_insert_with(|| Cluster::new(false, &name));
        settings.apply(cluster);
    }

    /// Applies `settings` to a cluster; one that does not exist yet is created as the kubelet
    /// will create it (down until a controller pod is Ready), so a test can set it up before
    /// its pods start.
    pub fn configure(&self, key: ClusterKey, settings: &ClusterSettings) {
        let mut clusters = self.lock();
        let name = key.1.clone();
        let cluster = clusters.entry(key).or_insert_with(|| Cluster::new(true, &name));
        settings.apply(cluster);
    }

    /// A Pinot pod of a PinotCluster runs (the kubelet calls this when it makes the pod Ready,
    /// and again on every later event of the Ready pod): its process starts, unless it already
    /// runs. The pod's image says which build it runs.
    pub fn pod_ready(&self, key: ClusterKey, role: InstanceRole, host: &str, pod: &SimPod) -> String {
        let mut clusters = self.lock();
        let name = key.1.clone();
        let cluster = clusters.entry(key).or_insert_with(|| Cluster::new(true, &name));
        let load = pod.segments_load.unwrap_or(Duration::from_millis(cluster.segments_load_ms));
        let id = cluster.start_instance(role, host, Build::of_image(&pod.image), load, Some(pod));
        cluster.check();
        id
    }

    /// A Pinot pod got its deletionTimestamp (SIGTERM): see [`Cluster::begin_shutdown`].
    pub fn pod_terminating(&self, key: &ClusterKey, pod_uid: &str) {
        self.on_pod(key, pod_uid, Cluster::begin_shutdown);
    }

    /// A Pinot pod was finalized (its process is gone): see [`Cluster::process_exited`].
    pub fn pod_finalized(&self, key: &ClusterKey, pod_uid: &str) {
        self.on_pod(key, pod_uid, Cluster::process_exited);
    }

    fn on_pod(&self, key: &ClusterKey, pod_uid: &str, f: fn(&mut Cluster, &str)) {
        self.with(key, |c| {
            let ids: Vec<String> =
                c.instances.values().filter(|i| i.pod_uid.as_deref() == Some(pod_uid)).map(|i| i.id.clone()).collect();
            for id in ids {
                f(c, &id);
            }
        });
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
                    "release": c.release(),
                    "instances": c.instances.values().collect::<Vec<_>>(),
                    "tables": c.tables.keys().collect::<Vec<_>>(),
                    "schemas": c.schemas.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "clusters": list })
    }
}
