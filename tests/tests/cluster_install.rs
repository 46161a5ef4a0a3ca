//! PinotCluster installation against a real kube-apiserver, scheduler and StatefulSet
//! controller, with the simulated data plane standing in for kubelets.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Node, Pod, Service},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use pinot_crds::PinotCluster;
use pinot_operator::children::{ChildApis, ChildKind, PdbVersion};
use pinot_testbed::harness::{OperatorHandle, TestNamespace, condition, read_yaml, test_client, wait_for};
use serde_json::json;

const ROLLOUT: Duration = Duration::from_secs(120);

async fn create_cluster(client: &Client, ns: &str, cluster: &PinotCluster) -> PinotCluster {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), cluster).await.expect("creating the PinotCluster")
}

async fn wait_available(client: &Client, ns: &str, name: &str) -> PinotCluster {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("PinotCluster {name} Available=True"), ROLLOUT, || async {
        let c = api.get(name).await.ok()?;
        (condition(&c, "Available")?.0 == "True").then_some(c)
    })
    .await
}

/// Waits until the operator has written status for the cluster's current generation.
async fn wait_observed(client: &Client, ns: &str, name: &str) -> PinotCluster {
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("PinotCluster {name} status for its current generation"), Duration::from_secs(60), || async {
        let c = api.get(name).await.ok()?;
        (c.status.as_ref()?.observed_generation == c.metadata.generation).then_some(c)
    })
    .await
}

fn owned_by(meta: &ObjectMeta, cluster: &PinotCluster) -> bool {
    meta.owner_references.iter().flatten().any(|o| {
        Some(&o.uid) == cluster.metadata.uid.as_ref() && o.kind == "PinotCluster" && o.controller == Some(true)
    })
}

async fn pdb_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let apis = ChildApis { pdb_version: PdbVersion::discover(client).await.expect("discovering PDB version") };
    Api::namespaced_with(client.clone(), ns, &apis.resource(ChildKind::PodDisruptionBudget))
}

