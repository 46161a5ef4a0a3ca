//! Custom resource types of the Pinot control plane, API group `pinot.controlplane.dev`.
//!
//! The types here are what users write; they are deliberately permissive where the operator
//! itself validates (roles are strings, replicas may be negative in the schema) so that a bad
//! spec reaches the operator and is reported in the resource's status with the field and the
//! fix, rather than being refused by an apiserver that (like 1.20) cannot run CEL rules.
//!

pub mod cluster;
pub mod policy;
pub mod resources;

pub use cluster::{
    AdlsStorage, BasicAuth, ClientEndpoint, ClusterCondition, ClusterPolicies, ClusterPolicyStatus, ClusterProblem,
    ControllerAccess, DeepStorage, EnsembleMemberStatus, EnsembleStatus, Exposure, ExternalController, GcsStorage,
    HdfsKerberos, HdfsStorage, IngressExposure, ManagedZookeeper, NodePool, PinotCluster, PinotClusterSpec,
    PinotClusterStatus, PinotControllerStatus, PinotMetrics, PinotPrincipal, PinotSecurity, PinotTls, PodOverrides,
    PoolStatus, PoolStorage, RebalanceJob, S3Storage, SecretKey, ServiceExposure, TenantPlacement, TenantZone,
    UpgradeSettings, ZookeeperSpec, condition,
};
pub use policy::{
    ClusterPinotPolicy, ClusterPinotPolicySpec, ConfigMapKey, OciModule, PinotPolicy, PinotPolicySpec,
    PinotPolicyStatus, PolicyModuleSource,
};
pub use resources::{
    DeletionPolicy, PinotObjectStatus, PinotSchema, PinotSchemaSpec, PinotTable, PinotTableSpec, PinotTenant,
    PinotTenantSpec,
};

/// The API group of every kind in this crate.
pub const GROUP: &str = "pinot.controlplane.dev";
/// The API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";
/// Every CRD this crate defines.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![
        PinotCluster::crd(),
        PinotPolicy::crd(),
        ClusterPinotPolicy::crd(),
        PinotSchema::crd(),
        PinotTable::crd(),
        PinotTenant::crd(),
    ]
}

/// Every CRD this crate defines, as the YAML documents `pinot-operator crds` prints and
/// `crds/pinot.controlplane.dev.yaml` holds.
pub fn crd_yaml() -> String {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("a CRD always serialises"));
    }
    out
}
