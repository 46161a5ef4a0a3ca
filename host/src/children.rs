//! The kinds of Kubernetes object the operator creates for a PinotCluster, the labels they
//! carry, and how to reach each kind's API (including which PodDisruptionBudget version the
//! apiserver serves: `policy/v1` from 1.21, only `policy/v1beta1` before).

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Service},
};
use kube::{Client, ResourceExt, discovery::ApiResource};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "pinot-operator";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_CLUSTER: &str = "pinot.controlplane.dev/cluster";
pub const LABEL_POOL: &str = "pinot.controlplane.dev/pool";
pub const LABEL_ROLE: &str = "pinot.controlplane.dev/role";
/// Pod template annotation holding a digest of the pool's Pinot configuration, so that a
/// configuration change is a new pod revision that the upgrade policy rolls out.
pub const ANNOTATION_CONFIG_DIGEST: &str = "pinot.controlplane.dev/config-digest";

/// Value of `app.kubernetes.io/managed-by` on everything the operator creates.
pub const MANAGED_BY: &str = "pinot-operator";

/// Labels that select every object of one cluster.
pub fn cluster_selector(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.to_string())])
}

/// Labels that select the pods of one pool (immutable once a StatefulSet exists).
pub fn pool_selector(cluster: &str, pool: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.to_string()), (LABEL_POOL.to_string(), pool.to_string())])
}

/// A kind of child object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    ConfigMap,
    Service,
    StatefulSet,
    PodDisruptionBudget,
    /// The controller's Ingress (`spec.exposure.controllerIngress`).
    Ingress,
}

impl ChildKind {
    pub const ALL: [ChildKind; 5] = [
        ChildKind::ConfigMap,
        ChildKind::Service,
        ChildKind::StatefulSet,
        ChildKind::PodDisruptionBudget,
        ChildKind::Ingress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChildKind::ConfigMap => "ConfigMap",
            ChildKind::Service => "Service",
            ChildKind::StatefulSet => "StatefulSet",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
            ChildKind::Ingress => "Ingress",
        }
    }
}

/// Which `policy` version serves PodDisruptionBudgets on this apiserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PdbVersion {
    V1,
    V1beta1,
}

impl PdbVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            PdbVersion::V1 => "policy/v1",
            PdbVersion::V1beta1 => "policy/v1beta1",
        }
    }

    /// Asks the apiserver which version it serves; `policy/v1` when both are.
    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        let group = client.list_api_group_resources("policy/v1").await;
        match group {
            Ok(list) if list.resources.iter().any(|r| r.name == "poddisruptionbudgets") => Ok(PdbVersion::V1),
            Ok(_) | Err(kube::Error::Api(_)) => Ok(PdbVersion::V1beta1),
            Err(e) => Err(e),
        }
    }
}

/// The API served for each child kind on one apiserver.
#[derive(Clone, Debug)]
pub struct ChildApis {
    pub pdb_version: PdbVersion,
}

impl ChildApis {
    pub fn resource(&self, kind: ChildKind) -> ApiResource {
        match kind {
            ChildKind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            ChildKind::Service => ApiResource::erase::<Service>(&()),
            ChildKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            ChildKind::Ingress => ApiResource::erase::<k8s_openapi::api::networking::v1::Ingress>(&()),
            ChildKind::PodDisruptionBudget => {
                let version = match self.pdb_version {
                    PdbVersion::V1 => "v1",
                    PdbVersion::V1beta1 => "v1beta1",
                };
                ApiResource {
                    group: "policy".into(),
                    version: version.into(),
                    api_version: self.pdb_version.api_version().into(),
                    kind: "PodDisruptionBudget".into(),
                    plural: "poddisruptionbudgets".into(),
                }
            }
        }
    }
}

/// The StatefulSet ordinal at the end of a pod's name.
pub fn pod_ordinal(pod: &k8s_openapi::api::core::v1::Pod) -> i32 {
    pod.name_any().rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(-1)
}

/// Whether the pod is Ready and not on its way out.
pub fn pod_is_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The StatefulSet revision the pod was created from.
pub fn pod_revision(pod: &k8s_openapi::api::core::v1::Pod) -> Option<&str> {
    pod.labels().get("controller-revision-hash").map(String::as_str)
}

/// The names of a cluster's children.
pub fn statefulset_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}")
}

pub fn headless_service_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}-headless")
}

pub fn configmap_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}-config")
}

pub fn role_service_name(cluster: &str, role: crate::role::Role) -> String {
    format!("{cluster}-{role}")
}
