//! `PinotCluster`: one Apache Pinot cluster made of node pools, each pool one role
//! (controller, broker, server, minion) in one or more availability zones.

// kube-derive takes one `printcolumn(...)` per column, which clippy reads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a Pinot cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pinot.controlplane.dev",
    version = "v1alpha1",
    kind = "PinotCluster",
    namespaced,
    shortname = "pinot",
    category = "pinot",
    status = "PinotClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "An Apache Pinot cluster: node pools per role, spread over availability zones.",
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Ready pods / desired pods",
        json_path = ".status.readyPods"
    ),
    printcolumn(
        name = "Progressing",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Progressing\")].status"
    ),
    printcolumn(name = "Degraded", type_ = "string", json_path = ".status.conditions[?(@.type==\"Degraded\")].status"),
    printcolumn(name = "Paused", type_ = "boolean", priority = "1", json_path = ".spec.paused"),
    printcolumn(name = "Image", type_ = "string", priority = "1", json_path = ".spec.image"),
    printcolumn(name = "Message", type_ = "string", priority = "1", json_path = ".status.message"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PinotClusterSpec {
    /// The Pinot container image every pool runs unless the pool overrides it,
    /// e.g. `apachepinot/pinot:1.2.0`. Required unless the cluster is `external`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(transform = no_default)]
    pub image: String,

    /// The ZooKeeper ensemble Pinot (Helix) keeps its cluster state in: an existing one
    /// (`connectString`) or one the operator runs (`managed`). Required unless the cluster is
    /// `external`.
    #[serde(default, skip_serializing_if = "ZookeeperSpec::is_unset")]
    #[schemars(transform = no_default)]
    pub zookeeper: ZookeeperSpec,

    /// The Helix cluster name every Pinot role joins (`pinot.cluster.name`): the root node
    /// `/<clusterName>` of the cluster's state in ZooKeeper. Default: `metadata.name`. Letters,
    /// digits, '-', '_' and '.', starting with a letter or digit, at most 100 characters.
    /// Set it to keep the name of a Pinot cluster installed another way (the Helm chart's
    /// default is `pinot-quickstart`). Changing it on a running cluster points every Pinot
    /// process at another, empty cluster in ZooKeeper: tables, schemas and segment assignments
    /// stay behind under the old name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,

    /// A Pinot cluster installed some other way: the operator deploys nothing and only talks to
    /// its controller, so PinotSchemas, PinotTables and PinotTenants can name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalController>,

    /// How the operator authenticates to the Pinot controller and which CA it trusts over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_access: Option<ControllerAccess>,

    /// The order in which roles are installed and upgraded. Every role that has a pool must
    /// appear exactly once, and `zookeeper` with a managed ensemble. Default: zookeeper (when
    /// managed), controller, broker, server, minion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_order: Option<Vec<String>>,

    /// The node pools of the cluster. Several pools of one role are normal (an offline and a
    /// realtime server pool, brokers in two zones).
    #[serde(default)]
    pub pools: Vec<NodePool>,

    /// While true the operator writes nothing to the cluster's objects; status says so.
    #[serde(default)]
    pub paused: bool,

    /// The policies that decide for this cluster, by PinotPolicy name in the same namespace;
    /// the bundled defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<ClusterPolicies>,

    /// How changes roll out: install order, health-gate timeout, server drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeSettings>,

    /// Where Pinot keeps its segments: S3, GCS, ADLS Gen2 or HDFS. The operator writes the
    /// controller's `controller.data.dir` and the storage-factory and segment-fetcher keys of
    /// controllers, servers and minions; credentials come only from Secrets (environment
    /// variables or mounted files, never a ConfigMap), or from the pods' own cloud identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_storage: Option<DeepStorage>,

    /// How clients outside the cluster reach the brokers and the controller: the Services'
    /// type, annotations, source ranges and traffic policy, and an Ingress for the controller's
    /// UI and REST API. Default: ClusterIP Services, no Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,

    /// Pinot's own security: basic auth on the controllers and brokers, with the principals'
    /// passwords from Secrets; the operator and Pinot's own roles authenticate as the admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<PinotSecurity>,

    /// Pinot's own metrics: the JMX Prometheus exporter agent the official image carries,
    /// started in every Pinot JVM on a `metrics` port (scraped by the Helm chart's PodMonitor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<PinotMetrics>,

    /// Pod settings for every pool (service account, pull secrets, volumes, sidecars, security
    /// context, ...); a pool's own `podOverrides` are merged over them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<PodOverrides>,

    /// `restricted`: every Pinot pod is built to be admitted under the Kubernetes "restricted"
    /// Pod Security Standard (non-root user, no privilege escalation, every capability dropped,
    /// seccomp `RuntimeDefault`), and pod overrides that break it are refused naming the field.
    /// Absent: the pods run as the image's user (root in the official Pinot image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_profile: Option<String>,
}

/// Leaves an empty serde default out of the schema: the operator reports a missing value with
/// the field and the fix, which a schema default of `""` would hide.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// The controller of an external Pinot cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalController {
    /// Base URL of the Pinot controller, e.g. `https://pinot-controller.data.svc:9443`.
    pub controller_url: String,
}

