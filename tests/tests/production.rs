//! A production Pinot from one PinotCluster, on the local control plane: the examples under
//! `deploy/examples/production/` applied as users apply them, with the objects they name, and
//! checked as a platform team would check them.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Namespace, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use pinot_crds::PinotCluster;
use pinot_testbed::{
    harness::{OperatorHandle, TestNamespace, condition, kubectl, repo_root, test_client, wait_for},
    pod_security::restricted_violations,
};
use serde_json::{Value, json};

const ROLLOUT: Duration = Duration::from_secs(180);

/// An example of `deploy/examples/production/` as JSON, for the test's namespace, with pods
/// that the simulated kubelet makes ready quickly.
fn example(file: &str, ns: &str) -> Value {
    let path = repo_root().join("deploy/examples/production").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cluster: Value = serde_yaml::from_str(&text).unwrap();
    cluster["metadata"]["namespace"] = json!(ns);
    let annotations = &mut cluster["spec"]["podOverrides"]["annotations"];
    annotations["sim.pinot.controlplane.dev/ready-after-ms"] = json!("300");
    cluster
}

/// `kubectl apply` of one JSON document.
async fn apply(ns: &str, name: &str, doc: &Value) {
    let file = std::env::temp_dir().join(format!("{ns}-{name}.json"));
    std::fs::write(&file, doc.to_string()).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
}

async fn degraded_naming(api: &Api<PinotCluster>, name: &str, field: &str) -> String {
    wait_for(&format!("Degraded naming {field}"), Duration::from_secs(60), || async {
        let c = api.get(name).await.ok()?;
        let (status, message) = condition(&c, "Degraded")?;
        (status == "True" && message.contains(field)).then_some(message)
    })
    .await
}

async fn wait_available(api: &Api<PinotCluster>, name: &str) -> PinotCluster {
    wait_for(&format!("{name} Available"), ROLLOUT, || async {
        let c = api.get(name).await.ok()?;
        let current = c.status.as_ref()?.observed_generation == c.metadata.generation;
        (current && condition(&c, "Available")?.0 == "True").then_some(c)
    })
    .await
}

