//! Rolling restarts on the local control plane: `kubectl pinot restart` (the plugin, found by
//! kubectl on PATH) and `kubectl rollout restart` of a pool's StatefulSet are both carried out
//! by the upgrade policy pod by pod, each pod of the pool restarted once, the others not at all;
//! `kubectl pinot status` shows the cluster on one screen.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt, api::ListParams};
use pinot_crds::PinotCluster;
use pinot_testbed::harness::{
    OperatorHandle, TestNamespace, condition, kubectl, kubectl_env, operator_binary, pod_creations, test_client,
    wait_for,
};

const CLUSTER: &str = r#"
apiVersion: pinot.controlplane.dev/v1alpha1
kind: PinotCluster
metadata:
  name: bounce
spec:
  image: apachepinot/pinot:1.2.0
  zookeeper:
    connectString: zookeeper:2181
  upgrade:
    podReadyTimeoutSeconds: 5
  pools:
    - name: controller
      role: controller
      storage: {ephemeral: true}
      replicas: 1
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: broker
      role: broker
      replicas: 2
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
    - name: server
      role: server
      storage: {ephemeral: true}
      replicas: 3
      podOverrides: {annotations: {sim.pinot.controlplane.dev/ready-after-ms: "300"}}
"#;

async fn uids(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api.list(&ListParams::default().labels("pinot.controlplane.dev/cluster=bounce")).await.unwrap();
    pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| (p.name_any(), p.uid().unwrap())).collect()
}

/// Waits until every pod whose name starts with `prefix` has a new uid, the cluster is
/// Available and not Progressing; returns the new uids.
async fn restarted(
    client: &kube::Client,
    ns: &str,
    before: &BTreeMap<String, String>,
    prefix: &str,
) -> BTreeMap<String, String> {
    let clusters: Api<PinotCluster> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("every {prefix}* pod restarted"), Duration::from_secs(180), || async {
        let now = uids(client, ns).await;
        let renewed =
            before.iter().filter(|(n, _)| n.starts_with(prefix)).all(|(n, u)| now.get(n).is_some_and(|v| v != u));
        let c = clusters.get("bounce").await.ok()?;
        let settled = condition(&c, "Available").is_some_and(|(s, _)| s == "True")
            && condition(&c, "Progressing").is_some_and(|(s, _)| s == "False");
        (renewed && settled && now.len() == before.len()).then_some(now)
    })
    .await
}

#[tokio::test]
async fn restarts_asked_with_kubectl_pinot_or_kubectl_rollout_go_pod_by_pod() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "restart").await;
    let operator = OperatorHandle::start(&client, &ns.name);
    let file = std::env::temp_dir().join(format!("{}-bounce.yaml", ns.name));
    std::fs::write(&file, CLUSTER).unwrap();
    kubectl(&["-n", &ns.name, "apply", "-f", file.to_str().unwrap()]).await;
    kubectl(&["-n", &ns.name, "wait", "--for=condition=Available", "pinotcluster/bounce", "--timeout=180s"]).await;

    // The plugin as kubectl finds it: `kubectl-pinot` on PATH, a link to the binary.
    let plugins = std::env::temp_dir().join(format!("{}-plugins", ns.name));
    std::fs::create_dir_all(&plugins).unwrap();
    let _ = std::fs::remove_file(plugins.join("kubectl-pinot"));
    std::os::unix::fs::symlink(operator_binary(), plugins.join("kubectl-pinot")).unwrap();
    let path = std::env::join_paths(
        std::iter::once(plugins.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let env = [("PATH", path.as_os_str())];

    let (ok, out, err) = kubectl_env(&["pinot", "status", "bounce", "-n", &ns.name], &env).await;
    assert!(ok, "{err}");
    for expected in ["PinotCluster", "POOLS", "server", "zone-", "PINOT", "POLICIES", "upgrade"] {
        assert!(out.contains(expected), "{expected} missing from:\n{out}");
    }

    // A pool that does not exist.
    let (ok, _, err) = kubectl_env(&["pinot", "restart", "bounce", "--pool", "nope", "-n", &ns.name], &env).await;
    assert!(!ok && err.contains("no pool \"nope\""), "{err}");

    // The servers, one at a time, each once; the other pods untouched.
    let before = uids(&client, &ns.name).await;
    let (ok, out, err) = kubectl_env(&["pinot", "restart", "bounce", "--pool", "server", "-n", &ns.name], &env).await;
    assert!(ok, "{err}");
    assert!(out.contains("pool server"), "{out}");
    let after = restarted(&client, &ns.name, &before, "bounce-server-").await;
    for (name, uid) in before.iter().filter(|(n, _)| !n.starts_with("bounce-server-")) {
        assert_eq!(after.get(name), Some(uid), "{name} was not to restart");
    }
    let counts = pod_creations(&client, &ns.name).await;
    let servers: Vec<_> = counts.iter().filter(|(p, _)| p.starts_with("bounce-server-")).collect();
    assert_eq!(servers.len(), 3, "{counts:?}");
    assert!(servers.iter().all(|(_, n)| **n == 2), "each server restarted once: {counts:?}");

    // Removing the annotation afterwards restarts nothing (the stamp stays on the StatefulSet).
    let (ok, _, err) = kubectl_env(
        &["-n", &ns.name, "annotate", "pinotcluster/bounce", "restart.pinot.controlplane.dev/server-"],
        &[],
    )
    .await;
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(uids(&client, &ns.name).await, after, "no pod restarted when the annotation went");

    // `kubectl rollout restart` of the brokers' StatefulSet: honoured the same way.
    let (ok, _, err) = kubectl_env(&["-n", &ns.name, "rollout", "restart", "statefulset/bounce-broker"], &[]).await;
    assert!(ok, "{err}");
    let again = restarted(&client, &ns.name, &after, "bounce-broker-").await;
    for (name, uid) in after.iter().filter(|(n, _)| !n.starts_with("bounce-broker-")) {
        assert_eq!(again.get(name), Some(uid), "{name} was not to restart");
    }
    let counts = pod_creations(&client, &ns.name).await;
    assert!(counts.iter().filter(|(p, _)| p.starts_with("bounce-broker-")).all(|(_, n)| *n == 2), "{counts:?}");
    assert!(counts.iter().filter(|(p, _)| p.starts_with("bounce-controller-")).all(|(_, n)| *n == 1), "{counts:?}");

    operator.stop().await;
    let _ = std::fs::remove_dir_all(&plugins);
    ns.cleanup().await;
}