/// Credentials and trust for the Pinot controller. At most one of `basicAuthSecret` and
/// `bearerTokenSecret`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerAccess {
    /// A Secret (same namespace) with the keys `username` and `password`, sent as HTTP Basic
    /// auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret: Option<String>,
    /// A key of a Secret (same namespace) holding a token, sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKey>,
    /// A key of a ConfigMap (same namespace) holding PEM CA certificates to trust for `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<crate::ConfigMapKey>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

/// Settings of installs and rolling upgrades for the whole cluster; pools may override the
/// timeout and the drain.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSettings {
    /// Seconds a restarted pod may take to become Ready with a live Pinot instance before the
    /// upgrade halts (`Degraded`). Default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ready_timeout_seconds: Option<i64>,
    /// Seconds between disabling a server's queries and restarting its pod, when an upgrade
    /// policy turns them off first (the bundled policies do not: on SIGTERM a Pinot server takes
    /// itself out of routing and waits for its queries). Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<i64>,
    /// Create every pool at once on first install instead of role by role in
    /// `deploymentOrder`. Default false.
    #[serde(default)]
    pub parallel_install: bool,
}

/// Pinot's own security settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotSecurity {
    /// HTTP basic auth on the controllers' REST API and UI and the brokers' query API
    /// (Pinot's `BasicAuthAccessControlFactory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// HTTPS on the controllers' and brokers' client ports (9000, 8099, HTTPS only: the same
    /// ports keep the instance ids), with servers and minions trusting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PinotTls>,
}

/// Pinot's TLS: PKCS12 stores from a Secret, as cert-manager writes them for a Certificate with
/// `keystores.pkcs12.create: true`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotTls {
    /// A Secret with `keystore.p12` (the certificate and key; its names should cover the
    /// controller and broker Services and the pods' DNS names), `truststore.p12` (the CA) and
    /// `ca.crt` (the same CA as PEM, which the operator trusts).
    pub secret: String,
    /// The password of both stores, from a Secret.
    pub password_secret: SecretKey,
}

/// The principals Pinot's basic auth knows.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The principal with every permission on every table: the operator calls the controller
    /// as it, and Pinot's servers, minions and controllers authenticate to the controller with
    /// it (segment downloads and uploads, minion tasks).
    pub admin: PinotPrincipal,
    /// More principals (applications, people).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<PinotPrincipal>,
}

/// One principal of Pinot's basic auth.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotPrincipal {
    /// The user name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Its password, from a Secret (letters and digits only survive Pinot's properties parser
    /// unchanged: no `,` or `\`).
    pub password_secret: SecretKey,
    /// `READ`, `CREATE`, `UPDATE`, `DELETE`; all when empty. (Pinot 1.2 to 1.5 check them only on
    /// table endpoints, and brokers never.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// The tables it may use (raw names); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