/// The secure-pods example: refused while its ServiceAccount is missing (nothing created),
/// installed once it exists, every pod with the identity and mounts asked for and admitted under
/// the "restricted" Pod Security Standard (checked here rule by rule: the 1.20 apiserver has no
/// Pod Security admission, so the namespace's `enforce=restricted` label alone proves nothing);
/// a privileged sidecar is refused naming its field and no pod restarts for it.
#[tokio::test]
async fn secure_pods_run_as_asked_and_under_the_restricted_profile() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "secure").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    namespaces.patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();
    let operator = OperatorHandle::start(&client, &ns.name);
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "data-platform"}, "value": 100000},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-creds", "namespace": ns.name},
         "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "{\"auths\":{}}"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "corp-ca", "namespace": ns.name},
         "data": {"ca.crt": include_str!("../../host/tests/fixtures/tls/test-ca.pem")}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-env", "namespace": ns.name}, "stringData": {"TEAM": "data"}}]});
    apply(&ns.name, "objects", &objects).await;

    // The ServiceAccount does not exist yet: nothing is rolled out, the field is named.
    apply(&ns.name, "secure", &example("secure-pods.yaml", &ns.name)).await;
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let message = degraded_naming(&api, "secure", "spec.podOverrides.serviceAccountName").await;
    assert!(message.contains("ServiceAccount pinot does not exist"), "{message}");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    assert!(statefulsets.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing created");

    apply(
        &ns.name,
        "sa",
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "pinot", "namespace": ns.name}}),
    )
    .await;
    wait_available(&api, "secure").await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let list = pods.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=secure")).await.unwrap();
    assert_eq!(list.items.len(), 5);
    for pod in &list.items {
        let spec = pod.spec.as_ref().unwrap();
        let name = pod.name_any();
        let violations = restricted_violations(spec, pod.metadata.annotations.as_ref().unwrap_or(&BTreeMap::new()));
        assert!(violations.is_empty(), "{name} breaks the restricted profile: {violations:?}");
        assert_eq!(spec.service_account_name.as_deref(), Some("pinot"), "{name}");
        assert_eq!(spec.priority_class_name.as_deref(), Some("data-platform"), "{name}");
        assert_eq!(spec.priority, Some(100000), "{name}: the apiserver resolved the PriorityClass");
        let pulls: Vec<&str> = spec.image_pull_secrets.iter().flatten().map(|s| s.name.as_str()).collect();
        assert_eq!(pulls, ["registry-creds"], "{name}");
        let sc = spec.security_context.as_ref().unwrap();
        assert_eq!((sc.run_as_user, sc.fs_group), (Some(1000), Some(1000)), "{name}: non-root, owning its volumes");
        let pinot = spec.containers.iter().find(|c| c.name == "pinot").unwrap();
        let mounts: Vec<&str> = pinot.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        for path in ["/etc/corp-ca", "/opt/pinot/logs", "/tmp"] {
            assert!(mounts.contains(&path), "{name}: {path} in {mounts:?}");
        }
        let env_from: Vec<&str> =
            pinot.env_from.iter().flatten().filter_map(|e| e.secret_ref.as_ref()).map(|r| r.name.as_str()).collect();
        assert_eq!(env_from, ["pinot-env"], "{name}");
        // Pinot's metrics: the image's exporter with the role's rules, on the `metrics` port.
        let role = pod.labels()["pinot.controlplane.dev/role"].clone();
        let java_opts =
            pinot.env.iter().flatten().find(|e| e.name == "JAVA_OPTS").and_then(|e| e.value.clone()).unwrap();
        let agent = format!(
            "-javaagent:/opt/pinot/etc/jmx_prometheus_javaagent/jmx_prometheus_javaagent.jar=8008:/opt/pinot/etc/jmx_prometheus_javaagent/configs/{role}.yml"
        );
        assert!(java_opts.contains(&agent), "{name}: {java_opts}");
        let metrics =
            pinot.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics")).map(|p| p.container_port);
        assert_eq!(metrics, Some(8008), "{name}");
        let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        let expected: &[&str] = if name.starts_with("secure-server-") { &["pinot", "log-shipper"] } else { &["pinot"] };
        assert_eq!(containers, expected, "{name}");
    }

    // A privileged sidecar is refused, naming its field; no pod restarts for it.
    let uids: Vec<String> = list.items.iter().map(|p| p.uid().unwrap()).collect();
    let patch = json!([{"op": "add", "path": "/spec/pools/2/podOverrides/sidecars/0/securityContext",
        "value": {"privileged": true}}]);
    api.patch("secure", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    let message =
        degraded_naming(&api, "secure", "spec.pools[2].podOverrides.sidecars[0].securityContext.privileged").await;
    assert!(message.contains("restricted"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now: Vec<String> = pods
        .list(&ListParams::default().labels("pinot.controlplane.dev/cluster=secure"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.uid().unwrap())
        .collect();
    assert_eq!(now, uids, "no pod restarted");

    operator.stop().await;
    kubectl(&["delete", "priorityclass", "data-platform", "--ignore-not-found"]).await;
    ns.cleanup().await;
}

/// The properties file Pinot reads, from the pool's ConfigMap.
async fn config_file(client: &kube::Client, ns: &str, configmap: &str, file: &str) -> String {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get(configmap).await.unwrap().data.unwrap()[file].clone()
}

/// Asserts that no ConfigMap of the namespace holds any of `words`.
async fn no_configmap_holds(client: &kube::Client, ns: &str, words: &[&str]) {
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
    for cm in api.list(&ListParams::default()).await.unwrap() {
        let text: String = cm.data.clone().unwrap_or_default().into_values().collect();
        for word in words {
            assert!(!text.contains(word), "ConfigMap {} holds {word:?}", cm.name_any());
        }
    }
}

/// The Secret and key (`name/key`) the Pinot container's variable `name` comes from.
fn env_from_secret(pod: &Pod, name: &str) -> Option<String> {
    pod.spec.as_ref()?.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| format!("{}/{}", r.name, r.key))
}

fn uids(list: &[Pod]) -> Vec<String> {
    let mut uids: Vec<String> = list.iter().map(|p| p.uid().unwrap()).collect();
    uids.sort();
    uids
}

/// The deep-storage examples: a missing Secret, then one without the key, are named in status
/// with nothing created; with the Secret the cluster comes up with the S3 file system written
/// for controllers, servers and minions and the credentials only as Secret references (no
/// ConfigMap holds them). The GCS, ADLS, HDFS and IRSA examples come up with the objects they
/// name. A Secret deleted later stops the rollout with the field named and restarts nothing.
#[tokio::test]
async fn deep_storage_takes_credentials_from_secrets_only_and_names_what_is_missing() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "deepstore").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);

    apply(&ns.name, "lake", &example("deep-storage-s3.yaml", &ns.name)).await;
    let message = degraded_naming(&api, "lake", "spec.deepStorage.s3.accessKeyId").await;
    assert!(message.contains("Secret pinot-s3 does not exist"), "{message}");
    const SECRET: &str = "s3cr3t-v4lue-never-in-a-configmap";
    let secret = |keys: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-s3", "namespace": ns.name}, "stringData": keys});
    apply(&ns.name, "s3-secret", &secret(json!({"accessKeyId": "AKIAEXAMPLE"}))).await;
    wait_for("Degraded naming the missing key", Duration::from_secs(60), || async {
        let (status, message) = condition(&api.get("lake").await.ok()?, "Degraded")?;
        let named =
            message.contains("spec.deepStorage.s3.secretAccessKey: Secret pinot-s3 has no key \"secretAccessKey\"");
        (status == "True" && named && !message.contains("does not exist")).then_some(())
    })
    .await;
    assert!(statefulsets.list(&ListParams::default()).await.unwrap().items.is_empty(), "nothing created");
    apply(&ns.name, "s3-secret", &secret(json!({"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": SECRET}))).await;

    // The other stores, with what they name.
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "pinot", "namespace": ns.name}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-gcs", "namespace": ns.name}, "stringData": {"key.json": "{\"type\": \"service_account\"}"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hadoop-conf", "namespace": ns.name}, "data": {"core-site.xml": "<configuration/>", "hdfs-site.xml": "<configuration/>"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "krb5", "namespace": ns.name}, "data": {"krb5.conf": "[libdefaults]\n"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-keytab", "namespace": ns.name}, "stringData": {"pinot.keytab": "keytab"}}]});
    apply(&ns.name, "objects", &objects).await;
    for (file, name) in [
        ("deep-storage-s3-irsa.yaml", "lake-irsa"),
        ("deep-storage-gcs.yaml", "lake-gcs"),
        ("deep-storage-adls.yaml", "lake-adls"),
        ("deep-storage-hdfs.yaml", "lake-hdfs"),
    ] {
        apply(&ns.name, name, &example(file, &ns.name)).await;
    }
    for name in ["lake", "lake-irsa", "lake-gcs", "lake-adls", "lake-hdfs"] {
        wait_available(&api, name).await;
    }

    // What Pinot reads, and where the credentials are.
    no_configmap_holds(&client, &ns.name, &[SECRET]).await;
    let config = |name: &'static str, file: &'static str| config_file(&client, &ns.name, name, file);
    let controller = config("lake-controller-config", "pinot-controller.conf").await;
    for line in [
        "controller.data.dir=s3://analytics-segments/pinot",
        "pinot.controller.storage.factory.class.s3=org.apache.pinot.plugin.filesystem.S3PinotFS",
        "pinot.controller.storage.factory.s3.region=eu-west-1",
        "pinot.controller.segment.fetcher.protocols=file,http,s3",
    ] {
        assert!(controller.lines().any(|l| l == line), "{line} in\n{controller}");
    }
    let server = config("lake-server-config", "pinot-server.conf").await;
    assert!(
        server
            .lines()
            .any(|l| l == "pinot.server.storage.factory.class.s3=org.apache.pinot.plugin.filesystem.S3PinotFS"),
        "{server}"
    );
    let minion = config("lake-minion-config", "pinot-minion.conf").await;
    assert!(minion.lines().any(|l| l == "pinot.minion.storage.factory.s3.region=eu-west-1"), "{minion}");
    let broker = config("lake-broker-config", "pinot-broker.conf").await;
    assert!(!broker.contains("storage.factory"), "{broker}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let server_pod = pods.get("lake-server-0").await.unwrap();
    assert_eq!(env_from_secret(&server_pod, "AWS_ACCESS_KEY_ID").as_deref(), Some("pinot-s3/accessKeyId"));
    assert_eq!(env_from_secret(&server_pod, "AWS_SECRET_ACCESS_KEY").as_deref(), Some("pinot-s3/secretAccessKey"));

    // The Secret goes away: the field is named, nothing restarts.
    let lake = ListParams::default().labels("pinot.controlplane.dev/cluster=lake");
    let before = uids(&pods.list(&lake).await.unwrap().items);
    kubectl(&["-n", &ns.name, "delete", "secret", "pinot-s3"]).await;
    let patch = json!({"spec": {"pools": [
        {"name": "controller", "role": "controller", "replicas": 2, "storage": {"size": "10Gi"}},
        {"name": "broker", "role": "broker", "replicas": 2},
        {"name": "server", "role": "server", "replicas": 2, "storage": {"size": "50Gi"}},
        {"name": "minion", "role": "minion", "replicas": 1}]}});
    api.patch("lake", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    degraded_naming(&api, "lake", "spec.deepStorage.s3.accessKeyId").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(uids(&pods.list(&lake).await.unwrap().items), before, "no pod restarted or added");

    operator.stop().await;
    ns.cleanup().await;
}

/// The exposure example: the broker's LoadBalancer Service with its annotations, ranges and
/// traffic policy, the controller's NodePort and Ingress, as users check them with kubectl;
/// with no load-balancer provider the field is named (LoadBalancerPending); once a provider
/// (played here by the test) gives an address, status says where clients connect; back to
/// ClusterIP works on a Service that had node ports; a type the operator cannot give is named
/// and changes nothing; the Ingress goes with its field.
#[tokio::test]
async fn client_services_and_the_controller_ingress_are_exposed_as_asked() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "exposure").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let mut edge = example("exposure.yaml", &ns.name);
    // One node port per test run: the port range is the whole apiserver's.
    let node_port = 30000 + (rand::random::<u16>() % 2700) as i64;
    edge["spec"]["exposure"]["controller"]["nodePort"] = json!(node_port);
    apply(&ns.name, "edge", &edge).await;
    wait_available(&api, "edge").await;

    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns.name);
    let broker = services.get("edge-broker").await.unwrap();
    let spec = broker.spec.clone().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        spec.load_balancer_source_ranges.as_deref(),
        Some(&["10.0.0.0/8".to_string(), "192.168.0.0/16".to_string()][..])
    );
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    assert!(spec.health_check_node_port.is_some(), "the apiserver gave Local a health check port");
    assert_eq!(broker.annotations()["service.beta.kubernetes.io/aws-load-balancer-internal"], "true");
    let controller = services.get("edge-controller").await.unwrap().spec.unwrap();
    assert_eq!(controller.type_.as_deref(), Some("NodePort"));
    assert_eq!(controller.ports.unwrap()[0].node_port, Some(node_port as i32));
    let ingress = kubectl(&["-n", &ns.name, "get", "ingress", "edge-controller", "-o", "json"]).await;
    let ingress: Value = serde_json::from_str(&ingress).unwrap();
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "pinot.example.com");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!((backend["name"].as_str(), backend["port"]["number"].as_i64()), (Some("edge-controller"), Some(9000)));
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "pinot-example-com-tls");

    // No load balancer here: named once the grace is over.
    let message = degraded_naming(&api, "edge", "spec.exposure.broker.type").await;
    assert!(message.contains("Service edge-broker of type LoadBalancer has had no external address"), "{message}");
    // A provider gives it an address: the problem goes, status says where to connect.
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}});
    services.patch_status("edge-broker", &PatchParams::default(), &Patch::Merge(&lb)).await.unwrap();
    let endpoints = wait_for("the load balancer's address in status", Duration::from_secs(60), || async {
        let c = api.get("edge").await.ok()?;
        let status = c.status?;
        let degraded = status.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True");
        let broker = status.endpoints.iter().find(|e| e.object == "Service edge-broker")?;
        (!degraded && broker.addresses.iter().any(|a| a == "203.0.113.10:8099")).then_some(status.endpoints)
    })
    .await;
    let controller = endpoints.iter().find(|e| e.object == "Service edge-controller").unwrap();
    assert_eq!(controller.addresses, [format!("<any node>:{node_port}")]);
    let ui = endpoints.iter().find(|e| e.type_ == "Ingress").unwrap();
    assert_eq!(ui.addresses, ["https://pinot.example.com/"]);

    // Back to ClusterIP: the Service loses its node ports and source ranges.
    let patch = json!([{"op": "replace", "path": "/spec/exposure/broker", "value": {}}]);
    api.patch("edge", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    wait_for("the broker Service ClusterIP again", Duration::from_secs(60), || async {
        let spec = services.get("edge-broker").await.ok()?.spec?;
        let plain = spec.type_.as_deref() == Some("ClusterIP")
            && spec.load_balancer_source_ranges.is_none()
            && spec.ports?.iter().all(|p| p.node_port.is_none());
        plain.then_some(())
    })
    .await;
    let c = wait_available(&api, "edge").await;
    assert!(condition(&c, "Degraded").is_some_and(|(s, _)| s == "False"), "{:?}", c.status);

    // A type the operator cannot give: named, nothing changed.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let all = ListParams::default().labels("pinot.controlplane.dev/cluster=edge");
    let before = uids(&pods.list(&all).await.unwrap().items);
    let patch = json!([{"op": "replace", "path": "/spec/exposure/broker", "value": {"type": "ExternalName"}}]);
    api.patch("edge", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    let message = degraded_naming(&api, "edge", "spec.exposure.broker.type").await;
    assert!(message.contains("use ClusterIP, NodePort or LoadBalancer"), "{message}");
    assert_eq!(services.get("edge-broker").await.unwrap().spec.unwrap().type_.as_deref(), Some("ClusterIP"));
    assert_eq!(uids(&pods.list(&all).await.unwrap().items), before);

    // The Ingress goes with its field.
    let patch = json!([{"op": "remove", "path": "/spec/exposure"}]);
    api.patch("edge", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(client.clone(), &ns.name);
    wait_for("the Ingress deleted", Duration::from_secs(60), || async {
        ingresses.get_opt("edge-controller").await.ok()?.is_none().then_some(())
    })
    .await;

    operator.stop().await;
    ns.cleanup().await;
}

/// A pool's volumes grow when its `storage.size` grows on a StorageClass that allows it: every
/// claim is resized (the simulated data plane resizes the volumes, as a CSI driver with online
/// expansion does), the StatefulSet is replaced with the new claim template, and no pod restarts.
/// Shrinking, and growing on a class without expansion, are refused naming the field.
#[tokio::test]
async fn growing_storage_resizes_the_claims_without_a_restart_and_shrinking_is_refused() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "volumes").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let ready = json!({"annotations": {"sim.pinot.controlplane.dev/ready-after-ms": "300"}});
    let pools = |server: &str, controller: &str| {
        json!([
            {"name": "controller", "role": "controller", "replicas": 1, "storage": {"size": controller}, "podOverrides": ready},
            {"name": "server", "role": "server", "replicas": 2, "storage": {"size": server, "storageClassName": "expandable"}, "podOverrides": ready}
        ])
    };
    let cluster = json!({"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster",
        "metadata": {"name": "disk", "namespace": ns.name},
        "spec": {"image": "apachepinot/pinot:1.2.0", "zookeeper": {"connectString": "zk:2181"}, "pools": pools("1Gi", "1Gi")}});
    apply(&ns.name, "disk", &cluster).await;
    wait_available(&api, "disk").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let all = ListParams::default().labels("pinot.controlplane.dev/cluster=disk");
    let before = uids(&pods.list(&all).await.unwrap().items);

    api.patch("disk", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"pools": pools("3Gi", "1Gi")}})))
        .await
        .unwrap();
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    wait_for("both server claims at 3Gi, and the StatefulSet's template", Duration::from_secs(90), || async {
        let mut grown = 0;
        for i in 0..2 {
            let c = claims.get(&format!("data-disk-server-{i}")).await.ok()?;
            let requested = c.spec?.resources?.requests?.get("storage")?.0.clone();
            let capacity = c.status?.capacity?.get("storage")?.0.clone();
            grown += usize::from(requested == "3Gi" && capacity == "3Gi");
        }
        let sts = statefulsets.get("disk-server").await.ok()?;
        let template =
            sts.spec?.volume_claim_templates?[0].spec.clone()?.resources?.requests?.get("storage")?.0.clone();
        (grown == 2 && template == "3Gi").then_some(())
    })
    .await;
    let c = wait_available(&api, "disk").await;
    assert!(condition(&c, "Degraded").is_some_and(|(s, _)| s == "False"), "{:?}", c.status);
    assert_eq!(uids(&pods.list(&all).await.unwrap().items), before, "no pod restarted");
    // The replaced StatefulSet adopted the pods on their revision.
    let sts = statefulsets.get("disk-server").await.unwrap();
    let owned = pods.list(&ListParams::default().labels("pinot.controlplane.dev/pool=server")).await.unwrap();
    for pod in &owned.items {
        let owner = pod.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| o.uid.clone());
        assert_eq!(owner, sts.metadata.uid, "{} adopted", pod.name_any());
    }
    let events = kubectl(&["-n", &ns.name, "get", "events.events.k8s.io", "-o", "json"]).await;
    assert!(
        events.contains("VolumeExpanded") && events.contains("resized PersistentVolumeClaim data-disk-server-0 to 3Gi")
    );

    // Shrinking is refused; so is growing on the default class, which does not allow it.
    api.patch("disk", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"pools": pools("2Gi", "1Gi")}})))
        .await
        .unwrap();
    let message = degraded_naming(&api, "disk", "spec.pools[1].storage").await;
    assert!(message.contains("cannot shrink the pool's volumes from 3Gi to 2Gi"), "{message}");
    api.patch("disk", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"pools": pools("3Gi", "2Gi")}})))
        .await
        .unwrap();
    let message = degraded_naming(&api, "disk", "spec.pools[0].storage").await;
    assert!(message.contains("StorageClass standard does not allow volume expansion"), "{message}");
    assert_eq!(uids(&pods.list(&all).await.unwrap().items), before, "no pod restarted");

    operator.stop().await;
    ns.cleanup().await;
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The basic-auth example: the simulated controller reads its principals from the controller
/// pod's configuration and the Secrets its environment names, as Pinot does, and refuses calls
/// without them; the operator installs the cluster and manages a schema on it as the admin; the
/// passwords and the admin's token reach the pods only from Secrets; a read-only user reads but
/// cannot delete a table. An external cluster whose access control takes bearer tokens (a custom
/// Pinot `AccessControlFactory`) is reached with `controllerAccess.bearerTokenSecret`.
#[tokio::test]
async fn pinot_basic_auth_guards_the_cluster_and_the_operator_is_its_admin() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "basicauth").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-admin", "namespace": ns.name}, "stringData": {"password": "s3cretAdmin"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-dashboards", "namespace": ns.name}, "stringData": {"password": "r3adOnly"}}]});
    apply(&ns.name, "objects", &objects).await;
    apply(&ns.name, "guarded", &example("basic-auth.yaml", &ns.name)).await;
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    wait_available(&api, "guarded").await;

    // Pinot refuses calls without a principal; the admin and the reader get in.
    let url =
        pinot_testbed::harness::controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "guarded");
    let http = reqwest::Client::new();
    let status = |path: &str, method: reqwest::Method, auth: Option<String>| {
        let (http, url) = (http.clone(), url.clone());
        let path = path.to_string();
        async move {
            let mut r = http.request(method, format!("{url}{path}"));
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(status("/health", reqwest::Method::GET, None).await, 200, "the probe's path is open");
    assert_eq!(status("/instances", reqwest::Method::GET, None).await, 401);
    assert_eq!(status("/instances", reqwest::Method::GET, Some(basic("admin", "wrong"))).await, 401);
    assert_eq!(status("/instances", reqwest::Method::GET, Some(basic("admin", "s3cretAdmin"))).await, 200);
    assert_eq!(status("/tables", reqwest::Method::GET, Some(basic("dashboards", "r3adOnly"))).await, 200);

    // The operator manages a schema and a table on it as the admin.
    let resources = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotSchema", "metadata": {"name": "events", "namespace": ns.name},
         "spec": {"cluster": "guarded", "schema": {"schemaName": "events", "dimensionFieldSpecs": [{"name": "id", "dataType": "STRING"}]}}},
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotTable", "metadata": {"name": "events", "namespace": ns.name},
         "spec": {"cluster": "guarded", "schemaRef": "events", "offline": {"segmentsConfig": {"replication": "1"}, "tableIndexConfig": {}}}}]});
    apply(&ns.name, "resources", &resources).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Ready", "pinottable/events", "--timeout=90s"]).await;
    // Table-level calls: the reader may read it, not delete it (403, as Pinot 1.2 answers).
    assert_eq!(status("/tables/events", reqwest::Method::GET, Some(basic("dashboards", "r3adOnly"))).await, 200);
    assert_eq!(status("/tables/events", reqwest::Method::DELETE, Some(basic("dashboards", "r3adOnly"))).await, 403);
    assert_eq!(status("/tables/events", reqwest::Method::GET, None).await, 403);

    // Credentials reach the pods from Secrets only.
    no_configmap_holds(&client, &ns.name, &["s3cretAdmin", "r3adOnly"]).await;
    let controller_conf = config_file(&client, &ns.name, "guarded-controller-config", "pinot-controller.conf").await;
    for line in [
        "controller.admin.access.control.factory.class=org.apache.pinot.controller.api.access.BasicAuthAccessControlFactory",
        "controller.admin.access.control.principals=admin,dashboards",
        "controller.admin.access.control.principals.admin.password=${env:PINOT_AUTH_ADMIN_PASSWORD}",
        "controller.admin.access.control.principals.dashboards.permissions=READ",
    ] {
        assert!(controller_conf.lines().any(|l| l == line), "{line} in\n{controller_conf}");
    }
    let server_conf = config_file(&client, &ns.name, "guarded-server-config", "pinot-server.conf").await;
    assert!(
        server_conf.lines().any(|l| l == "pinot.server.segment.fetcher.auth.token=${env:PINOT_SERVICE_TOKEN}"),
        "{server_conf}"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns.name);
    let token = secrets.get("guarded-pinot-service-token").await.unwrap();
    assert_eq!(token.data.unwrap()["token"].0, basic("admin", "s3cretAdmin").into_bytes(), "what Pinot's roles send");
    let owner = token.metadata.owner_references.unwrap();
    assert_eq!(owner[0].kind, "PinotCluster", "deleted with the cluster");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let server = pods.get("guarded-server-0").await.unwrap();
    assert_eq!(env_from_secret(&server, "PINOT_SERVICE_TOKEN").as_deref(), Some("guarded-pinot-service-token/token"));
    let controller = pods.get("guarded-controller-0").await.unwrap();
    assert_eq!(env_from_secret(&controller, "PINOT_AUTH_ADMIN_PASSWORD").as_deref(), Some("pinot-admin/password"));
    assert_eq!(
        env_from_secret(&controller, "PINOT_AUTH_USER_0_PASSWORD").as_deref(),
        Some("pinot-dashboards/password")
    );

    // An external cluster taking bearer tokens.
    let admin = pinot_testbed::harness::simulator_admin_url(&ns.name, "bearer");
    assert!(http.put(&admin).send().await.unwrap().status().is_success());
    let r = http.post(format!("{admin}/instances")).json(&json!({"role": "controller", "host": "c0"})).send().await;
    assert!(r.unwrap().status().is_success());
    let faults = json!({"requiredAuthorization": "Bearer tok-3x4mple"});
    assert!(http.put(format!("{admin}/faults")).json(&faults).send().await.unwrap().status().is_success());
    let bearer_url =
        pinot_testbed::harness::controller_url_template().replace("{namespace}", &ns.name).replace("{name}", "bearer");
    let external = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-token", "namespace": ns.name}, "stringData": {"token": "tok-3x4mple\n"}},
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": "bearer", "namespace": ns.name},
         "spec": {"external": {"controllerUrl": bearer_url}, "controllerAccess": {"bearerTokenSecret": {"name": "pinot-token", "key": "token"}}}}]});
    apply(&ns.name, "external", &external).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/bearer", "--timeout=60s"]).await;

    operator.stop().await;
    ns.cleanup().await;
}

