//! A volume provisioner for the `standard` StorageClass (WaitForFirstConsumer): once the
//! scheduler has picked a node for a pod's claim, it creates a PersistentVolume pinned to that
//! node, as a local-volume CSI driver would; it deletes released volumes.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::{
    api::{
        core::v1::{
            HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
            PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
        },
        storage::v1::StorageClass,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};

use super::{Error, NodeFleet};

/// The provisioner name in the StorageClass and on the volumes it creates.
pub const PROVISIONER_NAME: &str = "sim.pinot.controlplane.dev/local";
/// The default StorageClass of the simulated data plane.
pub const STORAGE_CLASS_NAME: &str = "standard";
/// A StorageClass of the same provisioner that allows volume expansion: a claim whose request
/// grows gets a volume of the new size, as a CSI driver with online expansion (the external
/// resizer, then the kubelet growing the filesystem) gives it.
pub const EXPANDABLE_STORAGE_CLASS_NAME: &str = "expandable";

const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

#[derive(Clone)]
pub struct VolumeProvisioner {
    client: Client,
    fleet: NodeFleet,
}

impl VolumeProvisioner {
    pub fn new(client: Client, fleet: NodeFleet) -> Self {
        Self { client, fleet }
    }

    /// Creates the default `standard` StorageClass and the `expandable` one if they do not exist.
    pub async fn install_storage_class(client: Client) -> Result<(), Error> {
        let api: Api<StorageClass> = Api::all(client);
        let expandable = StorageClass {
            metadata: ObjectMeta { name: Some(EXPANDABLE_STORAGE_CLASS_NAME.into()), ..Default::default() },
            provisioner: PROVISIONER_NAME.into(),
            volume_binding_mode: Some("WaitForFirstConsumer".into()),
            reclaim_policy: Some("Delete".into()),
            allow_volume_expansion: Some(true),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &expandable).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => return Err(Error::CreateStorageClass { source }),
        }
        let class = StorageClass {
            metadata: ObjectMeta {
                name: Some(STORAGE_CLASS_NAME.into()),
                annotations: Some(BTreeMap::from([(
                    "storageclass.kubernetes.io/is-default-class".to_string(),
                    "true".to_string(),
                )])),
                ..Default::default()
            },
            provisioner: PROVISIONER_NAME.into(),
            volume_binding_mode: Some("WaitForFirstConsumer".into()),
            reclaim_policy: Some("Delete".into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &class).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(source) => Err(Error::CreateStorageClass { source }),
        }
    }

    pub async fn run(&self) -> Result<(), Error> {
        let claims = watcher(Api::<PersistentVolumeClaim>::all(self.client.clone()), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        let volumes = watcher(Api::<PersistentVolume>::all(self.client.clone()), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut events = futures::stream::select(
            claims.map(|r| r.map(|c| Either::Claim(Box::new(c)))),
            volumes.map(|r| r.map(|v| Either::Volume(Box::new(v)))),
        );
        while let Some(event) = events.next().await {
            match event {
                Ok(Either::Claim(pvc)) => {
                    self.provision(&pvc).await;
                    self.resize(&pvc).await;
                }
                Ok(Either::Volume(pv)) => self.reclaim(&pv).await,
                Err(e) => tracing::warn!(error = %e, "volume watch error; retrying"),
            }
        }
        Ok(())
    }

    async fn provision(&self, pvc: &PersistentVolumeClaim) {
        let spec = pvc.spec.clone().unwrap_or_default();
        let pending = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
        let ours = pvc.annotations().get("volume.beta.kubernetes.io/storage-provisioner").map(String::as_str)
            == Some(PROVISIONER_NAME)
            || pvc.annotations().get("volume.kubernetes.io/storage-provisioner").map(String::as_str)
                == Some(PROVISIONER_NAME);
        let Some(node) = pvc.annotations().get(SELECTED_NODE) else { return };
        if !pending || !ours || spec.volume_name.is_some() || pvc.metadata.deletion_timestamp.is_some() {
            return;
        }
        let Some(node) = self.fleet.get(node) else { return };
        let Some(uid) = pvc.uid() else { return };
        let size = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned())
            .unwrap_or_else(|| Quantity("1Gi".into()));
        let name = format!("pvc-{uid}");
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                annotations: Some(BTreeMap::from([(PROVISIONED_BY.to_string(), PROVISIONER_NAME.to_string())])),
                labels: Some(BTreeMap::from([("topology.kubernetes.io/zone".to_string(), node.zone.clone())])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([("storage".to_string(), size)])),
                access_modes: spec.access_modes.clone(),
                storage_class_name: spec.storage_class_name.clone(),
                persistent_volume_reclaim_policy: Some("Delete".into()),
                host_path: Some(HostPathVolumeSource { path: format!("/var/lib/sim-volumes/{name}"), type_: None }),
                claim_ref: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("PersistentVolumeClaim".into()),
                    namespace: pvc.namespace(),
                    name: Some(pvc.name_any()),
                    uid: Some(uid),
                    ..Default::default()
                }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "kubernetes.io/hostname".into(),
                                operator: "In".into(),
                                values: Some(vec![node.name.clone()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => tracing::info!(pv = %name, claim = %pvc.name_any(), node = %node.name, "provisioned volume"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(claim = %pvc.name_any(), error = %e, "provisioning failed"),
        }
    }

    /// Grows the volume of a bound claim of the expandable class whose request is larger than
    /// its capacity, then the claim's capacity (what the external resizer and the kubelet do for
    /// a driver with online expansion; the apiserver has already checked that the class allows
    /// it). Claims of other classes never grow.
    async fn resize(&self, pvc: &PersistentVolumeClaim) {
        let spec = pvc.spec.clone().unwrap_or_default();
        let (Some(volume), Some(EXPANDABLE_STORAGE_CLASS_NAME)) =
            (&spec.volume_name, spec.storage_class_name.as_deref())
        else {
            return;
        };
        let requested =
            spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned();
        let capacity = pvc.status.as_ref().and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).cloned();
        let (Some(requested), Some(capacity)) = (requested, capacity) else { return };
        let bytes = |q: &Quantity| pinot_operator::cluster::volumes::quantity_bytes(&q.0);
        if bytes(&requested) <= bytes(&capacity) {
            return;
        }
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let grow = serde_json::json!({"spec": {"capacity": {"storage": requested.0}}});
        if let Err(e) = volumes.patch(volume, &PatchParams::default(), &Patch::Merge(&grow)).await {
            tracing::warn!(pv = %volume, error = %e, "resizing volume failed");
            return;
        }
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &pvc.namespace().unwrap_or_default());
        let status = serde_json::json!({"status": {"capacity": {"storage": requested.0}}});
        match claims.patch_status(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await {
            Ok(_) => tracing::info!(claim = %pvc.name_any(), size = %requested.0, "resized volume"),
            Err(e) => tracing::warn!(claim = %pvc.name_any(), error = %e, "resizing claim failed"),
        }
    }

    /// Deletes volumes this provisioner made once their claim is gone (reclaim policy Delete).
    async fn reclaim(&self, pv: &PersistentVolume) {
        let ours = pv.annotations().get(PROVISIONED_BY).map(String::as_str) == Some(PROVISIONER_NAME);
        let released = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
        if ours && released && pv.metadata.deletion_timestamp.is_none() {
            let api: Api<PersistentVolume> = Api::all(self.client.clone());
            if let Err(e) = api.delete(&pv.name_any(), &DeleteParams::default()).await {
                tracing::warn!(pv = %pv.name_any(), error = %e, "deleting released volume failed");
            }
        }
    }
}

enum Either {
    Claim(Box<PersistentVolumeClaim>),
    Volume(Box<PersistentVolume>),
}