/// The JMX Prometheus exporter of every Pinot JVM.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotMetrics {
    /// Start the agent (`-javaagent:.../jmx_prometheus_javaagent.jar=<port>:<config>`).
    /// Default true once `metrics` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The port it serves `/metrics` on (container port `metrics`). Default 8008.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The exporter's rules file per role (`controller`, `broker`, `server`, `minion`), a path in
    /// the container (the image's, or one mounted with podOverrides). Default: the image's
    /// `/opt/pinot/etc/jmx_prometheus_javaagent/configs/<role>.yml`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_files: BTreeMap<String, String>,
}

/// How the cluster's client Services and its controller UI are exposed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    /// The brokers' Service (`<cluster>-broker`, port 8099: queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<ServiceExposure>,
    /// The controllers' Service (`<cluster>-controller`, port 9000: REST API and UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ServiceExposure>,
    /// An Ingress (`networking.k8s.io/v1`) for the controller's UI and REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_ingress: Option<IngressExposure>,
}

/// One client Service.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExposure {
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Annotations of the Service (a cloud's load-balancer settings, e.g.
    /// `service.beta.kubernetes.io/aws-load-balancer-internal: "true"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `LoadBalancer` only: the client CIDRs allowed, e.g. `10.0.0.0/8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    /// `NodePort` and `LoadBalancer`: `Cluster` (default) or `Local` (keeps the client's
    /// address, sends traffic only to nodes running a pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// `NodePort` and `LoadBalancer`: a fixed node port (the apiserver's range, 30000-32767 by
    /// default); one is allocated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// The controller UI's Ingress.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressExposure {
    /// The host name, e.g. `pinot.example.com`.
    pub host: String,
    /// The IngressClass; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// The path prefix. Default `/` (the Pinot UI expects to be served at the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A Secret of type `kubernetes.io/tls` with the host's certificate (`tls.crt`, `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
}

/// The deep store of a cluster: exactly one of `s3`, `gcs`, `adls`, `hdfs`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeepStorage {
    /// The directory segments are kept under, e.g. `s3://my-bucket/pinot`, `gs://my-bucket/pinot`,
    /// `abfss://container@account.dfs.core.windows.net/pinot`, `hdfs://namenode:8020/pinot`
    /// (the controller's `controller.data.dir`). Its scheme must be the store's.
    pub uri: String,
    /// Access is granted to the pods' own identity, no credentials: EKS IRSA or Pod Identity,
    /// GKE Workload Identity, AKS workload or managed identity (through
    /// `podOverrides.serviceAccountName`), or the node's instance role.
    #[serde(default)]
    pub pod_identity: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adls: Option<AdlsStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdfs: Option<HdfsStorage>,
    /// More properties of the store's PinotFS (`serverSideEncryption`, `storageClass`,
    /// `httpclient.maxConnections`, ...), written under each role's storage-factory prefix.
    /// No credentials here: this ends up in a ConfigMap.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Amazon S3 or an S3-compatible store (MinIO, Ceph).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// The bucket's region; Pinot requires one even for MinIO.
    pub region: String,
    /// An S3-compatible endpoint, e.g. `http://minio.storage:9000` (Pinot always uses
    /// path-style addressing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The access key id, from a Secret (given to Pinot's AWS SDK as `AWS_ACCESS_KEY_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretKey>,
    /// The secret access key, from a Secret (`AWS_SECRET_ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretKey>,
}

/// Google Cloud Storage.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsStorage {
    /// The project of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// A service account's JSON key file, from a Secret (mounted, and named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<SecretKey>,
}

/// Azure Data Lake Storage Gen2.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdlsStorage {
    /// The storage account.
    pub account_name: String,
    /// The container (file system) segments are kept in; Pinot creates it when missing.
    pub file_system_name: String,
    /// The account's access key, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<SecretKey>,
    /// With `podIdentity`: the client id of the user-assigned managed identity to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity_client_id: Option<String>,
}

/// HDFS.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdfsStorage {
    /// A ConfigMap with the cluster's `core-site.xml` and `hdfs-site.xml` (the only files Pinot
    /// reads from its Hadoop configuration directory).
    pub config_map: String,
    /// Kerberos, when `core-site.xml` says `hadoop.security.authentication: kerberos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kerberos: Option<HdfsKerberos>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HdfsKerberos {
    /// The principal Pinot logs in as, e.g. `pinot@EXAMPLE.COM`.
    pub principal: String,
    /// Its keytab, from a Secret (mounted).
    pub keytab: SecretKey,
    /// `krb5.conf`, from a ConfigMap (mounted at `/etc/krb5.conf`); the image's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub krb5_config: Option<crate::ConfigMapKey>,
}