/// A client trusting only the simulated controllers' test CA.
fn trusting_test_ca() -> reqwest::Client {
    pinot_operator::pinot::install_tls_provider();
    let certs = reqwest::Certificate::from_pem_bundle(pinot_testbed::pinot_sim::TEST_CA_PEM.as_bytes()).unwrap();
    pinot_operator::pinot::http_client_builder().tls_certs_only(certs).build().unwrap()
}

/// The TLS example: the controller and broker listen on HTTPS only (same ports, so the same
/// instance ids), their probes ask over HTTPS, servers and minions trust the CA, the stores come
/// from the Secret; the simulated controller, reading its listeners from the pod's file as
/// Pinot does, answers HTTPS only; the operator reaches it over HTTPS trusting the Secret's
/// `ca.crt`, as the admin. An external cluster behind HTTPS with a company CA and a bearer
/// token is reached with `controllerAccess.caBundle` and `bearerTokenSecret`.
#[tokio::test]
async fn pinot_over_https_is_reached_with_the_clusters_ca_and_nothing_speaks_plain_http() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "tls").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let stores = |file: &str| {
        use base64::Engine as _;
        let path = repo_root().join("tests/fixtures/tls").join(file);
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
    };
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-tls", "namespace": ns.name},
         "data": {"keystore.p12": stores("keystore.p12"), "truststore.p12": stores("truststore.p12")},
         "stringData": {"ca.crt": pinot_testbed::pinot_sim::TEST_CA_PEM}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-tls-password", "namespace": ns.name}, "stringData": {"password": "changeit"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-admin", "namespace": ns.name}, "stringData": {"password": "s3cretAdmin"}}]});
    apply(&ns.name, "objects", &objects).await;
    apply(&ns.name, "secure-pinot", &example("tls.yaml", &ns.name)).await;
    let api: Api<PinotCluster> = Api::namespaced(client.clone(), &ns.name);
    let cluster = wait_available(&api, "secure-pinot").await;
    let pinot = cluster.status.unwrap().pinot.unwrap();
    assert!(pinot.url.starts_with("https://"), "the operator speaks HTTPS: {}", pinot.url);
    assert!(pinot.reachable);

    // Only HTTPS, and only with the cluster's CA.
    let plain = pinot_testbed::harness::controller_url_template()
        .replace("{namespace}", &ns.name)
        .replace("{name}", "secure-pinot");
    let https = plain.replacen("http://", "https://", 1);
    let admin = basic("admin", "s3cretAdmin");
    let r =
        reqwest::Client::new().get(format!("{plain}/instances")).header("authorization", &admin).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "plain HTTP to an HTTPS-only controller");
    let trusted = trusting_test_ca();
    let r = trusted.get(format!("{https}/instances")).header("authorization", &admin).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    pinot_operator::pinot::install_tls_provider();
    let untrusted = pinot_operator::pinot::http_client();
    assert!(untrusted.get(format!("{https}/health")).send().await.is_err(), "an unknown CA is refused");

    // What the pods get.
    let conf = |cm: &'static str, file: &'static str| config_file(&client, &ns.name, cm, file);
    let controller = conf("secure-pinot-controller-config", "pinot-controller.conf").await;
    for line in [
        "controller.access.protocols=https",
        "controller.access.protocols.https.port=9000",
        "controller.tls.keystore.path=/var/pinot/tls/keystore.p12",
        "controller.tls.keystore.password=${env:PINOT_TLS_PASSWORD}",
        "controller.tls.keystore.type=PKCS12",
        "controller.vip.protocol=https",
    ] {
        assert!(controller.lines().any(|l| l == line), "{line} in\n{controller}");
    }
    assert!(!controller.lines().any(|l| l.starts_with("controller.port=")), "the HTTPS listener has the port");
    let broker = conf("secure-pinot-broker-config", "pinot-broker.conf").await;
    assert!(broker.lines().any(|l| l == "pinot.broker.client.access.protocols.https.port=8099"), "{broker}");
    assert!(!broker.lines().any(|l| l.starts_with("pinot.broker.client.queryPort=")), "{broker}");
    let server = conf("secure-pinot-server-config", "pinot-server.conf").await;
    assert!(server.lines().any(|l| l == "pinot.server.segment.uploader.protocol=https"), "{server}");
    assert!(server.lines().any(|l| l == "pinot.server.tls.truststore.path=/var/pinot/tls/truststore.p12"), "{server}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (pod, scheme) in [
        ("secure-pinot-controller-0", Some("HTTPS")),
        ("secure-pinot-broker-0", Some("HTTPS")),
        ("secure-pinot-server-0", Some("HTTP")),
    ] {
        let spec = pods.get(pod).await.unwrap().spec.unwrap();
        let c = &spec.containers[0];
        let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(probe.scheme.as_deref(), scheme, "{pod}");
        let names: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names[..2],
            ["PINOT_TLS_PASSWORD", "JAVA_OPTS"],
            "{pod}: the password first, for $(PINOT_TLS_PASSWORD)"
        );
        let mounts: Vec<&str> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert!(mounts.contains(&"/var/pinot/tls"), "{pod}");
    }

    // An external cluster behind HTTPS with the company's CA, taking bearer tokens.
    let sim_admin = pinot_testbed::harness::simulator_admin_url(&ns.name, "company");
    let http = reqwest::Client::new();
    assert!(http.put(&sim_admin).send().await.unwrap().status().is_success());
    let r = http.post(format!("{sim_admin}/instances")).json(&json!({"role": "controller", "host": "c0"})).send().await;
    assert!(r.unwrap().status().is_success());
    let faults = json!({"requiredAuthorization": "Bearer tok-3x4mple"});
    assert!(http.put(format!("{sim_admin}/faults")).json(&faults).send().await.unwrap().status().is_success());
    let url = pinot_testbed::harness::controller_url_template()
        .replace("{namespace}", &ns.name)
        .replace("{name}", "company")
        .replacen("http://", "https://", 1);
    let external = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "company-ca", "namespace": ns.name}, "data": {"ca.pem": pinot_testbed::pinot_sim::TEST_CA_PEM}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pinot-token", "namespace": ns.name}, "stringData": {"token": "tok-3x4mple"}},
        {"apiVersion": "pinot.controlplane.dev/v1alpha1", "kind": "PinotCluster", "metadata": {"name": "company", "namespace": ns.name},
         "spec": {"external": {"controllerUrl": url}, "controllerAccess": {
            "bearerTokenSecret": {"name": "pinot-token", "key": "token"}, "caBundle": {"name": "company-ca", "key": "ca.pem"}}}}]});
    apply(&ns.name, "external", &external).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/company", "--timeout=60s"]).await;

    operator.stop().await;
    ns.cleanup().await;
}