#[tokio::test]
async fn heterogeneous_cluster_is_installed_across_zones_and_a_removed_pool_is_cleaned_up() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "install").await;
    let operator = OperatorHandle::start(&client, &ns.name);

    // A user's own object carrying the cluster's label but no owner reference: never touched.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let users_cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("analytics-notes".into()),
            labels: Some(BTreeMap::from([
                ("pinot.controlplane.dev/cluster".to_string(), "analytics".to_string()),
                ("app.kubernetes.io/managed-by".to_string(), "pinot-operator".to_string()),
                ("pinot.controlplane.dev/pool".to_string(), "server-realtime".to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("note".to_string(), "mine".to_string())])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &users_cm).await.expect("creating the user's ConfigMap");

    let spec: PinotCluster = read_yaml("deploy/examples/pinotcluster.yaml");
    let cluster = create_cluster(&client, &ns.name, &spec).await;
    let cluster = {
        let available = wait_available(&client, &ns.name, "analytics").await;
        assert_eq!(available.metadata.uid, cluster.metadata.uid);
        available
    };

    // Every expected object exists and is owned by the cluster.
    let pools = ["controller", "broker-a", "broker-b", "server-offline", "server-realtime", "minion"];
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let pdbs = pdb_api(&client, &ns.name).await;
    for pool in pools {
        let sts =
            sts_api.get(&format!("analytics-{pool}")).await.unwrap_or_else(|e| panic!("StatefulSet of {pool}: {e}"));
        assert!(owned_by(&sts.metadata, &cluster), "StatefulSet of {pool} is owned by the cluster");
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(
            spec.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete"),
            "{pool}: the operator decides restarts"
        );
        assert_eq!(spec.service_name.as_deref(), Some(format!("analytics-{pool}-headless").as_str()));
        let headless = svc_api.get(&format!("analytics-{pool}-headless")).await.unwrap();
        assert!(owned_by(&headless.metadata, &cluster));
        assert_eq!(headless.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
        let cm = cms.get(&format!("analytics-{pool}-config")).await.unwrap();
        assert!(owned_by(&cm.metadata, &cluster));
        let pdb = pdbs.get(&format!("analytics-{pool}")).await.unwrap_or_else(|e| panic!("PDB of {pool}: {e}"));
        assert!(owned_by(&pdb.metadata, &cluster));
        assert_eq!(pdb.data["spec"]["maxUnavailable"], json!(1));
    }
    let controller_svc = svc_api.get("analytics-controller").await.unwrap();
    assert!(owned_by(&controller_svc.metadata, &cluster));
    assert_eq!(controller_svc.spec.unwrap().ports.unwrap()[0].port, 9000);
    let broker_svc = svc_api.get("analytics-broker").await.unwrap();
    assert_eq!(broker_svc.spec.unwrap().ports.unwrap()[0].port, 8099);

    // The Pinot configuration carries the cluster name, ZooKeeper and the pool's own
    // properties over the role defaults.
    let offline = cms.get("analytics-server-offline-config").await.unwrap();
    let conf = &offline.data.unwrap()["pinot-server.conf"];
    assert!(conf.contains("pinot.cluster.name=analytics\n"), "{conf}");
    assert!(conf.contains("pinot.zk.server=zookeeper.zookeeper.svc.cluster.local:2181\n"), "{conf}");
    assert!(conf.contains("pinot.server.netty.port=8098\n"), "{conf}");
    assert!(conf.contains("pinot.server.instance.currentDataTableVersion=4\n"), "{conf}");

    // Pods were placed by the real scheduler onto nodes of their pool's zone.
    let nodes: Api<Node> = Api::all(client.clone());
    let zone_of: BTreeMap<String, String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.name_any(), n.labels().get("topology.kubernetes.io/zone").cloned().unwrap_or_default()))
        .collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let expected_zones: [(&str, &[&str], usize); 6] = [
        ("controller", &["zone-a", "zone-b"], 1),
        ("broker-a", &["zone-a"], 1),
        ("broker-b", &["zone-b"], 1),
        ("server-offline", &["zone-a"], 2),
        ("server-realtime", &["zone-b"], 2),
        ("minion", &["zone-a", "zone-b", "zone-c"], 1),
    ];
    for (pool, zones, count) in expected_zones {
        let list =
            pods.list(&ListParams::default().labels(&format!("pinot.controlplane.dev/pool={pool}"))).await.unwrap();
        assert_eq!(list.items.len(), count, "pods of {pool}");
        for pod in list {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).expect("pod is scheduled");
            let zone = &zone_of[&node];
            assert!(
                zones.contains(&zone.as_str()),
                "pod {} of pool {pool} runs on {node} in {zone}, expected {zones:?}",
                pod.name_any()
            );
        }
    }

    let status = cluster.status.clone().unwrap();
    assert_eq!(status.ready_pods.as_deref(), Some("8/8"));
    let offline_status = status.pools.iter().find(|p| p.name == "server-offline").unwrap();
    assert_eq!((offline_status.replicas, offline_status.ready_replicas, offline_status.updated_replicas), (2, 2, 2));
    assert_eq!(offline_status.current_revision, offline_status.update_revision);

    // Remove the realtime server pool: all of its children go; nothing else does.
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let mut edited = api.get("analytics").await.unwrap();
    edited.spec.pools.retain(|p| p.name != "server-realtime");
    edited.metadata.managed_fields = None;
    api.replace("analytics", &PostParams::default(), &edited).await.expect("removing the pool");
    wait_for("the realtime pool's children to be deleted", Duration::from_secs(60), || async {
        let sts_gone = sts_api.get_opt("analytics-server-realtime").await.ok()?.is_none();
        let svc_gone = svc_api.get_opt("analytics-server-realtime-headless").await.ok()?.is_none();
        let cm_gone = cms.get_opt("analytics-server-realtime-config").await.ok()?.is_none();
        let pdb_gone = pdbs.get_opt("analytics-server-realtime").await.ok()?.is_none();
        (sts_gone && svc_gone && cm_gone && pdb_gone).then_some(())
    })
    .await;
    wait_for("the realtime pool's pods to be gone", Duration::from_secs(60), || async {
        let list =
            pods.list(&ListParams::default().labels("pinot.controlplane.dev/pool=server-realtime")).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
    assert!(cms.get_opt("analytics-notes").await.unwrap().is_some(), "the user's ConfigMap is untouched");
    assert!(sts_api.get_opt("analytics-server-offline").await.unwrap().is_some(), "other pools stay");
    let after = wait_available(&client, &ns.name, "analytics").await;
    assert_eq!(after.status.unwrap().ready_pods.as_deref(), Some("6/6"));

    operator.stop().await;
    ns.cleanup().await;
}

fn small_cluster(name: &str) -> PinotCluster {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: {name}
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper: {{connectString: "zk:2181"}}
  pools:
    - {{name: controller, role: controller, replicas: 1, zone: zone-a, storage: {{ephemeral: true}}}}
    - {{name: server, role: server, replicas: 1, zone: zone-b, storage: {{ephemeral: true}}}}
"#
    ))
    .unwrap()
}