/// Which PinotPolicy decides what, for one cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicies {
    /// PinotPolicy of kind `upgrade` (default: the bundled `upgrade-default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<String>,
    /// PinotPolicy of kind `scaling` (default: the bundled `scaling-default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<String>,
    /// PinotPolicy of kind `tenant` (default: the bundled `tenant-default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Where Pinot finds ZooKeeper: exactly one of `connectString` and `managed`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZookeeperSpec {
    /// The connect string of an existing ensemble, e.g. `zk-0.zk:2181,zk-1.zk:2181/pinot`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connect_string: String,
    /// An ensemble the operator runs for this cluster, as one more pool: restarted member by
    /// member in the order ZooKeeper needs (followers first, the leader last), before every
    /// Pinot role unless `deploymentOrder` places `zookeeper` elsewhere. Pinot's pools get its
    /// connect string, with the chroot, by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedZookeeper>,
}

impl ZookeeperSpec {
    fn is_unset(&self) -> bool {
        self.connect_string.is_empty() && self.managed.is_none()
    }
}

/// A ZooKeeper ensemble the operator runs (the official `zookeeper` image).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedZookeeper {
    /// Members: 3 (one member may be down) or 5 (two may). 1 has no fault tolerance and is
    /// allowed only in one zone (a single-zone cluster, or `zones` naming one). Changing it on
    /// a running ensemble adds or removes one member at a time, each step rolled out before the
    /// next, so a quorum of the old and the new members always overlaps. Default 3.
    #[serde(default = "default_ensemble_replicas")]
    pub replicas: i32,
    /// The official ZooKeeper image (`zookeeper:3.9.3` when absent; 3.8 and 3.9 images start
    /// the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The zones the members spread over, evenly. Default: the zones of the cluster's pools
    /// (anywhere when they name none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Each member's volume for its snapshots and transaction log (`/data`, `/datalog`):
    /// `size` (e.g. `8Gi`), or `ephemeral: true` for a throw-away cluster (a member replaced
    /// with an emptyDir starts empty and copies the data from the others).
    pub storage: PoolStorage,
    /// Container resources. Default: a memory request of the heap plus 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// JVM options of each member (`JVMFLAGS`). Default `-Xms1G -Xmx1G`. `jute.maxbuffer` is
    /// set from `juteMaxBuffer`, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_opts: Option<String>,
    /// `jute.maxbuffer` in bytes, given to every member and every Pinot JVM alike (a client
    /// and a server that disagree fail on large znodes). Default 4000000, as Pinot's chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jute_max_buffer: Option<i64>,
    /// The znode Pinot's state is kept under (the connect string's chroot), created by the
    /// operator before the first controller starts. Default `/pinot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroot: Option<String>,
    /// Seconds a restarted member may take to be back in the quorum and in sync before the
    /// rollout halts (`Degraded`). Default: `spec.upgrade.podReadyTimeoutSeconds`, else 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ready_timeout_seconds: Option<i64>,
    /// Settings merged into the members' pods, over `spec.podOverrides` (the container is
    /// `zookeeper`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<PodOverrides>,
}

fn default_ensemble_replicas() -> i32 {
    3
}

