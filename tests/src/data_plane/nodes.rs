//! Fake Nodes in several zones that keep posting a Ready status, as kubelets do.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{DataPlaneConfig, Error, SIMULATED_NODE_LABEL};
use crate::pinot_sim::SimState;

/// How often each node posts its status; the node lifecycle controller marks a node Unknown
/// after 40 s without one.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// One simulated node.
#[derive(Clone, Debug)]
pub struct SimNode {
    pub name: String,
    pub zone: String,
    pub ip: String,
}

/// The simulated nodes; shared by the kubelet and the provisioner.
#[derive(Clone)]
pub struct NodeFleet {
    client: Client,
    nodes: Arc<Vec<SimNode>>,
}

impl NodeFleet {
    /// Creates (or re-adopts, after a restart) every node and marks it Ready.
    pub async fn register(client: Client, config: &DataPlaneConfig) -> Result<Self, Error> {
        let mut nodes = Vec::new();
        for (z, zone) in config.zones.iter().enumerate() {
            for i in 0..config.nodes_per_zone {
                nodes.push(SimNode {
                    name: format!("sim-{zone}-{i}"),
                    zone: zone.clone(),
                    ip: format!("172.30.{}.{}", z + 1, i + 10),
                });
            }
        }
        let fleet = Self { client, nodes: Arc::new(nodes) };
        for node in fleet.nodes.iter() {
            fleet.create_node(node).await?;
        }
        fleet.post_ready_status().await;
        Ok(fleet)
    }

    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    pub fn get(&self, name: &str) -> Option<&SimNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    async fn create_node(&self, node: &SimNode) -> Result<(), Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), node.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("topology.kubernetes.io/zone".to_string(), node.zone.clone()),
            ("topology.kubernetes.io/region".to_string(), "sim".to_string()),
            (SIMULATED_NODE_LABEL.to_string(), "true".to_string()),
        ]);
        let capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity("64".into())),
            ("memory".to_string(), Quantity("256Gi".into())),
            ("pods".to_string(), Quantity("110".into())),
            ("ephemeral-storage".to_string(), Quantity("1Ti".into())),
        ]);
        let obj = Node {
            metadata: ObjectMeta { name: Some(node.name.clone()), labels: Some(labels.clone()), ..Default::default() },
            status: Some(NodeStatus {
                capacity: Some(capacity.clone()),
                allocatable: Some(capacity),
                addresses: Some(vec![
                    NodeAddress { type_: "InternalIP".into(), address: node.ip.clone() },
                    NodeAddress { type_: "Hostname".into(), address: node.name.clone() },
                ]),
                conditions: Some(vec![ready_condition()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Left from an earlier run: make sure its labels are ours.
                let patch = json!({"metadata": {"labels": labels}});
                api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
                    .map_err(|source| Error::RegisterNode { node: node.name.clone(), source })
            }
            Err(source) => Err(Error::RegisterNode { node: node.name.clone(), source }),
        }
    }

    /// Posts `Ready=True` with a fresh heartbeat time for every node.
    async fn post_ready_status(&self) {
        self.post_status(|_| true, ready_condition()).await;
    }

    /// Posts `condition` for every node `which` selects.
    async fn post_status(&self, which: impl Fn(&SimNode) -> bool, condition: NodeCondition) {
        let api: Api<Node> = Api::all(self.client.clone());
        for node in self.nodes.iter().filter(|n| which(n)) {
            let patch = json!({"status": {"conditions": [condition]}});
            if let Err(e) = api.patch_status(&node.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                tracing::warn!(node = %node.name, error = %e, "node heartbeat failed");
            }
        }
    }

    /// Keeps every node of a zone that is not lost Ready for as long as it runs. A lost zone's
    /// nodes stop reporting and are posted `Ready=Unknown` at once, as the node lifecycle
    /// controller marks them 40 s after their last heartbeat (it then marks their pods not
    /// Ready and taints the nodes unreachable); a zone that comes back is Ready again.
    pub async fn heartbeat(&self, pinot: std::sync::Arc<SimState>) -> Result<(), Error> {
        let mut zones = pinot.zone_changes();
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let lost = pinot.lost_zones();
                    self.post_status(|n| !lost.contains(&n.zone), ready_condition()).await;
                }
                change = zones.recv() => match change {
                    Ok((zone, true)) => self.post_status(|n| n.zone == zone, unknown_condition()).await,
                    Ok((zone, false)) => self.post_status(|n| n.zone == zone, ready_condition()).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

/// What the node lifecycle controller writes for a node that stopped reporting.
fn unknown_condition() -> NodeCondition {
    let now = Time(Timestamp::now());
    NodeCondition {
        type_: "Ready".into(),
        status: "Unknown".into(),
        reason: Some("NodeStatusUnknown".into()),
        message: Some("Kubelet stopped posting node status.".into()),
        last_heartbeat_time: None,
        last_transition_time: Some(now),
    }
}

fn ready_condition() -> NodeCondition {
    let now = Time(Timestamp::now());
    NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: Some("KubeletReady".into()),
        message: Some("simulated kubelet is posting ready status".into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}