#[tokio::test]
async fn paused_cluster_gets_no_writes_and_says_so() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "paused").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    create_cluster(&client, &ns.name, &small_cluster("small")).await;
    wait_available(&client, &ns.name, "small").await;

    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let patch = json!({"spec": {"paused": true, "image": "apachepinot/pinot:1.3.0", "pools": [
        {"name": "controller", "role": "controller", "replicas": 1, "zone": "zone-a", "storage": {"ephemeral": true}},
        {"name": "server", "role": "server", "replicas": 3, "zone": "zone-b", "storage": {"ephemeral": true}}
    ]}});
    api.patch("small", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let paused = wait_observed(&client, &ns.name, "small").await;
    let (status, message) = condition(&paused, "ReconciliationPaused").expect("ReconciliationPaused condition");
    assert_eq!(status, "True");
    assert!(message.contains("spec.paused"), "{message}");
    assert_eq!(condition(&paused, "Progressing").unwrap().0, "False");

    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let server = sts_api.get("small-server").await.unwrap();
    let spec = server.spec.unwrap();
    assert_eq!(spec.replicas, Some(1), "paused: replicas not applied");
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("apachepinot/pinot:1.2.0"),
        "paused: image not applied"
    );

    // Resuming applies the change.
    api.patch("small", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"paused": false}}))).await.unwrap();
    wait_for("the server pool to be scaled to 3 after resuming", ROLLOUT, || async {
        let sts = sts_api.get("small-server").await.ok()?;
        (sts.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    let resumed = wait_observed(&client, &ns.name, "small").await;
    assert_eq!(condition(&resumed, "ReconciliationPaused").unwrap().0, "False");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn invalid_specs_are_degraded_naming_the_field_and_write_nothing() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "invalid").await;
    let operator = OperatorHandle::start(&client, &ns.name);

    let cases: [(&str, serde_json::Value, &str); 4] = [
        (
            "duplicate-pools",
            json!([{"name": "controller", "role": "controller", "storage": {"ephemeral": true}}, {"name": "controller", "role": "server", "storage": {"ephemeral": true}}]),
            "spec.pools[1].name",
        ),
        (
            "unknown-role",
            json!([{"name": "controller", "role": "controller", "storage": {"ephemeral": true}}, {"name": "gw", "role": "gateway"}]),
            "spec.pools[1].role",
        ),
        (
            "negative-replicas",
            json!([{"name": "controller", "role": "controller", "replicas": -2, "storage": {"ephemeral": true}}]),
            "spec.pools[0].replicas",
        ),
        (
            "order-missing-role",
            json!([{"name": "controller", "role": "controller", "storage": {"ephemeral": true}}, {"name": "minion", "role": "minion"}]),
            "spec.deploymentOrder",
        ),
    ];
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    for (name, pools, _) in &cases {
        let mut spec = json!({
            "apiVersion": "pinot.controlplane.dev/v1alpha1",
            "kind": "PinotCluster",
            "metadata": {"name": name},
            "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"}, "pools": pools},
        });
        if *name == "order-missing-role" {
            spec["spec"]["deploymentOrder"] = json!(["controller", "broker", "server"]);
        }
        let cluster: PinotCluster = serde_json::from_value(spec).unwrap();
        api.create(&PostParams::default(), &cluster).await.unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }
    for (name, _, field) in &cases {
        let cluster = wait_observed(&client, &ns.name, name).await;
        let (status, message) = condition(&cluster, "Degraded").expect("Degraded condition");
        assert_eq!(status, "True", "{name} is Degraded");
        assert!(message.contains(field), "{name}: the message names {field}: {message}");
        assert_eq!(condition(&cluster, "Available").unwrap().0, "False");
    }

    // Nothing was written for any of them.
    let apis = ChildApis { pdb_version: PdbVersion::discover(&client).await.unwrap() };
    for kind in ChildKind::ALL {
        let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &apis.resource(kind));
        let list =
            objects.list(&ListParams::default().labels("app.kubernetes.io/managed-by=pinot-operator")).await.unwrap();
        assert!(
            list.items.is_empty(),
            "no {} was written: {:?}",
            kind.as_str(),
            list.items.iter().map(|o| o.name_any()).collect::<Vec<_>>()
        );
    }

    // Fixing the spec clears Degraded and installs the cluster.
    let fixed = json!({"spec": {"pools": [{"name": "controller", "role": "controller", "replicas": 1, "storage": {"ephemeral": true}}]}});
    api.patch("negative-replicas", &PatchParams::default(), &Patch::Merge(&fixed)).await.unwrap();
    let cluster = wait_available(&client, &ns.name, "negative-replicas").await;
    assert_eq!(condition(&cluster, "Degraded").unwrap().0, "False");

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test]
async fn a_refused_storage_change_keeps_the_pool_running_and_says_which_field() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "storage").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let mut cluster = small_cluster("disk");
    cluster.spec.pools[1].storage = Some(pinot_crds::PoolStorage { size: Some("5Gi".into()), ..Default::default() });
    create_cluster(&client, &ns.name, &cluster).await;
    wait_available(&client, &ns.name, "disk").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let uid = pods.get("disk-server-0").await.unwrap().uid();

    // Volumes grow only on a class that allows it (not the default `standard`): the change is
    // refused, and nothing of the pool goes.
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let patch = json!({"spec": {"pools": [
        {"name": "controller", "role": "controller", "replicas": 1, "zone": "zone-a", "storage": {"ephemeral": true}},
        {"name": "server", "role": "server", "replicas": 1, "zone": "zone-b", "storage": {"size": "10Gi"}}
    ]}});
    api.patch("disk", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let refused = wait_for("Degraded naming the storage field", ROLLOUT, || async {
        let c = api.get("disk").await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains("spec.pools[1].storage")).then_some(message)
    })
    .await;
    assert!(refused.contains("cannot grow the pool's volumes from 5Gi to 10Gi"), "{refused}");
    assert!(refused.contains("StorageClass standard does not allow volume expansion"), "{refused}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    assert!(sts_api.get_opt("disk-server").await.unwrap().is_some(), "the StatefulSet stays");
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    assert!(svc_api.get_opt("disk-server-headless").await.unwrap().is_some(), "the headless Service stays");
    assert_eq!(pods.get("disk-server-0").await.unwrap().uid(), uid, "the pod keeps running");

    operator.stop().await;
    ns.cleanup().await;
}