/// A group of identical Pinot instances of one role: one StatefulSet.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodePool {
    /// Name of the pool, unique in the cluster; a DNS label (lower case, digits, '-').
    pub name: String,
    /// One of `controller`, `broker`, `server`, `minion`.
    pub role: String,
    /// Number of pods. The cluster's scaling policy gets the pool there: scaling out adds pods
    /// at once; scaling in drains each server (untag, rebalance, wait for zero segments,
    /// disable) before its pod is removed, and is refused when the servers left could not hold
    /// a table's replication.
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// The most pods a scaling policy may give this pool, above `replicas` (for instance an
    /// overflow pool a policy grows when another pool's zone is full). Default: `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    /// Rebalance the tables of the pool's tenants after the pool scales out. Servers only;
    /// default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance_on_scale: Option<bool>,
    /// The availability zone (`topology.kubernetes.io/zone`) all pods of the pool run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Several zones the pool's pods spread over evenly. Exclusive with `zone`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Image for this pool instead of `spec.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// JVM options (`JAVA_OPTS`); default depends on the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_opts: Option<String>,
    /// Pinot configuration properties merged over the role's defaults
    /// (e.g. `pinot.server.instance.realtime.alloc.offheap: "true"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Storage for the role's data directory. Required for controllers (segments uploaded to a
    /// controller without a deep store live there) and servers (their segments): a size for a
    /// PersistentVolumeClaim per pod, or `ephemeral: true` for an emptyDir that is lost with the
    /// pod. Brokers and minions get an emptyDir without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<PoolStorage>,
    /// How many pods of the pool may be unavailable at once (PodDisruptionBudget, upgrades).
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<i32>,
    /// `spec.upgrade.podReadyTimeoutSeconds` for this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ready_timeout_seconds: Option<i64>,
    /// `spec.upgrade.drainSeconds` for this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<i64>,
    /// Settings merged into the pool's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<PodOverrides>,
}

fn default_replicas() -> i32 {
    1
}

/// The volume for the role's data directory: a PersistentVolumeClaim per pod (`size`) or an
/// emptyDir (`ephemeral: true`), exactly one of the two.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStorage {
    /// Requested size of each pod's PersistentVolumeClaim, a Kubernetes quantity such as `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// StorageClass name; the cluster default when absent. Use a class with
    /// `volumeBindingMode: WaitForFirstConsumer` so volumes are created in the pod's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// An emptyDir instead of a volume: the data directory is lost whenever the pod is
    /// replaced (a server downloads its segments again; a controller without a deep store loses
    /// the segments uploaded to it). For tests and throw-away clusters.
    #[serde(default)]
    pub ephemeral: bool,
}

/// Pod settings added to what the operator builds: `spec.podOverrides` for every pool,
/// `spec.pools[].podOverrides` for one. A pool's value of a single field (`serviceAccountName`,
/// `priorityClassName`, `affinity`, `securityContext`, ...) replaces the cluster's; maps are
/// merged key by key and lists item by item (by name; the pool's item wins).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Merged over the operator's node selector (the zone is set through affinity).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub tolerations: Vec<Toleration>,
    /// Added to the operator's affinity; its node affinity terms are combined with the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = kubernetes_type)]
    pub affinity: Option<Affinity>,
    /// Extra pod labels; the operator's own labels win on conflict.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra environment variables for the Pinot container (`valueFrom` a Secret included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub env: Vec<EnvVar>,
    /// Whole ConfigMaps or Secrets as environment variables of the Pinot container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub env_from: Vec<EnvFromSource>,
    /// The ServiceAccount the pods run as: the identity a cloud grants deep-storage access to
    /// (EKS IRSA, GKE Workload Identity, AKS workload identity). Default: the namespace's
    /// `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets with credentials for a private registry, by name (same namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The pods' PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra volumes of the pods (`config`, `data` and `logs` are the operator's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub volumes: Vec<Volume>,
    /// Extra mounts of the Pinot container, of the pods' volumes; not at or under the
    /// operator's mount paths (`/var/pinot/<role>/config`, `/var/pinot/<role>/data`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub volume_mounts: Vec<VolumeMount>,
    /// Containers that run to completion before the Pinot container starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub init_containers: Vec<Container>,
    /// Containers that run beside the Pinot container (a log shipper, a proxy). Not `pinot`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = kubernetes_type)]
    pub sidecars: Vec<Container>,
    /// The pods' security context (user, group, fsGroup, seccomp). With
    /// `spec.podSecurityProfile: restricted` the operator fills in what the profile requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = kubernetes_type)]
    pub security_context: Option<PodSecurityContext>,
    /// The Pinot container's security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = kubernetes_type)]
    pub container_security_context: Option<SecurityContext>,
}

