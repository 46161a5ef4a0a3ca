//! The sandbox's live view of one PinotCluster: pools, pods and where they run, Pinot
//! instances as the simulated controller sees them, conditions, and what the operator decided
//! and did (its events). `pinot-sim watch` renders it once a second.

use std::{collections::BTreeMap, fmt::Write as _};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::{Api, Client, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use serde_json::Value;

/// Everything one frame shows.
pub struct Snapshot {
    pub cluster: Option<PinotCluster>,
    pub pods: Vec<Pod>,
    pub zones: BTreeMap<String, String>,
    pub instances: Vec<Value>,
    pub events: Vec<Event>,
}

impl Snapshot {
    pub async fn take(client: &Client, namespace: &str, name: &str, simulator_admin: &str) -> Self {
        let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let nodes: Api<Node> = Api::all(client.clone());
        let events: Api<Event> = Api::namespaced(client.clone(), namespace);
        let cluster = clusters.get_opt(name).await.ok().flatten();
        let pods = pods
            .list(&ListParams::default().labels(&format!("pinot.controlplane.dev/cluster={name}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let zones = nodes
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .map(|n| (n.name_any(), n.labels().get("topology.kubernetes.io/zone").cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        let mut events: Vec<Event> = events
            .list(
                &ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=PinotCluster")),
            )
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0).or(e.last_timestamp.as_ref().map(|t| t.0)));
        let instances = match reqwest::get(format!("{simulator_admin}/{namespace}/{name}")).await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["instances"].as_object().map(|o| o.values().cloned().collect()))
                .unwrap_or_default(),
            _ => vec![],
        };
        Self { cluster, pods, zones, instances, events }
    }

    pub fn available(&self) -> bool {
        self.condition("Available").is_some_and(|(s, _)| s == "True")
    }

    fn condition(&self, t: &str) -> Option<(String, String)> {
        let status = self.cluster.as_ref()?.status.as_ref()?;
        status.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.message.clone()))
    }

    /// The frame as text.
    pub fn render(&self, namespace: &str, name: &str) -> String {
        let mut out = String::new();
        let Some(cluster) = &self.cluster else {
            let _ = writeln!(out, "PinotCluster {namespace}/{name}: not created yet");
            return out;
        };
        let status = cluster.status.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "PinotCluster {namespace}/{name}  image {}  pods ready {}  generation {} (observed {})",
            cluster.spec.image,
            status.ready_pods.as_deref().unwrap_or("-"),
            cluster.metadata.generation.unwrap_or(0),
            status.observed_generation.unwrap_or(0),
        );
        let _ = writeln!(out, "\nCONDITIONS");
        for t in ["Available", "Progressing", "Degraded", "ReconciliationPaused"] {
            let (s, m) = self.condition(t).unwrap_or(("-".into(), String::new()));
            let _ = writeln!(out, "  {t:<21} {s:<6} {m}");
        }
        let _ =
            writeln!(out, "\nPOOLS                 ROLE        ZONES                REPLICAS READY UPDATED PINOT-LIVE");
        for pool in &cluster.spec.pools {
            let st = status.pools.iter().find(|p| p.name == pool.name);
            let zones = pool
                .zone
                .clone()
                .unwrap_or_else(|| if pool.zones.is_empty() { "any".into() } else { pool.zones.join(",") });
            let _ = writeln!(
                out,
                "  {:<20} {:<11} {:<20} {:>8} {:>5} {:>7} {:>10}",
                pool.name,
                pool.role,
                zones,
                pool.replicas,
                st.map(|s| s.ready_replicas).unwrap_or(0),
                st.map(|s| s.updated_replicas).unwrap_or(0),
                st.and_then(|s| s.live_instances).map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            );
        }
        let _ = writeln!(out, "\nPODS                            NODE           ZONE     PHASE     READY");
        for pod in &self.pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "<pending>".into());
            let zone = self.zones.get(&node).cloned().unwrap_or_default();
            let phase = if pod.metadata.deletion_timestamp.is_some() {
                "Stopping".to_string()
            } else {
                pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
            };
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let _ = writeln!(
                out,
                "  {:<30} {:<14} {:<8} {:<9} {}",
                pod.name_any(),
                node,
                zone,
                phase,
                if ready { "yes" } else { "no" }
            );
        }
        let _ = writeln!(
            out,
            "\nPINOT INSTANCES (simulated controller)                                         LIVE  TAGS"
        );
        if self.instances.is_empty() {
            let _ = writeln!(out, "  (none yet)");
        }
        for i in &self.instances {
            let tags: Vec<&str> = i["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let _ = writeln!(
                out,
                "  {:<78} {:<5} {}",
                i["id"].as_str().unwrap_or_default(),
                if i["live"].as_bool() == Some(true) { "yes" } else { "no" },
                tags.join(",")
            );
        }
        let _ = writeln!(out, "\nPOLICY DECISIONS (the last of each kind, after the guardrails)");
        for p in &status.policies {
            let module = p.module.as_deref().unwrap_or(if p.ready { "" } else { "not loaded" });
            let source = p.source.as_deref().unwrap_or(&p.name);
            let at = p.decided_at.as_deref().map(|t| format!(" (since {t})")).unwrap_or_default();
            let decision = p.last_decision.as_deref().or(p.message.as_deref()).unwrap_or("none yet");
            let _ = writeln!(out, "  {:<8} {source}: {module}{at}\n           -> {decision}", p.kind);
        }
        let _ = writeln!(out, "\nOPERATOR (latest events)");
        for e in self.events.iter().rev().take(8).collect::<Vec<_>>().into_iter().rev() {
            let _ = writeln!(
                out,
                "  {:<8} {:<14} {}",
                e.type_.as_deref().unwrap_or_default(),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_view_shows_each_policys_last_decision() {
        let cluster: PinotCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"}, "pools": []},
            "status": {"policies": [
                {"kind": "upgrade", "name": "zone-at-a-time", "ready": true, "source": "ClusterPinotPolicy zone-at-a-time",
                 "module": "upgrade-zone-at-a-time 0.1.0", "lastDecision": "carry out: restart-pod q-server-2",
                 "decidedAt": "2026-12-07T08:00:00Z"},
                {"kind": "scaling", "name": "team", "ready": false, "message": "spec.policies.scaling: PinotPolicy default/team is not loaded"}
            ]}
        }))
        .unwrap();
        let snapshot = Snapshot {
            cluster: Some(cluster),
            pods: vec![],
            zones: BTreeMap::new(),
            instances: vec![],
            events: vec![],
        };
        let frame = snapshot.render("default", "q");
        assert!(frame.contains("POLICY DECISIONS"), "{frame}");
        assert!(
            frame.contains(
                "upgrade  ClusterPinotPolicy zone-at-a-time: upgrade-zone-at-a-time 0.1.0 (since 2026-12-07T08:00:00Z)"
            ),
            "{frame}"
        );
        assert!(frame.contains("-> carry out: restart-pod q-server-2"), "{frame}");
        assert!(frame.contains("-> spec.policies.scaling: PinotPolicy default/team is not loaded"), "{frame}");
    }
}