/// A Kubernetes type embedded in the schema without the descriptions of its nested fields
/// (they are Kubernetes' own, documented upstream): a PinotCluster with pod templates for the
/// cluster and every pool would otherwise carry each of them several times over.
fn kubernetes_type(schema: &mut schemars::Schema) {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let description = schema.get("description").cloned();
    if let Some(object) = schema.as_object_mut() {
        object.values_mut().for_each(strip);
        if let Some(d) = description {
            object.insert("description".into(), d);
        }
    }
}

/// Observed state of a Pinot cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available`, `Progressing`, `Degraded`, `ReconciliationPaused`.
    #[serde(default)]
    pub conditions: Vec<ClusterCondition>,
    /// Per-pool rollout state.
    #[serde(default)]
    pub pools: Vec<PoolStatus>,
    /// Ready pods over desired pods, e.g. `7/7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_pods: Option<String>,
    /// The most important thing to know now (the Degraded or Progressing message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the cluster's Pinot controller says, when a controller pod is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinot: Option<PinotControllerStatus>,
    /// The policies that decide for this cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<ClusterPolicyStatus>,
    /// The latest table rebalance the operator started, per table. A table is not rebalanced
    /// again while its job runs, nor again onto the same servers once it is done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebalances: Vec<RebalanceJob>,
    /// Every problem the last pass found, each with the field or object it is about. The
    /// `Degraded` condition names the first; a warning event is published once per problem and
    /// spec generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ClusterProblem>,
    /// Where clients reach the brokers and the controller: each client Service (and the
    /// controller's Ingress) with its type and the addresses it has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ClientEndpoint>,
    /// The cluster's PinotTenants as its tenant policy placed them. Each PinotTenant's own
    /// status is written from this by the PinotTenant controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantPlacement>,
    /// The managed ZooKeeper ensemble, as its members answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper: Option<EnsembleStatus>,
}

/// The managed ZooKeeper ensemble.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleStatus {
    /// What Pinot's roles connect to (the client Service, with the chroot).
    pub connect_string: String,
    /// Members the spec asks for.
    pub replicas: i32,
    /// Members the running configuration lists (differs from `replicas` while a member is
    /// added or removed, one at a time).
    pub configured: i32,
    /// The pod of the member that leads; absent without a quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Each member, by pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<EnsembleMemberStatus>,
    /// Whether Pinot's chroot exists, when a member could be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroot_exists: Option<bool>,
    /// How much the ensemble can lose, or what is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One member of the managed ensemble.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleMemberStatus {
    pub pod: String,
    /// `leader`, `follower`, `observer`, `standalone`, `not serving` or `unreachable`.
    pub mode: String,
    /// Finished syncing with the leader (or is it).
    pub synced: bool,
}

/// The condition types of a PinotCluster's status and the reasons others act on.
pub mod condition {
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    /// `Progressing` reason while pods are being moved to a new revision.
    pub const UPGRADING: &str = "Upgrading";
    /// `Progressing` reason while the scaling policy adds or removes pods.
    pub const SCALING: &str = "Scaling";
    pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
}

impl PinotClusterStatus {
    /// Whether the cluster is in the middle of an upgrade: pods are being moved to a new
    /// revision, or the upgrade is halted.
    pub fn is_upgrading(&self) -> bool {
        self.conditions.iter().any(|c| {
            c.status == "True"
                && ((c.type_ == condition::PROGRESSING && c.reason == condition::UPGRADING)
                    || (c.type_ == condition::DEGRADED && c.reason == "UpgradeHalted"))
        }) || self.problems.iter().any(|p| p.reason == "UpgradeHalted")
    }
}

/// One problem of a PinotCluster: what is wrong, where, and what to do.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProblem {
    /// CamelCase reason: `InvalidSpec`, `ApplyFailed`, `UpgradeHalted`, `PolicyNotReady`, ...
    pub reason: String,
    /// The field (`spec.pools[1].storage.size`) or object (`StatefulSet analytics-servers`,
    /// `pod analytics-servers-2`, `policy upgrade`) the problem is about.
    pub subject: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// One way clients reach the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientEndpoint {
    /// `broker` or `controller`.
    pub role: String,
    /// `Service <name>` or `Ingress <name>`.
    pub object: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `Ingress`.
    #[serde(rename = "type")]
    pub type_: String,
    /// What clients connect to: `host:port` of the Service's cluster IP, node port, load
    /// balancer, or the Ingress URL; none while a load balancer is pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// Where the tenant policy placed one PinotTenant of the cluster.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPlacement {
    /// The PinotTenant's name.
    pub name: String,
    /// The tenant's name in Pinot.
    pub tenant: String,
    /// Whether as many instances carry its tags as it asks for.
    pub placed: bool,
    /// `Placed`, `Placing`, `WaitingForPinot`, `PolicyNotReady`, `Blocked`, `PlanRefused`,
    /// `TaggingFailed`.
    pub reason: String,
    pub message: String,
    /// The instances carrying its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// Server tenants: its servers by the zone they run in, with the zone's Pinot pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<TenantZone>,
}

/// A tenant's servers in one zone.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantZone {
    /// The zone (`topology.kubernetes.io/zone` of the servers' nodes); absent when not known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// The Pinot pool its servers carry for the tenant's tags (when they all carry the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<u32>,
    /// Servers of the tenant in the zone.
    pub servers: u32,
    /// Of those, the ones live in Pinot.
    pub live: u32,
}

/// A table rebalance the operator started in Pinot.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceJob {
    /// The table, with its type (`airlineStats_OFFLINE`).
    pub table: String,
    /// Pinot's job id (`GET /rebalanceStatus/{jobId}`); none when Pinot found nothing to move.
    /// (Never written as "": a 1.20 apiserver's server-side apply turns an empty string in a
    /// list item into null and then refuses it.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub job_id: String,
    /// Pinot's status of the job at the last look: `IN_PROGRESS`, `DONE`, `FAILED`, ...
    pub status: String,
    /// The servers carrying the table's tag when it started (a digest).
    pub servers: String,
}

/// One policy a cluster decides with.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicyStatus {
    /// `upgrade`, `scaling` or `tenant`.
    pub kind: String,
    /// The PinotPolicy, or the bundled default (`upgrade-default`, ...).
    pub name: String,
    /// The resource whose module decides: `PinotPolicy <namespace>/<name>`,
    /// `ClusterPinotPolicy <name>` (no PinotPolicy of that name in the cluster's namespace), or
    /// `bundled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Digest of the module in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Whether the policy is loaded and usable.
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The module's own name and version (`info()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// What the operator did with the policy's last decision, after the guardrails ("carry
    /// out: restart-pod ...", "wait: ...", "refuse the whole plan (...)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    /// When `lastDecision` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// The cluster as its Pinot controller sees it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinotControllerStatus {
    /// The base URL the operator uses for the controller.
    pub url: String,
    /// Whether the controller answered.
    pub reachable: bool,
    /// Why it did not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Instances registered in the cluster (live or not).
    pub instances: i32,
    /// Instances live now.
    pub live_instances: i32,
    /// The Pinot release the operator acts for (`1.2.0`, `1.3.0`, `1.4.0`, `1.5.x`, `master`):
    /// it calls only what that release offers. While pods run different releases (an upgrade
    /// under way) it is the oldest of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The version the controller reports (`GET /version`, without its git sha).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why `release` is the oldest supported one, when the version or an image tag names a
    /// release the operator does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_message: Option<String>,
}

/// A Kubernetes-style condition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// RFC 3339 time of the last change of `status`.
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Rollout state of one pool (its StatefulSet).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub name: String,
    pub role: String,
    /// Desired pods (0 for a pool removed from the spec that is still scaling in).
    pub replicas: i32,
    /// Pods the StatefulSet has now; differs from `replicas` while the pool scales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// Pods that are Ready.
    pub ready_replicas: i32,
    /// Pods running the pool's current pod template.
    pub updated_replicas: i32,
    /// The StatefulSet revision (ControllerRevision) pods should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// The oldest revision still running in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// Pods of the pool whose Pinot instance is live, when the controller answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_instances: Option<i32>,
}
